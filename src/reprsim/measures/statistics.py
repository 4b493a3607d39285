"""ReSi's differences of one-representation statistics (Klabunde et al.): magnitude, concentricity, uniformity.

Each compares one summary number per representation, as ReSi's ``repsim.measures.statistics`` computes it:

- magnitude: the norm of the mean row, ``||mean_i x_i||`` (uncentred; from the engine's column means);
- concentricity: the mean cosine similarity of the rows with the mean row (needs every row's norm, so it is
  computed from the rows, not from the engine's blocks);
- uniformity: ``log(mean_ij exp(-2 ||x_i - x_j||^2))`` over all ordered pairs of rows, the diagonal
  included (Wang & Isola's uniformity, t = 2): an n x n statistic, computed on a row subsample.
"""

from __future__ import annotations

import math

import torch

from reprsim.arrays import ArrayLike, as_pair
from reprsim.measures._subsample import as_subsampled_pair


def magnitude(mean: torch.Tensor) -> float:
    """ReSi's magnitude of a representation: the Euclidean norm of its mean row.

    Parameters
    ----------
    mean
        (p,) the column means.

    Returns
    -------
    float
        ``||mean||``.
    """
    return float(mean.norm())


def magnitude_difference(X: ArrayLike, Y: ArrayLike) -> float:
    """ReSi's magnitude difference: ``| ||mean_i x_i|| - ||mean_i y_i|| |``.

    Symmetric; invariant to permuting and rotating neurons, not to scaling or shifts.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The difference, >= 0, in the data's units.

    Raises
    ------
    ValueError
        For malformed input.
    """
    x, y = as_pair(X, Y)
    return abs(magnitude(x.mean(dim=0)) - magnitude(y.mean(dim=0)))


def _concentricity(x: torch.Tensor, name: str) -> float:
    """Mean over rows of the cosine similarity of the row with the mean row."""
    mean = x.mean(dim=0)
    norms = x.norm(dim=1)
    if not float(mean.norm()) > 0.0:
        raise ValueError(f"concentricity_difference: the mean row of {name} is zero; its cosine is undefined")
    if not bool((norms > 0.0).all()):
        row = int(torch.nonzero(norms == 0.0)[0, 0])
        raise ValueError(f"concentricity_difference: row {row} of {name} is zero; its cosine is undefined")
    return float(((x @ mean) / (norms * mean.norm())).mean())


def concentricity_difference(X: ArrayLike, Y: ArrayLike) -> float:
    """ReSi's concentricity difference: ``|mean_i cos(x_i, xbar) - mean_i cos(y_i, ybar)|``.

    Symmetric; invariant to permuting and rotating neurons and to isotropic scaling, not to shifts.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.

    Returns
    -------
    float
        The difference, in [0, 2].

    Raises
    ------
    ValueError
        For malformed input, a zero mean row or a zero row (naming it).
    """
    x, y = as_pair(X, Y)
    return abs(_concentricity(x, "X") - _concentricity(y, "Y"))


def uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola's uniformity ``log(mean_ij exp(-t ||x_i - x_j||^2))``, diagonal included (as ReSi).

    Parameters
    ----------
    x
        The rows, n x p, float64.
    t
        The temperature (ReSi: 2).

    Returns
    -------
    float
        The uniformity, in [-log n, 0]; computed with a log-sum-exp so that far-apart rows do not underflow.
    """
    squared = torch.cdist(x, x).square()
    return float(torch.logsumexp((-t * squared).ravel(), dim=0)) - 2.0 * math.log(x.shape[0])


def uniformity_difference(X: ArrayLike, Y: ArrayLike, max_rows: int | None = 5000, seed: int = 0) -> float:
    """ReSi's uniformity difference ``|uniformity(X) - uniformity(Y)|`` (t = 2, see `uniformity`).

    Symmetric; invariant to permuting and rotating neurons and to shifts, not to scaling.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    max_rows
        When ``n > max_rows``, both statistics use the same ``max_rows`` rows drawn with `seed`; ``None`` uses
        all rows (n x n memory).
    seed
        Seed of the row subsample.

    Returns
    -------
    float
        The difference, >= 0.

    Raises
    ------
    ValueError
        For malformed input or an invalid `max_rows`.

    Warns
    -----
    SubsampleWarning
        When it subsamples.
    """
    x, y, _ = as_subsampled_pair(X, Y, max_rows, seed, "uniformity_difference")
    return abs(uniformity(x) - uniformity(y))
