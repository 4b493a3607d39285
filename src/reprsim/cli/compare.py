"""`reprsim compare`: all pairs of stored representations on the chosen measures, into a results table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reprsim.cli import add_quiet, byte_size, command_parser, int_at_least
from reprsim.inference.options import COMPARE_ARGUMENTS, JACKKNIFE_METHODS


def split_names(text: str) -> list[str]:
    """Split a comma-separated option into its non-empty names.

    Commas inside parentheses belong to a measure spec's options: ``svcca(keep=0.9, convention=wu),linear_cka``.
    """
    names, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += char
    names.append(current)
    return [name.strip() for name in names if name.strip()]


def add_inference_options(p: argparse.ArgumentParser, ci: str = "none", null: str = "none") -> None:
    """Add the statistics options: --ci, --null, --blocks, --resamples, --permutations, --alpha and --jackknife.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The command's parser.
    ci, null : str
        The defaults of ``--ci`` and ``--null``.
    """
    g = p.add_argument_group("statistics (docs: guide/statistics)")
    g.add_argument("--ci", default=ci, choices=["bootstrap", "jackknife", "none"],
                   help="confidence intervals over sentence blocks")
    g.add_argument("--null", default=null, choices=["analytic", "permutation", "none"],
                   help="null baselines: p-values and calibrated scores")
    g.add_argument("--blocks", type=int, default=50, help="G, sentence blocks resampled")
    g.add_argument("--resamples", type=int, default=1000, help="B, bootstrap replicates")
    g.add_argument("--permutations", type=int, default=200, help="K, permutations of the null")
    g.add_argument("--alpha", type=float, default=0.05, help="intervals of level 1 - alpha; calibration level")
    g.add_argument("--jackknife", default="linearised", choices=list(JACKKNIFE_METHODS),
                   help="the linear measures' leave-one-block-out values: first order (linearised) or refitted "
                        "per block (exact, G times the work)")


def inference_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The statistics options of parsed arguments, as `reprsim.compare` keywords.

    Parameters
    ----------
    args : argparse.Namespace
        Options parsed with `add_inference_options`.

    Returns
    -------
    dict
        `reprsim.inference.COMPARE_ARGUMENTS`: ``ci``, ``null``, ``blocks``, ``resamples``, ``permutations``,
        ``alpha`` and ``jackknife``.
    """
    return {k: getattr(args, k) for k in COMPARE_ARGUMENTS}


def checked_results_path(out: str, csv: bool) -> Path:
    """Check ``--out`` before any work: a .parquet or .csv name (any name with ``--csv``), in a writable place.

    Parameters
    ----------
    out : str
        The option's value.
    csv : bool
        Whether ``--csv`` was given.

    Returns
    -------
    pathlib.Path
        The path.

    Raises
    ------
    ValueError
        If the suffix is neither, or the place cannot be written.
    """
    from reprsim.results import FORMAT_OF_SUFFIX, check_output_path

    path = Path(out)
    if not csv and path.suffix.lower() not in FORMAT_OF_SUFFIX:
        raise ValueError(f"--out {str(path)!r}: use a .parquet or .csv name (or add --csv)")
    check_output_path(path, "csv" if csv else None)
    return path


