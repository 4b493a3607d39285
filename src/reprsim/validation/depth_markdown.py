"""Section 4's output: its Markdown (the paper's claim beside the numbers) and its CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reprsim.validation.depth_config import DepthAlignmentResult

PAPER = "Wolfram & Schein 2025 (COLM), claim 2"
PAPER_CLAIM = (
    "nearest-neighbour relationships between texts (last token, mutual k-NN with k = 10, 2,048 texts, 24 LLMs) "
    "are approximately shared between corresponding layers of different models: each layer's best match in "
    "another model lies at a similar relative depth, and the depth-normalised similarity matrix has a diagonal "
    "band above chance"
)


def _number(value: float, digits: int = 3) -> str:
    """A table cell: the value, or "n/a" for NaN."""
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def depth_alignment_markdown(result: DepthAlignmentResult) -> str:
    """Section 4 as Markdown: the paper's claim, the setup, and the numbers beside it.

    Parameters
    ----------
    result : DepthAlignmentResult
        A run.

    Returns
    -------
    str
        The section.
    """
    config, summary = result.config, result.summary
    texts = int(summary.texts.iloc[0]) if len(summary) else config.texts
    chance = config.k / (texts - 1)
    pooling = ", ".join(f"{m.name} ({m.rows})" for m in result.models)
    lines = [
        "## 4. Layers at similar relative depths across models (Wolfram & Schein 2025, claim 2)",
        "",
        f"The paper's claim ({PAPER}): {PAPER_CLAIM}.",
        "",
        f"Here: {texts} texts of the built-in corpus, one row per text ({pooling}), mutual k-NN with k = "
        f"{config.k} over every layer pair of every two models (embeddings included, relative depth 0); chance "
        f"level k/(n-1) = {chance:.4f}; diagonal band |depth_a - depth_b| <= {config.band}.",
    ]
    if result.skipped:
        lines += ["", f"Not installed, left out: {', '.join(result.skipped)}."]
    lines += [
        "",
        "Spearman: of each layer of A's relative depth and its best match's in B (the claim: > 0; n/a when every "
        "best match lies at one depth). Offset: mean |depth of a layer - depth of its best match|. In band: "
        "share of A's layers whose best match lies in the band.",
        "",
        "| A | B | layers A x B | Spearman | offset | in band | band mean | off-band mean | chance | band / chance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples(index=False):
        lines.append(
            f"| {r.model_a} | {r.model_b} | {r.layers_a} x {r.layers_b} | {_number(r.spearman)} | "
            f"{_number(r.mean_depth_offset)} | {_number(r.best_in_band, 2)} | {_number(r.band_mean)} | "
            f"{_number(r.off_band_mean)} | {_number(r.chance, 4)} | {_number(r.band_over_chance, 1)} |"
        )
    positive = int((summary.spearman > 0).sum())
    above = int((summary.band_mean > summary.chance).sum())
    over_off = int((summary.band_mean > summary.off_band_mean).sum())
    n = len(summary)
    lines += [
        "",
        f"Measured: Spearman > 0 for {positive} of {n} ordered model pairs; band mean above chance for {above} of "
        f"{n}; band mean above the off-band mean for {over_off} of {n}.",
        "",
    ]
    return "\n".join(lines)


def write_depth_alignment(result: DepthAlignmentResult, out: Path) -> list[Path]:
    """Write section 4: depth_alignment.csv (summary), depth_alignment_pairs.csv, depth_alignment_best.csv, .md.

    Parameters
    ----------
    result : DepthAlignmentResult
        A run.
    out : Path
        The validation output folder (created if needed).

    Returns
    -------
    list of Path
        The files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "depth_alignment.csv": result.summary,
        "depth_alignment_pairs.csv": result.pairs,
        "depth_alignment_best.csv": result.best_matches,
    }
    written = []
    for name, frame in files.items():
        frame.to_csv(out / name, index=False)
        written.append(out / name)
    (out / "depth_alignment.md").write_text(depth_alignment_markdown(result), encoding="utf-8")
    return [*written, out / "depth_alignment.md"]
