"""Figures of values with their intervals: model pairs as points with error bars, and the mark on heatmap cells."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reprsim.analysis.model_stats import ModelStat
from reprsim.report.style import MIN_FONT_PT, new_figure

MARK_COLOUR = "#d62728"


def mark_cells(ax: Axes, marks: np.ndarray | None) -> None:
    """Draw an 'x' on each marked cell of a heatmap (cell (i, j) centred at x = j, y = i).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The heatmap's Axes.
    marks : numpy.ndarray or None
        Boolean, the heatmap's shape; True where the value is not above its null. None draws nothing.
    """
    if marks is None or not np.asarray(marks).any():
        return
    rows, cols = np.nonzero(np.asarray(marks, dtype=bool))
    n = max(np.shape(marks))
    size = float(np.clip(400.0 / n, 4.0, 40.0))
    limits = ax.get_xlim(), ax.get_ylim()
    ax.scatter(cols, rows, marker="x", s=size, c="white", linewidths=2.2, zorder=3)
    ax.scatter(cols, rows, marker="x", s=size, c=MARK_COLOUR, linewidths=1.0, zorder=4)
    ax.set_xlim(*limits[0])  # the marks must not widen the image's axes
    ax.set_ylim(*limits[1])


def plot_model_intervals(stats: Mapping[tuple[str, str], ModelStat], measure: str, larger_is_similar: bool,
                         level: str, marked: Mapping[tuple[str, str], bool]) -> Figure:
    """Draw each model pair's value as a point with its interval as an error bar, most similar at the top.

    Parameters
    ----------
    stats : mapping of (str, str) to ModelStat
        The symmetric model-level values and their statistics.
    measure : str
        The measure, for the labels.
    larger_is_similar : bool
        False for distances (lower = more similar; the axis says so).
    level : str
        The interval's level, e.g. ``"95%"``.
    marked : mapping of (str, str) to bool
        Pairs not above their null: drawn as open red points.

    Returns
    -------
    matplotlib.figure.Figure
        The point plot; the null mean, where known, as a grey tick on each row.

    Raises
    ------
    ValueError
        If `stats` is empty.
    """
    if not stats:
        raise ValueError("plot_model_intervals needs at least one model pair")
    sign = 1.0 if larger_is_similar else -1.0
    pairs = sorted(stats, key=lambda p: sign * stats[p].value)
    fig = new_figure(7.0, max(2.2, 0.9 + 0.32 * len(pairs)))
    ax = fig.add_subplot()
    for y, pair in enumerate(pairs):
        stat = stats[pair]
        if stat.low is not None and stat.high is not None:
            # Drawn from end to end, not around the value: a bias-corrected interval need not contain it.
            ax.hlines([y], [stat.low], [stat.high], colors="#444444", linewidth=1.2)
            ax.plot([stat.low, stat.high], [y, y], marker="|", markersize=7, color="#444444", linestyle="none")
        hollow = marked.get(pair, False)
        ax.plot([stat.value], [y], marker="o", markersize=6, linestyle="none",
                markerfacecolor="white" if hollow else "#245", markeredgecolor=MARK_COLOUR if hollow else "#245")
        if stat.null_mean is not None:
            ax.plot([stat.null_mean], [y], marker="|", markersize=12, color="#999999", linestyle="none")
    ax.set_yticks(range(len(pairs)), [f"{a} – {b}" for a, b in pairs], fontsize=MIN_FONT_PT)
    what = "similarity" if larger_is_similar else "distance (lower = more similar)"
    ax.set_xlabel(f"symmetric model-to-model {measure} {what}", fontsize=9)
    ax.tick_params(axis="x", labelsize=MIN_FONT_PT)
    ax.set_title(f"{measure}: model pairs with {level} intervals (grey tick: null mean; open red: not above null)",
                 fontsize=9)
    ax.grid(axis="x", color="#eeeeee")
    return fig
