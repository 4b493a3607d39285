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
    """Relative singular-value threshold for numerical rank, as numpy's ``matrix_rank`` uses.

    A singular value ``s_k`` counts toward the rank when ``s_k > rank_tolerance(shape) * s_1``.

    Parameters
    ----------
    shape
        The matrix's shape.

    Returns
    -------
    float
        ``max(shape) * eps`` of float64.
    """
    return max(shape) * torch.finfo(torch.float64).eps


def thin_svd(a: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors and singular values of a matrix (thin SVD).

    A decomposition that fails to converge, or returns non-finite values, must never turn into a NaN score,
    so both are errors.

    Parameters
    ----------
    a
        The matrix, m x k.
    what
        What the error message calls the matrix.

    Returns
    -------
    u : torch.Tensor
        The m x min(m, k) left singular vectors.
    s : torch.Tensor
        The min(m, k) singular values, largest first.

    Raises
    ------
    ValueError
        Naming `what`, if the SVD does not converge or returns non-finite values.
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
    """The largest singular value that rounding of the input alone can put into a scaled, centred matrix.

    The matrix is the one whose column j is ``(x_j - mean_j) * column_scale_j``. Each value was rounded to its
    float type (relative error ``eps / 2``), so the error of column j is taken as at most
    ``eps / 2 * ||x_j - mean_j|| * column_scale_j``, and the Frobenius norm of that error bounds its spectral
    norm. Directions below it are rounding: without this floor, float32 activations of a low-rank layer
    would count as extra dimensions. The bound follows the centred columns, so that every measure with a
    rank decision gives the same value for X and for X shifted by a constant (a float16 layer with a mean far
    above its spread would otherwise lose real directions); the engine, which sees only centred moments,
    decides ranks the same way.

    Parameters
    ----------
    x
        The uncentred matrix, n x p, float64.
    column_scale
        The factor each centred column is multiplied by, (p,) or a scalar.
    eps
        The machine epsilon of the input's own float type (see `reprsim.arrays.input_eps`).

    Returns
    -------
    float
        The bound.
    """
    return 0.5 * eps * float((centre(x).norm(dim=0) * column_scale).norm())


def _column_basis(z: torch.Tensor, what: str, floor: float = 0.0) -> torch.Tensor:
    """Orthonormal basis (n x rank) of z's columns: singular values above rank_tolerance and above floor."""
    # Pass centred columns of comparable scale (e.g. unit_columns), so that the relative tolerance judges
    # directions rather than the units of individual neurons.
    u, s = thin_svd(z, what)
    rank = int((s > max(rank_tolerance(tuple(z.shape)) * float(s[0]), floor)).sum()) if s.numel() else 0
    if rank == 0:
        raise ValueError(f"{what} has numerical rank 0 (no variance)")
    return u[:, :rank]


def unit_basis(x_var: torch.Tensor, eps: float, what: str) -> torch.Tensor:
    """Orthonormal basis of the centred column space of a matrix with no constant column.

    The neurons are centred and scaled to unit norm first (`reprsim.measures.neuron.unit_columns`), so that
    the relative tolerance judges directions rather than the units of individual neurons. A direction counts
    when its singular value is above `rank_tolerance` of the largest and above the `rounding_floor` of an
    input of machine epsilon `eps`.

    Parameters
    ----------
    x_var
        The non-constant columns of a representation, n x p, float64.
    eps
        The machine epsilon of the input's own float type.
    what
        What the error messages call the matrix.

    Returns
    -------
    torch.Tensor
        The n x r basis, r the numerical rank.

    Raises
    ------
    ValueError
        If the SVD fails or the numerical rank is 0.
    """
    floor = rounding_floor(x_var, 1.0 / centre(x_var).norm(dim=0), eps)
    return _column_basis(unit_columns(x_var), what, floor)


def linreg(X: ArrayLike, Y: ArrayLike) -> float:
    """linreg(X -> Y): mean over neurons x_i of X of the multiple correlation of x_i regressed on all of Y.

    Wu et al. 2020 "mixedsim": standardise the neurons, take ``U`` an orthonormal basis of Y's column space,
    ``r_i = ||U^T x_i|| / ||x_i||`` and return ``mean_i r_i``. Directed: how well Y's whole space reproduces
    each neuron of X. Invariant to any invertible linear map of Y and to shifting or rescaling neurons of X;
    not to rotations of X.

    Parameters
    ----------
    X
        The representation being reproduced, n x p.
    Y
        The representation regressed on, n x q.

    Returns
    -------
    float
        linreg(X -> Y), in [0, 1], the mean over the non-constant neurons of X.

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, or when the SVD of Y fails.

    Warns
    -----
    ConstantNeuronWarning
        Once, when neurons of X (excluded and counted) or of Y (which span nothing) are constant.
    """
    x, y = as_pair(X, Y)
    x_var, x_const = nonconstant_columns(x, "X", "linreg")
    y_var, y_const = nonconstant_columns(y, "Y", "linreg")
    warn_constant(int(x_const.sum()), int(y_const.sum()), "linreg")
    basis = unit_basis(y_var, input_eps(Y), "centred Y")
    r = (basis.T @ unit_columns(x_var)).norm(dim=0).clamp(max=1.0)
    return float(r.mean())


def r2_lr(X: ArrayLike, Y: ArrayLike) -> float:
    """R2_LR(X -> Y) = ``||Q_Y^T X||_F^2 / ||X||_F^2`` on centred data (Kornblith et al. 2019).

    The fraction of X's total variance explained by a least-squares linear fit from Y (the variance-weighted
    R^2 of regressing every neuron of X on Y), ``Q_Y`` an orthonormal basis of Y's centred column space.
    Directed; invariant to invertible linear maps of Y only, and to orthogonal maps and isotropic scaling of
    either side. Constant neurons carry no variance and drop out (no warning).

    Parameters
    ----------
    X
        The representation being explained, n x p.
    Y
        The representation regressed on, n x q.

    Returns
    -------
    float
        R2_LR(X -> Y), in [0, 1].

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, or when the SVD of Y fails.
    """
    x, y = as_pair(X, Y)
    x_var, _ = nonconstant_columns(x, "X", "r2_lr")
    y_var, _ = nonconstant_columns(y, "Y", "r2_lr")
    basis = unit_basis(y_var, input_eps(Y), "centred Y")
    xc = centre(x_var)
    explained = (basis.T @ xc).square().sum() / xc.square().sum()
    return float(explained.clamp(0.0, 1.0))
