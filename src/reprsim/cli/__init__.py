"""The ``reprsim`` command line.

Each subcommand lives in its own module (``reprsim.cli.<command>``), which exposes ``register(subparsers)`` to add
its parser and ``run(args)`` to carry it out. `main` turns user-facing errors into one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

# Subcommand modules, in the order `reprsim --help` lists them.
COMMANDS: tuple[str, ...] = (
    "extract",
    "quick",
    "compare",
    "run",
    "demo",
    "report",
    "store",
    "validate",
)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """Make an argparse ``type`` for integer options of at least `minimum`.

    Parameters
    ----------
    minimum : int
        The smallest value accepted.

    Returns
    -------
    callable
        Parses an option's text into an int, raising `argparse.ArgumentTypeError` ("must be an integer", or
        "must be a positive integer" / "must be at least N") so that argparse names the option in its error.

    Examples
    --------
    >>> int_at_least(2)("5")
    5
    """

    def parse(text: str) -> int:
        """Parse one option value."""
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            bound = "a positive integer" if minimum == 1 else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Build the ``reprsim`` argument parser with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
        The parser; each subcommand sets ``func`` to its module's ``run``.
    """
    from reprsim import __version__

    parser = argparse.ArgumentParser(
        prog="reprsim",
        description="Similarity analysis of neural network representations and attention.",
    )
    parser.add_argument("--version", action="version", version=f"reprsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"reprsim.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``reprsim`` command line.

    A ValueError, KeyError or OSError raised by a command (bad input, an unreadable or unwritable path) is
    printed as one line, ``reprsim <command>: error: <message>``, without a traceback; Ctrl-C prints one
    line saying that finished work is kept (extraction commits whole windows, comparisons write nothing
    partial), so running the same command again goes on from there.

    Parameters
    ----------
    argv : list of str, optional
        The arguments, without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 1 on a user-facing error, 2 when no command is given (the help is
        printed), 130 on Ctrl-C. Argparse itself exits with status 2 on a malformed command line.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as exc:
        # User-facing errors (bad input, unreadable or unwritable paths): one clear line, no traceback.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"reprsim {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Extraction commits whole windows and comparisons write nothing partial: a re-run picks up from there.
        print(f"reprsim {args.command}: interrupted; finished work is kept, run the same command again to go on",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
