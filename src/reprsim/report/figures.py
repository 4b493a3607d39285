"""Heatmap figures of a results table (matplotlib with the Agg canvas; no pyplot, so no global figure state).

`plot_block_heatmap` draws every layer against every layer, `plot_pair_grid` every model pair layer by layer;
the ``draw_*`` functions draw the same into an existing `matplotlib.axes.Axes` (the notebook API in
`reprsim.report.notebook` uses them). The dendrogram, localisation and fine-tuning figures are in
`reprsim.report.curves`, the shared canvas, file and colour helpers in `reprsim.report.style`; both are
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from reprsim.report.curves import plot_dendrogram, plot_finetune, plot_localisation
from reprsim.report.interval_plots import mark_cells
from reprsim.report.style import (
    DISTANCE_CMAP,
    MIN_FONT_PT,
    MISSING_COLOUR,
    PNG_DPI,
    SEPARATOR_COLOUR,
    SIMILARITY_CMAP,
    FigureFiles,
    cell_label,
    colour_map,
    colour_range,
    model_colours,
    new_figure,
    save_figure,
    scale_label,
    slug,
)
from reprsim.results import LayerId

__all__ = [
    "DISTANCE_CMAP",
    "MISSING_COLOUR",
    "PNG_DPI",
    "SIMILARITY_CMAP",
    "FigureFiles",
    "PairPanel",
    "annotate_cells",
    "colour_range",
    "draw_block_heatmap",
    "draw_pair",
    "model_colours",
    "new_figure",
    "plot_block_heatmap",
    "plot_dendrogram",
    "plot_finetune",
    "plot_localisation",
    "plot_pair_grid",
    "save_figure",
    "scale_label",
    "slug",
]

TICK_INCHES = 0.16  # room one layer-number label needs along an axis at MIN_FONT_PT


def _layer_ticks(labels: Sequence[LayerId], axis_inches: float) -> tuple[list[int], list[str]]:
    """Place layer-number ticks: every layer where they fit along `axis_inches`, else every k-th.

    When thinned, a tick too close to the end of its model block is dropped so that it does not run into
    the next block's layer 0.
    """
    fits = max(1, int(axis_inches / TICK_INCHES))
    step = max(1, math.ceil(len(labels) / fits))
    positions = []
    for _, start, stop in _model_spans(labels):
        for i in range(start, stop):
            if (i - start) % step == 0 and (step == 1 or i == start or stop - 1 - i >= step / 2):
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


def _axes_inches(ax: Axes) -> tuple[float, float]:
    """The width and height of an Axes in inches (before any layout engine adjusts it)."""
    box = ax.get_position()
    figure = ax.get_figure(root=True)
    if figure is None:  # an Axes not yet on a figure: assume matplotlib's default size
        return box.width * 6.4, box.height * 4.8
    width, height = figure.get_size_inches()
    return box.width * width, box.height * height


def _label_axis(ax: Axes, axis: str, labels: Sequence[LayerId], title: str) -> None:
    """Label an axis: layer numbers as minor ticks, model names centred on their blocks further out."""
    spans = _model_spans(labels)
    centres = [(start + stop - 1) / 2 for _, start, stop in spans]
    names = [name for name, _, _ in spans]
    width, height = _axes_inches(ax)
    positions, texts = _layer_ticks(labels, width if axis == "x" else height)
    small = MIN_FONT_PT
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


def annotate_cells(ax: Axes, values: np.ndarray, cmap: Colormap, vmin: float, vmax: float, digits: int = 2) -> None:
    """Write each finite cell's value in it, dark on bright cells and light on dark ones.

    The font shrinks with the cell size but never below 5 pt; call it on heatmaps small enough to read.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The Axes holding the heatmap (cell (i, j) centred at x = j, y = i).
    values : numpy.ndarray
        The heatmap's 2-D values; NaN cells are left empty.
    cmap : matplotlib.colors.Colormap
        The heatmap's colour map, to pick a readable text colour.
    vmin, vmax : float
        The heatmap's colour scale.
    digits : int, default 2
        Decimals shown.
    """
    values = np.asarray(values, dtype=np.float64)
    width, height = _axes_inches(ax)
    cell_inches = min(width / max(1, values.shape[1]), height / max(1, values.shape[0]))
    fontsize = max(5.0, min(9.0, cell_inches * 72 / (digits + 2.5)))
    span = (vmax - vmin) or 1.0
    for (i, j), value in np.ndenumerate(values):
        if not np.isfinite(value):
            continue
        red, green, blue, _ = cmap((value - vmin) / span)
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
        ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center", fontsize=fontsize,
                color="black" if light else "white")


def draw_block_heatmap(
    ax: Axes,
    values: np.ndarray,
    labels: Sequence[LayerId],
    larger_is_similar: bool,
    value_range: tuple[float, float] | None = None,
    annotate: bool = False,
    marks: np.ndarray | None = None,
) -> AxesImage:
    """Draw every layer against every layer into `ax`, model blocks separated by lines, NaN cells grey.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    values : numpy.ndarray
        The ``(n, n)`` matrix, ``values[i, j] = sim(labels[i] -> labels[j])``; NaN where not computed.
    labels : sequence of LayerId
        The ``n`` layers, each model's layers contiguous.
    larger_is_similar : bool
        False for distances (reversed colour map: brighter = more similar).
    value_range : tuple of float, optional
        The colour scale (vmin, vmax); default the range of `values`.
    annotate : bool, default False
        Write each cell's value in it.
    marks : numpy.ndarray, optional
        Boolean, like `values`: cells not above their null, drawn with an 'x'.

    Returns
    -------
    matplotlib.image.AxesImage
        The image, for a colour bar.

    Raises
    ------
    ValueError
        If the shape of `values` does not match `labels`, or no value is finite.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(labels)
    if values.shape != (n, n):
        raise ValueError(f"values shape {values.shape} does not match {n} labels")
    vmin, vmax = value_range if value_range is not None else colour_range(values)
    cmap = colour_map(larger_is_similar)
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    _separate_blocks(ax, labels, "x")
    _separate_blocks(ax, labels, "y")
    _label_axis(ax, "x", labels, "layer (column)")
    _label_axis(ax, "y", labels, "layer (row)")
    if annotate:
        annotate_cells(ax, values, cmap, vmin, vmax)
    mark_cells(ax, marks)
    return image


