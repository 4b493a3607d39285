"""`reprsim report RESULTS --out DIR`: figures and one self-contained HTML page for a results table."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprsim.cli import add_quiet, command_parser


def run(args: argparse.Namespace) -> int:
    """Write the HTML report of a results table (see `reprsim.report.write_report`).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim report`` options.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If a ``--finetuned`` value is malformed or names a base model twice, or the results table cannot be
        read.
    FileNotFoundError
        If the results table does not exist.
    KeyError
        If a ``--finetuned`` model is not in the table.
    """
    from reprsim.report import parse_finetuned, write_report
    from reprsim.results import ResultTable

    finetuned: dict[str, list[str]] = {}
    for spec in args.finetuned or []:
        base, models = parse_finetuned(spec)
        if base in finetuned:
            raise ValueError(f"--finetuned names base model {base!r} twice")
        finetuned[base] = models
    table = ResultTable.load(args.results)
    index = write_report(table, args.out, finetuned=finetuned, progress=not args.quiet,
                         command=getattr(args, "command_line", None))
    print(f"report written to {index}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    parser = command_parser(
        subparsers,
        "report",
        help="draw figures and write a self-contained HTML report from a results table",
        description=(
            "Read a results table (.parquet or .csv) and write figures (PNG and SVG), tidy CSVs of the "
            "model-to-model and localisation analyses, and one self-contained index.html to --out."
        ),
    )
    parser.add_argument("results", type=Path, help="results table written by the engine (.parquet or .csv)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument(
        "--finetuned",
        action="append",
        metavar="BASE:FT1,FT2",
        help="compare fine-tuned models layer by layer with their base model (repeatable)",
    )
    add_quiet(parser, "no progress bar")
    parser.set_defaults(func=run)
