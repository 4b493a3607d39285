"""The HSIC estimators that every CKA variant is built from, and the CKA ratio with its input checks.

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` (`cka_ratio`). The biased HSIC of two Gram matrices
is the inner product of their double-centred forms (`centre_gram_`, `gram_cka`); the unbiased estimator of
Song et al. (2012) is the inner product of U-centred Gram matrices over n (n - 3) (`u_centre_`), or for
linear kernels the same number from p x q products without forming n x n matrices (`hsic1_feature`).
`reprsim.measures.cka` (linear, debiased), `reprsim.measures.cka_minibatch` and `reprsim.measures.cka_rbf`
use them.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from reprsim.arrays import constant_columns

Space = Literal["auto", "feature", "gram"]

# The unbiased HSIC estimator divides by n (n - 3) and (n - 1)(n - 2): it needs at least 4 rows.
MIN_ROWS_UNBIASED = 4


def require_variation(x: torch.Tensor, name: str, measure: str, spread: torch.Tensor | None = None) -> None:
    """Refuse a representation that is constant in every neuron: it has no geometry to compare.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    name
        What the message calls it (``"X"`` or ``"Y"``).
    measure
        The measure's name, which starts the message.
    spread
        The norms of x's centred columns, when the caller has them (see `reprsim.arrays.constant_columns`).

    Raises
    ------
    ValueError
        If every column of `x` is constant (all rows identical).
    """
    if bool(constant_columns(x, spread).all()):
        raise ValueError(
            f"{measure}: {name} has zero variance in every neuron (all rows identical); the similarity is "
            "undefined"
        )

def resolve_space(space: str, n: int, p: int, q: int, measure: str) -> Literal["feature", "gram"]:
    """Feature space (p x q products) when n exceeds both widths, Gram space (n x n) otherwise.

    Parameters
    ----------
    space
        ``"auto"``, ``"feature"`` or ``"gram"``.
    n, p, q
        The rows and the two widths.
    measure
        The measure's name, which starts the error message.

    Returns
    -------
    str
        ``"feature"`` or ``"gram"``.

    Raises
    ------
    ValueError
        If `space` is none of the three.
    """
    if space == "auto":
        return "feature" if n > max(p, q) else "gram"
    if space == "feature":
        return "feature"
    if space == "gram":
        return "gram"
    raise ValueError(f"{measure}: space must be 'auto', 'feature' or 'gram', got {space!r}")


def cka_ratio(xy: float, xx: float, yy: float, measure: str) -> float:
    """HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)), refusing a non-positive self-term instead of a NaN.

    Parameters
    ----------
    xy, xx, yy
        The three HSIC terms.
    measure
        The measure's name, which starts the error message.

    Returns
    -------
    float
        The CKA value.

    Raises
    ------
    ValueError
        If a self-term is not positive (naming X or Y).
    """
    for value, name in ((xx, "X"), (yy, "Y")):
        if not value > 0.0:
            raise ValueError(
                f"{measure}: HSIC of {name} with itself is {value:.3g} (not positive); {name} carries no "
                "usable variation for this estimator (too few rows, or (nearly) constant)"
            )
    return xy / math.sqrt(xx * yy)


# ----------------------------------------------------------------------------------------------------------
# Biased HSIC (the original CKA)


def centre_gram_(K: torch.Tensor) -> torch.Tensor:
    """Double-centre a Gram matrix in place: ``H K H`` with ``H = I - 11^T / n``.

    Working in place keeps one n x n matrix per representation, the largest object RBF CKA holds.

    Parameters
    ----------
    K
        A square n x n float matrix; it is overwritten.

    Returns
    -------
    torch.Tensor
        `K` itself, now with zero row and column means.
    """
    K -= K.mean(dim=0, keepdim=True)
    K -= K.mean(dim=1, keepdim=True)
    return K


def gram_cka(K: torch.Tensor, L: torch.Tensor, measure: str = "cka") -> float:
    """Biased-HSIC CKA of two Gram matrices: ``<HKH, HLH> / (||HKH||_F ||HLH||_F)``.

    Parameters
    ----------
    K, L
        The n x n Gram matrices of the two representations; both are centred in place (see
        `centre_gram_`).
    measure
        The measure's name, which starts the error message.

    Returns
    -------
    float
        The CKA value.

    Raises
    ------
    ValueError
        If a centred Gram matrix is zero (its representation carries no usable variation).
    """
    K, L = centre_gram_(K), centre_gram_(L)
    xy = float(torch.dot(K.reshape(-1), L.reshape(-1)))
    return cka_ratio(xy, float(K.norm()) ** 2, float(L.norm()) ** 2, measure)

# ----------------------------------------------------------------------------------------------------------
# Unbiased HSIC (Song et al. 2012): debiased and minibatch CKA


def u_centre_(K: torch.Tensor) -> torch.Tensor:
    """U-centre a Gram matrix in place (Szekely & Rizzo 2014).

    Zeroes the diagonal, then applies the centring that makes ``<u_centre_(K), u_centre_(L)> / (n (n - 3))``
    the unbiased HSIC estimator of Song et al. (2012).

    Parameters
    ----------
    K
        A square n x n float matrix, ``n >= 4``; it is overwritten.

    Returns
    -------
    torch.Tensor
        `K` itself, U-centred, with a zero diagonal.
    """
    n = K.shape[0]
    K.fill_diagonal_(0.0)
    means = K.sum(dim=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    K -= means[:, None]
    K -= means[None, :]
    K.fill_diagonal_(0.0)
    return K


def hsic1_feature(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased HSIC_1 of the linear kernels of x and y, without forming n x n matrices.

    Song et al.'s estimator with ``K~ = X X^T`` and ``L~ = Y Y^T``, diagonals zeroed, is
    ``[tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))``. With ``a = diag(X X^T)``,
    ``b = diag(Y Y^T)``, ``s_x = X^T 1`` and ``s_y = Y^T 1`` its terms are p x q products:
    ``tr(K~ L~) = ||X^T Y||_F^2 - a.b``, ``1'K~1 = ||s_x||^2 - sum(a)`` and ``K~1 = X s_x - a``.

    Parameters
    ----------
    x, y
        Row-aligned float64 matrices, n x p and n x q, ``n >= 4``. Columns need not be centred (the
        estimator ignores feature shifts), but centring first is more accurate.

    Returns
    -------
    float
        HSIC_1(X, Y); it can be slightly negative.
    """
    n = x.shape[0]
    a, b = x.square().sum(dim=1), y.square().sum(dim=1)
    s_x, s_y = x.sum(dim=0), y.sum(dim=0)
    trace_kl = float(torch.linalg.matrix_norm(x.T @ y)) ** 2 - float(a @ b)
    sum_k = float(s_x @ s_x - a.sum())
    sum_l = float(s_y @ s_y - b.sum())
    row_k, row_l = x @ s_x - a, y @ s_y - b
    cross = float(row_k @ row_l)
    return (trace_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


def hsic1_terms(x: torch.Tensor, y: torch.Tensor, space: Literal["feature", "gram"]) -> tuple[float, float, float]:
    """The three unbiased HSIC terms of the linear kernels of x and y, in the chosen space.

    Gram space: inner products of the U-centred Gram matrices over n (n - 3); feature space: `hsic1_feature`.

    Parameters
    ----------
    x, y
        Row-aligned float64 matrices, n x p and n x q, ``n >= 4``.
    space
        ``"feature"`` or ``"gram"``.

    Returns
    -------
    tuple of (float, float, float)
        (HSIC_1(X, Y), HSIC_1(X, X), HSIC_1(Y, Y)).
    """
    if space == "feature":
        return hsic1_feature(x, y), hsic1_feature(x, x), hsic1_feature(y, y)
    scale = x.shape[0] * (x.shape[0] - 3)
    Ku, Lu = u_centre_(x @ x.T).reshape(-1), u_centre_(y @ y.T).reshape(-1)
    return float(Ku @ Lu) / scale, float(Ku @ Ku) / scale, float(Lu @ Lu) / scale


def require_rows(n: int, measure: str, what: str = "rows") -> None:
    """Refuse fewer rows than the unbiased HSIC estimator divides by.

    Parameters
    ----------
    n
        The rows.
    measure
        The measure's name, which starts the message.
    what
        What the message calls the rows.

    Raises
    ------
    ValueError
        If ``n < 4``.
    """
    if n < MIN_ROWS_UNBIASED:
        raise ValueError(
            f"{measure}: the unbiased HSIC estimator needs at least {MIN_ROWS_UNBIASED} {what} "
            f"(it divides by n(n-3)), got {n}"
        )
