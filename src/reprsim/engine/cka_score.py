"""Kernel-alignment measures of a pair from its blocks: linear, debiased and lange CKA, and ENSD.

All are functions of ||C_xy||_F^2, the sides' ||C||_F and tr C and (for the estimators that zero the Grams'
diagonals) the row-norm products sum_i |x_c,i|^2 |y_c,i|^2 that `CrossMoments(row_norms=True)` keeps.
"""

from __future__ import annotations

import math

import torch

from reprsim.measures.spectral import lange_hsic, lange_ratio

from .linear_fit import MIN_ROWS_UNBIASED, LinearFit
from .pair_terms import PairTerms


def _ratio(xy: float, xx: float, yy: float, measure: str, x: LinearFit, y: LinearFit) -> float:
    """The ratio xy / sqrt(xx yy), refusing a non-positive self-HSIC (naming the side)."""
    for value, stats in ((xx, x), (yy, y)):
        if not value > 0.0:
            raise ValueError(
                f"{measure}: HSIC of {stats.name} with itself is {value:.3g} (not positive); it carries no "
                "usable variation for this estimator (too few rows, or (nearly) constant)"
            )
    return xy / math.sqrt(xx * yy)


def linear_cka(t: PairTerms) -> float:
    """Linear CKA: ||C_xy||_F^2 / (||C_xx||_F ||C_yy||_F).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The similarity, in [0, 1].

    Raises
    ------
    ValueError
        If every neuron of a side is constant, or a side's HSIC with itself is not positive.
    """
    t.x.require_varying("linear_cka")
    t.y.require_varying("linear_cka")
    xy = float(torch.linalg.matrix_norm(t.cross)) ** 2
    return _ratio(xy, t.x.frobenius**2, t.y.frobenius**2, "linear_cka", t.x, t.y)


def unbiased_hsic(cross_frobenius_sq: float, norm_product: float, trace_x: float, trace_y: float, n: int) -> float:
    """Song et al.'s unbiased HSIC of linear kernels from feature-space sums, times n(n-3) (which cancels).

    Parameters
    ----------
    cross_frobenius_sq
        ||C_xy||_F^2.
    norm_product
        q.r = sum_i |x_c,i|^2 |y_c,i|^2.
    trace_x, trace_y
        tr C_xx and tr C_yy.
    n
        The number of rows (at least 4).

    Returns
    -------
    float
        n(n-3) HSIC_1.

    Notes
    -----
    With K~ = X_c X_c^T with zeroed diagonal (likewise L~), q_i = |x_c,i|^2, r_i = |y_c,i|^2:
    tr(K~L~) = ||C_xy||^2 - q.r, 1'K~1 = -tr C_xx, K~1 = -q, so
    n(n-3) HSIC_1 = ||C_xy||_F^2 - n/(n-2) q.r + tr C_xx tr C_yy / ((n-1)(n-2)).
    """
    return cross_frobenius_sq - n / (n - 2) * norm_product + trace_x * trace_y / ((n - 1) * (n - 2))


def debiased_cka(t: PairTerms) -> float:
    """Linear CKA with the unbiased HSIC estimator (`unbiased_hsic`).

    Parameters
    ----------
    t
        The pair's terms.
        Both fits and the pair need their row-norm products (moments accumulated with ``row_norms=True``).

    Returns
    -------
    float
        The similarity (it can be slightly negative for unrelated representations).

    Raises
    ------
    ValueError
        If there are fewer than 4 rows, the row-norm sums are missing, every neuron of a side is constant, or
        a side's unbiased HSIC with itself is not positive.
    """
    if t.n < MIN_ROWS_UNBIASED:
        raise ValueError(f"debiased_cka: the unbiased HSIC estimator needs at least 4 rows, got {t.n}")
    if t.norm_product is None or t.x.norm_product is None or t.y.norm_product is None:
        raise ValueError("debiased_cka needs row-norm sums: accumulate CrossMoments with row_norms=True")
    t.x.require_varying("debiased_cka")
    t.y.require_varying("debiased_cka")
    n = t.n
    xy = unbiased_hsic(float(torch.linalg.matrix_norm(t.cross)) ** 2, t.norm_product, t.x.trace, t.y.trace, n)
    xx = unbiased_hsic(t.x.frobenius**2, t.x.norm_product, t.x.trace, t.x.trace, n)
    yy = unbiased_hsic(t.y.frobenius**2, t.y.norm_product, t.y.trace, t.y.trace, n)
    return _ratio(xy, xx, yy, "debiased_cka", t.x, t.y)


def _require_row_norms(t: PairTerms, measure: str) -> tuple[float, float, float]:
    """The pair's and both sides' row-norm products (ValueError when they were not accumulated)."""
    if t.norm_product is None or t.x.norm_product is None or t.y.norm_product is None:
        raise ValueError(f"{measure} needs row-norm sums: accumulate CrossMoments with row_norms=True")
    return t.norm_product, t.x.norm_product, t.y.norm_product


def lange_cka(t: PairTerms) -> float:
    """CKA of centred Grams with zeroed diagonals (`reprsim.measures.lange_cka`).

    <K~, L~> = ||C_xy||_F^2 - sum_i |x_c,i|^2 |y_c,i|^2, from the row-norm products that debiased CKA also uses.

    Parameters
    ----------
    t
        The pair's terms, with row-norm products (moments accumulated with ``row_norms=True``).

    Returns
    -------
    float
        The similarity, at most 1.

    Raises
    ------
    ValueError
        If the row-norm sums are missing or a side's zero-diagonal Gram has no energy.
    """
    xy_norms, xx_norms, yy_norms = _require_row_norms(t, "lange_cka")
    xy = lange_hsic(float(torch.linalg.matrix_norm(t.cross)) ** 2, xy_norms)
    return lange_ratio(xy, lange_hsic(t.x.frobenius**2, xx_norms), lange_hsic(t.y.frobenius**2, yy_norms))


def ensd(t: PairTerms) -> float:
    """ENSD = tr C_x tr C_y ||C_xy||_F^2 / (||C_x||_F^2 ||C_y||_F^2) (`reprsim.measures.ensd`).

    Parameters
    ----------
    t
        The pair's terms.

    Returns
    -------
    float
        The effective number of shared dimensions, linear CKA times sqrt(PR_x PR_y).

    Raises
    ------
    ValueError
        If a side has no variance.
    """
    for side in (t.x, t.y):
        if not side.frobenius > 0.0:
            raise ValueError(f"ensd: {side.name} has no variance")
    cross = float(torch.linalg.matrix_norm(t.cross)) ** 2
    return t.x.trace * t.y.trace * cross / (t.x.frobenius**2 * t.y.frobenius**2)
