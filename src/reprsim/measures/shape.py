"""Shape metrics with partial whitening (netrep's ``LinearMetric``) and the Bures distance.

netrep (Williams et al. 2021) centres each representation, partially whitens it with
``Z = V diag(d) V^T``, ``d_k = alpha + (1 - alpha) / sqrt(lambda_k)`` (``lambda_k`` the eigenvalues of
``X_c^T X_c``, not divided by n), rescales ``Z`` so that the whitened data keeps the total variance
``sum lambda_k``, zero-pads the narrower side to the wider width, aligns the two by the best orthogonal map and
measures what is left:

- angular: ``arccos(||X~^T Y~||_* / (||X~||_F ||Y~||_F))``, a metric on shapes in [0, pi/2];
- euclidean: ``||X~ Q - Y~||_F`` for the best orthogonal Q (no division by n, as netrep).

``alpha = 1`` is the angular Procrustes distance (`reprsim.measures.angular_distance`) and the Bures distance;
``alpha = 0`` whitens completely, and the angular form is ``arccos`` of the mean canonical correlation when
both sides have full rank and equal widths. The functions here work on a representation's spectrum, so the
engine (`reprsim.engine`) computes the same values from its covariance blocks.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch

from reprsim.arrays import ArrayLike, as_pair, centre, input_eps
from reprsim.measures.neuron import nonconstant_columns
from reprsim.measures.regression import rank_tolerance, rounding_floor, thin_svd

ShapeKind = Literal["angular", "euclidean"]
# netrep skips whitening for alpha above 1 - this (its eigval_tol): the data are then only centred.
NO_WHITENING = 1.0 - 1e-7


def check_alpha(alpha: float, measure: str = "shape_metric") -> float:
    """Validate the partial-whitening weight.

    Parameters
    ----------
    alpha
        The weight of the identity in the whitening map, in [0, 1].
    measure
        The measure's name, which starts the message.

    Returns
    -------
    float
        `alpha` as a float.

    Raises
    ------
    ValueError
        If `alpha` is not a real number in [0, 1] (a bool is not a number here).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{measure}: option alpha must be a number in [0, 1] (1: rotations only, 0: whitening), "
                         f"got {alpha!r}")
    return float(alpha)


def check_kind(kind: str, measure: str = "shape_metric") -> ShapeKind:
    """Validate the ground metric of a shape distance.

    Parameters
    ----------
    kind
        ``"angular"`` or ``"euclidean"``.
    measure
        The measure's name, which starts the message.

    Returns
    -------
    str
        `kind`.

    Raises
    ------
    ValueError
        If `kind` is neither.
    """
    if kind not in ("angular", "euclidean"):
        raise ValueError(f"{measure}: option kind must be 'angular' or 'euclidean', got {kind!r}")
    return kind  # type: ignore[return-value]


def whitening_weights(values: torch.Tensor, alpha: float) -> torch.Tensor:
    """The netrep partial-whitening weights ``d_k = alpha + (1 - alpha) / sqrt(lambda_k)`` (before rescaling).

    Parameters
    ----------
    values
        The positive eigenvalues of ``X_c^T X_c`` on its numerical range.
    alpha
        The partial-whitening weight, in [0, 1].

    Returns
    -------
    torch.Tensor
        One weight per eigenvalue (all ones when `alpha` is 1 up to netrep's tolerance).
    """
    if alpha > NO_WHITENING:
        return torch.ones_like(values)
    return alpha + (1.0 - alpha) / values.sqrt()


def preserved_variance_scale(values: torch.Tensor, alpha: float, width: int) -> float:
    """The netrep factor that makes the partially whitened data keep the total variance ``sum lambda_k``.

    Parameters
    ----------
    values
        The positive eigenvalues of ``X_c^T X_c`` on its numerical range (r of them).
    alpha
        The partial-whitening weight.
    width
        The padded width ``max(p, q)`` of the pair: the ``width - r`` null directions (zero padding, constant
        neurons, rank deficiency) count with eigenvalue 0, as netrep's eigenvalues clipped to 1e-7 nearly do.

    Returns
    -------
    float
        ``sqrt(sum lambda / sum_k (alpha sqrt(lambda_k) + 1 - alpha)^2)`` over all `width` directions; 1 when
        `alpha` is 1.
    """
    if alpha > NO_WHITENING:
        return 1.0
    new_variance = float((alpha * values.sqrt() + (1.0 - alpha)).square().sum())
    new_variance += (width - values.numel()) * (1.0 - alpha) ** 2
    return math.sqrt(float(values.sum()) / new_variance)


def shape_distance(nuclear: float, norm_x_sq: float, norm_y_sq: float, scale_x: float, scale_y: float,
                   kind: ShapeKind) -> float:
    """A shape distance from the aligned cross term and the two sides' squared norms.

    Parameters
    ----------
    nuclear
        ``||X~^T Y~||_*`` of the partially whitened data before the variance-preserving rescaling.
    norm_x_sq, norm_y_sq
        ``||X~||_F^2`` and ``||Y~||_F^2``, likewise unscaled.
    scale_x, scale_y
        The variance-preserving factors (`preserved_variance_scale`); only the euclidean form uses them.
    kind
        ``"angular"`` or ``"euclidean"``.

    Returns
    -------
    float
        The angle in [0, pi/2], or the euclidean distance (at least 0).
    """
    if kind == "angular":
        return math.acos(min(1.0, max(-1.0, nuclear / math.sqrt(norm_x_sq * norm_y_sq))))
    squared = scale_x**2 * norm_x_sq + scale_y**2 * norm_y_sq - 2.0 * scale_x * scale_y * nuclear
    return math.sqrt(max(squared, 0.0))


