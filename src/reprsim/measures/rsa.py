"""Representational similarity analysis (RSA; Kriegeskorte et al. 2008).

Each representation becomes an n x n dissimilarity matrix (RDM), 1 - Pearson(row_i, row_j), which depends
only on how the rows (words) relate to one another, never on which neuron carries what. Two representations
are compared by the Spearman correlation of their RDMs' upper triangles, so only the rank order of
dissimilarities matters. RDMs are n x n, so RSA runs on a seeded row subsample (default 5,000 rows).

A row with zero variance across its neurons has no Pearson correlation with anything. Rather than produce
NaN dissimilarities, `rsa` raises a ValueError naming such rows (their indices in the input), so the caller
decides whether to drop them from both representations.
"""

from __future__ import annotations

import numpy as np
import torch

from reprsim.arrays import CONSTANT_RTOL, ArrayLike
from reprsim.measures._subsample import as_subsampled_pair

MIN_ROWS = 3  # fewer than 3 rows give at most one dissimilarity: no rank correlation

# Dissimilarities lie in [0, 2]; they are snapped to a grid of 2^-40 (~1e-12) before ranking, so values that
# are equal in exact arithmetic (repeated rows, or the 0/2 values of 2-neuron rows) tie instead of being
# ordered by rounding noise of the matrix product.
TIE_GRID = 2.0**40


def constant_rows(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask of rows whose neurons all hold the same value (up to rounding)."""
    spread = (x - x.mean(dim=1, keepdim=True)).norm(dim=1)
    scale = x.abs().amax(dim=1) * (x.shape[1] ** 0.5)
    return spread <= CONSTANT_RTOL * scale


def correlation_rdm_upper(x: torch.Tensor, name: str, rows: np.ndarray | None) -> torch.Tensor:
    """Upper triangle (row-major, like scipy's pdist) of the RDM 1 - Pearson(row_i, row_j).

    rows: original indices of x's rows, for naming constant rows in the error (None: x is the whole input).
    """
    flat = constant_rows(x)
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
    return torch.round((1.0 - (z @ z.T)[upper]) * TIE_GRID) / TIE_GRID


def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..m of a 1-D tensor, ties sharing their average rank (scipy.stats.rankdata's 'average')."""
    ordered, order = torch.sort(v)  # tied values share one average rank, so their order is immaterial
    _, counts = torch.unique_consecutive(ordered, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1.0) / 2.0
    ranks = torch.empty_like(v, dtype=torch.float64)
    ranks[order] = average.repeat_interleave(counts)
    return ranks


def spearman(u: torch.Tensor, v: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors (Pearson correlation of their average ranks)."""
    ru, rv = average_ranks(u), average_ranks(v)
    ru, rv = ru - ru.mean(), rv - rv.mean()
    nu, nv = float(ru.norm()), float(rv.norm())
    if nu == 0.0 or nv == 0.0:
        which = "X" if nu == 0.0 else "Y"
        raise ValueError(f"rsa: every dissimilarity of {which} is equal; the rank correlation is undefined")
    return float(ru @ rv) / (nu * nv)


def rsa(X: ArrayLike, Y: ArrayLike, max_rows: int | None = 5000, seed: int = 0) -> float:
    """RSA: Spearman correlation of the upper triangles of the 1 - Pearson RDMs of X and Y.

    When n > max_rows, both RDMs are built on the same `max_rows` rows drawn with `seed` and a
    SubsampleWarning says so; max_rows=None uses all rows (n x n memory). Symmetric; 1 for identical inputs;
    invariant to permuting neurons and to isotropic scaling, not to rotations (Pearson centres each row
    across neurons).
    Raises ValueError for rows with zero variance across neurons (see the module docstring).
    """
    x, y, rows = as_subsampled_pair(X, Y, max_rows, seed, "rsa", min_rows=MIN_ROWS)
    return spearman(correlation_rdm_upper(x, "X", rows), correlation_rdm_upper(y, "Y", rows))
