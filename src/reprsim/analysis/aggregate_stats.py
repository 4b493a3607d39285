"""Model-level values with their uncertainty: each replicate's layer-pair matrix aggregated like the values.

Every value of a study shares its sentence blocks (`reprsim.inference.combine`), so a model-level value, an
aggregation of a layer-pair matrix (`reprsim.analysis.aggregate.AGGREGATIONS`), is resampled by aggregating
each replicate matrix the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reprsim.analysis.aggregate import _nearest_depth, best_match, check_aggregation
from reprsim.inference import Uncertainty
from reprsim.inference.combine import check_kind, replicate_statistics


def aggregate_values(values: np.ndarray, aggregation: str, larger_is_similar: bool = True,
                     layers_a: Sequence[int] | None = None, layers_b: Sequence[int] | None = None) -> np.ndarray:
    """The model-level value of each of a stack of (LA, LB) layer-pair matrices.

    The aggregations are those of `reprsim.analysis.model_to_model`: ``"mean_best"`` the mean over A's
    layers of their best match in B, ``"max"`` the best over all pairs (the minimum for a distance),
    ``"depth_diagonal"`` the mean over A's layers of the value at B's layer of nearest relative depth.

    Parameters
    ----------
    values
        (..., LA, LB) layer-pair values.
    aggregation
        ``"mean_best"``, ``"max"`` or ``"depth_diagonal"``.
    larger_is_similar
        False for a distance (best is the minimum).
    layers_a, layers_b
        The layer indices of the rows and columns (for ``"depth_diagonal"``); default 0 .. LA - 1 and
        0 .. LB - 1.

    Returns
    -------
    numpy.ndarray
        (...) the aggregate of each matrix.

    Raises
    ------
    ValueError
        If `aggregation` is unknown, `values` has fewer than 2 dimensions or no layers, or a layer list's
        length does not match.
    """
    check_aggregation(aggregation)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 2 or v.shape[-1] == 0 or v.shape[-2] == 0:
        raise ValueError(f"values must be (..., LA, LB) with at least one layer each, got shape {v.shape}")
    la, lb = v.shape[-2:]
    lead = v.shape[:-2]
    flat = v.reshape(-1, la, lb)
    if aggregation == "max":
        out = flat.max(axis=(1, 2)) if larger_is_similar else flat.min(axis=(1, 2))
    elif aggregation == "mean_best":
        out = np.array([best_match(m, larger_is_similar)[0].mean() for m in flat])
    else:
        rows = list(range(la)) if layers_a is None else list(layers_a)
        cols = list(range(lb)) if layers_b is None else list(layers_b)
        if len(rows) != la or len(cols) != lb:
            raise ValueError(f"layers_a and layers_b must have {la} and {lb} entries, got {len(rows)} and "
                             f"{len(cols)}")
        nearest = _nearest_depth(rows, cols)
        out = flat[:, np.arange(la), nearest].mean(axis=1)
    return np.asarray(out, dtype=np.float64).reshape(lead)


def aggregate_statistics(estimates: np.ndarray, replicates: np.ndarray, kind: str, aggregation: str, alpha: float,
                         *, larger_is_similar: bool = True, layers_a: Sequence[int] | None = None,
                         layers_b: Sequence[int] | None = None) -> Uncertainty:
    """Standard error and interval of a model-level value, aggregating each replicate's layer-pair matrix.

    The aggregation (`aggregate_values`) is applied to the estimates and to every replicate matrix alike.
    The maximum is not a smooth function of the layer values: where two layer pairs are close to tied, its
    jackknife standard error is unreliable and the bootstrap is the better choice.

    Parameters
    ----------
    estimates
        (LA, LB) the layer-pair values on every block.
    replicates
        (R, LA, LB) their replicates: R = G leave-one-block-out matrices, or R = B bootstrap matrices.
    kind
        ``"jackknife"`` or ``"bootstrap"``.
    aggregation
        ``"mean_best"``, ``"max"`` or ``"depth_diagonal"``.
    alpha
        The interval's level is 1 - alpha.
    larger_is_similar, layers_a, layers_b
        As in `aggregate_values`.

    Returns
    -------
    Uncertainty
        `se`, `ci_low`, `ci_high`, `ci_method` and the aggregated replicates (for differences of model-level
        values with `difference_statistics`); ``None`` statistics with an `InferenceWarning` when the
        replicates are too few or not finite.

    Raises
    ------
    ValueError
        If `kind` or `aggregation` is unknown, or the shapes disagree.
    """
    check_kind(kind)
    est = np.asarray(estimates, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64)
    if est.ndim != 2 or reps.ndim != 3 or reps.shape[1:] != est.shape:
        raise ValueError(f"estimates must be (LA, LB) and replicates (R, LA, LB), got shapes {est.shape} and "
                         f"{reps.shape}")
    value = float(aggregate_values(est, aggregation, larger_is_similar, layers_a, layers_b))
    aggregated = aggregate_values(reps, aggregation, larger_is_similar, layers_a, layers_b)
    return replicate_statistics(value, aggregated, kind, alpha)
