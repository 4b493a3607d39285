"""Rendering the section 3 findings of a study as Markdown tables (summaries; the full tables go to CSV)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from reprsim.validation.findings_stats import STAT_COLUMNS
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
        families = with_verdict(findings.families, "within_more_similar", findings.alpha)
        out += _section("Within- vs across-family model similarity", families)
    if len(findings.controls):
        controls = findings.controls
        columns = {"control_mean": ("control_value", "mean"), "real_mean": ("real_value", "mean"),
                   "control_less_similar": ("control_less_similar", "mean")}
        if "p_value" in controls and controls["p_value"].notna().any():
            columns["significant"] = ("significant", "mean")
        columns["n"] = ("control_value", "size")
        summary = controls.groupby("measure", sort=False).agg(**columns).reset_index()
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
            with_verdict(findings.finetuning_trend, "higher_layers_change_more", findings.alpha, "slope"),
        )
    return "\n".join(out)


def holds_text(holds: bool, statistic: float, low: float, high: float, p_value: float, alpha: float) -> str:
    """Whether a finding holds, with its interval and p-value when it has them.

    Parameters
    ----------
    holds : bool
        The point estimate's verdict.
    statistic, low, high, p_value : float
        The oriented statistic, its interval and p-value (NaN without replicates).
    alpha : float
        The level.

    Returns
    -------
    str
        ``"yes (0.120 [0.050, 0.190], p = 0.003)"``, ``"yes, not significant (p = 0.31)"``, ``"no"`` (with
        ``" (p = ...)"`` when known), or plain ``"yes"`` without statistics.
    """
    if not math.isfinite(p_value):
        return "yes" if holds else "no"
    if not holds:
        return f"no (p = {p_value:.2g})"
    if p_value > alpha:
        return f"yes, not significant (p = {p_value:.2g})"
    return f"yes ({statistic:.3f} [{low:.3f}, {high:.3f}], p = {p_value:.2g})"


def with_verdict(frame: pd.DataFrame, holds: str, alpha: float, statistic: str = "difference") -> pd.DataFrame:
    """`frame` with its boolean `holds` column written by `holds_text` and the statistics columns dropped."""
    if "p_value" not in frame:
        return frame
    out = frame.copy()
    out[holds] = [
        holds_text(bool(h), float(d), float(lo), float(hi), float(p), alpha)
        for h, d, lo, hi, p in out[[holds, statistic, "ci_low", "ci_high", "p_value"]].itertuples(index=False)
    ]
    dropped = STAT_COLUMNS + (["difference"] if statistic == "difference" else [])
    return out.drop(columns=dropped)


def _section(title: str, frame: pd.DataFrame) -> list[str]:
    """Render a level-3 heading and its table (values to 3 digits), as Markdown lines."""
    return [f"### {title}", "", markdown_table(frame, digits=3), ""]
