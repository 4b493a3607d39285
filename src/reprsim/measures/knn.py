"""Mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation Hypothesis").

Two representations agree to the extent that each word has the same nearest neighbours in both. Following
the authors' code: clip each matrix at the 0.95 quantile of its absolute values (outlier activations would
otherwise dominate inner products), L2-normalise rows, take each row's k nearest other rows by inner
product, and average |N_X(i) & N_Y(i)| / k over rows.

The quantile is the exact one over all entries of the matrix (the authors' `exact=True` path: the sorted
|x| value at index floor(q * n * p)); their faster default averages per-row quantiles instead, which differs
slightly. Ties between equal similarities are broken towards the lower row index, deterministically.
The neighbour search is n x n, so it runs on a seeded row subsample when n > max_rows.
"""

from __future__ import annotations

import torch

from reprsim.arrays import ArrayLike
from reprsim.measures._subsample import as_subsampled_pair

# Rows of the n x n similarity matrix held at once while searching neighbours.
BLOCK_ROWS = 2048


def clip_at_quantile(x: torch.Tensor, q: float | None) -> torch.Tensor:
    """Clamp x to [-v, v], v = the sorted |x| value at index floor(q * numel); no clipping for q None or 1."""
    if q is None or q >= 1.0:
        return x
    flat = x.abs().reshape(-1)
    v = torch.kthvalue(flat, int(q * flat.numel()) + 1).values
    return x.clamp(-v, v)


def unit_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    """L2-normalise rows; a row of zeros has no direction, so it is an error naming the row, and so is a
    representation whose rows all point the same way (a constant one): every row would be equally near
    every other, and the "neighbours" would be whichever rows the tie-break picks."""
    norms = x.norm(dim=1, keepdim=True)
    zero = norms.reshape(-1) == 0
    if bool(zero.any()):
        first = int(torch.nonzero(zero)[0, 0])
        raise ValueError(
            f"mutual_knn: {int(zero.sum())} row(s) of {name} are all zeros after clipping (first: row "
            f"{first} of the rows compared); they have no nearest neighbours by inner product"
        )
    unit = x / norms
    # Rows that are positive multiples of one row normalise to it within a few rounding errors.
    if float((unit - unit[:1]).abs().max()) <= 16 * torch.finfo(unit.dtype).eps:
        raise ValueError(
            f"mutual_knn: every row of {name} points the same way after clipping (a constant representation); "
            "no row is nearer to one row than to another, so nearest neighbours are undefined"
        )
    return unit


def neighbour_mask(sims: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of each row's k largest entries; among ties at the k-th value, the lowest indices win.

    O(n) per row (a top-k threshold, not a full sort), and deterministic whatever the top-k routine does
    with ties.
    """
    kth = torch.topk(sims, k, dim=1).values[:, -1:]
    above = sims > kth
    tied = sims == kth
    room = k - above.sum(dim=1, keepdim=True)
    return above | (tied & (tied.cumsum(dim=1) <= room))


def neighbour_sets(z: torch.Tensor, k: int) -> torch.Tensor:
    """n x n boolean mask of each row's k nearest rows by inner product of unit rows, self excluded.

    Built through blocks of BLOCK_ROWS rows, so the float similarity matrix is never held whole.
    """
    n = z.shape[0]
    mask = torch.empty(n, n, dtype=torch.bool, device=z.device)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        own = torch.arange(start, stop, device=z.device)
        sims = z[start:stop] @ z.T
        sims[own - start, own] = -torch.inf
        mask[start:stop] = neighbour_mask(sims, k)
    return mask


def shared_neighbours(zx: torch.Tensor, zy: torch.Tensor, k: int) -> torch.Tensor:
    """Per row i, |N_X(i) & N_Y(i)|: neighbours by inner product of unit rows, self excluded."""
    return (neighbour_sets(zx, k) & neighbour_sets(zy, k)).sum(dim=1)


# Neighbours per row when the caller does not choose (Huh et al. 2024 use 10).
DEFAULT_K = 10


def mutual_knn(
    X: ArrayLike,
    Y: ArrayLike,
    k: int = DEFAULT_K,
    max_rows: int | None = 10000,
    seed: int = 0,
    clip_quantile: float | None = 0.95,
) -> float:
    """Mutual k-NN alignment: mean over rows i of |N_X(i) & N_Y(i)| / k (Huh et al. 2024), in [0, 1].

    k: neighbours per row (1 <= k < n). clip_quantile: clip each matrix at this quantile of |x| first
    (None or 1 for none). When n > max_rows both matrices use the same `max_rows` rows drawn with `seed`
    (SubsampleWarning); note that neighbourhoods in a subsample are coarser than in all n rows.
    Symmetric; 1 for identical inputs; invariant to permuting neurons and isotropic scaling.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"mutual_knn: k must be a positive integer, got {k!r}")
    if clip_quantile is not None and not 0.0 < float(clip_quantile) <= 1.0:
        raise ValueError(f"mutual_knn: clip_quantile must be in (0, 1] or None, got {clip_quantile!r}")
    x, y, _ = as_subsampled_pair(X, Y, max_rows, seed, "mutual_knn")
    n = x.shape[0]
    if k >= n:
        raise ValueError(f"mutual_knn: k={k} must be smaller than the number of rows compared (n={n})")
    zx = unit_rows(clip_at_quantile(x, clip_quantile), "X")
    zy = unit_rows(clip_at_quantile(y, clip_quantile), "Y")
    return float(shared_neighbours(zx, zy, k).to(torch.float64).mean()) / k
