"""`reprsim run STUDY.yaml`: corpus, models, extraction, comparison and report from one config."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Load a study file and run it (see `reprsim.study.load_study` and `reprsim.pipeline.run_study`).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim run`` options (the study path, ``--quiet``).

    Returns
    -------
    int
        0.

    Raises
    ------
    FileNotFoundError
        If the study file or its corpus is missing.
    ValueError
        If the study config is malformed (`reprsim.study.StudyConfigError`) or a step of the study fails.
    """
    from reprsim.pipeline import run_study
    from reprsim.study import load_study

    outputs = run_study(load_study(args.study), progress=not args.quiet)
    print(f"results: {outputs.results} ({outputs.n_rows} rows)")
    if outputs.report is not None:
        print(f"report:  {outputs.report}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    p = sub.add_parser("run", help="run a whole study from a YAML config (re-running skips finished work)")
    p.add_argument("study", help="study config (YAML); see the README's 'Studies' section")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
