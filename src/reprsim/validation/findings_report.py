"""Rendering the section 3 findings of a study as Markdown tables (summaries; the full tables go to CSV)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from reprsim.validation.markdown import markdown_table

if TYPE_CHECKING:  # a runtime import would be circular: findings re-exports findings_markdown
    from reprsim.validation.findings import StudyFindings


def findings_markdown(findings: StudyFindings) -> str:
    """Render the findings as Markdown tables (summaries; the full tables go to CSV files).

    Parameters
    ----------
    findings : StudyFindings
        The findings.

    Returns
    -------
    str
        A "Real models" section with one sub-section per non-empty finding; the random-control contrast is
        summarised per measure and the fine-tuning change shown as a layer x measure table.
    """
    out = ["## Real models", ""]
    if len(findings.families):
        out += _section("Within- vs across-family model similarity", findings.families)
    if len(findings.controls):
        summary = (
            findings.controls.groupby("measure", sort=False)
            .agg(
                control_mean=("control_value", "mean"),
                real_mean=("real_value", "mean"),
                control_less_similar=("control_less_similar", "mean"),
                n=("control_value", "size"),
            )
            .reset_index()
        )
        out += _section("Random controls vs trained models", summary)
    if len(findings.divergence):
        out += _section("Agreement between measures over model pairs (Spearman)", findings.divergence)
    if len(findings.finetuning):
        wide = findings.finetuning.pivot_table(
            index=["model", "layer"], columns="measure", values="value"
        ).reset_index()
        out += _section("Fine-tuned vs base, layer by layer", wide)
    if len(findings.finetuning_trend):
        out += _section(
            "Does fine-tuning change higher layers more? (Spearman of layer vs similarity to the base)",
            findings.finetuning_trend,
        )
    return "\n".join(out)


def _section(title: str, frame: pd.DataFrame) -> list[str]:
    """Render a level-3 heading and its table (values to 3 digits), as Markdown lines."""
    return [f"### {title}", "", markdown_table(frame, digits=3), ""]
