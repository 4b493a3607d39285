"""Orthogonal Procrustes similarity and its two distance forms.

Centre X and Y and scale each to unit Frobenius norm; the best orthogonal alignment then leaves a squared
residual ``min_Q ||X - Y Q||_F^2 = 2 - 2 ||X^T Y||_*`` (nuclear norm). The similarity ``||X^T Y||_*`` lies in
[0, 1], is symmetric, and is invariant to orthogonal maps and isotropic scaling of either side, not to
general invertible linear maps. Constant neurons carry nothing once centred and are dropped.
"""

from __future__ import annotations

import math

import torch

from reprsim.arrays import ArrayLike, as_pair, centre
from reprsim.measures.neuron import nonconstant_columns


def _unit_frobenius(x: torch.Tensor) -> torch.Tensor:
    """Centre and scale to unit Frobenius norm (x must have a non-constant column)."""
    c = centre(x)
    return c / c.norm()


def procrustes(X: ArrayLike, Y: ArrayLike) -> float:
    """Normalised orthogonal Procrustes similarity ``||X^T Y||_*`` of centred, unit-Frobenius-norm X and Y.

    Also the normalised Bures similarity. Symmetric; 1 when Y is a rotation or reflection (and rescaling) of
    X. Computed from the p x q cross product, so the cost is independent of n beyond one pass.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The similarity, in [0, 1].

    Raises
    ------
    ValueError
        For malformed input, when every neuron of X or of Y is constant, or when the SVD of ``X^T Y`` does
        not converge.
    """
    x, y = as_pair(X, Y)
    x_var, _ = nonconstant_columns(x, "X", "procrustes")
    y_var, _ = nonconstant_columns(y, "Y", "procrustes")
    cross = _unit_frobenius(x_var).T @ _unit_frobenius(y_var)
    try:
        singular_values = torch.linalg.svdvals(cross)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"procrustes: the SVD of X^T Y did not converge ({exc})") from exc
    return float(singular_values.sum().clamp(0.0, 1.0))


def procrustes_distance(X: ArrayLike, Y: ArrayLike) -> float:
    """Squared Procrustes distance ``2 - 2 * procrustes(X, Y)`` (Ding et al. 2021).

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The distance, in [0, 2]; 0 for identical inputs.

    Raises
    ------
    ValueError
        As `procrustes`.
    """
    return 2.0 - 2.0 * procrustes(X, Y)


def angular_distance(X: ArrayLike, Y: ArrayLike) -> float:
    """Angular Procrustes distance ``arccos(procrustes(X, Y))`` (Williams et al. 2021), a metric on shapes.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The distance in radians, in [0, pi/2]; 0 for identical inputs.

    Raises
    ------
    ValueError
        As `procrustes`.
    """
    return math.acos(min(1.0, max(-1.0, procrustes(X, Y))))
