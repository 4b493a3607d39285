"""Null baselines: permutation p-values, the calibrated score of Gröger et al., and closed-form nulls.

The calibrated score follows Gröger, Wen & Brbić (ICML 2026): tau is the (1 - alpha) order statistic of the
observed value together with the K null values, and ``clamp((s - tau) / (s_max - tau), 0, 1)`` is 0 for every
score the null reaches at level alpha. A model-level score that searches over layer pairs (the maximum) is
calibrated against the same search on each shared permutation (`calibrate_layers_max`).

The analytic null of linear CKA is that of the RV coefficient of the centred data (linear CKA is the RV
coefficient of the column-centred representations) under the n! row permutations: its exact mean and
variance (Kazi-Aoual, Hitier, Sabatier & Lebreton 1995; Josse, Pagès & Husson 2008; Josse & Holmes 2016)
need only tr K, ||K||_F^2 and sum_i K_ii^2 of each side's centred Gram K, which the one pass over the rows
provides; the exact third moment (Kazi-Aoual et al. 1995) needs the n x n Grams, so it is for a row
subsample. `rv_null_p_value` turns the moments into a p-value by the Pearson type III approximation of
Josse, Pagès & Husson (2008), or by the normal approximation when no skewness is given.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """The add-one permutation p-value, (1 + #{null >= observed}) / (K + 1).

    Parameters
    ----------
    observed
        The value on the paired rows.
    null
        (K,) the values with one side's rows permuted.

    Returns
    -------
    float
        The right-tailed p-value, in (0, 1].
    """
    z = np.asarray(null, dtype=np.float64)
    return (1.0 + float((z >= observed).sum())) / (z.size + 1)


def null_threshold(observed: float, null: np.ndarray, alpha: float) -> float:
    """Tau: the ceil((1 - alpha)(K + 1))-th smallest of the observed value and the K null values.

    Parameters
    ----------
    observed
        The value on the paired rows.
    null
        (K,) permutation values.
    alpha
        The level.

    Returns
    -------
    float
        The critical value.
    """
    combined = np.sort(np.concatenate([[float(observed)], np.asarray(null, dtype=np.float64)]))
    k = len(combined) - 1
    index = min(max(math.ceil((1.0 - alpha) * (k + 1)) - 1, 0), k)
    return float(combined[index])


def calibrated_score(observed: float, tau: float, s_max: float = 1.0) -> float:
    """clamp((s - tau) / (s_max - tau), 0, 1): how far a score stands above its null, on [0, 1].

    Parameters
    ----------
    observed
        The score s.
    tau
        The null's critical value (`null_threshold`).
    s_max
        The measure's largest value.

    Returns
    -------
    float
        0 when s <= tau, 1 at s = s_max.
    """
    denominator = max(s_max - tau, 1e-12)
    return min(max((observed - tau) / denominator, 0.0), 1.0)


def knn_chance(k: int, n: int) -> float:
    """Mutual k-NN's chance level, k / (n - 1).

    Two independent k-neighbourhoods among n - 1 candidates share k^2 / (n - 1) rows on average, a fraction
    k / (n - 1) of k.

    Parameters
    ----------
    k
        Neighbours per row.
    n
        Rows.

    Returns
    -------
    float
        The expected mutual k-NN score of unrelated representations.
    """
    return k / (n - 1)


class Calibration(NamedTuple):
    """A score calibrated against its permutation null (the triple `calibrated_similarity.calibrate` returns)."""

    calibrated: float
    p_value: float
    tau: float


def calibrate_value(observed: float, null: np.ndarray, alpha: float, s_max: float = 1.0) -> Calibration:
    """The calibrated score, p-value and threshold of one value against its K null values.

    Parameters
    ----------
    observed
        The value on the paired rows.
    null
        (K,) the values with one side's rows permuted.
    alpha
        The level of the threshold.
    s_max
        The measure's largest value.

    Returns
    -------
    Calibration
        ``(calibrated, p_value, tau)``.
    """
    tau = null_threshold(observed, null, alpha)
    return Calibration(calibrated_score(observed, tau, s_max), permutation_p_value(observed, null), tau)


def calibrate_layers_max(observed_matrix: np.ndarray, null_matrices: np.ndarray, alpha: float,
                         s_max: float = 1.0) -> Calibration:
    """Aggregation-aware calibration of the best layer pair (Gröger et al., Algorithm 2 with the maximum).

    The model-level score max_{l, l'} s(A_l, B_l') picks the largest of LA x LB values, so the null of each
    single pair would understate how large it gets by chance. Its null is the same maximum on each shared
    row permutation: the k-th null value is max_{l, l'} of the k-th permutation's values (one permutation
    of the rows for every layer pair, which keeps the dependence between layers).

    Parameters
    ----------
    observed_matrix
        (LA, LB) the values of the layer pairs.
    null_matrices
        (K, LA, LB) the values of the layer pairs under each of K shared permutations.
    alpha
        The level of the threshold.
    s_max
        The measure's largest value.

    Returns
    -------
    Calibration
        ``(calibrated, p_value, tau)`` of the maximum.

    Raises
    ------
    ValueError
        If the shapes disagree or either array is empty.
    """
    observed = np.asarray(observed_matrix, dtype=np.float64)
    nulls = np.asarray(null_matrices, dtype=np.float64)
    if observed.ndim != 2 or observed.size == 0:
        raise ValueError(f"observed_matrix must be a non-empty (LA, LB) array, got shape {observed.shape}")
    if nulls.ndim != 3 or nulls.shape[1:] != observed.shape or nulls.shape[0] == 0:
        raise ValueError(f"null_matrices must be (K, {observed.shape[0]}, {observed.shape[1]}) with K >= 1, got "
                         f"shape {nulls.shape}")
    return calibrate_value(float(observed.max()), nulls.max(axis=(1, 2)), alpha, s_max)


def _check_side(trace: float, frob2: float, diag_sq: float, side: str) -> float:
    """The side's beta = (tr K)^2 / ||K||_F^2 of one side, refusing a constant side by name."""
    if not frob2 > 0 or not trace > 0 or not diag_sq > 0:
        raise ValueError(f"the analytic null needs a non-constant {side}: tr K, ||K||_F^2 and sum K_ii^2 must be "
                         f"positive, got {trace!r}, {frob2!r}, {diag_sq!r}")
    return trace * trace / frob2


def rv_null_moments(trace_x: float, frob2_x: float, diag_sq_x: float, trace_y: float, frob2_y: float,
                    diag_sq_y: float, n: int) -> tuple[float, float]:
    """The exact mean and variance of linear CKA under the n! permutations of one side's rows.

    With K = Xc Xc^T the centred n x n Gram of X, beta_x = (tr K)^2 / ||K||_F^2 and
    delta_x = sum_i K_ii^2 / ||K||_F^2 (and the same for Y):

    - mean = sqrt(beta_x beta_y) / (n - 1);
    - variance = [2 a_x a_y / (n - 1)^2 + p_x p_y / (n (n - 1)(n - 3))] / ((n + 1)(n - 2)), with
      a = n - 1 - beta and p = n (n + 1) delta - (n - 1)(beta + 2).

    This is the permutation variance of the RV coefficient of Kazi-Aoual et al. (1995), in the form of
    Josse, Pagès & Husson (2008, eq. 5), 2 a_x a_y / ((n + 1)(n - 1)^2 (n - 2)) (1 + (n - 3) t_x t_y /
    (2 n (n - 1))) with t = (n - 1) p / ((n - 3) a), multiplied out so that a side whose Gram has n - 1
    equal eigenvalues (a = 0) does not divide by zero.

    Parameters
    ----------
    trace_x, frob2_x, diag_sq_x
        tr K, ||K||_F^2 and sum_i K_ii^2 of X's centred Gram; from the d x d covariance C = Xc^T Xc these
        are tr C, ||C||_F^2 and sum_i ||x_i - mean||^4.
    trace_y, frob2_y, diag_sq_y
        The same for Y.
    n
        The number of rows, at least 4.

    Returns
    -------
    tuple of (float, float)
        ``(mean, variance)`` of linear CKA over the permutations.

    Raises
    ------
    ValueError
        If n is below 4 or a side is constant (a non-positive statistic).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4:
        raise ValueError(f"the analytic null needs n >= 4 rows, got n={n!r}")
    beta_x = _check_side(trace_x, frob2_x, diag_sq_x, "X")
    beta_y = _check_side(trace_y, frob2_y, diag_sq_y, "Y")
    mean = math.sqrt(beta_x * beta_y) / (n - 1)
    a_x, a_y = n - 1 - beta_x, n - 1 - beta_y
    p_x = n * (n + 1) * diag_sq_x / frob2_x - (n - 1) * (beta_x + 2)
    p_y = n * (n + 1) * diag_sq_y / frob2_y - (n - 1) * (beta_y + 2)
    variance = (2 * a_x * a_y / (n - 1) ** 2 + p_x * p_y / (n * (n - 1) * (n - 3))) / ((n + 1) * (n - 2))
    return mean, max(variance, 0.0)


class RVSideMoments(NamedTuple):
    """One side's Gram statistics that the third permutation moment of linear CKA needs.

    All are of the double-centred Gram W scaled to unit Frobenius norm (every moment of the CKA null is
    invariant to the scale of either side; the scaling keeps the sixth-degree products of `rv_null_skewness`
    near 1). With w = diag(W): ``trace`` tr W, ``trace2`` tr W^2 (= 1), ``trace3`` tr W^3, ``diag_sq``
    sum w_i^2, ``diag_cube`` sum w_i^3, ``cube_sum`` sum_ij W_ij^3, ``diag_form`` w^T W w and
    ``diag_square`` w^T diag(W^2).
    """

    n: int
    trace: float
    trace2: float
    trace3: float
    diag_sq: float
    diag_cube: float
    cube_sum: float
    diag_form: float
    diag_square: float


def rv_side_moments(gram: np.ndarray) -> RVSideMoments:
    """The statistics of one side's n x n Gram that `rv_null_skewness` needs (O(n^3) time, O(n^2) memory).

    Parameters
    ----------
    gram
        (n, n) the Gram X X^T of a row subsample (it is double-centred here, so centring X first is optional).

    Returns
    -------
    RVSideMoments
        The side's statistics.

    Raises
    ------
    ValueError
        If the Gram is not square, has fewer than 6 rows, or is constant after centring.
    """
    k = np.asarray(gram, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"gram must be a square (n, n) array, got shape {k.shape}")
    n = k.shape[0]
    if n < 6:
        raise ValueError(f"the third permutation moment needs n >= 6 rows, got n={n}")
    w = k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()
    norm = float(np.sqrt((w * w).sum()))
    if not norm > 0:
        raise ValueError("the third permutation moment needs a non-constant side (its centred Gram is zero)")
    w = w / norm
    diag = np.diag(w).copy()
    w2 = w @ w
    return RVSideMoments(
        n=n, trace=float(diag.sum()), trace2=float(np.trace(w2)), trace3=float((w2 * w).sum()),
        diag_sq=float(diag @ diag), diag_cube=float((diag**3).sum()), cube_sum=float((w**3).sum()),
        diag_form=float(diag @ w @ diag), diag_square=float(diag @ np.diag(w2)),
    )


def _third_moment_sum(x: RVSideMoments, y: RVSideMoments) -> float:
    """The sum n (n - 1) ... (n - 5) E[t^3], t = tr(W_x P W_y P^T) over uniform permutations P (Kazi-Aoual et al. 1995).

    Written as a sum of terms, each symmetric in the two sides ('both' adds the term with the sides swapped).
    """
    n = x.n

    def both(f_xy: float, f_yx: float) -> float:
        return f_xy + f_yx

    cube_x = x.trace**3 + 6 * x.trace * x.trace2 + 8 * x.trace3
    cube_y = y.trace**3 + 6 * y.trace * y.trace2 + 8 * y.trace3
    ts_x, ts_y = x.trace * x.diag_sq, y.trace * y.diag_sq  # T S2
    tt_x, tt_y = x.trace * x.trace2, y.trace * y.trace2  # T T2
    t3_x, t3_y = x.trace**3, y.trace**3
    total = (
        n**2 * (n + 1) * (n**2 + 15 * n - 4) * x.diag_cube * y.diag_cube
        + 4 * (n**4 - 8 * n**3 + 19 * n**2 - 4 * n - 16) * x.cube_sum * y.cube_sum
        + 24 * (n**2 - n - 4) * both(x.cube_sum * y.diag_form, x.diag_form * y.cube_sum)
        + 6 * (n**4 - 8 * n**3 + 21 * n**2 - 6 * n - 24) * x.diag_form * y.diag_form
        + 12 * (n**4 - n**3 - 8 * n**2 + 36 * n - 48) * x.diag_square * y.diag_square
        + 12 * (n**3 - 2 * n**2 + 9 * n - 12) * both(ts_x * y.diag_square, x.diag_square * ts_y)
        + 3 * (n**4 - 4 * n**3 - 2 * n**2 + 9 * n - 12) * ts_x * ts_y
        + 24 * (n**3 - 3 * n**2 - 2 * n + 8) * both(x.diag_square * y.cube_sum, x.cube_sum * y.diag_square)
        + 24 * (n**3 - 2 * n**2 - 3 * n + 12) * both(x.diag_square * y.diag_form, x.diag_form * y.diag_square)
        + 12 * (n**2 - n + 4) * both(ts_x * y.cube_sum, x.cube_sum * ts_y)
        + 6 * (2 * n**3 - 7 * n**2 - 3 * n + 12) * both(ts_x * y.diag_form, x.diag_form * ts_y)
        - 2 * n * (n - 1) * (n**2 - n + 4) * both((2 * x.cube_sum + 3 * x.diag_form) * y.diag_cube,
                                                  (2 * y.cube_sum + 3 * y.diag_form) * x.diag_cube)
        - 3 * n * (n - 1) ** 2 * (n + 4) * both((ts_x + 4 * x.diag_square) * y.diag_cube,
                                                (ts_y + 4 * y.diag_square) * x.diag_cube)
        + 2 * n * (n - 1) * (n - 2) * both(cube_x * y.diag_cube, cube_y * x.diag_cube)
        + t3_x * ((n**3 - 9 * n**2 + 23 * n - 14) * t3_y + 6 * (n - 4) * tt_y + 8 * y.trace3)
        + 6 * tt_x * ((n - 4) * t3_y + (n**3 - 9 * n**2 + 24 * n - 14) * tt_y + 4 * (n - 3) * y.trace3)
        + 8 * x.trace3 * (t3_y + 3 * (n - 3) * tt_y + (n**3 - 9 * n**2 + 26 * n - 22) * y.trace3)
        - 16 * both(t3_x * y.cube_sum, x.cube_sum * t3_y)
        - 6 * (2 * n**2 - 10 * n + 16) * both(tt_x * y.cube_sum, x.cube_sum * tt_y)
        - 8 * (3 * n**2 - 15 * n + 16) * both(x.trace3 * y.cube_sum, x.cube_sum * y.trace3)
        - (6 * n**2 - 30 * n + 24) * both(t3_x * y.diag_form, x.diag_form * t3_y)
        - 6 * (4 * n**2 - 20 * n + 24) * both(tt_x * y.diag_form, x.diag_form * tt_y)
        - 8 * (3 * n**2 - 15 * n + 24) * both(x.trace3 * y.diag_form, x.diag_form * y.trace3)
        - (n - 2) * (
            24 * both(t3_x * y.diag_square, x.diag_square * t3_y)
            + 6 * (2 * n**2 - 10 * n + 24) * both(tt_x * y.diag_square, x.diag_square * tt_y)
            + 8 * (3 * n**2 - 15 * n + 24) * both(x.trace3 * y.diag_square, x.diag_square * y.trace3)
            + (3 * n**2 - 15 * n + 6) * both(t3_x * ts_y, ts_x * t3_y)
            + 6 * (n**2 - 5 * n + 6) * both(tt_x * ts_y, ts_x * tt_y)
            + 48 * both(x.trace3 * ts_y, ts_x * y.trace3)
        )
    )
    return float(total)


def rv_null_skewness(side_x: RVSideMoments, side_y: RVSideMoments) -> float:
    """The exact skewness of linear CKA under the n! permutations of one side's rows.

    From the first three permutation moments of t = tr(W_x P W_y P^T) (Kazi-Aoual et al. 1995), as in
    the Pearson type III test of Josse, Pagès & Husson (2008); linear CKA is t over a constant, so it has
    the same skewness.

    Parameters
    ----------
    side_x, side_y
        `rv_side_moments` of the two sides' Grams on the same n rows.

    Returns
    -------
    float
        The third standardised moment.

    Raises
    ------
    ValueError
        If the two sides have different numbers of rows, or the null is degenerate (zero variance).
    """
    if side_x.n != side_y.n:
        raise ValueError(f"side_x and side_y must come from the same rows, got n={side_x.n} and n={side_y.n}")
    n = side_x.n
    mean = side_x.trace * side_y.trace / (n - 1)
    variance = (
        2 * ((n - 1) * side_x.trace2 - side_x.trace**2) * ((n - 1) * side_y.trace2 - side_y.trace**2)
        / ((n - 1) ** 2 * (n + 1) * (n - 2))
        + (n * (n + 1) * side_x.diag_sq - (n - 1) * (side_x.trace**2 + 2 * side_x.trace2))
        * (n * (n + 1) * side_y.diag_sq - (n - 1) * (side_y.trace**2 + 2 * side_y.trace2))
        / ((n + 1) * n * (n - 1) * (n - 2) * (n - 3))
    )
    if not variance > 0:
        raise ValueError("the permutation null is degenerate (zero variance), so it has no skewness")
    third = _third_moment_sum(side_x, side_y) / (n * (n - 1) * (n - 2) * (n - 3) * (n - 4) * (n - 5))
    cumulant3 = third - 3 * mean * variance - mean**3
    return float(cumulant3 / variance**1.5)


def rv_null_p_value(observed: float, mean: float, variance: float, skewness: float | None = None) -> float:
    """The right-tailed p-value of linear CKA from its permutation moments.

    With z = (observed - mean) / sqrt(variance): the Pearson type III approximation (a shifted gamma with
    the null's mean, variance and skewness; Josse, Pagès & Husson 2008) when `skewness` is given, else the
    normal approximation, which understates tail probabilities of the right-skewed CKA null (a skewness of
    0.7 to 1.7 at n = 30-50 makes its 1% tail a 0.3% to 0.02% normal p-value).

    Parameters
    ----------
    observed
        The value on the paired rows.
    mean, variance
        `rv_null_moments`.
    skewness
        `rv_null_skewness`, or None for the normal approximation.

    Returns
    -------
    float
        The approximate P(null >= observed), in [0, 1].

    Raises
    ------
    ValueError
        If the variance is not positive.
    """
    if not variance > 0:
        raise ValueError(f"variance must be positive, got {variance!r}")
    z = (float(observed) - float(mean)) / math.sqrt(float(variance))
    if skewness is None:
        return float(stats.norm.sf(z))
    return float(stats.pearson3.sf(z, float(skewness)))
