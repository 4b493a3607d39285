"""One measure's section of the report page: explanation, warnings, baselines, tables, heatmaps, dendrograms.

`measure_section` builds it from the table; a part the table cannot support (a model without rows, a pair not
computed, a clustering with negative dissimilarities) becomes a note in the section instead of an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, permutations
from pathlib import Path
from typing import Any

import numpy as np

from reprsim.analysis.aggregate import depth_aggregate, model_matrix
from reprsim.analysis.clustering import Clustering, cluster_layers, cluster_models
from reprsim.analysis.model_stats import ModelStats
from reprsim.report.curves import plot_dendrogram, plot_depth_aggregate
from reprsim.report.explain import Baseline, analytic_baselines, control_baselines, explain
from reprsim.report.figure_saver import FigureSaver
from reprsim.report.figures import PairPanel, plot_block_heatmap, plot_pair_grid
from reprsim.report.findings import CrossMeasure
from reprsim.report.interactive import plot_div
from reprsim.report.page import DATA_DIR, Section, esc, figure_html, files_links, frame_html, matrix_shading, note_html
from reprsim.report.significance import StatsView
from reprsim.report.style import colour_range, slug
from reprsim.results import LayerId, ResultTable


def measure_anchor(measure: str) -> str:
    """The HTML id of a measure's section.

    Parameters
    ----------
    measure : str
        The measure's name.

    Returns
    -------
    str
        ``m-<measure>``, filename-safe.
    """
    return slug("m-" + measure)


def covered_models(table: ResultTable, measure: str) -> list[str]:
    """List the models that `measure` has rows for (attention measures skip models stored without attention).

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        A measure of the table.

    Returns
    -------
    list of str
        The models, in table order.
    """
    return [model for model in table.models() if table.layers(model, measure)]


def full_or_blockwise(table: ResultTable, measure: str, models: Sequence[str]) -> tuple[list[LayerId], np.ndarray]:
    """Return the all-layers matrix of a measure, with model blocks that were not computed as NaN.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        A measure of the table.
    models : sequence of str
        The models, in matrix order.

    Returns
    -------
    labels : list of LayerId
        Rows and columns.
    values : numpy.ndarray
        ``values[i, j] = sim(labels[i] -> labels[j])``.
    """
    labels = table.layer_ids(models, measure)
    try:
        return labels, table.matrix(measure, models).values
    except KeyError:
        pass
    values = np.full((len(labels), len(labels)), np.nan)
    starts, position = {}, 0
    for model in models:
        starts[model] = position
        position += len(table.layers(model, measure))
    for model_a in models:
        for model_b in models:
            try:
                block = table.pair_matrix(measure, model_a, model_b)
            except KeyError:
                continue
            ra, rb = starts[model_a], starts[model_b]
            values[ra : ra + block.shape[0], rb : rb + block.shape[1]] = block
    return labels, values


@dataclass(frozen=True)
class MeasureContext:
    """What a measure section needs beyond the table.

    Attributes
    ----------
    larger : bool
        Whether larger means more similar.
    cross : CrossMeasure
        The cross-measure values (for the baselines).
    controls : mapping of str to str or None
        Random-weight controls among the models.
    warnings : sequence of dict
        The measure's warning records.
    view : StatsView or None
        The table's statistics settings; None when it has no statistics (nothing about them is drawn).
    model_stats : ModelStats or None
        The measure's model-level statistics, when there are any.
    """

    larger: bool
    cross: CrossMeasure
    controls: Mapping[str, str | None]
    warnings: Sequence[Mapping[str, Any]]
    view: StatsView | None = None
    model_stats: ModelStats | None = None


def warnings_html(records: Sequence[Mapping[str, Any]], what: str) -> str:
    """Render warning records as a highlighted box, or nothing when there are none.

    Parameters
    ----------
    records : sequence of dict
        ``{"category", "message", ...}`` records.
    what : str
        What raised them, for the heading (e.g. ``"computing svcca"``).

    Returns
    -------
    str
        The ``<div class="warnings">`` element, or ``""``.
    """
    if not records:
        return ""
    items = "".join(f"<li><b>{esc(r['category'])}</b>: {esc(r['message'])}</li>" for r in records)
    return (f'<div class="warnings" role="note"><p><b>{len(records)} warning(s) raised while {esc(what)}</b> '
            f"(recorded by compare):</p><ul>{items}</ul></div>")


def _baselines_html(baselines: Sequence[Baseline], measure: str) -> str:
    """Render the baselines of a measure, or say how to get one."""
    if not baselines:
        return ("<p><b>Baseline:</b> none in this table. Add a random-weight copy of a model (the "
                "<code>&lt;preset&gt;-random</code> presets) to read the values against one.</p>")
    items = "".join(f"<li>{esc(b.label)}: <b>{b.value:.3f}</b> ({esc(b.note)})</li>" for b in baselines)
    return f"<p><b>Baselines</b> to read {esc(measure)} against:</p><ul>{items}</ul>"


def _tags(table: ResultTable, measure: str, larger: bool) -> str:
    """Badges: level, similarity or distance, symmetric or directed, rows used."""
    rows = table.frame[table.frame["measure"] == measure]
    n_min, n_max = int(rows["n_rows"].min()), int(rows["n_rows"].max())
    used = f"{n_min} rows" if n_min == n_max else f"{n_min}-{n_max} rows"
    tags = [table.level(measure), "similarity" if larger else "distance", "symmetric" if table.is_symmetric(measure)
            else "directed", used + (" (subsample)" if rows["subsample"].any() else "")]
    return '<p class="tags">' + "".join(f"<span>{esc(t)}</span>" for t in tags) + "</p>"


def measure_section(table: ResultTable, measure: str, ctx: MeasureContext, saver: FigureSaver,
                    payloads: dict[str, dict[str, Any]], out: Path) -> Section:
    """Build one measure's section: explanation, warnings, baselines, tables and figures.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure.
    ctx : MeasureContext
        Orientation, cross-measure values, controls and warnings.
    saver : FigureSaver
        Where figures go.
    payloads : dict
        Filled with the measure's interactive data (see `reprsim.report.interactive.measure_payload`).
    out : Path
        The report directory (the measure's CSV goes to its ``data/``).

    Returns
    -------
    Section
        The section (class ``rs-measure``, ``data-measure`` the measure).
    """
    from reprsim.report.interactive import measure_payload

    larger, symmetric = ctx.larger, table.is_symmetric(measure)
    section = Section(measure_anchor(measure), measure, classes="rs-measure", attributes={"data-measure": measure})
    about = explain(measure, larger, symmetric)
    lead = f"<b>{esc(about.summary[0].upper() + about.summary[1:])}.</b> " if about.summary else ""
    section.parts += [_tags(table, measure, larger), f'<p class="explain">{lead}{esc(" ".join(about.sentences))}</p>',
                      warnings_html(ctx.warnings, f"computing {measure}")]
    if ctx.view is not None:
        from reprsim.report.stats_html import measure_stats_html

        section.parts.append(measure_stats_html(ctx.view, measure))
    models = covered_models(table, measure)
    uncovered = [m for m in table.models() if m not in models]
    if uncovered:
        left_out = ", ".join(uncovered)
        section.parts.append(note_html(f"{measure} was not computed for {left_out} (no rows); left out here."))
    rows = table.frame[table.frame["measure"] == measure]
    csv = f"{DATA_DIR}/{slug(measure)}.csv"
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / csv, index=False)
    baselines = analytic_baselines(measure, rows) + control_baselines(ctx.cross.pair_values(measure), ctx.controls)
    section.parts.append(_baselines_html(baselines, measure))
    labels, values = full_or_blockwise(table, measure, models)
    if np.isnan(values).all():
        section.parts.append(note_html(f"{measure}: no model pair is complete; nothing to draw."))
        return section
    value_range = colour_range(values)
    marks, cells, marked = None, None, ""
    if ctx.view is not None:
        from reprsim.report.measure_stats import cell_marks, model_stat_parts

        marks, cells = cell_marks(table, measure, labels, larger, ctx.view)
        marked = (f" Hover also shows the {ctx.view.level} interval and p-value; × marks the {int(marks.sum())} "
                  "cells not above their null (see \"How to read this\").")
    payloads[measure] = measure_payload(measure, labels, values, larger, symmetric, value_range, cells)
    if len(models) >= 2:
        if ctx.view is not None and ctx.model_stats is not None:
            section.parts += model_stat_parts(table, measure, larger, symmetric, ctx.view, ctx.model_stats, saver)
        else:
            section.parts += _model_tables(table, measure, larger, symmetric)
    heatmap = saver.save(lambda: plot_block_heatmap(values, labels, measure, symmetric, larger, value_range,
                                                    marks=marks), f"heatmap-{measure}")
    section.parts.append(
        "<h3>Every layer against every layer</h3>" + plot_div(measure, "layers")
        + f'<p class="files">Hover a cell for both layers and the value; lines separate models.{marked} Static '
        f"figure and data: {files_links(heatmap, csv)}</p>"
    )
    section.parts.append(_pairs_html(table, measure, larger, saver, value_range, marks is not None))
    section.parts.append(_depth_html(table, measure, larger, models, saver, value_range))
    section.parts.append(_dendrograms_html(table, measure, larger, models, values, labels, saver))
    return section


DEPTH_BINS = 10  # at most; fewer when a model has fewer layers, so that no bin stays empty


def _depth_html(table: ResultTable, measure: str, larger: bool, models: Sequence[str], saver: FigureSaver,
                value_range: tuple[float, float]) -> str:
    """The depth-normalised aggregate of every model pair, or a note saying why it is not drawn."""
    if len(models) < 2:
        return ""
    bins = min(DEPTH_BINS, *(len(table.layers(m, measure)) for m in models))
    try:
        matrix = depth_aggregate(table, measure, bins=bins, models=models)
    except (KeyError, ValueError) as exc:
        return note_html(f"{measure}: depth-normalised aggregate skipped: {exc.args[0]}")
    files = saver.save(lambda: plot_depth_aggregate(matrix, measure, larger, value_range), f"depth-{measure}")
    caption = (f"Every layer pair of two different models, placed by relative depth (layer / deepest layer) in "
               f"{bins} x {bins} bins and averaged over all model pairs (Wolfram & Schein 2025): models "
               "of different depths meet on one axis; a bright diagonal means layers at the same relative depth "
               "match.")
    return "<h3>By relative depth</h3>" + figure_html(files, caption, f"{measure} by relative depth")


def _model_tables(table: ResultTable, measure: str, larger: bool, symmetric: bool) -> list[str]:
    """The shaded symmetric model-to-model table, and the directed one folded under it."""
    try:
        sym = model_matrix(table, measure, larger_is_similar=larger, symmetric=True)
        directed = model_matrix(table, measure, larger_is_similar=larger)
    except (KeyError, ValueError) as exc:
        return [note_html(f"{measure}: model-to-model similarity skipped: {exc.args[0]}")]
    best = "max" if larger else "min"
    name = "similarity" if larger else "distance"
    shading = matrix_shading(sym, larger)
    kind = "symmetric measure" if symmetric else "directed measure, symmetrised"
    return [
        f"<h3>Model to model</h3><p>{name.capitalize()}(row, column) ({kind}): the mean of both directions of "
        f"\"mean over one model's layers of the {best} over the other's layers\". Shading: brighter = more "
        "similar.</p>" + frame_html(sym, "model", shading=shading),
        f"<details><summary>Each direction ({name}(row → column))</summary><p>Cell (row, column): mean over the "
        f"row model's layers of the {best} over the column model's layers.</p>"
        + frame_html(directed, "model", shading=matrix_shading(directed, larger)) + "</details>",
    ]


def _pairs_html(table: ResultTable, measure: str, larger: bool, saver: FigureSaver,
                value_range: tuple[float, float], with_marks: bool = False) -> str:
    """The model pairs layer by layer: the interactive grid and its static figure, folded away."""
    symmetric = table.is_symmetric(measure)
    models = covered_models(table, measure)
    panels, missing = [], []
    for model_a, model_b in combinations(models, 2) if symmetric else permutations(models, 2):
        try:
            values = table.pair_matrix(measure, model_a, model_b)
        except KeyError:
            missing.append(f"{model_a} → {model_b}")
            continue
        title = f"{model_a} vs {model_b}" if symmetric else f"{model_a} → {model_b}"
        panel_marks = None
        if with_marks:
            from reprsim.report.significance import cell_stats, not_above_null

            found = cell_stats(table, measure, table.layer_ids([model_a], measure), table.layer_ids([model_b], measure))
            panel_marks = not_above_null(found, larger, table.alpha)
        panels.append(PairPanel(model_a, model_b, tuple(table.layers(model_a, measure)),
                                tuple(table.layers(model_b, measure)), values, title, panel_marks))
    parts = [note_html(f"{measure}: pairs not computed: {', '.join(missing)}.")] if missing else []
    if panels:
        files = saver.save(lambda: plot_pair_grid(panels, measure, larger, not symmetric, value_range),
                           f"pairs-{measure}")
        parts.append(plot_div(measure, "pairs") + '<p class="files">Rows: the first model\'s layers, columns: the '
                     f"second's; the colour scale is the heatmap's above. Static figure: {files_links(files)}</p>")
    if not parts:
        return ""
    return f"<details><summary>Model pairs, layer by layer ({len(panels)} panels)</summary>{''.join(parts)}</details>"


def _undrawable(clustering: Clustering, larger: bool) -> str | None:
    """Why a clustering cannot be drawn as a dendrogram (negative or non-finite dissimilarities), or None."""
    off_diagonal = clustering.dissimilarity[~np.eye(len(clustering.labels), dtype=bool)]
    if not np.isfinite(off_diagonal).all():
        return "some dissimilarities are not finite"
    if (off_diagonal < 0).any() or (clustering.linkage[:, 2] < 0).any():
        cause = "similarities above 1 give negative 1 - similarity" if larger else "negative distances"
        return f"{cause} (smallest dissimilarity {off_diagonal.min():.3g}), which a dendrogram cannot draw"
    return None


def _dendrogram_part(compute: Callable[[], Clustering], measure: str, what: str, larger: bool, saver: FigureSaver,
                     caption: str) -> str:
    """One dendrogram as an inlined figure, or a note saying why it cannot be drawn."""
    try:
        clustering = compute()
    except (KeyError, ValueError) as exc:
        return note_html(f"{measure}: {what} dendrogram skipped: {exc.args[0]}")
    reason = _undrawable(clustering, larger)
    if reason is not None:
        return note_html(f"{measure}: {what} dendrogram skipped: {reason}")
    files = saver.save(lambda: plot_dendrogram(clustering, larger, f"{what.capitalize()}s clustered by {measure}"),
                       f"dendrogram-{what}s-{measure}", line_art=True)
    return figure_html(files, caption, f"{measure} {what} dendrogram")


def _dendrograms_html(table: ResultTable, measure: str, larger: bool, models: Sequence[str], values: np.ndarray,
                      labels: Sequence[LayerId], saver: FigureSaver) -> str:
    """The model and layer dendrograms of a measure, side by side where there is room."""
    figures = []
    if len(models) >= 2:
        figures.append(_dendrogram_part(
            lambda: cluster_models(table, measure, larger_is_similar=larger), measure, "model", larger, saver,
            f"Average-linkage clustering of the models on their symmetric model-to-model {measure}."))
    if len(labels) >= 2 and not np.isnan(values).any():
        figures.append(_dendrogram_part(
            lambda: cluster_layers(table, measure, larger_is_similar=larger), measure, "layer", larger, saver,
            f"Average-linkage clustering of all layers on symmetric {measure}; labels coloured by model."))
    elif len(labels) >= 2:
        figures.append(note_html(f"{measure}: layer dendrogram skipped: some layer pairs were not computed."))
    return f'<h3>Clusters</h3><div class="grid2">{"".join(figures)}</div>' if figures else ""
