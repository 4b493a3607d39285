"""Model-level values with their intervals and nulls, recomputed replicate by replicate from the layer pairs' arrays.

A model-to-model value aggregates many layer pairs (the mean over one model's layers of the best match in the
other). Its uncertainty is not a combination of the pairs' intervals: the k-th replicate (the same block
resampling, or the same row permutation, for every pair of a measure) of every layer pair is aggregated the
same way, giving the aggregate's k-th replicate. Hence:

- bootstrap replicates give a percentile interval of the aggregate;
- jackknife (leave-one-block-out) values give its jackknife standard error and a t interval on G - 1 degrees
  of freedom;
- null values give the aggregate under each shared permutation: its p-value, and (for similarities, whose
  largest value is 1) its calibrated score against the null's (1 - alpha) quantile. This is the
  aggregation-aware calibration: the best match is taken inside every permutation, so the null carries the
  same selection as the value.

A pair whose layer pairs lack arrays (or mix kinds) has no model-level statistics; nothing is made up.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from reprsim.analysis.aggregate_stats import aggregate_values
from reprsim.inference.combine import REPLICATE_KINDS, InferenceWarning, difference_statistics, replicate_statistics
from reprsim.inference.nulls import calibrated_score, null_threshold, permutation_p_value
from reprsim.results import ResultTable

Pair = tuple[str, str]


@dataclass(frozen=True)
class ModelStat:
    """The statistics of one model-level value.

    Attributes
    ----------
    value : float
        The aggregate.
    low, high : float or None
        Its interval of level 1 - alpha.
    p_value, calibrated : float or None
        Against the aggregate's permutation null.
    null_mean : float or None
        The mean of the aggregate under the null.
    kind : str
        ``"bootstrap"`` or ``"jackknife"`` (the replicates), ``""`` without.
    replicates : numpy.ndarray or None
        The aggregate's replicates, for paired differences.
    """

    value: float
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    calibrated: float | None = None
    null_mean: float | None = None
    kind: str = ""
    replicates: np.ndarray | None = None


def mean_best(stack: np.ndarray, larger_is_similar: bool) -> np.ndarray:
    """The mean over rows of the best value across columns, per replicate: (R, rows, columns) -> (R,)."""
    return aggregate_values(stack, "mean_best", larger_is_similar)


def interval(value: float, replicates: np.ndarray, kind: str, alpha: float) -> tuple[float, float] | None:
    """The interval of a statistic from its replicates: percentile (bootstrap) or jackknife t interval.

    Parameters
    ----------
    value : float
        The statistic on all blocks.
    replicates : numpy.ndarray
        Its (B,) bootstrap replicates or (G,) leave-one-block-out values.
    kind : str
        ``"bootstrap"`` or ``"jackknife"``.
    alpha : float
        The level.

    Returns
    -------
    tuple of float or None
        (low, high); None for another kind, fewer than 2 replicates or a non-finite one (the report says
        "not available" itself, so `replicate_statistics`' warning is not repeated here).
    """
    if kind not in REPLICATE_KINDS:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        found = replicate_statistics(value, replicates, kind, alpha)
    return None if found.ci_low is None or found.ci_high is None else (found.ci_low, found.ci_high)


def _summarise(value: float, kind: str, replicates: np.ndarray | None, null: np.ndarray | None,
               larger_is_similar: bool, alpha: float) -> ModelStat:
    """A ModelStat from an aggregate's replicates and null values (each may be missing)."""
    low = high = p = calibrated = null_mean = None
    if replicates is not None:
        found = interval(value, replicates, kind, alpha)
        if found is not None:
            low, high = found
    if null is not None:
        sign = 1.0 if larger_is_similar else -1.0  # the p-value is towards "more similar"
        p = permutation_p_value(sign * value, sign * null)
        null_mean = float(null.mean())
        if larger_is_similar:
            calibrated = calibrated_score(value, null_threshold(value, null, alpha))
    return ModelStat(value, low, high, p, calibrated, null_mean, kind if replicates is not None else "", replicates)


@dataclass(frozen=True)
class ModelStats:
    """Model-level statistics of one measure.

    Attributes
    ----------
    directed : dict of (str, str) to ModelStat
        sim(a -> b), every ordered pair that has arrays.
    symmetric : dict of (str, str) to ModelStat
        The mean of both directions, per unordered pair (model order), where both directions have arrays.
    """

    directed: dict[Pair, ModelStat]
    symmetric: dict[Pair, ModelStat]

    def get(self, a: str, b: str) -> ModelStat | None:
        """The symmetric statistics of a pair, in either order.

        Parameters
        ----------
        a, b : str
            The models.

        Returns
        -------
        ModelStat or None
            None when not computed.
        """
        return self.symmetric.get((a, b), self.symmetric.get((b, a)))


def _arrays(table: ResultTable, measure: str, a: str, b: str) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """The replicate kind and the (R, La, Lb) replicate and (K, La, Lb) null stacks of a model pair."""
    rows, columns = table.layer_ids([a], measure), table.layer_ids([b], measure)
    replicates = table.array_stack(measure, rows, columns, "replicates")
    nulls = table.array_stack(measure, rows, columns, "null_values")
    kind = replicates[0] if replicates is not None else ""
    return kind, None if replicates is None else replicates[1], None if nulls is None else nulls[1]


def model_stats(table: ResultTable, measure: str, models: Sequence[str], larger_is_similar: bool,
                alpha: float) -> ModelStats:
    """The statistics of a measure's model-to-model values (the mean over layers of the best match).

    Parameters
    ----------
    table : ResultTable
        The results table.
    measure : str
        A measure of the table.
    models : sequence of str
        The models it covers, in order.
    larger_is_similar : bool
        False for distances (best is the minimum).
    alpha : float
        The level.

    Returns
    -------
    ModelStats
        Empty when the table has no arrays for the measure.
    """
    directed: dict[Pair, ModelStat] = {}
    parts: dict[Pair, tuple[str, np.ndarray | None, np.ndarray | None]] = {}
    for a, b in permutations(models, 2):
        try:
            value = float(mean_best(table.pair_matrix(measure, a, b)[None], larger_is_similar)[0])
            kind, replicates, nulls = _arrays(table, measure, a, b)
        except KeyError:
            continue
        agg_rep = None if replicates is None else mean_best(replicates, larger_is_similar)
        agg_null = None if nulls is None else mean_best(nulls, larger_is_similar)
        if agg_rep is None and agg_null is None:
            continue
        parts[(a, b)] = (kind, agg_rep, agg_null)
        directed[(a, b)] = _summarise(value, kind, agg_rep, agg_null, larger_is_similar, alpha)
    symmetric: dict[Pair, ModelStat] = {}
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            if (a, b) not in parts or (b, a) not in parts:
                continue
            (kind_ab, rep_ab, null_ab), (kind_ba, rep_ba, null_ba) = parts[(a, b)], parts[(b, a)]
            value = (directed[(a, b)].value + directed[(b, a)].value) / 2
            same = rep_ab is not None and rep_ba is not None and kind_ab == kind_ba and rep_ab.size == rep_ba.size
            rep = (rep_ab + rep_ba) / 2 if same else None  # type: ignore[operator]
            both_null = null_ab is not None and null_ba is not None and null_ab.size == null_ba.size
            null = (null_ab + null_ba) / 2 if both_null else None  # type: ignore[operator]
            if rep is not None or null is not None:
                symmetric[(a, b)] = _summarise(value, kind_ab, rep, null, larger_is_similar, alpha)
    return ModelStats(directed, symmetric)


@dataclass(frozen=True)
class Difference:
    """A paired difference of two model-level values computed on the same blocks.

    Attributes
    ----------
    value : float
        first - second.
    low, high : float
        Its interval.
    p_value : float
        The two-sided p-value of no difference (`reprsim.inference.difference_statistics`).
    """

    value: float
    low: float
    high: float
    p_value: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0."""
        return self.low > 0 or self.high < 0


def paired_difference(first: ModelStat, second: ModelStat, alpha: float) -> Difference | None:
    """The difference of two model-level values, with the interval of its replicate-wise differences.

    Parameters
    ----------
    first, second : ModelStat
        Two values of one measure (their k-th replicates resample the same blocks).
    alpha : float
        The level.

    Returns
    -------
    Difference or None
        None when either lacks replicates or they differ in kind or number.
    """
    if first.replicates is None or second.replicates is None or first.kind != second.kind \
            or first.kind not in REPLICATE_KINDS or first.replicates.size != second.replicates.size:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        found = difference_statistics(first.value, first.replicates, second.value, second.replicates, first.kind,
                                      alpha)
    bounds = (found.ci_low, found.ci_high, found.p_value)
    if any(x is None or not math.isfinite(x) for x in bounds):
        return None
    return Difference(first.value - second.value, *bounds)  # type: ignore[arg-type]
