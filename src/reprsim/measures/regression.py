"""Regression-based similarity: linreg (Wu et al. 2020, "mixedsim") and R2_LR (Kornblith et al. 2019).

Both ask how much of X a linear map of Y reproduces, so both are directed: sim(X -> Y) regresses X on Y.
The regression is done through an orthonormal basis of Y's (centred) column space from an SVD with a
relative rank tolerance - a projection, never a normal-equations inverse - so collinear or duplicated
neurons of Y are harmless.
"""

from __future__ import annotations

import torch

from reprsim.arrays import ArrayLike, as_pair, centre, input_eps, warn_constant
from reprsim.measures.neuron import nonconstant_columns, unit_columns


def rank_tolerance(shape: tuple[int, ...]) -> float:
    """Relative singular-value threshold for numerical rank: max(n, p) * float64 eps (as numpy's matrix_rank).

    A singular value s_k counts toward the rank when s_k > rank_tolerance(shape) * s_1.
    """
    return max(shape) * torch.finfo(torch.float64).eps


def thin_svd(a: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors and singular values of `a` (thin SVD), or a ValueError naming `what`.

    A decomposition that fails to converge, or returns non-finite values, must never turn into a NaN score.
    """
    try:
        if a.shape[0] > a.shape[1]:
            # Tall (n words >> p neurons): Householder QR, then the SVD of the small triangle; as stable as a
            # direct SVD and about twice as fast.
            q, r = torch.linalg.qr(a)
            u_r, s, _ = torch.linalg.svd(r)
            u = q @ u_r
        else:
            u, s, _ = torch.linalg.svd(a, full_matrices=False)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(
            f"the SVD of {what} did not converge ({exc}); the matrix is numerically degenerate"
        ) from exc
    if not (bool(torch.isfinite(s).all()) and bool(torch.isfinite(u).all())):
        raise ValueError(
            f"the SVD of {what} returned non-finite values; the matrix is numerically degenerate"
        )
    return u, s


def rounding_floor(x: torch.Tensor, column_scale: torch.Tensor | float, eps: float) -> float:
    """The largest singular value that rounding of the input alone can put into the matrix whose column j is
    (x_j - mean_j) * column_scale_j: each value of x was rounded to its float type (relative eps / 2), so
    the error is at most eps / 2 * ||x_j|| * column_scale_j per column, and the Frobenius norm of that
    error bounds its spectral norm. Directions below it are rounding (float32 activations of a low-rank
    layer would otherwise count as extra dimensions)."""
    return 0.5 * eps * float((x.norm(dim=0) * column_scale).norm())


def column_basis(z: torch.Tensor, what: str, floor: float = 0.0) -> torch.Tensor:
    """Orthonormal basis (n x r) of the column space of `z`, r its numerical rank: singular values above
    `rank_tolerance` of the largest and above `floor` (see `rounding_floor`).

    Pass centred columns of comparable scale (e.g. `unit_columns`), so that the relative tolerance judges
    directions rather than the units of individual neurons.
    """
    u, s = thin_svd(z, what)
    rank = int((s > max(rank_tolerance(tuple(z.shape)) * float(s[0]), floor)).sum()) if s.numel() else 0
    if rank == 0:
        raise ValueError(f"{what} has numerical rank 0 (no variance)")
    return u[:, :rank]


def unit_basis(x_var: torch.Tensor, eps: float, what: str) -> torch.Tensor:
    """`column_basis` of `unit_columns(x_var)`, with the rounding floor of an input of machine epsilon eps."""
    floor = rounding_floor(x_var, 1.0 / centre(x_var).norm(dim=0), eps)
    return column_basis(unit_columns(x_var), what, floor)


def linreg(X: ArrayLike, Y: ArrayLike) -> float:
    """linreg(X -> Y) = mean over neurons x_i of X of the multiple correlation of x_i regressed on all of Y.

    Wu et al. 2020 "mixedsim": standardise, U = orthonormal basis of Y's column space, r_i = ||U^T x_i|| /
    ||x_i||, mean_i r_i, in [0, 1]. Directed: how well Y's whole space reproduces each neuron of X. Invariant
    to any invertible linear map of Y and to shifting/rescaling neurons of X; not to rotations of X.
    Constant neurons of X are excluded and counted (warned once with those of Y, which span nothing).
    """
    x, y = as_pair(X, Y)
    x_var, x_const = nonconstant_columns(x, "X", "linreg")
    y_var, y_const = nonconstant_columns(y, "Y", "linreg")
    warn_constant(int(x_const.sum()), int(y_const.sum()), "linreg")
    basis = unit_basis(y_var, input_eps(Y), "centred Y")
    r = (basis.T @ unit_columns(x_var)).norm(dim=0).clamp(max=1.0)
    return float(r.mean())


def r2_lr(X: ArrayLike, Y: ArrayLike) -> float:
    """R2_LR(X -> Y) = ||Q_Y^T X||_F^2 / ||X||_F^2 on centred data (Kornblith et al. 2019), in [0, 1].

    The fraction of X's total variance explained by a least-squares linear fit from Y (variance-weighted
    R^2 of regressing every neuron of X on Y). Directed; invariant to invertible linear maps of Y only, and to
    orthogonal maps and isotropic scaling of either side. Constant neurons carry no variance and drop out.
    """
    x, y = as_pair(X, Y)
    x_var, _ = nonconstant_columns(x, "X", "r2_lr")
    y_var, _ = nonconstant_columns(y, "Y", "r2_lr")
    basis = unit_basis(y_var, input_eps(Y), "centred Y")
    xc = centre(x_var)
    explained = (basis.T @ xc).square().sum() / xc.square().sum()
    return float(explained.clamp(0.0, 1.0))
