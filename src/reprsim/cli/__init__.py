"""The `reprsim` command. Each subcommand lives in its own module exposing `register(subparsers)`."""

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
    """An argparse `type` for integer options of at least `minimum`, with a message saying which."""

    def parse(text: str) -> int:
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
