"""Representational similarity analysis (RSA; Kriegeskorte et al. 2008).

Each representation becomes an n x n dissimilarity matrix (RDM), 1 - Pearson(row_i, row_j), which depends
only on how the rows (words) relate to one another, never on which neuron carries what. Two representations
are compared by the Spearman correlation of their RDMs' upper triangles, so only the rank order of
dissimilarities matters. RDMs are n x n, so RSA runs on a seeded row subsample (default 5,000 rows).

A row with zero variance across its neurons has no Pearson correlation with anything. Rather than produce
NaN dissimilarities, `rsa` raises a ``ValueError`` naming such rows (their indices in the input), so the
caller decides whether to drop them from both representations.
"""

from __future__ import annotations

import numpy as np
import torch

from reprsim.arrays import CONSTANT_RTOL, ArrayLike
from reprsim.measures._subsample import as_subsampled_pair

_MIN_ROWS = 3  # fewer than 3 rows give at most one dissimilarity: no rank correlation

# Dissimilarities lie in [0, 2]; they are snapped to a grid of 2^-40 (~1e-12) before ranking, so values that
# are equal in exact arithmetic (repeated rows, or the 0/2 values of 2-neuron rows) tie instead of being
# ordered by rounding noise of the matrix product.
_TIE_GRID = 2.0**40


def _constant_rows(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask of rows whose neurons all hold the same value (up to rounding)."""
    spread = (x - x.mean(dim=1, keepdim=True)).norm(dim=1)
    scale = x.abs().amax(dim=1) * (x.shape[1] ** 0.5)
    return spread <= CONSTANT_RTOL * scale


def correlation_rdm_upper(x: torch.Tensor, name: str, rows: np.ndarray | None) -> torch.Tensor:
    """Upper triangle of the correlation-distance RDM ``1 - Pearson(row_i, row_j)``.

    Dissimilarities lie in [0, 2]; they are snapped to a grid of ``2**-40`` (about 1e-12), so values that
    are equal in exact arithmetic (repeated rows, or the 0 and 2 of two-neuron rows) tie instead of being
    ordered by the rounding noise of the matrix product.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    name
        What the error message calls it.
    rows
        The original indices of x's rows, to name constant rows in the error; ``None`` when x is the whole
        input.

    Returns
    -------
    torch.Tensor
        The ``n (n - 1) / 2`` dissimilarities above the diagonal, row-major (the order of scipy's ``pdist``).

    Raises
    ------
    ValueError
        If any row has zero variance across neurons; the message counts them and names up to ten.
    """
    flat = _constant_rows(x)
    if bool(flat.any()):
        where = torch.nonzero(flat).reshape(-1).cpu().numpy()
        original = where if rows is None else rows[where]
        shown = ", ".join(str(int(r)) for r in original[:10]) + (", ..." if len(original) > 10 else "")
        raise ValueError(
            f"rsa: {len(original)} row(s) of {name} have zero variance across neurons (rows {shown}); the "
            "correlation distance 1 - Pearson is undefined for them. Drop those rows from both X and Y."
        )
    z = x - x.mean(dim=1, keepdim=True)
    z = z / z.norm(dim=1, keepdim=True)
    n = z.shape[0]
    upper = torch.ones(n, n, dtype=torch.bool, device=z.device).triu_(diagonal=1)
    return torch.round((1.0 - (z @ z.T)[upper]) * _TIE_GRID) / _TIE_GRID


def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Rank the entries of a vector, ties sharing their average rank (``scipy.stats.rankdata``'s "average").

    Parameters
    ----------
    v
        A 1-D tensor of m values.

    Returns
    -------
    torch.Tensor
        float64 ranks 1..m in the order of `v`.
    """
    ordered, order = torch.sort(v)  # tied values share one average rank, so their order is immaterial
    _, counts = torch.unique_consecutive(ordered, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1.0) / 2.0
    ranks = torch.empty_like(v, dtype=torch.float64)
    ranks[order] = average.repeat_interleave(counts)
    return ranks


def spearman(u: torch.Tensor, v: torch.Tensor) -> float:
    """Spearman rank correlation of two vectors: the Pearson correlation of their average ranks.

    Parameters
    ----------
    u, v
        1-D tensors of the same length (the dissimilarities of X and of Y).

    Returns
    -------
    float
        The correlation, in [-1, 1].

    Raises
    ------
    ValueError
        If every value of `u` (named X) or of `v` (named Y) is equal.
    """
    ru, rv = average_ranks(u), average_ranks(v)
    ru, rv = ru - ru.mean(), rv - rv.mean()
    nu, nv = float(ru.norm()), float(rv.norm())
    if nu == 0.0 or nv == 0.0:
        which = "X" if nu == 0.0 else "Y"
        raise ValueError(f"rsa: every dissimilarity of {which} is equal; the rank correlation is undefined")
    return float(ru @ rv) / (nu * nv)


def rsa(X: ArrayLike, Y: ArrayLike, max_rows: int | None = 5000, seed: int = 0) -> float:
    """RSA: Spearman correlation of the upper triangles of the ``1 - Pearson`` RDMs of X and Y.

    Ties get average ranks; dissimilarities agreeing to about 1e-12 count as tied (see
    `correlation_rdm_upper`). Symmetric; 1 for identical inputs; invariant to permuting neurons and to
    isotropic scaling, not to rotations (Pearson centres each row across neurons).

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q, ``n >= 3``.
    max_rows
        When ``n > max_rows``, both RDMs are built on the same ``max_rows`` rows drawn with `seed`;
        ``None`` uses all rows (n x n memory).
    seed
        Seed of the row subsample.

    Returns
    -------
    float
        The rank correlation, in [-1, 1].

    Raises
    ------
    ValueError
        For malformed input, fewer than 3 rows or an invalid `max_rows`; for rows with zero variance across
        neurons (named by their indices in the input, so the caller can drop them from both X and Y); or
        when every dissimilarity of X or of Y is equal.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    x, y, rows = as_subsampled_pair(X, Y, max_rows, seed, "rsa", min_rows=_MIN_ROWS)
    return spearman(correlation_rdm_upper(x, "X", rows), correlation_rdm_upper(y, "Y", rows))
