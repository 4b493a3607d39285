"""Functions of several values computed on the same sentence blocks: paired differences and model-level scores.

Two values of one study share their blocks: the g-th leave-one-block-out value of each leaves out the same
sentences, and the b-th bootstrap replicate of each reweights the blocks by the same counts (the study's one
seed, `reprsim.inference.bootstrap_counts`). A function of the values is therefore resampled by applying it
replicate by replicate, which keeps the correlation between the values: the standard error of a difference of
two strongly correlated values is far below the sum of their standard errors.

- ``"jackknife"`` replicates give the delete-one-block jackknife standard error of the function and a
  Student t interval on G - 1 degrees of freedom, centred on the estimate.
- ``"bootstrap"`` replicates give the percentile interval and the replicates' standard deviation.

A difference also gets the two-sided p-value of "no difference": from the jackknife t statistic, or the
add-one bootstrap p-value 2 min(#{d_b <= 0} + 1, #{d_b >= 0} + 1) / (B + 1), capped at 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from .intervals import jackknife_summary, normal_interval, percentile_interval
from .uncertainty import Uncertainty

REPLICATE_KINDS: tuple[str, ...] = ("jackknife", "bootstrap")

# A jackknife needs two blocks for a standard error; a percentile interval needs two replicates.
MIN_REPLICATES = 2

CI_LABELS = {
    "jackknife": "delete-one-block jackknife (t interval)",
    "bootstrap": "block bootstrap (percentile)",
}
DIFFERENCE_NULL_LABELS = {
    "jackknife": "difference = 0 (jackknife t test)",
    "bootstrap": "difference = 0 (bootstrap, two-sided)",
}


class InferenceWarning(UserWarning):
    """A statistic could not be computed (too few or non-finite replicates) and is reported as not available."""


def _check_kind(kind: str) -> str:
    """A replicate kind, refused by name otherwise."""
    if kind not in REPLICATE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(REPLICATE_KINDS)}, got {kind!r}")
    return kind


def _usable(replicates: np.ndarray, kind: str, what: str) -> bool:
    """Whether the replicates can carry an interval; warns (naming `what`) when they cannot."""
    if replicates.size < MIN_REPLICATES:
        warnings.warn(f"{what}: {replicates.size} {kind} replicate(s) are too few for an interval (need at least "
                      f"{MIN_REPLICATES}); reported as not available", InferenceWarning, stacklevel=3)
        return False
    if not np.all(np.isfinite(replicates)):
        warnings.warn(f"{what}: {int((~np.isfinite(replicates)).sum())} of {replicates.size} {kind} replicates are "
                      f"not finite; reported as not available", InferenceWarning, stacklevel=3)
        return False
    return True


def replicate_statistics(estimate: float, replicates: np.ndarray, kind: str, alpha: float) -> Uncertainty:
    """The standard error and interval of one value from its jackknife or bootstrap replicates.

    Parameters
    ----------
    estimate
        The value on every block.
    replicates
        (G,) leave-one-block-out values (``kind="jackknife"``) or (B,) bootstrap replicates.
    kind
        ``"jackknife"`` or ``"bootstrap"``.
    alpha
        The interval's level is 1 - alpha.

    Returns
    -------
    Uncertainty
        `se`, `ci_low`, `ci_high`, `ci_method` and the replicates; every statistic ``None`` (with an
        `InferenceWarning`) when there are fewer than two replicates or one is not finite.

    Raises
    ------
    ValueError
        If `kind` is unknown or the replicates are not 1-D.
    """
    _check_kind(kind)
    r = np.asarray(replicates, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"replicates must be 1-D, got shape {r.shape}")
    if not _usable(r, kind, "interval") or not np.isfinite(estimate):
        return Uncertainty()
    if kind == "jackknife":
        se, _bias = jackknife_summary(estimate, r)
        low, high = normal_interval(estimate, se, alpha, dof=r.size - 1)
    else:
        se = float(r.std(ddof=1))
        low, high = percentile_interval(r, alpha)
    return Uncertainty(se=se, ci_low=low, ci_high=high, ci_method=CI_LABELS[kind], replicates=r,
                       replicate_kind=kind)


def _jackknife_p_value(estimate: float, se: float, blocks: int) -> float:
    """Two-sided p-value of estimate = 0 from t = estimate / se on G - 1 degrees of freedom."""
    if se == 0.0:
        # Every leave-one-out value agrees: the difference does not vary over the blocks at all.
        return 1.0 if estimate == 0.0 else 0.0
    return float(2.0 * stats.t.sf(abs(estimate) / se, blocks - 1))


def _bootstrap_p_value(replicates: np.ndarray) -> float:
    """Two-sided add-one bootstrap p-value of zero: 2 min(#{<= 0} + 1, #{>= 0} + 1) / (B + 1), at most 1."""
    b = replicates.size
    below = (1.0 + float((replicates <= 0).sum())) / (b + 1)
    above = (1.0 + float((replicates >= 0).sum())) / (b + 1)
    return min(1.0, 2.0 * min(below, above))


def difference_statistics(estimate_a: float, replicates_a: np.ndarray, estimate_b: float,
                          replicates_b: np.ndarray, kind: str, alpha: float) -> Uncertainty:
    """Standard error, interval and p-value of a - b for two values computed on the same blocks.

    The difference is resampled replicate by replicate (the g-th leave-one-out value of a minus that of b,
    or the b-th bootstrap replicate of each), so the correlation of a and b is kept.

    Parameters
    ----------
    estimate_a, estimate_b
        The two values on every block.
    replicates_a, replicates_b
        Their replicates of the same kind over the same blocks or bootstrap counts: (G,) leave-one-block-out
        values or (B,) bootstrap replicates.
    kind
        ``"jackknife"``: jackknife standard error, t interval and two-sided t-test p-value on G - 1 degrees
        of freedom. ``"bootstrap"``: percentile interval of the replicate differences, their standard
        deviation, and the add-one two-sided bootstrap p-value of a - b = 0.
    alpha
        The interval's level is 1 - alpha.

    Returns
    -------
    Uncertainty
        The statistics of a - b; `p_value` is that of no difference, `replicates` the differences. Every
        statistic is ``None`` (with an `InferenceWarning`) when the replicates are too few or not finite.

    Raises
    ------
    ValueError
        If `kind` is unknown or the two replicate arrays differ in shape.
    """
    ra = np.asarray(replicates_a, dtype=np.float64)
    rb = np.asarray(replicates_b, dtype=np.float64)
    if ra.shape != rb.shape:
        raise ValueError(f"replicates_a and replicates_b must come from the same blocks or bootstrap counts, got "
                         f"shapes {ra.shape} and {rb.shape}")
    estimate = float(estimate_a) - float(estimate_b)
    summary = replicate_statistics(estimate, ra - rb, kind, alpha)
    if summary.se is None or summary.replicates is None:
        return summary
    if kind == "jackknife":
        summary.p_value = _jackknife_p_value(estimate, summary.se, ra.size)
    else:
        summary.p_value = _bootstrap_p_value(summary.replicates)
    summary.null_method = DIFFERENCE_NULL_LABELS[kind]
    return summary


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
    # Imported here: reprsim.results imports this package, and reprsim.analysis imports reprsim.results.
    from reprsim.analysis.aggregate import _nearest_depth, best_match, check_aggregation

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
    _check_kind(kind)
    est = np.asarray(estimates, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64)
    if est.ndim != 2 or reps.ndim != 3 or reps.shape[1:] != est.shape:
        raise ValueError(f"estimates must be (LA, LB) and replicates (R, LA, LB), got shapes {est.shape} and "
                         f"{reps.shape}")
    value = float(aggregate_values(est, aggregation, larger_is_similar, layers_a, layers_b))
    aggregated = aggregate_values(reps, aggregation, larger_is_similar, layers_a, layers_b)
    return replicate_statistics(value, aggregated, kind, alpha)
