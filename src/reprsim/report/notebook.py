"""Draw one figure of a results table into a matplotlib Axes: for notebooks and papers.

Each function takes a `ResultTable`, a measure and optionally an Axes (a new figure's, through pyplot, when
none is given), draws with the report's conventions (brighter = more similar, distances on a reversed colour
map and labelled as distances, one colour scale per measure) and returns the Axes. ``annotate=True`` writes
each cell's value in it, like seaborn's ``annot=True``.

>>> import matplotlib.pyplot as plt
>>> from reprsim.report import heatmap, pair_heatmap, dendrogram
>>> fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))  # doctest: +SKIP
>>> heatmap(table, "linear_cka", ax=left, annotate=True)       # doctest: +SKIP
>>> pair_heatmap(table, "linear_cka", "bert", "gpt2", ax=right)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from matplotlib.axes import Axes

from reprsim.analysis.aggregate import larger_means_similar
from reprsim.analysis.clustering import cluster_layers, cluster_models
from reprsim.report.curves import draw_dendrogram
from reprsim.report.figures import PairPanel, draw_block_heatmap, draw_pair
from reprsim.report.style import cell_label, colour_range, scale_label
from reprsim.results import ResultTable


def _axes(ax: Axes | None) -> Axes:
    """The Axes given, or a new figure's (pyplot, so that a notebook shows it)."""
    if ax is not None:
        return ax
    from matplotlib import pyplot  # imported late: only notebook use without an Axes needs pyplot

    _, new = pyplot.subplots(figsize=(7, 6), layout="constrained")
    return new


def heatmap(
    table: ResultTable,
    measure: str,
    ax: Axes | None = None,
    *,
    models: Sequence[str] | None = None,
    annotate: bool = False,
    larger_is_similar: bool | None = None,
    colorbar: bool = True,
) -> Axes:
    """Draw every layer of some models against every layer under one measure.

    Parameters
    ----------
    table : ResultTable
        The results table; it must hold every layer pair of the models (`ResultTable.matrix`).
    measure : str
        The measure.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.
    models : sequence of str, optional
        The models, in block order; default all that `measure` covers.
    annotate : bool, default False
        Write each cell's value (2 decimals) in it.
    larger_is_similar : bool, optional
        Whether larger means more similar; default from the measure registry.
    colorbar : bool, default True
        Add a colour bar saying what a cell is and the scale.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.

    Raises
    ------
    KeyError
        If the measure or a model is not in the table, some layer pair is missing, or the measure is outside
        the registry and `larger_is_similar` is not given.
    """
    larger = larger_means_similar(measure, larger_is_similar)
    matrix = table.matrix(measure, models)
    ax = _axes(ax)
    value_range = colour_range(matrix.values)
    image = draw_block_heatmap(ax, matrix.values, matrix.labels, larger, value_range, annotate)
    symmetric = table.is_symmetric(measure)
    if colorbar:
        label = scale_label(measure, larger, *value_range, cell_label(larger, not symmetric))
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label=label)
    ax.set_title(f"{measure}: every layer against every layer")
    return ax


def pair_heatmap(
    table: ResultTable,
    measure: str,
    model_a: str,
    model_b: str,
    ax: Axes | None = None,
    *,
    annotate: bool = False,
    larger_is_similar: bool | None = None,
    shared_scale: bool = True,
    colorbar: bool = True,
) -> Axes:
    """Draw one model pair layer by layer (rows: `model_a`'s layers, columns: `model_b`'s).

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure.
    model_a, model_b : str
        The row and column models (for a directed measure, cell = sim(layer of a → layer of b)).
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.
    annotate : bool, default False
        Write each cell's value (2 decimals) in it.
    larger_is_similar : bool, optional
        Whether larger means more similar; default from the measure registry.
    shared_scale : bool, default True
        Colour on the measure's range over the whole table (as the report does, so that one colour means one
        value in every figure of the measure); False for this pair's own range.
    colorbar : bool, default True
        Add a colour bar.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.

    Raises
    ------
    KeyError
        If the measure, a model or one of the pair's layer pairs is not in the table, or the measure is
        outside the registry and `larger_is_similar` is not given.
    """
    larger = larger_means_similar(measure, larger_is_similar)
    values = table.pair_matrix(measure, model_a, model_b)
    symmetric = table.is_symmetric(measure)
    title = f"{model_a} vs {model_b}" if symmetric else f"{model_a} → {model_b}"
    panel = PairPanel(model_a, model_b, tuple(table.layers(model_a, measure)), tuple(table.layers(model_b, measure)),
                      values, f"{measure}: {title}")
    everything = table.frame.loc[table.frame["measure"] == measure, "value"].to_numpy()
    value_range = colour_range(everything if shared_scale else values)
    ax = _axes(ax)
    image = draw_pair(ax, panel, larger, value_range, annotate, label_axes=True)
    if colorbar:
        label = scale_label(measure, larger, *value_range, cell_label(larger, not symmetric), shared=shared_scale)
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label=label)
    return ax


def dendrogram(
    table: ResultTable,
    measure: str,
    ax: Axes | None = None,
    *,
    of: Literal["models", "layers"] = "models",
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
    method: str = "average",
) -> Axes:
    """Draw the hierarchical clustering of the models (or of every layer) under one measure.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.
    of : {"models", "layers"}, default "models"
        Cluster models on their symmetric model-to-model value, or layers on their symmetrised values.
    models : sequence of str, optional
        The models to use; default all that `measure` covers.
    larger_is_similar : bool, optional
        Whether larger means more similar; default from the measure registry.
    method : str, default "average"
        The linkage (see `reprsim.analysis.cluster`).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn into.

    Raises
    ------
    ValueError
        If `of` is neither "models" nor "layers", or the clustering cannot be computed (see
        `reprsim.analysis.cluster_models`).
    KeyError
        As `reprsim.analysis.cluster_models`.
    """
    if of not in ("models", "layers"):
        raise ValueError(f"of must be 'models' or 'layers', got {of!r}")
    larger = larger_means_similar(measure, larger_is_similar)
    cluster = cluster_models if of == "models" else cluster_layers
    clustering = cluster(table, measure, models, larger_is_similar=larger, method=method)
    ax = _axes(ax)
    draw_dendrogram(ax, clustering, larger)
    ax.set_title(f"{of.capitalize()} clustered by {measure}")
    return ax