def plot_block_heatmap(
    values: np.ndarray,
    labels: Sequence[LayerId],
    measure: str,
    symmetric: bool,
    larger_is_similar: bool,
    value_range: tuple[float, float] | None = None,
    annotate: bool = False,
    marks: np.ndarray | None = None,
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
        False for distances (reversed colour map: brighter = more similar; labelled as distances).
    value_range : tuple of float, optional
        The measure's colour scale, shared with its pair grid (the colour bar then says so); default the
        range of `values`.
    annotate : bool, default False
        Write each cell's value in it.
    marks : numpy.ndarray, optional
        Boolean, like `values`: cells not above their null, drawn with an 'x' (the title says so).

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
    vmin, vmax = value_range if value_range is not None else colour_range(values)
    side = min(16.0, max(6.0, 3.5 + 0.045 * n))
    fig = new_figure(side + 1.6, side)
    ax = fig.add_subplot()
    image = draw_block_heatmap(ax, values, labels, larger_is_similar, (vmin, vmax), annotate, marks)
    cbar = fig.colorbar(image, ax=ax, shrink=0.8)
    what = cell_label(larger_is_similar, directed=not symmetric)
    cbar.set_label(scale_label(measure, larger_is_similar, vmin, vmax, what, shared=value_range is not None))
    title = f"{measure}: every layer against every layer"
    if np.isnan(values).any():
        title += " (grey: not computed)"
    if marks is not None and np.asarray(marks).any():
        title += "\n(x: not above its null)"
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
    marks : numpy.ndarray or None
        Boolean, like `values`: cells not above their null (drawn with an 'x'); None for none.
    """

    model_a: str
    model_b: str
    layers_a: tuple[int, ...]
    layers_b: tuple[int, ...]
    values: np.ndarray
    title: str
    marks: np.ndarray | None = None


def _thinned(layers: Sequence[int], axis_inches: float) -> tuple[list[int], list[str]]:
    """Place a tick at every layer where the labels fit along `axis_inches`, else at every k-th layer."""
    fits = max(2, int(axis_inches / TICK_INCHES))
    step = max(1, math.ceil(len(layers) / fits))
    positions = list(range(0, len(layers), step))
    return positions, [str(layers[i]) for i in positions]


def draw_pair(
    ax: Axes,
    panel: PairPanel,
    larger_is_similar: bool,
    value_range: tuple[float, float],
    annotate: bool = False,
    label_axes: bool = False,
) -> AxesImage:
    """Draw one model pair's layer x layer heatmap into `ax`, every layer labelled where it fits.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    panel : PairPanel
        The pair's values and layers.
    larger_is_similar : bool
        False for distances (reversed colour map).
    value_range : tuple of float
        The colour scale (vmin, vmax), normally the measure's own.
    annotate : bool, default False
        Write each cell's value in it.
    label_axes : bool, default False
        Name the models on the axes (a lone panel); a grid names them once for all panels.

    Returns
    -------
    matplotlib.image.AxesImage
        The image, for a colour bar.

    Raises
    ------
    ValueError
        If the panel's values do not match its layers.
    """
    if np.shape(panel.values) != (len(panel.layers_a), len(panel.layers_b)):
        raise ValueError(
            f"panel {panel.title!r} has shape {np.shape(panel.values)}, "
            f"expected {(len(panel.layers_a), len(panel.layers_b))}"
        )
    vmin, vmax = value_range
    cmap = colour_map(larger_is_similar)
    image = ax.imshow(panel.values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    width, height = _axes_inches(ax)
    ax.set_xticks(*_thinned(panel.layers_b, width))
    ax.set_yticks(*_thinned(panel.layers_a, height))
    ax.tick_params(labelsize=MIN_FONT_PT, length=2, pad=1)
    ax.set_title(panel.title, fontsize=9)
    if label_axes:
        ax.set_xlabel(f"layer of {panel.model_b}")
        ax.set_ylabel(f"layer of {panel.model_a}")
    if annotate:
        annotate_cells(ax, np.asarray(panel.values, dtype=np.float64), cmap, vmin, vmax)
    mark_cells(ax, panel.marks)
    return image


def plot_pair_grid(
    panels: Sequence[PairPanel],
    measure: str,
    larger_is_similar: bool,
    directed: bool,
    value_range: tuple[float, float] | None = None,
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
        False for distances (reversed colour map: brighter = more similar; labelled as distances).
    directed : bool
        Whether cells are sim(row → column) of a directed measure (said in the colour bar).
    value_range : tuple of float, optional
        The measure's colour scale, shared with its main heatmap (the colour bar then says so); default the
        range of the panels' values.

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
    vmin, vmax = value_range if value_range is not None else colour_range(*(p.values for p in panels))
    ncols = min(len(panels), max(1, math.ceil(math.sqrt(len(panels)))))
    nrows = math.ceil(len(panels) / ncols)
    size = 3.2
    width, height = size * ncols + 1.9, size * nrows + 1.0
    fig = new_figure(width, height, layout=None)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    # Margins in inches, converted to figure fractions: room for labels, the colour bar and the title.
    fig.subplots_adjust(
        left=0.75 / width,
        right=1 - 1.8 / width,
        bottom=0.6 / height,
        top=1 - 0.85 / height,
        wspace=0.45,
        hspace=0.55,
    )
    images = [
        draw_pair(ax, panel, larger_is_similar, (vmin, vmax)) for ax, panel in zip(axes, panels, strict=False)
    ]
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    what = cell_label(larger_is_similar, directed)
    cbar = fig.colorbar(images[0], ax=list(axes), shrink=0.6, fraction=0.03)
    cbar.set_label(scale_label(measure, larger_is_similar, vmin, vmax, what, shared=value_range is not None),
                   fontsize=9)
    cbar.ax.tick_params(labelsize=MIN_FONT_PT)
    fig.suptitle(f"{measure}: model pairs, layer by layer", y=1 - 0.25 / height)
    fig.supxlabel("layer of the second model (columns)", fontsize=9, y=0.12 / height, va="bottom")
    fig.supylabel("layer of the first model (rows)", fontsize=9, x=0.12 / width, ha="left")
    return fig
