"""Measures of covariance spectra and subspaces.

GULP, ENSD and the participation ratio, the eigenspace overlap score and the "lange" CKA.

Each is a function of the centred (or, for the eigenspace overlap, uncentred) cross-product blocks, so the
engine (`reprsim.engine`) derives the same values from its one pass over the rows.
"""

from __future__ import annotations

import math
import numbers

import torch

from reprsim.arrays import ArrayLike, as_matrix, as_pair, centre, input_eps
from reprsim.measures.neuron import nonconstant_columns
from reprsim.measures.regression import rank_tolerance, rounding_floor, thin_svd, unit_basis


def check_lam(lam: float, measure: str = "gulp") -> float:
    """Validate a ridge penalty.

    Parameters
    ----------
    lam
        The penalty, a finite number >= 0.
    measure
        The measure's name, which starts the message.

    Returns
    -------
    float
        `lam` as a float.

    Raises
    ------
    ValueError
        If `lam` is negative, not finite or not a number.
    """
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"{measure}: option lam must be a finite number >= 0 (the ridge penalty), got {lam!r}")
    return float(lam)


def gulp_weights(normalised_values: torch.Tensor, lam: float) -> torch.Tensor:
    """GULP's ridge weights ``1 / (e_k + lam)`` of the trace-normalised covariance eigenvalues ``e_k > 0``.

    Parameters
    ----------
    normalised_values
        The eigenvalues on the numerical range, divided by the trace (they sum to 1 over all directions).
    lam
        The penalty, > 0.

    Returns
    -------
    torch.Tensor
        One weight per eigenvalue.
    """
    return 1.0 / (normalised_values + lam)


