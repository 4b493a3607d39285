"""The sections of the report page: the summary, one per measure, localisation and fine-tuning.

Each builder takes the table and a `FigureSaver`, draws what it needs, and returns a `Section`; an analysis
the table cannot support (a missing pair, a missing measure) becomes a note on the page instead of an error.
This module builds the cross-measure table, localisation and fine-tuning; each measure's own section is
`reprsim.report.measure_sections`'s, and `FigureSaver` is `reprsim.report.figure_saver`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reprsim.analysis.finetune import finetune_similarity
from reprsim.analysis.localisation import NEURON_MEASURE, SUBSPACE_MEASURE, localisation_scores
from reprsim.report.curves import plot_finetune, plot_localisation
from reprsim.report.figure_saver import FigureSaver
from reprsim.report.findings import CrossMeasure, best_pair, pair_label
from reprsim.report.measure_sections import (
    MeasureContext,
    covered_models,
    full_or_blockwise,
    measure_anchor,
    measure_section,
    warnings_html,
)
from reprsim.report.page import Section, esc, figure_html, frame_html, note_html
from reprsim.report.style import slug
from reprsim.results import LEVELS, LayerId, ResultTable

if TYPE_CHECKING:
    from reprsim.analysis.model_stats import ModelStats

__all__ = [
    "FigureSaver",
    "MeasureContext",
    "covered_models",
    "cross_table_html",
    "finetune_section",
    "full_or_blockwise",
    "localisation_section",
    "measure_anchor",
    "measure_section",
    "warnings_html",
]


def cross_table_html(cross: CrossMeasure, anchors: Mapping[str, str], stats: Mapping[str, ModelStats] | None = None,
                     alpha: float = 0.05) -> str:
    """Render the cross-measure table: one row per measure (grouped by level), one column per model pair.

    Each row is shaded on its own range (measures have different scales; distances reversed, so brighter is
    always more similar) and its most similar pair is bold. Cells carry both directed values as a tooltip.
    With statistics, a cell shows its interval and p-value, and a value not above its null is outlined and
    says so (`reprsim.report.stats_html.stat_cell_html`).

    Parameters
    ----------
    cross : CrossMeasure
        The values.
    anchors : mapping of str to str
        Measure -> its section's id, for the row links.
    stats : mapping of str to ModelStats, optional
        Per measure, the model-level statistics.
    alpha : float, default 0.05
        The level of the statistics.

    Returns
    -------
    str
        The table HTML.
    """
    from reprsim.report.page import shade, table_html

    pairs = list(cross.values.columns)
    head = '<th class="text">measure</th>' + "".join(
        f'<th class="text" data-pair="{esc(a)}\u0001{esc(b)}">{esc(pair_label((a, b)))}</th>' for a, b in pairs)
    body, level = [], None
    for measure in cross.values.index:
        if cross.levels[measure] != level:
            level = cross.levels[measure]
            body.append(f'<tr class="level"><th colspan="{len(pairs) + 1}">{esc(level)}</th></tr>')
        larger, values = cross.larger_is_similar[measure], cross.pair_values(measure)
        finite = list(values.values())
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        top = best_pair(values, larger)
        kind = "" if larger else " (distance)"
        cells = [f'<th class="text"><a href="#{esc(anchors[measure])}">{esc(measure)}</a>{esc(kind)}</th>']
        for pair in pairs:
            value = float(cross.values.at[measure, pair])
            attrs = f' data-pair="{esc(pair[0])}\u0001{esc(pair[1])}"'
            if not np.isfinite(value):
                cells.append(f'<td class="empty"{attrs}>—</td>')
                continue
            ab, ba = cross.directed[(measure, pair)]
            tip = f"{pair[0]} → {pair[1]}: {ab:.4f}; {pair[1]} → {pair[0]}: {ba:.4f}"
            stat = stats[measure].get(*pair) if stats is not None and measure in stats else None
            if stat is not None:
                from reprsim.report.stats_html import stat_cell_html

                cells.append(stat_cell_html(stat, larger, alpha, shade(value, lo, hi, larger), attrs, pair == top, tip))
                continue
            text = f"<b>{value:.3f}</b>" if pair == top else f"{value:.3f}"
            cells.append(f'<td style="{shade(value, lo, hi, larger)}" title="{esc(tip)}"{attrs}>{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return table_html(f'<table class="cross"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def localisation_section(table: ResultTable, saver: FigureSaver, out: Path) -> Section:
    """Build the localisation section (and write localisation.csv), or a note saying why it was skipped.

    Parameters
    ----------
    table : ResultTable
        The results table.
    saver : FigureSaver
        Where figures go.
    out : Path
        The report directory.

    Returns
    -------
    Section
        The section.
    """
    section = Section("localisation", "Localisation")
    try:
        scores = localisation_scores(table)
    except (KeyError, ValueError) as exc:
        reason = exc.args[0] if exc.args else str(exc)
        section.parts.append(note_html(f"Localisation scores not computed: {reason}"))
        return section
    scores.to_csv(out / "localisation.csv", index=False)
    section.parts.append(
        f"<p>Per layer: z-score (across all layers) of its mean {NEURON_MEASURE} to every layer of every "
        f"other model, minus the z-score of its mean {SUBSPACE_MEASURE}. High = information in individual "
        "neurons, low = distributed. Layers are placed by relative depth, so models of different depths line up.</p>"
    )
    files = saver.save(lambda: plot_localisation(scores, NEURON_MEASURE, SUBSPACE_MEASURE), "localisation",
                       line_art=True)
    section.parts.append(figure_html(files, "Localisation score per layer, against relative depth.",
                                     "localisation score per layer"))
    shown = scores.set_index(["model", "layer"])
    shown.index = pd.Index([f"{m} L{layer}" for m, layer in shown.index])
    section.parts.append(f"<details><summary>Localisation table</summary>{frame_html(shown, 'layer')}</details>")
    return section


def finetune_section(table: ResultTable, base: str, models: list[str], orientation: Mapping[str, bool],
                     saver: FigureSaver, out: Path) -> Section:
    """Build one fine-tuning section (and write its CSV), or a note saying why it was skipped.

    Parameters
    ----------
    table : ResultTable
        The results table.
    base : str
        The base model.
    models : list of str
        Its fine-tuned models.
    orientation : mapping of str to bool
        Per measure, whether larger means more similar.
    saver : FigureSaver
        Where figures go.
    out : Path
        The report directory.

    Returns
    -------
    Section
        The section.
    """
    section = Section(slug(f"finetune-{base}"), f"Fine-tuning: {base}")
    try:
        frame = finetune_similarity(table, base, models)
    except (KeyError, ValueError) as exc:  # e.g. one layer pair not computed: the rest of the report stands
        section.parts.append(note_html(f"fine-tuning against {base} skipped: {exc.args[0]}"))
        return section
    if table.has_stats():
        frame = _with_intervals(table, frame, base)
    frame.to_csv(out / f"finetune-{slug(base)}.csv", index=False)
    section.parts.append(
        f"<p>Each fine-tuned model ({esc(', '.join(models))}) layer by layer against the same layer of "
        f"{esc(base)}; directed measures use sim(fine-tuned → base).</p>"
    )
    for level in LEVELS:
        if not (frame["level"] == level).any():
            continue

        def build(level: str = level) -> Figure:
            return plot_finetune(frame, base, level, orientation)

        files = saver.save(build, f"finetune-{base}-{level}", line_art=True)
        section.parts.append(figure_html(
            files, f"{level.capitalize()}-level similarity of each fine-tuned layer to the base's same layer.",
            f"fine-tuning similarity to {base}, {level} level"))
    return section


def _with_intervals(table: ResultTable, frame: pd.DataFrame, base: str) -> pd.DataFrame:
    """Add ci_low and ci_high (NaN where missing) to the fine-tuning rows, for the plot's error bars."""
    low, high = [], []
    for model, layer, measure in frame[["model", "layer", "measure"]].itertuples(index=False):
        a, b = [LayerId(model, int(layer))], [LayerId(base, int(layer))]
        low.append(float(table.stat_matrix(measure, "ci_low", a, b)[0, 0]))
        high.append(float(table.stat_matrix(measure, "ci_high", a, b)[0, 0]))
    return frame.assign(ci_low=low, ci_high=high)
