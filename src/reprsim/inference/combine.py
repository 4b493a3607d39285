"""Functions of several values computed on the same sentence blocks: paired differences and their replicates.

Two values of one study share their blocks: the g-th leave-one-block-out value of each leaves out the same
sentences, and the b-th bootstrap replicate of each reweights the blocks by the same counts (the study's one
seed, `reprsim.inference.bootstrap_counts`). A function of the values is therefore resampled by applying it
replicate by replicate, which keeps the correlation between the values: the standard error of a difference of
two strongly correlated values is far below the sum of their standard errors.

- ``"jackknife"`` replicates give the delete-one-block jackknife standard error of the function and a
  Student t interval on G - 1 degrees of freedom, centred on the estimate.
- ``"bootstrap"`` replicates give the percentile interval and the replicates' standard deviation.

Model-level values (an aggregation of a layer-pair matrix) are resampled the same way by
`reprsim.analysis.aggregate_statistics`, beside the aggregations themselves.

A difference also gets the two-sided p-value of "no difference": from the jackknife t statistic, or the
add-one bootstrap p-value 2 min(#{d_b <= 0} + 1, #{d_b >= 0} + 1) / (B + 1), capped at 1.
"""

from __future__ import annotations

import warnings

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


def check_kind(kind: str) -> str:
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
    check_kind(kind)
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
