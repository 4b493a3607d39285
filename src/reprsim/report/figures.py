"""Figures of a results table (matplotlib with the Agg canvas; no pyplot, so no global figure state).

Every ``plot_*`` function builds and returns a `matplotlib.figure.Figure`; `save_figure` writes it as PNG and
SVG.
Colour conventions shared by all heatmaps: brighter = more similar, for distances too (their colour map is
reversed), and one colour scale per figure, stated in the colour bar's label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.cluster.hierarchy import dendrogram

from reprsim.analysis.clustering import Clustering
from reprsim.results import LayerId

SIMILARITY_CMAP = "viridis"
DISTANCE_CMAP = "viridis_r"
MISSING_COLOUR = "#d9d9d9"
SEPARATOR_COLOUR = "white"
PNG_DPI = 110
MAX_TICK_LABELS = 60  # per axis; layer numbers are thinned beyond this


@dataclass(frozen=True)
class FigureFiles:
    """The two files a saved figure was written to.

    Attributes
    ----------
    png : Path
        The PNG file.
    svg : Path
        The SVG file.
    """

    png: Path
    svg: Path


def new_figure(width: float, height: float, layout: Literal["constrained"] | None = "constrained") -> Figure:
    """Create a figure attached to an Agg canvas (no pyplot involved).

    Parameters
    ----------
    width, height : float
        The size in inches.
    layout : {"constrained", None}, default "constrained"
        The layout engine; None to place axes by hand.

    Returns
    -------
    matplotlib.figure.Figure
        The empty figure.
    """
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_dir: str | Path, stem: str, dpi: int = PNG_DPI) -> FigureFiles:
    """Write a figure as ``<stem>.png`` and ``<stem>.svg``.

    The SVG keeps its text as text (``svg.fonttype = "none"``), and is reproducible: a fixed hash salt and no
    date in its metadata. The layout is computed once, for the PNG, and reused for the SVG.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; its layout engine is switched off after the first save.
    out_dir : str or Path
        The folder, created if needed.
    stem : str
        The file name without suffix; existing files are overwritten.
    dpi : int, default 110
        The PNG resolution.

    Returns
    -------
    FigureFiles
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = FigureFiles(png=out / f"{stem}.png", svg=out / f"{stem}.svg")
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "reprsim"}):
        fig.savefig(files.png, dpi=dpi, format="png")
        # The layout is settled by the first save; recomputing it for the SVG only costs time.
        fig.set_layout_engine("none")
        fig.savefig(files.svg, format="svg", metadata={"Date": None})
    return files


