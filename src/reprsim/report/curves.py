"""Dendrogram, localisation and fine-tuning figures (matplotlib with the Agg canvas; no pyplot).

Cross-model line plots put layers on relative depth (layer / deepest stored layer), so that a 6-layer model
and a 30-layer one span the same axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.cluster.hierarchy import dendrogram

from reprsim.analysis.aggregate import relative_depth
from reprsim.analysis.clustering import Clustering
from reprsim.report.style import MIN_FONT_PT, model_colours, new_figure
from reprsim.results import LayerId


def draw_dendrogram(ax: Axes, clustering: Clustering, larger_is_similar: bool) -> None:
    """Draw the dendrogram of a clustering into `ax`, leaves on the left; layer leaves coloured by model.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    clustering : Clustering
        A clustering of models or of layers (see `reprsim.analysis.cluster_models` and
        `reprsim.analysis.cluster_layers`).
    larger_is_similar : bool
        Whether the measure is a similarity (the axis then reads 1 - symmetric measure) or a distance.
    """
    labels = clustering.labels
    is_layers = bool(labels) and isinstance(labels[0], LayerId)
    texts = [label.label() if isinstance(label, LayerId) else str(label) for label in labels]
    dendrogram(
        clustering.linkage,
        labels=texts,
        orientation="left",
        ax=ax,
        color_threshold=0,
        above_threshold_color="#444444",
        leaf_font_size=MIN_FONT_PT if len(labels) > 40 else 9,
    )
    if is_layers:
        models = list(dict.fromkeys(label.model for label in labels if isinstance(label, LayerId)))
        colours = model_colours(models)
        by_text = {t: label for t, label in zip(texts, labels, strict=True)}
        for tick in ax.get_yticklabels():
            label = by_text.get(tick.get_text())
            if isinstance(label, LayerId):
                tick.set_color(colours[label.model])
    what = f"1 - symmetric {clustering.measure}" if larger_is_similar else f"symmetric {clustering.measure}"
    ax.set_xlabel(f"{what} ({clustering.method} linkage)")
    ax.tick_params(axis="x", labelsize=MIN_FONT_PT)


def plot_dendrogram(clustering: Clustering, larger_is_similar: bool, title: str) -> Figure:
    """Draw the dendrogram of a clustering; layer leaves are coloured by model.

    Parameters
    ----------
    clustering : Clustering
        A clustering of models or of layers (see `reprsim.analysis.cluster_models` and
        `reprsim.analysis.cluster_layers`).
    larger_is_similar : bool
        Whether the measure is a similarity (the axis then reads 1 - symmetric measure) or a distance.
    title : str
        The figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The dendrogram, leaves on the left.
    """
    n = len(clustering.labels)
    height = max(2.5, min(60.0, 0.6 + 0.17 * n))
    fig = new_figure(6.5, height)
    ax = fig.add_subplot()
    draw_dendrogram(ax, clustering, larger_is_similar)
    ax.set_title(title)
    return fig


def plot_localisation(scores: pd.DataFrame, neuron_measure: str, subspace_measure: str) -> Figure:
    """Plot the localisation score per layer against relative depth, one line per model.

    Parameters
    ----------
    scores : pandas.DataFrame
        The output of `reprsim.analysis.localisation_scores` (columns ``model``, ``layer``, ``score``).
    neuron_measure, subspace_measure : str
        The two measures the score contrasts, for the axis label.

    Returns
    -------
    matplotlib.figure.Figure
        The line plot, with a line at zero; x is each model's layer over its deepest stored layer.
    """
    models = list(dict.fromkeys(scores["model"]))
    colours = model_colours(models)
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    for model in models:
        rows = scores[scores["model"] == model]
        depth = relative_depth(rows["layer"].to_list())
        ax.plot(depth, rows["score"], marker="o", markersize=3, color=colours[model], label=model)
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("relative depth (layer / deepest stored layer; 0 = embeddings)")
    ax.set_ylabel(f"z({neuron_measure}) - z({subspace_measure})")
    ax.set_title("Localisation: high = shared information sits in single neurons", fontsize=10)
    ax.tick_params(labelsize=MIN_FONT_PT)
    ax.legend(fontsize=MIN_FONT_PT, loc="best")
    return fig


def plot_finetune(
    frame: pd.DataFrame, base: str, level: str, larger_is_similar: Mapping[str, bool] | None = None
) -> Figure:
    """Plot sim(fine-tuned layer l -> base layer l) per layer: one panel per measure, one line per model.

    A fine-tuned model has its base's layers, so the axis is the layer index itself.

    Parameters
    ----------
    frame : pandas.DataFrame
        The output of `reprsim.analysis.finetune_similarity` (columns ``model``, ``layer``, ``measure``,
        ``level``, ``value``); optional ``ci_low`` and ``ci_high`` columns (NaN where missing) draw error bars.
    base : str
        The base model, for the labels.
    level : str
        The level to plot (``"representation"`` or ``"attention"``); rows of other levels are ignored.
    larger_is_similar : mapping of str to bool, optional
        Marks distance measures (False) so that their panels say lower is closer; measures not in it are
        treated as similarities.

    Returns
    -------
    matplotlib.figure.Figure
        Up to three panels per row.

    Raises
    ------
    ValueError
        If `frame` has no rows of `level`.
    """
    orientation = dict(larger_is_similar or {})
    rows = frame[frame["level"] == level]
    if rows.empty:
        raise ValueError(f"no {level}-level rows to plot for base {base!r}")
    measures = list(dict.fromkeys(rows["measure"]))
    models = list(dict.fromkeys(rows["model"]))
    colours = model_colours(models)
    ncols = min(3, len(measures))
    nrows = math.ceil(len(measures) / ncols)
    fig = new_figure(max(3.6 * ncols, 6.0), 3.0 * nrows + 0.7)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, measure in zip(axes, measures, strict=False):
        for model in models:
            part = rows[(rows["measure"] == measure) & (rows["model"] == model)]
            ax.plot(part["layer"], part["value"], marker="o", markersize=3, color=colours[model], label=model)
            if "ci_low" in part.columns and "ci_high" in part.columns:
                _error_bars(ax, part, colours[model])
        is_distance = orientation.get(measure) is False
        ax.set_title(f"{measure} (distance: lower = closer)" if is_distance else measure, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=MIN_FONT_PT)
        ax.set_xlabel("layer", fontsize=MIN_FONT_PT)
        name = "distance" if is_distance else "sim"
        ax.set_ylabel(f"{name}(layer l → {base} layer l)", fontsize=MIN_FONT_PT)
    for ax in axes[len(measures) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=MIN_FONT_PT, loc="best")
    fig.suptitle(f"{level.capitalize()} level: each fine-tuned layer\nagainst the same layer of {base}")
    return fig


def _error_bars(ax: Axes, part: pd.DataFrame, colour: tuple[float, float, float, float]) -> None:
    """Draw each row's interval (ci_low to ci_high) as an error bar, where both ends are known."""
    low = pd.to_numeric(part["ci_low"], errors="coerce").to_numpy(dtype=float, na_value=float("nan"))
    high = pd.to_numeric(part["ci_high"], errors="coerce").to_numpy(dtype=float, na_value=float("nan"))
    known = np.isfinite(low) & np.isfinite(high)
    if known.any():
        # Drawn from end to end, not around the value: a bias-corrected interval need not contain it.
        ax.vlines(part["layer"].to_numpy()[known], low[known], high[known], colors=[colour], linewidth=1.0, alpha=0.8)


