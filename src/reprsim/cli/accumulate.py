"""`reprsim accumulate`: one row shard of a study's linear pass into a moments file, for `reprsim merge`."""

from __future__ import annotations

import argparse

from reprsim.cli import add_quiet, byte_size, command_parser
from reprsim.cli.compare import add_inference_options, inference_arguments, split_names


def run(args: argparse.Namespace) -> int:
    """Stream one shard of whole sentences of every stored layer and write its moments file.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim accumulate`` options.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If the shard is malformed, no measure is linear, or the comparison rejects its input (see
        `reprsim.shards.accumulate_shard`).
    """
    from reprsim.shards import Shard, accumulate_shard

    shard = Shard.parse(args.shard)
    path = accumulate_shard(
        args.store, shard, args.out, split_names(args.measures), split_names(args.models) if args.models else None,
        device=args.device, chunk_rows=args.chunk_rows, subsample_rows=args.subsample_rows,
        attention_sentences=args.attention_sentences, seed=args.seed, progress=not args.quiet,
        **inference_arguments(args), tile=args.tile, memory_per_task=args.memory_per_task,
    )
    tile = f", tile {args.tile}" if args.tile else ""
    print(f"wrote shard {shard}{tile} ({path.stat().st_size / 2**20:,.1f} MiB) to {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``accumulate`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser.
    """
    p = command_parser(
        sub,
        "accumulate",
        help="accumulate one row shard of a comparison, for `reprsim merge` (SLURM and other schedulers)",
        description=(
            "Stream shard i of N (a run of whole sentences) of every stored layer into the moments of the linear "
            "measures and write them to DIR/moments-0000i-of-0000N.npz. Run the N shards anywhere that sees the "
            "store, then `reprsim merge DIR --out results.parquet`. The measure and statistics options are compare's "
            "(give every shard the same); merge computes the statistics."
        ),
    )
    p.add_argument("--store", required=True, help="activation store directory (a path every node sees)")
    p.add_argument("--shard", required=True, help="i/N: shard i of N, counted from 1 (e.g. $SLURM_ARRAY_TASK_ID/8)")
    p.add_argument("--out", required=True, help="folder of the moments files")
    p.add_argument("--tile", default=None,
                   help="t/T: column tile t of T, when the study's blocks exceed --memory-per-task (the error says T)")
    p.add_argument("--memory-per-task", type=byte_size, default=None,
                   help="bytes of blocks one job holds, e.g. 8GiB (default 4GiB); more blocks are cut into column "
                        "tiles, one file per shard and tile; give every job the same")
    p.add_argument("--measures", default="all", help="as for `reprsim compare`")
    p.add_argument("--models", default=None, help="comma-separated entry names (default: every entry)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the pass runs")
    p.add_argument("--chunk-rows", type=int, default=8192, help="rows streamed per chunk")
    p.add_argument("--subsample-rows", type=int, default=5000,
                   help="rows for n x n measures, which `reprsim merge` computes")
    p.add_argument("--attention-sentences", type=int, default=500,
                   help="sentences for attention measures, which `reprsim merge` computes")
    p.add_argument("--seed", type=int, default=0, help="seed of the row and sentence subsamples and the statistics")
    add_inference_options(p)
    add_quiet(p)
    p.set_defaults(func=run)