def slug(text: str) -> str:
    """Make a display name filename-safe (for display only: it is never parsed back).

    Parameters
    ----------
    text : str
        Any name.

    Returns
    -------
    str
        `text` with each run of characters other than ASCII letters, digits, ``.``, ``_`` and ``-`` replaced
        by ``-``, leading and trailing ``-`` and ``.`` removed; ``"x"`` if nothing is left.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "x"


def model_colours(models: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """Give each model a stable colour, by its position in `models`.

    Parameters
    ----------
    models : sequence of str
        The models, in the order that assigns the colours.

    Returns
    -------
    dict of str to tuple of float
        Model -> RGBA colour from tab10, or from tab20 beyond ten models (cycling beyond twenty).
    """
    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {model: cmap(i % cmap.N) for i, model in enumerate(models)}


def colour_range(*arrays: np.ndarray) -> tuple[float, float]:
    """Find the minimum and maximum over the finite values of all arrays: one colour scale for a whole figure.

    Parameters
    ----------
    *arrays : numpy.ndarray
        Arrays of any shape, converted to float64; NaN and Inf are ignored.

    Returns
    -------
    vmin, vmax : float
        The smallest and largest finite value.

    Raises
    ------
    ValueError
        If there is no finite value at all.
    """
    finite = [a[np.isfinite(a)] for a in (np.asarray(x, dtype=np.float64) for x in arrays)]
    values = np.concatenate([f.ravel() for f in finite]) if finite else np.empty(0)
    if values.size == 0:
        raise ValueError("no finite values to draw")
    return float(values.min()), float(values.max())


def scale_label(measure: str, larger_is_similar: bool, vmin: float, vmax: float, what: str) -> str:
    """Write a colour-bar label: the measure, which way is similar, what a cell is, and the figure's scale.

    Parameters
    ----------
    measure : str
        The measure name.
    larger_is_similar : bool
        False for distances, which the label says are lower when more similar.
    vmin, vmax : float
        The figure's colour scale.
    what : str
        What a cell holds, e.g. ``"cell = sim(row → column)"``.

    Returns
    -------
    str
        A three-line label.
    """
    kind = "similarity" if larger_is_similar else "distance (lower = more similar)"
    return f"{measure} {kind}\n{what}\none scale for the whole figure: {vmin:.3g} to {vmax:.3g}"


def _cmap(larger_is_similar: bool) -> matplotlib.colors.Colormap:
    """Return the colour map (reversed for distances: brighter = more similar) with missing cells grey."""
    cmap = matplotlib.colormaps[SIMILARITY_CMAP if larger_is_similar else DISTANCE_CMAP]
    return cmap.with_extremes(bad=MISSING_COLOUR)


def _layer_ticks(labels: Sequence[LayerId]) -> tuple[list[int], list[str]]:
    """Place layer-number ticks, thinned to about MAX_TICK_LABELS per axis.

    When thinned, a tick too close to the end of its model block is dropped so that it does not run into
    the next block's layer 0.
    """
    step = max(1, math.ceil(len(labels) / MAX_TICK_LABELS))
    positions = []
    for _, start, stop in _model_spans(labels):
        for i in range(start, stop):
            if labels[i].layer % step == 0 and (step == 1 or i == start or stop - 1 - i >= step / 2):
                positions.append(i)
    return positions, [str(labels[i].layer) for i in positions]


def _model_spans(labels: Sequence[LayerId]) -> list[tuple[str, int, int]]:
    """Find (model, first index, last index + 1) of each contiguous model block."""
    spans: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        if spans and spans[-1][0] == label.model and spans[-1][2] == i:
            spans[-1] = (label.model, spans[-1][1], i + 1)
        else:
            spans.append((label.model, i, i + 1))
    return spans


def _label_axis(ax: Axes, axis: str, labels: Sequence[LayerId], title: str) -> None:
    """Label an axis: layer numbers as minor ticks, model names centred on their blocks further out."""
    spans = _model_spans(labels)
    centres = [(start + stop - 1) / 2 for _, start, stop in spans]
    names = [name for name, _, _ in spans]
    positions, texts = _layer_ticks(labels)
    small = 6 if len(labels) > 30 else 8
    # Layer ticks may sit exactly on a model's centre tick; keep both rather than letting one hide the other.
    (ax.xaxis if axis == "x" else ax.yaxis).remove_overlapping_locs = False
    if axis == "x":
        ax.set_xticks(positions, texts, minor=True, fontsize=small)
        ax.set_xticks(centres, names, rotation=30, ha="right", rotation_mode="anchor", fontsize=9)
        ax.tick_params(axis="x", which="major", length=0, pad=4 + 2.2 * small)
        ax.set_xlabel(title)
    else:
        ax.set_yticks(positions, texts, minor=True, fontsize=small)
        ax.set_yticks(centres, names, fontsize=9)
        ax.tick_params(axis="y", which="major", length=0, pad=4 + 2.2 * small)
        ax.set_ylabel(title)


def _separate_blocks(ax: Axes, labels: Sequence[LayerId], axis: str) -> None:
    """Draw a line between consecutive model blocks along one axis."""
    for _, start, _ in _model_spans(labels)[1:]:
        if axis == "x":
            ax.axvline(start - 0.5, color=SEPARATOR_COLOUR, linewidth=1.5)
        else:
            ax.axhline(start - 0.5, color=SEPARATOR_COLOUR, linewidth=1.5)


def plot_block_heatmap(
    values: np.ndarray,
    labels: Sequence[LayerId],
    measure: str,
    symmetric: bool,
    larger_is_similar: bool,
) -> Figure:
    """Draw every layer of every model against every layer, model blocks separated by lines.

    NaN cells (pairs that were not computed) are drawn grey, and the title says so.

    Parameters
    ----------
    values : numpy.ndarray
        The ``(n, n)`` matrix, ``values[i, j] = sim(labels[i] -> labels[j])``; NaN where not computed.
    labels : sequence of LayerId
        The ``n`` layers, each model's layers contiguous.
    measure : str
        The measure name, for the title and colour bar.
    symmetric : bool
        Whether the measure is symmetric (the colour bar says so, or says cell = sim(row → column)).
    larger_is_similar : bool
        False for distances (reversed colour map: brighter = more similar).

    Returns
    -------
    matplotlib.figure.Figure
        The heatmap.

    Raises
    ------
    ValueError
        If the shape of `values` does not match `labels`, or no value is finite.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(labels)
    if values.shape != (n, n):
        raise ValueError(f"values shape {values.shape} does not match {n} labels")
    vmin, vmax = colour_range(values)
    side = min(16.0, max(6.0, 3.5 + 0.045 * n))
    fig = new_figure(side + 1.6, side)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap=_cmap(larger_is_similar), vmin=vmin, vmax=vmax, interpolation="nearest")
    _separate_blocks(ax, labels, "x")
    _separate_blocks(ax, labels, "y")
    _label_axis(ax, "x", labels, "layer (column)")
    _label_axis(ax, "y", labels, "layer (row)")
    what = "symmetric measure" if symmetric else "cell = sim(row → column)"
    cbar = fig.colorbar(image, ax=ax, shrink=0.8)
    cbar.set_label(scale_label(measure, larger_is_similar, vmin, vmax, what))
    title = f"{measure}: every layer against every layer"
    if np.isnan(values).any():
        title += " (grey: not computed)"
    ax.set_title(title)
    return fig