__all__ = ["draw_dendrogram", "plot_dendrogram", "plot_finetune", "plot_localisation"]


def plot_depth_aggregate(matrix: pd.DataFrame, measure: str, larger_is_similar: bool,
                         value_range: tuple[float, float]) -> Figure:
    """Draw the depth-normalised aggregate of a measure (`reprsim.analysis.depth_aggregate`).

    Parameters
    ----------
    matrix : pandas.DataFrame
        bins x bins, rows and columns labelled by the lower edge of their relative-depth bin.
    measure : str
        The measure, for the title and colour-bar label.
    larger_is_similar : bool
        False for distances (reversed colours: brighter = more similar).
    value_range : tuple of float
        The measure's colour scale, shared with its other figures.

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap, depth 0 at the top left.
    """
    from reprsim.report.style import colour_map, new_figure, scale_label

    fig = new_figure(4.6, 3.8)
    ax = fig.add_subplot()
    vmin, vmax = value_range
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap=colour_map(larger_is_similar), vmin=vmin, vmax=vmax,
                      extent=(0.0, 1.0, 1.0, 0.0), interpolation="nearest")
    ax.set_xlabel("relative depth of the other model's layer")
    ax.set_ylabel("relative depth of a model's layer")
    ax.set_title(f"{measure} by relative depth")
    fig.colorbar(image, ax=ax, label=scale_label(measure, larger_is_similar, vmin, vmax, "cell = mean over layer pairs",
                                                 shared=True))
    return fig
