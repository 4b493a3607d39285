"""The statistics parts of a measure's section: heatmap marks, model tables with intervals, the interval plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reprsim.analysis.aggregate import model_matrix
from reprsim.analysis.model_stats import ModelStat, ModelStats
from reprsim.report.figure_saver import FigureSaver
from reprsim.report.interval_plots import plot_model_intervals
from reprsim.report.page import figure_html, matrix_shading, note_html
from reprsim.report.significance import StatsView, cell_stats, not_above_null
from reprsim.report.stats_html import model_table_html, stat_verdict
from reprsim.results import LayerId, ResultTable


def cell_marks(table: ResultTable, measure: str, labels: Sequence[LayerId], larger: bool,
               view: StatsView) -> tuple[np.ndarray, dict[str, Any]]:
    """The cells of a measure's all-layers matrix that are not above their null, and the page's cell statistics.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        A measure of the table.
    labels : sequence of LayerId
        The matrix's rows and columns.
    larger : bool
        False for distances.
    view : StatsView
        The table's statistics settings.

    Returns
    -------
    marks : numpy.ndarray
        Boolean, True where a cell gets the mark.
    stats : dict
        ``{"low", "high", "p", "marks", "level"}`` for `reprsim.report.interactive.measure_payload`.
    """
    found = cell_stats(table, measure, labels, labels)
    marks = not_above_null(found, larger, view.alpha)
    return marks, {"low": found.low, "high": found.high, "p": found.p_value, "marks": marks, "level": view.level}


def model_stat_parts(table: ResultTable, measure: str, larger: bool, symmetric: bool, view: StatsView,
                     stats: ModelStats, saver: FigureSaver) -> list[str]:
    """The model-to-model tables with intervals, and the interval plot of the model pairs.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        A measure of the table.
    larger : bool
        False for distances.
    symmetric : bool
        Whether the measure is symmetric.
    view : StatsView
        The table's statistics settings.
    stats : ModelStats
        The measure's model-level statistics.
    saver : FigureSaver
        Where the figure goes.

    Returns
    -------
    list of str
        HTML parts (a note instead when the tables cannot be computed).
    """
    try:
        sym = model_matrix(table, measure, larger_is_similar=larger, symmetric=True)
        directed = model_matrix(table, measure, larger_is_similar=larger)
    except (KeyError, ValueError) as exc:
        return [note_html(f"{measure}: model-to-model similarity skipped: {exc.args[0]}")]
    best = "max" if larger else "min"
    name = "similarity" if larger else "distance"
    kind = "symmetric measure" if symmetric else "directed measure, symmetrised"
    parts = [
        f"<h3>Model to model</h3><p>{name.capitalize()}(row, column) ({kind}): the mean of both directions of "
        f"\"mean over one model's layers of the {best} over the other's layers\", with its {view.level} interval "
        "and p-value where the layer pairs have replicates and nulls. Shading: brighter = more similar; dashed "
        "outline: not above its null.</p>"
        + model_table_html(sym, stats.get, larger, view.alpha, matrix_shading(sym, larger)),
        f"<details><summary>Each direction ({name}(row → column))</summary><p>Cell (row, column): mean over the "
        f"row model's layers of the {best} over the column model's layers.</p>"
        + model_table_html(directed, lambda a, b: stats.directed.get((a, b)), larger, view.alpha,
                           matrix_shading(directed, larger)) + "</details>",
    ]
    if stats.symmetric:
        marked = {pair: bool(stat_verdict(stat, larger, view.alpha)) for pair, stat in stats.symmetric.items()}
        pairs: dict[tuple[str, str], ModelStat] = dict(stats.symmetric)
        files = saver.save(lambda: plot_model_intervals(pairs, measure, larger, view.level, marked),
                           f"intervals-{measure}", line_art=True)
        parts.append(figure_html(files, f"Each model pair's symmetric {measure} with its {view.level} interval "
                                 "(bar), the null mean (grey tick) and an open red point where the value is not above "
                                 "its null.", f"{measure} model pairs with intervals"))
    return parts