@dataclass(frozen=True)
class PairPanel:
    """One model pair's layer x layer values, a panel of `plot_pair_grid`.

    Attributes
    ----------
    model_a, model_b : str
        The row model and the column model.
    layers_a, layers_b : tuple of int
        Their layer indices, rows and columns.
    values : numpy.ndarray
        ``values[i, j] = sim(layers_a[i] -> layers_b[j])``, shape ``(len(layers_a), len(layers_b))``.
    title : str
        The panel title.
    """

    model_a: str
    model_b: str
    layers_a: tuple[int, ...]
    layers_b: tuple[int, ...]
    values: np.ndarray
    title: str


def plot_pair_grid(
    panels: Sequence[PairPanel], measure: str, larger_is_similar: bool, directed: bool
) -> Figure:
    """Draw layer x layer heatmaps of model pairs, one panel per pair, all on one colour scale.

    One figure per measure (not per pair) keeps a study of many models to a few files, and puts every pair
    on the same scale so panels can be compared by eye.

    Parameters
    ----------
    panels : sequence of PairPanel
        The pairs, drawn row by row on a near-square grid.
    measure : str
        The measure name, for the title and colour bar.
    larger_is_similar : bool
        False for distances (reversed colour map: brighter = more similar).
    directed : bool
        Whether cells are sim(row → column) of a directed measure (said in the colour bar).

    Returns
    -------
    matplotlib.figure.Figure
        The grid of heatmaps.

    Raises
    ------
    ValueError
        If `panels` is empty, a panel's values do not match its layers, or no value is finite.
    """
    if not panels:
        raise ValueError("plot_pair_grid needs at least one panel")
    for panel in panels:
        if np.shape(panel.values) != (len(panel.layers_a), len(panel.layers_b)):
            raise ValueError(
                f"panel {panel.title!r} has shape {np.shape(panel.values)}, "
                f"expected {(len(panel.layers_a), len(panel.layers_b))}"
            )
    vmin, vmax = colour_range(*(panel.values for panel in panels))
    ncols = min(len(panels), max(1, math.ceil(math.sqrt(len(panels)))))
    nrows = math.ceil(len(panels) / ncols)
    size = 2.6 if len(panels) > 16 else 3.2
    width, height = size * ncols + 1.8, size * nrows + 0.9
    fig = new_figure(width, height, layout=None)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    # Margins in inches, converted to figure fractions: room for labels, the colour bar and the title.
    fig.subplots_adjust(
        left=0.7 / width,
        right=1 - 1.7 / width,
        bottom=0.5 / height,
        top=1 - 0.8 / height,
        wspace=0.5,
        hspace=0.6,
    )
    images = []
    for ax, panel in zip(axes, panels, strict=False):
        image = ax.imshow(
            panel.values,
            cmap=_cmap(larger_is_similar),
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
            aspect="auto",
        )
        images.append(image)
        # Few ticks per panel: text layout dominates drawing time once there are many panels.
        ax.set_xticks(*_thinned(panel.layers_b, 6))
        ax.set_yticks(*_thinned(panel.layers_a, 6))
        ax.tick_params(labelsize=6, length=2, pad=1)
        ax.set_title(panel.title, fontsize=7 if len(panels) > 16 else 8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    what = "cell = sim(row → column)" if directed else "symmetric measure"
    cbar = fig.colorbar(images[0], ax=list(axes), shrink=0.6, fraction=0.03)
    cbar.set_label(scale_label(measure, larger_is_similar, vmin, vmax, what), fontsize=8)
    fig.suptitle(f"{measure}: model pairs, layer by layer", y=1 - 0.25 / height)
    fig.supxlabel("layer of the second model (columns)", fontsize=9, y=0.12 / height, va="bottom")
    fig.supylabel("layer of the first model (rows)", fontsize=9, x=0.12 / width, ha="left")
    return fig


def _thinned(layers: Sequence[int], max_ticks: int) -> tuple[list[int], list[str]]:
    """Place at most `max_ticks` evenly spaced layer ticks, starting at the first layer."""
    step = max(1, math.ceil(len(layers) / max_ticks))
    positions = list(range(0, len(layers), step))
    return positions, [str(layers[i]) for i in positions]


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
    labels = clustering.labels
    is_layers = bool(labels) and isinstance(labels[0], LayerId)
    texts = [label.label() if isinstance(label, LayerId) else str(label) for label in labels]
    n = len(labels)
    height = max(2.5, min(60.0, 0.6 + 0.16 * n))
    fig = new_figure(8.0, height)
    ax = fig.add_subplot()
    dendrogram(
        clustering.linkage,
        labels=texts,
        orientation="left",
        ax=ax,
        color_threshold=0,
        above_threshold_color="#444444",
        leaf_font_size=6 if n > 40 else 9,
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
    ax.set_title(title)
    return fig


def plot_localisation(scores: pd.DataFrame, neuron_measure: str, subspace_measure: str) -> Figure:
    """Plot the localisation score per layer, one line per model.

    Parameters
    ----------
    scores : pandas.DataFrame
        The output of `reprsim.analysis.localisation_scores` (columns ``model``, ``layer``, ``score``).
    neuron_measure, subspace_measure : str
        The two measures the score contrasts, for the axis label.

    Returns
    -------
    matplotlib.figure.Figure
        The line plot, with a line at zero.
    """
    models = list(dict.fromkeys(scores["model"]))
    colours = model_colours(models)
    fig = new_figure(8.0, 4.5)
    ax = fig.add_subplot()
    for model in models:
        rows = scores[scores["model"] == model]
        ax.plot(rows["layer"], rows["score"], marker="o", markersize=3, color=colours[model], label=model)
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel(f"z({neuron_measure}) - z({subspace_measure})")
    ax.set_title("Localisation: high = shared information sits in single neurons")
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_finetune(
    frame: pd.DataFrame, base: str, level: str, larger_is_similar: Mapping[str, bool] | None = None
) -> Figure:
    """Plot sim(fine-tuned layer l -> base layer l) per layer: one panel per measure, one line per model.

    Parameters
    ----------
    frame : pandas.DataFrame
        The output of `reprsim.analysis.finetune_similarity` (columns ``model``, ``layer``, ``measure``,
        ``level``, ``value``).
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
    fig = new_figure(max(4.2 * ncols, 7.0), 3.2 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, measure in zip(axes, measures, strict=False):
        for model in models:
            part = rows[(rows["measure"] == measure) & (rows["model"] == model)]
            ax.plot(part["layer"], part["value"], marker="o", markersize=3, color=colours[model], label=model)
        is_distance = orientation.get(measure) is False
        ax.set_title(f"{measure} (distance: lower = closer)" if is_distance else measure, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{measure}(layer l → {base} layer l)", fontsize=8)
    for ax in axes[len(measures) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{level.capitalize()} level: each fine-tuned layer\nagainst the same layer of {base}")
    return fig
