"""The ``reprsim`` command line.

Each subcommand lives in its own module (``reprsim.cli.<command>``), which exposes ``register(subparsers)`` to add
its parser (made with `command_parser`, so that every ``--help`` shows the defaults) and ``run(args)`` to carry
it out. `main` turns user-facing errors into one line on stderr, and warnings into one line each.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TextIO

# Subcommand modules, in the order `reprsim --help` lists them.
COMMANDS: tuple[str, ...] = (
    "extract",
    "quick",
    "measures",
    "compare",
    "accumulate",
    "merge",
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


_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def byte_size(text: str) -> int:
    """Parse a size such as ``4GiB``, ``512MiB``, ``1.5GB`` or ``1000000`` (bytes) for argparse.

    Parameters
    ----------
    text : str
        The option's text.

    Returns
    -------
    int
        Bytes (at least 1).

    Raises
    ------
    argparse.ArgumentTypeError
        If the text is not a positive number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB).

    Examples
    --------
    >>> byte_size("2GiB")
    2147483648
    """
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(f"must be a size such as 4GiB, 512MiB or a number of bytes, got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that names every option's default, except where it says nothing (None, or a flag's False).

    An option whose help already states its default ("(default: ...)") is left as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        """Append ``(default: X)`` to the option's help where X tells the reader something."""
        text = action.help or ""
        is_flag = action.nargs == 0 and isinstance(action.default, bool)
        if action.default is None or is_flag or "default" in text:
            return text
        return str(super()._get_help_string(action))


class RawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """`HelpFormatter` for a command whose description is laid out by hand (kept as written)."""


def command_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str | None = None,
    raw_description: bool = False,
) -> argparse.ArgumentParser:
    """Add one subcommand's parser, with the help formatter every ``reprsim`` command uses.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `build_parser`).
    name : str
        The command's name.
    help : str
        One line for ``reprsim --help``'s list of commands.
    description : str, optional
        The longer text at the top of ``reprsim NAME --help`` (default: `help`, with a capital and a full stop).
    raw_description : bool, default False
        Keep the description's own line breaks instead of re-wrapping it.

    Returns
    -------
    argparse.ArgumentParser
        The command's parser, to add options to.
    """
    text = description if description is not None else f"{help[:1].upper()}{help[1:]}."
    formatter = RawDescriptionHelpFormatter if raw_description else HelpFormatter
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=text, formatter_class=formatter
    )
    return parser


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    """Add ``--quiet``, the one spelling of quiet mode, to a command.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    what : str, default "no progress bars"
        What quiet leaves out, for the help.
    """
    parser.add_argument("--quiet", action="store_true", help=what)


def warning_line(message: Warning | str, category: type[Warning]) -> str:
    """Format a warning as the command line prints it: one line, no source line.

    Parameters
    ----------
    message : Warning or str
        The warning (or its text).
    category : type
        Its class.

    Returns
    -------
    str
        ``reprsim: warning: <Category>: <message>``, the message's whitespace (line breaks included) collapsed.

    Examples
    --------
    >>> warning_line("few rows  here", UserWarning)
    'reprsim: warning: UserWarning: few rows here'
    """
    return f"reprsim: warning: {category.__name__}: {' '.join(str(message).split())}"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` for the command line: one line, written above any progress bar."""
    from tqdm import tqdm

    # tqdm.write clears the bars on the stream, writes the line, and redraws them below it.
    tqdm.write(warning_line(message, category), file=file if file is not None else sys.stderr)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Print warnings as `warning_line` inside the block; the previous warning display is restored after."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        yield


def _settle_zarr_reads() -> None:
    """Let zarr's leftover read tasks finish before the process exits (only once zarr has been used)."""
    if "zarr.core.sync" in sys.modules:
        from reprsim.store._zarr_tasks import settle_pending_reads

        settle_pending_reads()


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
        description="Similarity analysis of neural network representations and attention. "
        "`reprsim COMMAND --help` describes each command and its options.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reprsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMANDS:
        importlib.import_module(f"reprsim.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``reprsim`` command line.

    A ValueError, KeyError or OSError raised by a command (bad input, an unreadable or unwritable path) is
    printed as one line, ``reprsim <command>: error: <message>``, without a traceback; Ctrl-C prints one
    line saying that finished work is kept (extraction commits whole windows, comparisons write nothing
    partial), so running the same command again goes on from there. While the command runs, each warning
    prints as one line, ``reprsim: warning: <Category>: <message>``, above any progress bar (see
    `warning_line`); the library itself keeps Python's usual warning display.

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
    # The command as typed, for the report's run details.
    args.command_line = shlex.join(["reprsim", *(sys.argv[1:] if argv is None else argv)])
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _one_line_warnings():
            return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as exc:
        # User-facing errors (bad input, unreadable or unwritable paths): one clear line, no traceback.
        _settle_zarr_reads()  # else zarr's unfinished reads print "Task was destroyed" lines at exit
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"reprsim {args.command}: error: {' '.join(str(msg).splitlines())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _settle_zarr_reads()
        # Extraction commits whole windows and comparisons write nothing partial: a re-run picks up from there.
        print(f"reprsim {args.command}: interrupted; finished work is kept, run the same command again to go on",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
