"""CCA-type similarity: canonical correlations, R2_CCA, mean rho_CCA, SVCCA and PWCCA.

Canonical correlations are the singular values of ``Q_X^T Q_Y``, with ``Q_X`` and ``Q_Y`` orthonormal bases
(thin SVD, relative rank tolerance) of the centred matrices. This is the stable path: no covariance matrix
is formed and no inverse square root is taken, so rank-deficient input gives finite numbers and a
decomposition failure is a ``ValueError``, never a NaN.

When n is not much larger than the width, any measure invariant to invertible linear maps tends to 1 (once
rank X = n every such index is constant); these functions warn (`FewRowsWarning`) when
``n < 10 * max(p, q)``.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
import torch

from reprsim.arrays import ArrayLike, as_pair, centre, input_eps, warn_few_rows
from reprsim.measures.neuron import nonconstant_columns
from reprsim.measures.regression import rank_tolerance, rounding_floor, thin_svd, unit_basis

SvccaConvention = Literal["raghu", "wu"]


def _bases(
    x: torch.Tensor, y: torch.Tensor, eps: tuple[float, float], measure: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal bases of the centred column spaces of x and y (constant neurons span nothing)."""
    # eps: the machine epsilons of the inputs' own float types (see rounding_floor).
    x_var, _ = nonconstant_columns(x, "X", measure)
    y_var, _ = nonconstant_columns(y, "Y", measure)
    return unit_basis(x_var, eps[0], "centred X"), unit_basis(y_var, eps[1], "centred Y")


def _correlations_between(qx: torch.Tensor, qy: torch.Tensor) -> torch.Tensor:
    """Canonical correlations of two orthonormal bases: singular values of qx^T qy, clipped to [0, 1]."""
    _, rho = thin_svd(qx.T @ qy, "Q_X^T Q_Y")
    return rho.clamp(0.0, 1.0)


def _canonical(X: ArrayLike, Y: ArrayLike, measure: str) -> torch.Tensor:
    """Validated canonical correlations of X and Y, warning when n < 10 * max(p, q)."""
    x, y = as_pair(X, Y)
    warn_few_rows(x.shape[0], x.shape[1], y.shape[1], measure)
    return _correlations_between(*_bases(x, y, (input_eps(X), input_eps(Y)), measure))


def canonical_correlations(X: ArrayLike, Y: ArrayLike) -> np.ndarray:
    """Canonical correlations of X and Y, largest first.

    The singular values ``rho_1 >= ... >= rho_m`` of ``Q_X^T Q_Y``, ``m = min(rank X, rank Y)``, clipped to
    [0, 1]. Constant neurons span nothing and are dropped; the rank of each side counts the singular values
    of its centred, unit-norm neurons above ``max(n, p) * eps`` of the largest and above the input's own
    rounding (see `reprsim.measures.regression.rounding_floor`). Symmetric in X and Y; invariant to
    invertible linear maps of either side.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q (numpy or torch, any float dtype).

    Returns
    -------
    numpy.ndarray
        The ``m`` canonical correlations, float64.

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, or when an SVD fails.

    Warns
    -----
    FewRowsWarning
        When ``n < 10 * max(p, q)``.
    """
    return _canonical(X, Y, "canonical_correlations").cpu().numpy()


def cca_r2(X: ArrayLike, Y: ArrayLike) -> float:
    """R2_CCA, the mean squared canonical correlation (Kornblith et al. 2019).

    ``R2_CCA = sum_k rho_k^2 / m`` over the ``m = min(rank X, rank Y)`` canonical correlations (see
    `canonical_correlations`); for equal ranks this is Yanai's generalised coefficient of determination.
    Symmetric; invariant to invertible linear maps of either side.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        R2_CCA, in [0, 1].

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, or when an SVD fails.

    Warns
    -----
    FewRowsWarning
        When ``n < 10 * max(p, q)``.
    """
    rho = _canonical(X, Y, "cca_r2")
    return float(rho.square().mean())


def cca_rho(X: ArrayLike, Y: ArrayLike) -> float:
    """Mean canonical correlation, Raghu et al.'s mean rho_CCA.

    ``rho_CCA = sum_k rho_k / m`` over the ``m = min(rank X, rank Y)`` canonical correlations (see
    `canonical_correlations`). Symmetric; invariant to invertible linear maps of either side.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The mean canonical correlation, in [0, 1].

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, or when an SVD fails.

    Warns
    -----
    FewRowsWarning
        When ``n < 10 * max(p, q)``.
    """
    rho = _canonical(X, Y, "cca_rho")
    return float(rho.mean())


def _kept_directions(
    x: torch.Tensor,
    keep: float,
    convention: SvccaConvention,
    standardize: bool,
    name: str = "X",
    eps: float = float(torch.finfo(torch.float64).eps),
) -> torch.Tensor:
    """Orthonormal n x k basis of the top-k singular directions of the centred (or standardised) x."""
    # Variance fractions are taken over the numerical rank. "raghu": k = smallest count whose cumulative
    # variance fraction reaches `keep`. "wu": k = count of directions whose cumulative fraction is strictly
    # below `keep` (Wu et al.'s code), at least 1. `standardize` divides each centred neuron by its unbiased
    # std first (Wu et al.'s code does); it must only be applied to non-constant columns. eps: the machine
    # epsilon of the input's own float type (see rounding_floor).
    c = centre(x)
    scale: torch.Tensor | float = 1.0
    if standardize:
        scale = 1.0 / c.std(dim=0)
        c = c * scale
    u, s = thin_svd(c, f"standardised {name}" if standardize else f"centred {name}")
    floor = rounding_floor(x, scale, eps)
    rank = int((s > max(rank_tolerance(tuple(c.shape)) * float(s[0]), floor)).sum())
    if rank == 0:
        raise ValueError(f"svcca: {name} has numerical rank 0 (no variance)")
    variance = s[:rank].square()
    cumulative = variance.cumsum(0)
    fraction = cumulative / cumulative[-1]
    below = int((fraction < keep).sum())
    k = min(below + 1, rank) if convention == "raghu" else max(below, 1)
    return u[:, :k]


