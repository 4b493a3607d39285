"""From layer-pair similarities to layer-to-model and model-to-model similarities (docs/measures.md).

- Layer to model: sim(l, M') = best over layers l' of M' of sim(l -> l'), "best" being the maximum for
  similarity measures and the minimum for distances.
- Model to model: sim(M -> M') = mean over layers l of M of sim(l, M'); symmetrised by averaging the two
  directions.

Only pairs of different models are aggregated: a model's best match to itself is its own layer, which
says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from typing import Literal, get_args

import numpy as np
import pandas as pd

from reprsim.results import ResultTable

Aggregation = Literal["mean_best", "max", "depth_diagonal"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)


def check_aggregation(aggregation: str) -> str:
    """Check a model-level aggregation name.

    Parameters
    ----------
    aggregation : str
        One of `AGGREGATIONS`.

    Returns
    -------
    str
        The name.

    Raises
    ------
    ValueError
        If it is not one of `AGGREGATIONS`.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    return aggregation


def _depth_bins(layers: Sequence[int], bins: int) -> np.ndarray:
    """The bin of each layer's relative depth, in exact integer arithmetic (depth 1 in the last bin)."""
    values = np.asarray(layers, dtype=np.int64)
    deepest = max(int(values.max()), 1)
    return np.minimum(values * bins // deepest, bins - 1)


def _nearest_depth(layers_a: Sequence[int], layers_b: Sequence[int]) -> np.ndarray:
    """For each layer of A, the column of the layer of B at the nearest relative depth (the shallower on ties)."""
    # |la / deepest_a - lb / deepest_b| compared exactly, as |la * deepest_b - lb * deepest_a| in integers.
    a, b = np.asarray(layers_a, dtype=np.int64), np.asarray(layers_b, dtype=np.int64)
    deepest_a, deepest_b = max(int(a.max()), 1), max(int(b.max()), 1)
    return np.abs(a[:, None] * deepest_b - b[None, :] * deepest_a).argmin(axis=1)


def larger_means_similar(measure: str, override: bool | None = None) -> bool:
    """Tell whether larger values of a measure mean more similar (False for distances).

    Parameters
    ----------
    measure : str
        The measure's registry name.
    override : bool, optional
        The answer, when given; use it for measures outside the registry. Otherwise the registry
        (``reprsim.measures.get(measure).larger_is_similar``) decides.

    Returns
    -------
    bool
        True for similarity measures, False for distances.

    Raises
    ------
    KeyError
        If `override` is None and `measure` is not in the registry.
    """
    if override is not None:
        return bool(override)
    from reprsim import measures as registry  # imported late: the registry pulls in torch

    try:
        info = registry.get(measure)
    except KeyError as exc:
        raise KeyError(
            f"measure {measure!r} is not in the measure registry, so whether larger means more similar "
            f"is unknown; pass larger_is_similar=True or False"
        ) from exc
    return bool(info.larger_is_similar)


def best_match(values: np.ndarray, larger_is_similar: bool) -> tuple[np.ndarray, np.ndarray]:
    """Find, per row, the best value across columns and the column that attains it.

    Parameters
    ----------
    values : numpy.ndarray
        A 2-D array (rows x columns), converted to float64.
    larger_is_similar : bool
        True to take the maximum (similarities), False to take the minimum (distances).

    Returns
    -------
    best : numpy.ndarray
        The best value of each row, shape ``(rows,)``.
    best_column : numpy.ndarray
        The column index that attains it (the first one on ties), shape ``(rows,)``.

    Raises
    ------
    ValueError
        If `values` is not 2-D or has no columns.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"best_match needs a 2-D array with at least one column, got shape {values.shape}")
    best_column = np.argmax(values, axis=1) if larger_is_similar else np.argmin(values, axis=1)
    return values[np.arange(values.shape[0]), best_column], best_column


def distinct_models(table: ResultTable, models: Sequence[str] | None, measure: str | None = None) -> list[str]:
    """Choose the models to aggregate over, checking that there are at least two.

    Parameters
    ----------
    table : ResultTable
        The results table.
    models : sequence of str or None
        The models wanted, or None for every model in table order.
    measure : str, optional
        Keep only the models that `measure` covers (a model without attention has no attention rows).

    Returns
    -------
    list of str
        The model names, without duplicates, in table order.

    Raises
    ------
    KeyError
        If a model or `measure` is not in the table.
    ValueError
        If `models` names a model that has no rows for `measure`, if fewer than two models remain, or if
        `models` is a string or repeats a model.
    """
    chosen = table.layer_ids(models, measure)
    names = list(dict.fromkeys(label.model for label in chosen))
    if models is not None and measure is not None:
        uncovered = [m for m in models if m not in names]
        if uncovered:
            raise ValueError(f"the results table has no {measure} rows for model {uncovered[0]!r}")
    if len(names) < 2:
        raise ValueError(f"model-level aggregation needs at least two models, got {names}")
    return names


def layer_to_model(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
) -> pd.DataFrame:
    """Compute the layer-to-model similarity sim(l, M') for every layer l of every model M and every other M'.

    sim(l, M') is the best over the layers l' of M' of sim(l -> l'): the maximum for a similarity measure,
    the minimum for a distance. Only pairs of different models are used: a model's best match to itself is
    its own layer, which says nothing.

    Parameters
    ----------
    table : ResultTable
        The results table; it must hold every cross-model layer pair of `measure`.
    measure : str
        The measure to aggregate.
    models : sequence of str, optional
        The models to use (at least two); default all models that `measure` covers, in table order.
    larger_is_similar : bool, optional
        Whether larger values mean more similar; default from the measure registry (see
        `larger_means_similar`).

    Returns
    -------
    pandas.DataFrame
        One row per (model, layer, other_model), with columns ``model``, ``layer``, ``other_model``,
        ``measure``, ``value`` and ``best_layer`` (the layer l' of the other model that attains the value,
        the first one on ties).

    Raises
    ------
    KeyError
        If `measure`, a model or a needed layer pair is not in the table, or the measure is unknown to the
        registry and `larger_is_similar` is not given.
    ValueError
        If fewer than two models are covered by `measure` (see `distinct_models`).
    """
    larger = larger_means_similar(measure, larger_is_similar)
    names = distinct_models(table, models, measure)
    parts = []
    for model, other in permutations(names, 2):
        block = table.pair_matrix(measure, model, other)
        best, best_column = best_match(block, larger)
        other_layers = np.asarray(table.layers(other, measure))
        parts.append(
            pd.DataFrame(
                {
                    "model": model,
                    "layer": table.layers(model, measure),
                    "other_model": other,
                    "measure": measure,
                    "value": best,
                    "best_layer": other_layers[best_column],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def model_to_model(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
    aggregation: Aggregation = "mean_best",
) -> pd.DataFrame:
    """Compute the model-to-model similarity sim(A -> B) for every ordered pair of different models.

    How the layer pairs of A and B become one value is `aggregation` (`AGGREGATIONS`):

    - ``"mean_best"`` (default; Wu et al. 2020): the mean over the layers of A of their best match in B (their
      layer-to-model similarity, `layer_to_model`). Directed even for a symmetric measure.
    - ``"max"`` (Huh et al. 2024): the best value over all layer pairs (A_l, B_l'), the minimum for a distance.
      For a symmetric measure both directions agree.
    - ``"depth_diagonal"`` (Wolfram & Schein 2025): the mean over the layers of A of sim(A_l -> B_l'), l' the
      layer of B at the nearest relative depth (`relative_depth`; ties to the shallower layer).

    The directed values are also symmetrised by averaging both directions.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure to aggregate.
    models : sequence of str, optional
        The models to use (at least two); default all models that `measure` covers.
    larger_is_similar : bool, optional
        Whether larger values mean more similar; default from the measure registry.
    aggregation : {"mean_best", "max", "depth_diagonal"}, default "mean_best"
        How the layer pairs of two models become one value (see above).

    Returns
    -------
    pandas.DataFrame
        One row per ordered pair, with columns ``model_a``, ``model_b``, ``measure``, ``value`` (sim(a -> b)
        under `aggregation`) and ``symmetric`` (the mean of the a -> b and b -> a values, identical for both
        orders).

    Raises
    ------
    KeyError
        As `layer_to_model`.
    ValueError
        As `layer_to_model`.
    """
    check_aggregation(aggregation)
    if aggregation == "mean_best":
        per_layer = layer_to_model(table, measure, models, larger_is_similar)
        directed = (
            per_layer.groupby(["model", "other_model"], sort=False)["value"]
            .mean()
            .reset_index()
            .rename(columns={"model": "model_a", "other_model": "model_b"})
        )
    else:
        larger = larger_means_similar(measure, larger_is_similar)
        names = distinct_models(table, models, measure)
        rows = []
        for a, b in permutations(names, 2):
            block = table.pair_matrix(measure, a, b)
            if aggregation == "max":
                value = float(block.max() if larger else block.min())
            else:
                nearest = _nearest_depth(table.layers(a, measure), table.layers(b, measure))
                value = float(block[np.arange(block.shape[0]), nearest].mean())
            rows.append({"model_a": a, "model_b": b, "value": value})
        directed = pd.DataFrame(rows, columns=["model_a", "model_b", "value"])
    reverse = directed.rename(columns={"model_a": "model_b", "model_b": "model_a", "value": "reverse"})
    merged = directed.merge(reverse, on=["model_a", "model_b"], how="left", validate="one_to_one")
    merged["symmetric"] = (merged["value"] + merged["reverse"]) / 2.0
    merged.insert(2, "measure", measure)
    return merged[["model_a", "model_b", "measure", "value", "symmetric"]]


def model_matrix(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
    symmetric: bool = False,
    aggregation: Aggregation = "mean_best",
) -> pd.DataFrame:
    """Arrange the model-to-model similarities as a square model x model table.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure to aggregate.
    models : sequence of str, optional
        The models to use (at least two), which are also the row and column order; default all models that
        `measure` covers, in table order.
    larger_is_similar : bool, optional
        Whether larger values mean more similar; default from the measure registry.
    symmetric : bool, default False
        Give the symmetrised value instead of the directed sim(row -> column).
    aggregation : {"mean_best", "max", "depth_diagonal"}, default "mean_best"
        How the layer pairs of two models become one value (see `model_to_model`).

    Returns
    -------
    pandas.DataFrame
        Rows (index named ``model``) and columns are the models; cell (a, b) holds sim(a -> b) or its
        symmetrised value. The diagonal is NaN on purpose: a model compared with itself is not an aggregate
        of this analysis.

    Raises
    ------
    KeyError
        As `layer_to_model`.
    ValueError
        As `layer_to_model`.
    """
    tidy = model_to_model(table, measure, models, larger_is_similar, aggregation)
    names = distinct_models(table, models, measure)
    column = "symmetric" if symmetric else "value"
    wide = tidy.pivot(index="model_a", columns="model_b", values=column)
    wide = wide.reindex(index=names, columns=names)
    wide.index.name = "model"
    wide.columns.name = None
    return wide


def model_pairs(
    table: ResultTable,
    measure: str,
    models: Sequence[str] | None = None,
    larger_is_similar: bool | None = None,
    aggregation: Aggregation = "mean_best",
) -> pd.DataFrame:
    """Compute one symmetric model-to-model value per unordered pair of different models.

    The value is the mean of sim(A -> B) and sim(B -> A) of `model_to_model`: for a symmetric measure it is
    the symmetric aggregate (the mean of max over A's layers and over B's layers), for a directed one the
    symmetrised value. It is what the model dendrogram clusters.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure to aggregate.
    models : sequence of str, optional
        The models to use (at least two), in the order the pairs follow; default all models that `measure`
        covers, in table order.
    larger_is_similar : bool, optional
        Whether larger values mean more similar; default from the measure registry.
    aggregation : {"mean_best", "max", "depth_diagonal"}, default "mean_best"
        How the layer pairs of two models become one value (see `model_to_model`).

    Returns
    -------
    pandas.DataFrame
        One row per pair (a before b in model order), with columns ``model_a``, ``model_b``, ``measure``,
        ``value`` (symmetric), ``a_to_b`` and ``b_to_a`` (the two directed values).

    Raises
    ------
    KeyError
        As `layer_to_model`.
    ValueError
        As `layer_to_model`.
    """
    tidy = model_to_model(table, measure, models, larger_is_similar, aggregation)
    names = distinct_models(table, models, measure)
    directed = {(a, b): v for a, b, v in zip(tidy["model_a"], tidy["model_b"], tidy["value"], strict=True)}
    rows = [
        {
            "model_a": a,
            "model_b": b,
            "measure": measure,
            "value": (directed[(a, b)] + directed[(b, a)]) / 2.0,
            "a_to_b": directed[(a, b)],
            "b_to_a": directed[(b, a)],
        }
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "measure", "value", "a_to_b", "b_to_a"])


def relative_depth(layers: Sequence[int]) -> np.ndarray:
    """Place a model's layers on a common depth axis: layer index over the deepest layer given.

    Models of different depths meet on this axis (a 6-layer and a 30-layer model both span 0 to 1). Depth is
    relative to the deepest layer *stored*, which is the model's last layer when every layer was extracted.

    Parameters
    ----------
    layers : sequence of int
        One model's layer indices (0 = embeddings), non-negative.

    Returns
    -------
    numpy.ndarray
        ``layer / max(layers)`` for each layer, as float64; all zeros when the only layer is 0.

    Raises
    ------
    ValueError
        If `layers` is empty or holds a negative index.
    """
    values = np.asarray(list(layers), dtype=np.float64)
    if values.size == 0:
        raise ValueError("relative_depth needs at least one layer")
    if (values < 0).any():
        raise ValueError(f"layer indices must be non-negative, got {sorted(set(values[values < 0].tolist()))}")
    deepest = values.max()
    return values / deepest if deepest > 0 else np.zeros_like(values)


def depth_aggregate(
    table: ResultTable,
    measure: str,
    bins: int = 10,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Average the layer pairs of every pair of different models on a unit square of relative depths.

    Each layer pair (A_l, B_l') of two different models falls in the bin of its relative depths
    (`relative_depth`: l / deepest layer of A, l' / deepest layer of B); each bin holds the mean over all model
    pairs and layer pairs in it (Wolfram & Schein 2025's depth-normalised matrix). Both orders of a model pair
    are used, so for a symmetric measure the matrix is symmetric.

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        The measure to aggregate.
    bins : int, default 10
        Bins per axis; depth 1.0 goes in the last bin.
    models : sequence of str, optional
        The models to use (at least two); default all models that `measure` covers.

    Returns
    -------
    pandas.DataFrame
        ``bins`` x ``bins``: rows are the relative depth of the first model's layer, columns of the second's
        (both labelled by the bin's lower edge); NaN where no layer pair falls.

    Raises
    ------
    ValueError
        If `bins` is not a positive integer, or fewer than two models are covered.
    KeyError
        If a needed layer pair is not in the table.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    names = distinct_models(table, models, measure)
    total = np.zeros((bins, bins))
    count = np.zeros((bins, bins))
    for a, b in permutations(names, 2):
        block = table.pair_matrix(measure, a, b)
        rows, cols = _depth_bins(table.layers(a, measure), bins), _depth_bins(table.layers(b, measure), bins)
        np.add.at(total, (rows[:, None], cols[None, :]), block)
        np.add.at(count, (rows[:, None], cols[None, :]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    edges = [round(k / bins, 6) for k in range(bins)]
    frame = pd.DataFrame(mean, index=pd.Index(edges, name="depth_a"), columns=edges)
    frame.columns.name = "depth_b"
    return frame