def _gulp_side(x: torch.Tensor, eps: float, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors (numerical range) and trace-normalised eigenvalues of the centred varying x."""
    x_var, _ = nonconstant_columns(x, name, "gulp")
    c = centre(x_var)
    u, s = thin_svd(c, f"centred {name}")
    rank = int((s > max(rank_tolerance(tuple(c.shape)) * float(s[0]), rounding_floor(x_var, 1.0, eps))).sum())
    if rank == 0:
        raise ValueError(f"gulp: {name} has numerical rank 0 (no variance)")
    return u[:, :rank], s[:rank].square() / c.square().sum()


def gulp(X: ArrayLike, Y: ArrayLike, lam: float = 0.0) -> float:
    """GULP (Boix-Adsera et al. 2022): how differently ridge predictors on X and on Y behave, squared.

    Each side is centred and scaled to unit mean squared row norm, with covariance ``S_x = X_c^T X_c / ||X_c||^2``
    (as GULP's and ReSi's code normalise). With ``W_x = (S_x + lam I)^-1``:
    ``GULP^2 = tr((S_x W_x)^2) + tr((S_y W_y)^2) - 2 tr(W_x^(1/2) S_xy W_y S_yx W_x^(1/2))``, the value
    GULP's ``predictor_dist`` returns. At ``lam = 0`` it is ``rank X + rank Y - 2 sum_k rho_k^2`` over the
    canonical correlations. Symmetric; invariant to orthogonal maps and isotropic scaling, and at ``lam = 0``
    to any invertible linear map.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    lam
        The ridge penalty, >= 0 (0: least squares, the CCA limit).

    Returns
    -------
    float
        The squared distance, >= 0 up to rounding; 0 for identical inputs.

    Raises
    ------
    ValueError
        If `lam` is negative or not a number; for malformed input, when every neuron of X or of Y is constant,
        or when an SVD fails.
    """
    lam = check_lam(lam)
    x, y = as_pair(X, Y)
    if lam == 0.0:
        # The least-squares limit ranks directions as the CCA measures do (unit-norm neurons).
        x_var, _ = nonconstant_columns(x, "X", "gulp")
        y_var, _ = nonconstant_columns(y, "Y", "gulp")
        qx, qy = unit_basis(x_var, input_eps(X), "centred X"), unit_basis(y_var, input_eps(Y), "centred Y")
        return float(qx.shape[1] + qy.shape[1] - 2.0 * (qx.T @ qy).square().sum())
    ux, ex = _gulp_side(x, input_eps(X), "X")
    uy, ey = _gulp_side(y, input_eps(Y), "Y")
    wx, wy = gulp_weights(ex, lam), gulp_weights(ey, lam)
    cross = (ux * (wx * ex).sqrt()).T @ (uy * (wy * ey).sqrt())
    return float((ex * wx).square().sum() + (ey * wy).square().sum() - 2.0 * cross.square().sum())


def participation_ratio(X: ArrayLike) -> float:
    """The participation ratio of one representation, ``PR = (tr C)^2 / tr(C^2)``, C its centred covariance.

    An effective dimensionality: between 1 (one direction holds all variance) and the rank (isotropic).

    Parameters
    ----------
    X
        The representation, n x p.

    Returns
    -------
    float
        PR, in [1, rank X].

    Raises
    ------
    ValueError
        For malformed input or when X has no variance.
    """
    c = centre(as_matrix(X, "X"))
    cov = c.T @ c if c.shape[0] >= c.shape[1] else c @ c.T  # tr and ||.||_F are the same in Gram space
    trace, frobenius_sq = float(torch.trace(cov)), float(cov.square().sum())
    if not frobenius_sq > 0.0:
        raise ValueError("participation_ratio: X has no variance")
    return trace**2 / frobenius_sq


def _centred_products(X: ArrayLike, Y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centred X and Y and their cross product X_c^T Y_c."""
    x, y = as_pair(X, Y)
    xc, yc = centre(x), centre(y)
    return xc, yc, xc.T @ yc


def ensd(X: ArrayLike, Y: ArrayLike) -> float:
    """ENSD, the effective number of shared dimensions (Giaffar et al. 2023).

    ``ENSD = PR_x PR_y tr(C_x C_y~) / (tr C_x tr C_y)`` with centred covariances, i.e.
    ``tr C_x tr C_y ||X_c^T Y_c||_F^2 / (||C_x||_F^2 ||C_y||_F^2)`` = ``linear_cka * sqrt(PR_x PR_y)``.
    Symmetric; invariant to orthogonal maps and isotropic scaling. ``ENSD(X, X)`` is ``PR_x``, not 1.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The number of shared dimensions, in [0, min(PR_x, PR_y)].

    Raises
    ------
    ValueError
        For malformed input or when a side has no variance.
    """
    xc, yc, cross = _centred_products(X, Y)
    fx, fy = float((xc.T @ xc).square().sum()), float((yc.T @ yc).square().sum())
    for value, name in ((fx, "X"), (fy, "Y")):
        if not value > 0.0:
            raise ValueError(f"ensd: {name} has no variance")
    trace_x, trace_y = float(xc.square().sum()), float(yc.square().sum())
    return trace_x * trace_y * float(cross.square().sum()) / (fx * fy)


def uncentred_basis(x: torch.Tensor, eps: float, name: str, measure: str) -> torch.Tensor:
    """Orthonormal basis of the (uncentred) column space of x: unit-norm columns, relative rank tolerance.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    eps
        The machine epsilon of the input's own float type.
    name
        What the messages call it.
    measure
        The measure's name, which starts the messages.

    Returns
    -------
    torch.Tensor
        n x r, r the numerical rank; all-zero columns span nothing.

    Raises
    ------
    ValueError
        If every column is zero or the SVD fails.
    """
    norms = x.norm(dim=0)
    keep = norms > 0.0
    if not bool(keep.any()):
        raise ValueError(f"{measure}: every neuron of {name} is zero")
    z = x[:, keep] / norms[keep]
    u, s = thin_svd(z, f"unit-norm {name}")
    floor = 0.5 * eps * float(z.norm())
    rank = int((s > max(rank_tolerance(tuple(z.shape)) * float(s[0]), floor)).sum())
    return u[:, :rank]


def eigenspace_overlap(X: ArrayLike, Y: ArrayLike) -> float:
    """The eigenspace overlap score (May et al. 2019): ``||U_x^T U_y||_F^2 / max(p, q)``.

    ``U_x`` and ``U_y`` are orthonormal bases of the column spaces of X and Y, uncentred, as in May et al. and
    ReSi. Symmetric; invariant to invertible linear maps of either side, not to shifts.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The score, in [0, 1]; 1 when X and Y span the same space with full column rank.

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is zero, or when an SVD fails.
    """
    x, y = as_pair(X, Y)
    ux = uncentred_basis(x, input_eps(X), "X", "eigenspace_overlap")
    uy = uncentred_basis(y, input_eps(Y), "Y", "eigenspace_overlap")
    return float((ux.T @ uy).square().sum()) / max(x.shape[1], y.shape[1])


def lange_hsic(cross_frobenius_sq: float, norm_product: float) -> float:
    """``<K~, L~>_F`` of centred linear Grams with zeroed diagonals, from feature-space sums.

    Parameters
    ----------
    cross_frobenius_sq
        ``||X_c^T Y_c||_F^2`` (= ``<K, L>`` for the centred Grams K, L).
    norm_product
        ``sum_i |x_c,i|^2 |y_c,i|^2`` (= the diagonals' product).

    Returns
    -------
    float
        ``||X_c^T Y_c||_F^2 - sum_i |x_c,i|^2 |y_c,i|^2``.
    """
    return cross_frobenius_sq - norm_product


def lange_cka(X: ArrayLike, Y: ArrayLike) -> float:
    """Linear CKA of centred Grams with their diagonals zeroed (Lange et al.'s "unbiased" CKA).

    ``K~ = X_c X_c^T - diag``, likewise ``L~``; ``CKA = <K~, L~> / sqrt(<K~, K~> <L~, L~>)``. Unlike
    `debiased_cka` there is no further U-statistic correction. Symmetric; invariant to orthogonal maps and
    isotropic scaling.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The similarity, at most 1 (it can be negative for unrelated representations).

    Raises
    ------
    ValueError
        For malformed input, or when a side's zero-diagonal Gram has no energy (constant, or one row).
    """
    xc, yc, cross = _centred_products(X, Y)
    q, r = xc.square().sum(dim=1), yc.square().sum(dim=1)
    xy = lange_hsic(float(cross.square().sum()), float(q @ r))
    xx = lange_hsic(float((xc.T @ xc).square().sum()), float(q @ q))
    yy = lange_hsic(float((yc.T @ yc).square().sum()), float(r @ r))
    return lange_ratio(xy, xx, yy)


def lange_ratio(xy: float, xx: float, yy: float) -> float:
    """The CKA ratio ``xy / sqrt(xx yy)``, refusing a side without off-diagonal Gram energy.

    Parameters
    ----------
    xy, xx, yy
        `lange_hsic` of the pair and of each side with itself.

    Returns
    -------
    float
        The ratio.

    Raises
    ------
    ValueError
        If `xx` or `yy` is not positive, naming the side.
    """
    for value, name in ((xx, "X"), (yy, "Y")):
        if not value > 0.0:
            raise ValueError(f"lange_cka: the zero-diagonal Gram of {name} has no energy ({value:.3g}); "
                             "it needs at least 2 rows that vary")
    return xy / math.sqrt(xx * yy)