def svcca(
    X: ArrayLike,
    Y: ArrayLike,
    keep: float = 0.99,
    convention: SvccaConvention = "raghu",
    standardize: bool | None = None,
) -> float:
    """SVCCA (Raghu et al. 2017): mean canonical correlation of the top singular directions of X and Y.

    Each side keeps its top-k singular directions explaining a fraction `keep` of its variance (fractions
    taken over its numerical rank; constant neurons are dropped first), then the mean rho_CCA of the two
    kept subspaces is returned (``m = min(k_X, k_Y)``). Symmetric. Without standardising it is invariant to
    orthogonal maps and isotropic scaling, not to general invertible linear maps.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    keep
        Fraction of variance each side keeps, in (0, 1].
    convention
        How k is chosen. ``"raghu"`` (Raghu et al., Kornblith et al.): the smallest count whose cumulative
        variance fraction reaches `keep`. ``"wu"`` (Wu et al.'s code): the count of directions whose
        cumulative fraction is strictly below `keep`, at least 1.
    standardize
        Divide each centred neuron by its unbiased standard deviation before the SVD. ``None`` follows the
        convention (True for ``"wu"``, False for ``"raghu"``), so ``convention="wu"`` alone reproduces Wu
        et al.'s code. Standardising trades invariance to orthogonal maps for invariance to rescaling
        individual neurons.

    Returns
    -------
    float
        SVCCA, in [0, 1].

    Raises
    ------
    ValueError
        If `keep` is not a fraction in (0, 1] or `convention` is unknown; for malformed input, when every
        neuron of X or of Y is constant, when a side has numerical rank 0, or when an SVD fails.

    Warns
    -----
    FewRowsWarning
        When ``n < 10 * max(p, q)``.
    """
    if isinstance(keep, bool) or not isinstance(keep, numbers.Real) or not 0.0 < float(keep) <= 1.0:
        raise ValueError(f"svcca: keep must be a fraction in (0, 1], got {keep!r}")
    if convention not in ("raghu", "wu"):
        raise ValueError(f"svcca: convention must be 'raghu' or 'wu', got {convention!r}")
    do_standardize = convention == "wu" if standardize is None else bool(standardize)
    x, y = as_pair(X, Y)
    warn_few_rows(x.shape[0], x.shape[1], y.shape[1], "svcca")
    x_var, _ = nonconstant_columns(x, "X", "svcca")
    y_var, _ = nonconstant_columns(y, "Y", "svcca")
    ux = _kept_directions(x_var, float(keep), convention, do_standardize, "X", input_eps(X))
    uy = _kept_directions(y_var, float(keep), convention, do_standardize, "Y", input_eps(Y))
    return float(_correlations_between(ux, uy).mean())


def pwcca(X: ArrayLike, Y: ArrayLike) -> float:
    """PWCCA(X -> Y) (Morcos et al. 2018): canonical correlations weighted by how much of X each accounts for.

    With ``Q_X^T Q_Y = U diag(rho) V^T``, ``h_k`` is the k-th canonical variate of X (the unit-norm column k
    of ``Q_X U``) and ``alpha_k = sum_i |<h_k, x_i>|`` over the centred neurons ``x_i`` of X; then
    ``PWCCA = sum_k alpha_k rho_k / sum_k alpha_k``. Directed: the weights come from X. Invariant to
    isotropic scaling of X and to invertible linear maps of Y, not to orthogonal (or general invertible)
    maps of X. Constant neurons are dropped on both sides.

    Parameters
    ----------
    X
        The representation whose canonical variates weight the correlations, n x p.
    Y
        The representation compared with it, n x q.

    Returns
    -------
    float
        PWCCA(X -> Y), in [0, 1].

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, when an SVD fails, or when the
        projection weights are degenerate (X has no variance along its variates).

    Warns
    -----
    FewRowsWarning
        When ``n < 10 * max(p, q)``.
    """
    x, y = as_pair(X, Y)
    warn_few_rows(x.shape[0], x.shape[1], y.shape[1], "pwcca")
    x_var, _ = nonconstant_columns(x, "X", "pwcca")
    y_var, _ = nonconstant_columns(y, "Y", "pwcca")
    qx, qy = unit_basis(x_var, input_eps(X), "centred X"), unit_basis(y_var, input_eps(Y), "centred Y")
    u, rho = thin_svd(qx.T @ qy, "Q_X^T Q_Y")
    variates = qx @ u  # n x m, unit-norm canonical variates of X
    alpha = (variates.T @ centre(x_var)).abs().sum(dim=1)
    rho = rho.clamp(0.0, 1.0)
    score = (alpha * rho).sum() / alpha.sum()
    if not bool(torch.isfinite(score)):
        raise ValueError(
            "pwcca: the projection weights are degenerate (X has no variance along its variates)"
        )
    return float(score)
