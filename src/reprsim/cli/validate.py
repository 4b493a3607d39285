"""`reprsim validate`: check the measures against published findings on networks trained here from seeds.

Section 1 (Kornblith et al. 2019): do measures find the corresponding layer of a network trained from
another seed? Section 2 (Ding et al. 2021): do they notice deleted principal components? With --study,
section 3 summarises a results table of real models (families, random controls, measure agreement,
fine-tuning). Writes CSV, Markdown and figures into --out and prints the Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from reprsim.validation.run import ValidationConfig, run_validation, validation_markdown, write_outputs

    preset = "quick" if args.quick else args.preset
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.study_design and not args.study:
        raise ValueError("--study-design needs --study RESULTS")
    if args.study and not Path(args.study).is_file():
        raise FileNotFoundError(f"--study: results table {args.study!r} does not exist")
    config = ValidationConfig.preset_named(preset, threads=args.threads)
    out = Path(args.out)
    # Results are rewritten after every setting, so an interrupted full run keeps the finished settings.
    result = run_validation(
        config, progress=not args.no_progress, on_setting_done=lambda partial: write_outputs(partial, out)
    )
    print(validation_markdown(result))
    if args.study:
        print(write_study(Path(args.study), Path(args.study_design) if args.study_design else None, out))
    print(f"results written to {out}/")
    return 0


def write_study(results_path: Path, design_path: Path | None, out: Path) -> str:
    """Section 3 on a saved results table: CSV per finding plus study.md; returns the Markdown."""
    from reprsim.results import ResultTable
    from reprsim.validation.findings import StudyDesign, findings_markdown, study_findings

    design = StudyDesign.from_yaml(design_path) if design_path else StudyDesign()
    findings = study_findings(ResultTable.load(results_path), design)
    for name in ("model_similarity", "families", "controls", "divergence", "finetuning"):
        getattr(findings, name).to_csv(out / f"study_{name}.csv", index=False)
    text = findings_markdown(findings)
    (out / "study.md").write_text(text, encoding="utf-8")
    return text


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)