def run(args: argparse.Namespace) -> int:
    """Compare every stored representation with every other and write the results table.

    Existing rows of ``--out`` are kept and not recomputed (unless ``--overwrite``); ``--out`` is checked
    before any work.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim compare`` options.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If ``--out`` is neither ``.parquet`` nor ``.csv`` (without ``--csv``), or cannot be written, or the
        comparison rejects its input (unknown measures or models, entries from different corpora).
    KeyError
        If a measure or model is unknown.
    """
    from reprsim.comparison import compare
    from reprsim.results import ResultTable

    if args.plan:
        from reprsim.comparison import plan_lines

        print("\n".join(plan_lines(args.store, split_names(args.measures),
                                   split_names(args.models) if args.models else None, backend=args.backend,
                                   address=args.address, shards=args.shards, memory_per_task=args.memory_per_task,
                                   subsample_rows=args.subsample_rows, attention_sentences=args.attention_sentences,
                                   seed=args.seed, chunk_rows=args.chunk_rows, ci=args.ci, blocks=args.blocks,
                                   space=args.space, null=args.null, precision=args.precision)))
        return 0
    if args.out is None:
        raise ValueError("--out is required (the results file), except with --plan")
    out = checked_results_path(args.out, args.csv)  # before the work, not after it
    previous = ResultTable.load(out) if out.exists() and not args.overwrite else None
    table = compare(
        args.store,
        measures=split_names(args.measures),
        models=split_names(args.models) if args.models else None,
        previous=previous,
        device=args.device,
        chunk_rows=args.chunk_rows,
        subsample_rows=args.subsample_rows,
        attention_sentences=args.attention_sentences,
        seed=args.seed,
        progress=not args.quiet,
        backend=args.backend,
        address=args.address,
        shards=args.shards,
        memory_per_task=args.memory_per_task,
        space=args.space,
        precision=args.precision,
        **inference_arguments(args),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    path = table.save(out, format="csv" if args.csv else None)
    kept = len(previous) if previous is not None else 0
    print(f"wrote {len(table)} rows ({len(table) - kept} new) to {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    p = command_parser(
        sub,
        "compare",
        help="compare every stored representation with every other",
        description=(
            "Compare every stored representation (each layer of each entry) with every other on the chosen "
            "measures and write one row per pair and measure to a results table. Rows already in --out are "
            "kept, not recomputed, so adding a model or a measure costs only what is new."
        ),
    )
    p.add_argument("--store", required=True, help="activation store directory (from `reprsim extract`)")
    p.add_argument(
        "--measures",
        default="all",
        help="comma-separated measure names or specs such as 'svcca(keep=0.9)', or 'all'; "
        "`reprsim measures` lists them",
    )
    p.add_argument("--models", default=None, help="comma-separated entry names (default: every entry)")
    p.add_argument("--out", default=None, help="results file (.parquet, or .csv); existing rows are kept")
    p.add_argument("--csv", action="store_true", help="write CSV whatever the suffix")
    p.add_argument("--overwrite", action="store_true", help="ignore an existing results file")
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where the measures run (auto: CUDA when torch sees a GPU)",
    )
    p.add_argument("--chunk-rows", type=int, default=8192, help="rows streamed per chunk")
    p.add_argument("--subsample-rows", type=int, default=5000, help="rows for n x n measures (RBF CKA, RSA, k-NN)")
    p.add_argument("--attention-sentences", type=int, default=500, help="sentences for attention measures")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the row and sentence subsamples, the bootstrap and the permutations")
    p.add_argument("--space", default="auto", choices=["auto", "feature", "gram"],
                   help="route of linear and debiased CKA: the pass's cross-products (feature), each layer's "
                        "n x n Gram matrix (gram), or the cheaper (auto; --plan prints the cost model)")
    p.add_argument("--precision", default="auto", choices=["auto", "float64", "float32"],
                   help="the linear measures' products: float32 where every measure asked for keeps float64's "
                        "values whatever the conditioning (auto: the CKA family, maxsim, Procrustes), else "
                        "float64 (docs: guide/comparison)")
    g = p.add_argument_group("scaling out (docs: guide/scaling)")
    g.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="where the linear measures' pass runs: this process, or Ray tasks over row shards")
    g.add_argument("--address", default=None, help="the Ray cluster (`ray start --head` prints it; default: local)")
    g.add_argument("--shards", type=int_at_least(1), default=None,
                   help="row shards on Ray, one task each per column tile (default: the cluster's CPUs)")
    g.add_argument("--memory-per-task", type=byte_size, default=None,
                   help="blocks one pass (one Ray task) holds, e.g. 2GiB; more are cut into column tiles "
                        "(default: 4GiB)")
    g.add_argument("--plan", action="store_true",
                   help="print the plan (pairs, tiles, passes over the rows, tasks, bytes per task) and stop")
    add_inference_options(p)
    add_quiet(p)
    p.set_defaults(func=run)
