"""`reprsim validate`: check the measures against published findings on networks trained here from seeds.

Section 1 (Kornblith et al. 2019): do measures find the corresponding layer of a network trained from
another seed? Section 2 (Ding et al. 2021): do they notice deleted principal components? Section 3 (on by
default in the full preset, --real-models elsewhere): MiniLM, MPNet, SmolLM2 and Gemma-3 with random
controls and a MiniLM fine-tuned here on shuffled word order, run through the study pipeline and
summarised (families, random controls, measure agreement, fine-tuning by layer). --study summarises a
results table of your own models the same way. Writes CSV, Markdown and figures into --out and prints the
Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reprsim.validation.findings import StudyFindings
    from reprsim.validation.real_models import RealModelsConfig


def run(args: argparse.Namespace) -> int:
    """Run the validation sections, write their CSV, Markdown and figures into ``--out``, print the Markdown.

    Sections 1 and 2 run on seeded networks trained here; results are rewritten after every setting, so an
    interrupted run keeps the finished settings. Section 3 runs on the packaged real models (by default with
    the full preset only; the packages are checked before anything trains) and, with ``--study``, on a
    results table of the user's own models.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``reprsim validate`` options.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        If ``--threads`` is below 1, or ``--study-design`` is given without ``--study``.
    FileNotFoundError
        If the ``--study`` results table does not exist.
    """
    from reprsim.validation.real_models import check_models_installed
    from reprsim.validation.run import ValidationConfig, run_validation, validation_markdown, write_outputs

    preset = "quick" if args.quick else args.preset
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.study_design and not args.study:
        raise ValueError("--study-design needs --study RESULTS")
    if args.study and not Path(args.study).is_file():
        raise FileNotFoundError(f"--study: results table {args.study!r} does not exist")
    config = ValidationConfig.preset_named(preset, threads=args.threads)
    wants_real = preset == "full" if args.real_models is None else args.real_models
    real = _real_models_config(preset) if wants_real else None
    if real is not None:
        check_models_installed(real)  # fail now, not after the seeded networks have trained
    out = Path(args.out)
    # Results are rewritten after every setting, so an interrupted full run keeps the finished settings.
    result = run_validation(
        config, progress=not args.no_progress, on_setting_done=lambda partial: write_outputs(partial, out)
    )
    print(validation_markdown(result))
    if real is not None:
        print(_write_real_models(real, out, args.threads, progress=not args.no_progress))
    if args.study:
        print(_write_study(Path(args.study), Path(args.study_design) if args.study_design else None, out))
    print(f"results written to {out}/")
    return 0


def _real_models_config(preset: str) -> RealModelsConfig:
    """Size section 3 by preset: the full study, or a small one (fewer sentences, shorter fine-tuning)."""
    from reprsim.validation.finetune import FinetuneConfig
    from reprsim.validation.real_models import RealModelsConfig

    if preset == "full":
        return RealModelsConfig()
    return RealModelsConfig(sentences=100, finetune=FinetuneConfig(train_sentences=320, epochs=1))


def _write_real_models(config: RealModelsConfig, out: Path, threads: int, progress: bool) -> str:
    """Run section 3 on the packaged models (study in out/real-models, real_*.csv, real_models.md); return the text."""
    from reprsim.validation.findings import findings_markdown
    from reprsim.validation.real_models import run_real_models

    result = run_real_models(config, out / "real-models", threads=threads, progress=progress)
    _write_findings(result.findings, out, prefix="real")
    lines = []
    if result.finetuned is not None:
        tuned = result.finetuned
        lines += [
            f"Fine-tuned {tuned.base} on shuffled-word-order detection ({tuned.config.train_sentences} sentences, "
            f"{tuned.config.epochs} epoch(s)): held-out accuracy {tuned.heldout_accuracy:.3f} "
            f"(untrained head: {tuned.base_heldout_accuracy:.3f}; chance 0.5).",
            "",
        ]
    text = "\n".join(lines) + findings_markdown(result.findings)
    if result.report is not None:
        text += f"\nStudy report: {result.report}\n"
    (out / "real_models.md").write_text(text, encoding="utf-8")
    return text


def _write_findings(findings: StudyFindings, out: Path, prefix: str) -> None:
    """Write each finding table as ``<prefix>_<name>.csv``."""
    for name in ("model_similarity", "families", "controls", "divergence", "finetuning", "finetuning_trend"):
        getattr(findings, name).to_csv(out / f"{prefix}_{name}.csv", index=False)


def _write_study(results_path: Path, design_path: Path | None, out: Path) -> str:
    """Run section 3 on a saved results table (a CSV per finding, study.md); return the Markdown."""
    from reprsim.results import ResultTable
    from reprsim.validation.findings import StudyDesign, findings_markdown, study_findings

    design = StudyDesign.from_yaml(design_path) if design_path else StudyDesign()
    findings = study_findings(ResultTable.load(results_path), design)
    _write_findings(findings, out, prefix="study")
    text = findings_markdown(findings)
    (out / "study.md").write_text(text, encoding="utf-8")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand and its options to the ``reprsim`` parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the ``reprsim`` parser (see `reprsim.cli.build_parser`).
    """
    p = sub.add_parser(
        "validate",
        help="validate the measures on seeded networks (layer identification, component deletion)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small networks, 3 seeds (about 2 minutes)")
    p.add_argument(
        "--preset",
        choices=("full", "quick", "smoke"),
        default="full",
        help="full: 5 seeds, the documented numbers (< 45 min on 2 cores); smoke: seconds, for CI",
    )
    p.add_argument("--out", default="reprsim-validation", help="output folder (default: reprsim-validation)")
    p.add_argument("--study", metavar="RESULTS", help="results table (.parquet/.csv) of real models: section 3")
    p.add_argument(
        "--study-design",
        metavar="YAML",
        help="families / random_controls / finetuned mappings of the --study models",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for training and measures (default 1: the matrices are small, and extra "
        "threads slow down badly when other processes share the cores)",
    )
    p.add_argument(
        "--real-models",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="section 3 on the packaged real models (default: on with the full preset, off otherwise; needs "
        "`scripts/setup.sh --validation-models`)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)
