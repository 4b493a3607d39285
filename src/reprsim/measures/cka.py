"""Centered kernel alignment (CKA): linear, debiased, RBF and minibatch variants.

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` compares two representations through their n x n
Gram matrices (Kornblith et al. 2019). For the linear kernel the Gram matrices never need forming when
``n > p, q``: ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred X, Y is the same number at p x q
cost. The debiased variant replaces the biased HSIC by the unbiased estimator of Song et al. (2012), whose
finite-sample bias otherwise makes CKA of unrelated high-dimensional data far from 0. Minibatch CKA
(Nguyen et al. 2021) sums that unbiased estimator over minibatches, so memory never depends on n.

Every function computes in float64 on the input's device and returns a python float. This module holds
linear and debiased CKA; the HSIC estimators live in `reprsim.measures.hsic`, minibatch CKA in
`reprsim.measures.cka_minibatch` and RBF CKA in `reprsim.measures.cka_rbf`, all importable from here too.
"""

from __future__ import annotations

import torch

from reprsim.arrays import ArrayLike, as_pair, centre

from .cka_minibatch import MinibatchCKA, minibatch_cka
from .cka_rbf import rbf_cka, rbf_gram
from .hsic import (
    Space,
    centre_gram_,
    cka_ratio,
    gram_cka,
    hsic1_feature,
    hsic1_terms,
    require_rows,
    require_variation,
    resolve_space,
    u_centre_,
)

__all__ = [
    "MinibatchCKA",
    "Space",
    "centre_gram_",
    "debiased_cka",
    "gram_cka",
    "hsic1_feature",
    "linear_cka",
    "minibatch_cka",
    "rbf_cka",
    "rbf_gram",
    "require_variation",
    "u_centre_",
]


def _linear_cka_feature(x: torch.Tensor, y: torch.Tensor, xc: torch.Tensor, yc: torch.Tensor) -> float:
    """Linear CKA of centred xc, yc from p x q cross-products: ||Y^T X||^2 / (||X^T X|| ||Y^T Y||).

    x and y are the uncentred inputs; the covariances' diagonals give the variation check its spreads.
    """
    gx, gy = xc.T @ xc, yc.T @ yc
    require_variation(x, "X", "linear_cka", torch.diagonal(gx).clamp(min=0.0).sqrt())
    require_variation(y, "Y", "linear_cka", torch.diagonal(gy).clamp(min=0.0).sqrt())
    xy = float(torch.linalg.matrix_norm(yc.T @ xc)) ** 2
    return cka_ratio(xy, float(torch.linalg.matrix_norm(gx)) ** 2, float(torch.linalg.matrix_norm(gy)) ** 2,
                     "linear_cka")


def _linear_cka_gram(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of x, y from the n x n Gram matrices K = X X^T, L = Y Y^T."""
    return gram_cka(x @ x.T, y @ y.T, "linear_cka")


def linear_cka(X: ArrayLike, Y: ArrayLike, space: Space = "auto") -> float:
    """Linear CKA (Kornblith et al. 2019): ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` after centring columns.

    This is the biased-HSIC CKA with linear kernels. Symmetric, in [0, 1], 1 for identical inputs;
    invariant to orthogonal maps and isotropic scaling of either side, not to general invertible linear
    maps.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q (numpy or torch, any float dtype).
    space
        ``"feature"`` uses the p x q cross-products; ``"gram"`` the n x n Gram matrices
        (``HSIC(K, L) = tr(K H L H) / (n - 1)^2``); ``"auto"`` picks feature space when
        ``n > max(p, q)``. Both give the same value up to rounding.

    Returns
    -------
    float
        Linear CKA, in [0, 1].

    Raises
    ------
    ValueError
        For malformed input, an unknown `space`, or when X or Y is constant in every neuron.
    """
    x, y = as_pair(X, Y)
    chosen = resolve_space(space, x.shape[0], x.shape[1], y.shape[1], "linear_cka")
    xc, yc = centre(x), centre(y)
    if chosen == "feature":
        return _linear_cka_feature(x, y, xc, yc)
    require_variation(x, "X", "linear_cka")
    require_variation(y, "Y", "linear_cka")
    return _linear_cka_gram(xc, yc)


def debiased_cka(X: ArrayLike, Y: ArrayLike, space: Space = "auto") -> float:
    """Debiased linear CKA: the CKA ratio with the unbiased HSIC estimator (Song et al. 2012).

    Removes the upward bias of linear CKA when n is not much larger than the widths (unrelated random
    matrices score near 0 instead of near 1). Symmetric; 1 for identical inputs; may be slightly negative.
    Invariant to orthogonal maps and isotropic scaling of either side.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q, ``n >= 4``.
    space
        As in `linear_cka`: ``"feature"`` computes the unbiased HSIC from p x q products (see
        `hsic1_feature`), ``"gram"`` from U-centred n x n Gram matrices (see `u_centre_`), ``"auto"`` picks
        feature space when ``n > max(p, q)``.

    Returns
    -------
    float
        Debiased CKA, at most 1.

    Raises
    ------
    ValueError
        For malformed input, fewer than 4 rows, an unknown `space`, when X or Y is constant in every neuron,
        or when an unbiased self-term ``HSIC_1(X, X)`` or ``HSIC_1(Y, Y)`` is not positive.
    """
    x, y = as_pair(X, Y)
    require_rows(x.shape[0], "debiased_cka")
    require_variation(x, "X", "debiased_cka")
    require_variation(y, "Y", "debiased_cka")
    x, y = centre(x), centre(y)
    chosen = resolve_space(space, x.shape[0], x.shape[1], y.shape[1], "debiased_cka")
    xy, xx, yy = hsic1_terms(x, y, chosen)
    return cka_ratio(xy, xx, yy, "debiased_cka")


