"""`reprsim merge`: the moments files of `reprsim accumulate` into one results table."""

from __future__ import annotations

import argparse

from reprsim.cli import add_quiet, command_parser


def run(args: argparse.Namespace) -> int:
    """Merge every shard of one study and write its results table.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim merge`` options.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If ``--out`` exists (without ``--overwrite``) or has another suffix, or the files are not every shard
        of one study, each once (see `reprsim.shards.merge_shards`).
    """
    from reprsim.cli.compare import checked_results_path
    from reprsim.shards import merge_shards

    out = checked_results_path(args.out, args.csv)
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {str(out)!r} exists: add --overwrite to replace it")
    table = merge_shards(args.moments, store=args.store, device=args.device, progress=not args.quiet)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = table.save(out, format="csv" if args.csv else None)
    print(f"merged {table.provenance['shards']} shards: wrote {len(table)} rows to {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``merge`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser.
    """
    p = command_parser(
        sub,
        "merge",
        help="merge the moments files of `reprsim accumulate` into a results table",
        description=(
            "Check that the files are every shard of one study, each once, merge their moments, derive the "
            "linear measures and compute the n x n and attention measures from the store: the table that "
            "`reprsim compare` gives."
        ),
    )
    p.add_argument("moments", nargs="+", help="moments files, or folders of them")
    p.add_argument("--out", required=True, help="results file (.parquet, or .csv)")
    p.add_argument("--store", default=None, help="activation store (default: the one the shards name)")
    p.add_argument("--csv", action="store_true", help="write CSV whatever the suffix")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where the merge runs")
    add_quiet(p)
    p.set_defaults(func=run)
