"""`reprsim run STUDY.yaml`: corpus, models, extraction, comparison and report from one config."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reprsim.cli import add_quiet, command_parser

if TYPE_CHECKING:
    from reprsim.pipeline import StudyOutputs


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
        If the study file or its corpus is missing, or a model cannot be loaded (checked before any is
        extracted; see `reprsim.pipeline.check_models`).
    ValueError
        If the study config is malformed (`reprsim.study.StudyConfigError`) or a step of the study fails.
    """
    from reprsim.pipeline import run_study
    from reprsim.study import load_study

    outputs = run_study(load_study(args.study), progress=not args.quiet, command=getattr(args, "command_line", None))
    print("\n".join(summary_lines(outputs)))
    return 0


def summary_lines(outputs: StudyOutputs) -> list[str]:
    """Say what a study run did: what was new, where the results and the report are.

    Parameters
    ----------
    outputs : StudyOutputs
        What `reprsim.pipeline.run_study` returned.

    Returns
    -------
    list of str
        "nothing new to compute" when every entry and row was there already, then the results line and, for
        a study with a report, the report line (saying when it was left as it was).
    """
    lines = []
    if outputs.nothing_new:
        lines.append("nothing new to compute: every store entry and results row was already there")
    elif outputs.new_entries:
        lines.append(f"extracted {outputs.new_entries} new store entr{'y' if outputs.new_entries == 1 else 'ies'}")
    lines.append(f"results: {outputs.results} ({outputs.n_rows} rows)")
    if outputs.report is not None:
        unchanged = "" if outputs.report_redrawn else " (unchanged: drawn from this same table)"
        lines.append(f"report:  {outputs.report}{unchanged}")
    return lines


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    p = command_parser(
        sub,
        "run",
        help="run a whole study from a YAML config (re-running skips finished work)",
        description=(
            "Run a study from one YAML file: corpus, models, extraction, all-pairs comparison and report. Every "
            "model is checked first (a preset installed, a folder present, a hub id in the local cache), so a "
            "model that cannot be loaded fails before anything is extracted. A re-run reuses the complete "
            "store entries and the rows already in the results table, and leaves the report as it is when the "
            "table did not change."
        ),
    )
    p.add_argument("study", help="study config (YAML); see the user guide's 'Studies' section")
    add_quiet(p)
    p.set_defaults(func=run)