def _centred_spectrum(x: torch.Tensor, eps: float, name: str, measure: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors and singular values of the centred varying neurons, on the numerical range."""
    x_var, _ = nonconstant_columns(x, name, measure)
    c = centre(x_var)
    u, s = thin_svd(c, f"centred {name}")
    floor = rounding_floor(x_var, 1.0, eps)
    rank = int((s > max(rank_tolerance(tuple(c.shape)) * float(s[0]), floor)).sum())
    if rank == 0:
        raise ValueError(f"{measure}: {name} has numerical rank 0 (no variance)")
    return u[:, :rank], s[:rank]


def _aligned_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``min_Q ||a Q - b||_F`` over orthogonal Q, with the narrower side zero-padded (netrep's alignment)."""
    width = max(a.shape[1], b.shape[1])
    a = torch.nn.functional.pad(a, (0, width - a.shape[1]))
    b = torch.nn.functional.pad(b, (0, width - b.shape[1]))
    try:
        p, _, rt = torch.linalg.svd(a.T @ b)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"the SVD of the aligned cross product did not converge ({exc})") from exc
    # Forming the residual instead of ||a||^2 + ||b||^2 - 2 ||a^T b||_* keeps a distance of identical inputs at 0.
    return float(torch.linalg.matrix_norm(a @ (p @ rt) - b))


def _shape(X: ArrayLike, Y: ArrayLike, alpha: float, kind: ShapeKind, measure: str) -> float:
    """The shape distance of validated options (shared by `shape_metric` and `bures_distance`)."""
    x, y = as_pair(X, Y)
    width = max(x.shape[1], y.shape[1])
    ux, sx = _centred_spectrum(x, input_eps(X), "X", measure)
    uy, sy = _centred_spectrum(y, input_eps(Y), "Y", measure)
    # Partially whitened data in its own singular coordinates: X~ = U diag(s d) V^T, and every quantity below
    # is invariant to the right factor V^T.
    a = ux * (sx * whitening_weights(sx.square(), alpha))
    b = uy * (sy * whitening_weights(sy.square(), alpha))
    if kind == "angular":
        # theta = 2 asin(||a^ Q - b^|| / 2) for unit-norm a^, b^: the same angle as arccos of their aligned inner
        # product, without arccos's loss of half the digits near 0 (identical inputs give 0, not 1.5e-8).
        residual = _aligned_distance(a / a.norm(), b / b.norm())
        return 2.0 * math.asin(min(1.0, residual / 2.0))
    scale_x = preserved_variance_scale(sx.square(), alpha, width)
    scale_y = preserved_variance_scale(sy.square(), alpha, width)
    return _aligned_distance(a * scale_x, b * scale_y)


def shape_metric(X: ArrayLike, Y: ArrayLike, alpha: float = 1.0, kind: ShapeKind = "angular") -> float:
    """The shape distance with partial whitening of netrep (Williams et al. 2021, ``LinearMetric``).

    Centre both sides, whiten each partially (``d_k = alpha + (1 - alpha) / sqrt(lambda_k)`` on the
    eigenvalues of ``X_c^T X_c``, rescaled to keep the total variance), zero-pad the narrower side and align by
    the best orthogonal map. Symmetric; a metric. ``alpha = 1`` is the angular Procrustes distance
    (`angular_distance`) or, euclidean, the Bures distance (`bures_distance`); ``alpha = 0`` gives
    ``arccos(cca_rho)`` for equal widths of full rank.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    alpha
        Partial-whitening weight in [0, 1]: 1 allows rotations only, 0 any invertible linear map.
    kind
        ``"angular"`` (radians, scale-free) or ``"euclidean"`` (in the data's units, not divided by n).

    Returns
    -------
    float
        The distance; 0 for identical inputs.

    Raises
    ------
    ValueError
        If `alpha` is outside [0, 1] or `kind` is unknown; for malformed input, when every neuron of X or of Y
        is constant, or when an SVD fails.

    Notes
    -----
    Directions of numerical rank 0 (singular values of the centred data below ``max(n, p) eps`` of the
    largest or below the input's rounding) carry no variance and are dropped; netrep clips their
    eigenvalues at 1e-7 instead, which changes the euclidean form's variance-preserving scale by at most
    ``2 alpha (1 - alpha) 3e-4`` per such direction.
    """
    return _shape(X, Y, check_alpha(alpha), check_kind(kind), "shape_metric")


def bures_distance(X: ArrayLike, Y: ArrayLike) -> float:
    """The Bures distance of the centred linear kernels: ``sqrt(tr C_x + tr C_y - 2 ||X_c^T Y_c||_*)``.

    The unnormalised orthogonal Procrustes distance ``min_Q ||X_c Q - Y_c||_F`` (narrower side zero-padded),
    equal to the Bures-Wasserstein distance of ``X_c X_c^T`` and ``Y_c Y_c^T`` and to
    ``shape_metric(X, Y, alpha=1, kind="euclidean")``. The normalised Bures similarity is `procrustes`.
    Symmetric; invariant to orthogonal maps, not to scaling.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The distance in the data's units (not divided by n); 0 for identical inputs.

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, or when an SVD fails.
    """
    return _shape(X, Y, 1.0, "euclidean", "bures_distance")
