"""`reprsim validate`: check the measures against published findings on networks trained here from seeds.

Section 1 (Kornblith et al. 2019): do measures find the corresponding layer of a network trained from
another seed? Section 2 (Ding et al. 2021): do they notice deleted principal components? Section 3 (on by
default in the full preset, --real-models elsewhere): MiniLM, MPNet, SmolLM2 and Gemma-3 with random
controls and a MiniLM fine-tuned here on shuffled word order, run through the study pipeline and
summarised (families, random controls, measure agreement, fine-tuning by layer). --study summarises a
results table of your own models the same way. Section 4 (on with the full and quick presets,
--depth-alignment elsewhere): Wolfram & Schein's claim 2 on the installed packaged models, with one row per
text and mutual k-NN: does each layer's best match in another model lie at a similar relative depth?
Writes CSV, Markdown and figures into --out and prints the Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reprsim.cli import add_quiet, command_parser

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
        If the ``--study`` results table does not exist, or section 4 runs and fewer than two packaged models
        are installed.
    """
    from reprsim.validation.depth_alignment import DepthAlignmentConfig, installed_models
    from reprsim.validation.depth_alignment import run_and_write as run_depth_alignment_section
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
    wants_depth = preset in ("full", "quick") if args.depth_alignment is None else args.depth_alignment
    depth = DepthAlignmentConfig.preset_named(preset) if wants_depth else None
    if depth is not None:
        installed_models(depth)  # at least two packaged models, checked before anything trains
    out = Path(args.out)
    # Results are rewritten after every setting, so an interrupted full run keeps the finished settings.
    result = run_validation(
        config, progress=not args.quiet, on_setting_done=lambda partial: write_outputs(partial, out)
    )
    print(validation_markdown(result))
    if real is not None:
        print(_write_real_models(real, out, args.threads, progress=not args.quiet))
    if depth is not None:
        print(run_depth_alignment_section(depth, out, threads=args.threads, progress=not args.quiet))
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
    from reprsim.validation.findings_report import findings_markdown
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
    from reprsim.validation.findings import StudyDesign, study_findings
    from reprsim.validation.findings_report import findings_markdown

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
    p = command_parser(
        sub,
        "validate",
        help="validate the measures on seeded networks (layer identification, component deletion)",
        description=__doc__,
        raw_description=True,
    )
    p.add_argument("--quick", action="store_true", help="small networks, 3 seeds (about 2 minutes)")
    p.add_argument(
        "--preset",
        choices=("full", "quick", "smoke"),
        default="full",
        help="full: 5 seeds, the documented numbers (< 45 min on 2 cores); smoke: seconds, for CI",
    )
    p.add_argument("--out", default="reprsim-validation", help="output folder")
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
        help="torch CPU threads for training and measures (default: %(default)s; the matrices are small, and "
        "extra threads slow down badly when other processes share the cores)",
    )
    p.add_argument(
        "--real-models",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="section 3 on the packaged real models (default: on with the full preset, off otherwise; needs "
        "`scripts/setup.sh --validation-models`)",
    )
    p.add_argument(
        "--depth-alignment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="section 4, Wolfram & Schein's claim 2 on the installed packaged models (default: on with the full "
        "and quick presets, off with smoke; about 1 minute)",
    )
    add_quiet(p)
    p.set_defaults(func=run)
