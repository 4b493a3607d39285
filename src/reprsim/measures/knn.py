"""Mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation Hypothesis").

Two representations agree to the extent that each word has the same nearest neighbours in both. Following
the authors' code: clip each matrix at the 0.95 quantile of its absolute values (outlier activations would
otherwise dominate inner products), L2-normalise rows, take each row's k nearest other rows by inner
product, and average ``|N_X(i) & N_Y(i)| / k`` over rows.

The quantile is the exact one over all entries of the matrix (the authors' ``exact=True`` path: the sorted
``|x|`` value at index ``floor(q * n * p)``); their faster default averages per-row quantiles instead, which
differs slightly. Ties between equal similarities are broken towards the lower row index, deterministically.
The neighbour search is n x n, so it runs on a seeded row subsample when ``n > max_rows``.
"""

from __future__ import annotations

import torch

from reprsim.arrays import ArrayLike
from reprsim.measures._subsample import as_subsampled_pair

# Rows of the n x n similarity matrix held at once while searching neighbours.
BLOCK_ROWS = 2048


def clip_at_quantile(x: torch.Tensor, q: float | None) -> torch.Tensor:
    """Clip a matrix at a quantile of its absolute values.

    Parameters
    ----------
    x
        The matrix.
    q
        The quantile, in (0, 1]; ``None`` or 1 clips nothing.

    Returns
    -------
    torch.Tensor
        ``x`` clamped to ``[-v, v]``, ``v`` the sorted ``|x|`` value at index ``floor(q * x.numel())``
        (``x`` itself when nothing is clipped).
    """
    if q is None or q >= 1.0:
        return x
    flat = x.abs().reshape(-1)
    v = torch.kthvalue(flat, int(q * flat.numel()) + 1).values
    return x.clamp(-v, v)


def unit_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    """Scale every row to unit Euclidean norm.

    Parameters
    ----------
    x
        The (clipped) representation, n x p.
    name
        What the error messages call it.

    Returns
    -------
    torch.Tensor
        The unit rows.

    Raises
    ------
    ValueError
        If a row is all zeros (it has no direction; the message names the first such row), or if every row
        points the same way (a constant representation: every row would be equally near every other, and
        the "neighbours" would be whichever rows the tie-break picks).
    """
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


def _neighbour_mask(sims: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of each row's k largest entries; among ties at the k-th value, the lowest indices win."""
    # O(n) per row (a top-k threshold, not a full sort), and deterministic whatever the top-k routine does
    # with ties.
    kth = torch.topk(sims, k, dim=1).values[:, -1:]
    above = sims > kth
    tied = sims == kth
    room = k - above.sum(dim=1, keepdim=True)
    return above | (tied & (tied.cumsum(dim=1) <= room))


def neighbour_sets(z: torch.Tensor, k: int) -> torch.Tensor:
    """Find each row's k nearest other rows by inner product.

    The mask is built through blocks of `BLOCK_ROWS` rows, so the float similarity matrix is never held
    whole. Among rows tied at the k-th similarity, the lowest indices are taken.

    Parameters
    ----------
    z
        Unit rows, n x p (see `unit_rows`).
    k
        Neighbours per row, ``1 <= k < n``.

    Returns
    -------
    torch.Tensor
        n x n boolean mask; row i is True at the k nearest rows of i, never at i itself.
    """
    n = z.shape[0]
    mask = torch.empty(n, n, dtype=torch.bool, device=z.device)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        own = torch.arange(start, stop, device=z.device)
        sims = z[start:stop] @ z.T
        sims[own - start, own] = -torch.inf
        mask[start:stop] = _neighbour_mask(sims, k)
    return mask


def _shared_neighbours(zx: torch.Tensor, zy: torch.Tensor, k: int) -> torch.Tensor:
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
    """Mutual k-NN alignment (Huh et al. 2024): mean over rows i of ``|N_X(i) & N_Y(i)| / k``.

    ``N(i)`` holds the k nearest other rows of i by inner product after clipping and L2-normalising the rows
    (see the module docstring). Symmetric; 1 for identical inputs; chance level is ``k / (n - 1)``;
    invariant to permuting neurons and isotropic scaling.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    k
        Neighbours per row, ``1 <= k < n`` (n: the rows compared, after subsampling).
    max_rows
        When ``n > max_rows`` both matrices use the same ``max_rows`` rows drawn with `seed`; neighbourhoods
        in a subsample are coarser than in all n rows. ``None`` uses all rows.
    seed
        Seed of the row subsample.
    clip_quantile
        Clip each matrix at this quantile of ``|x|`` first, in (0, 1]; ``None`` or 1 clips nothing.

    Returns
    -------
    float
        The mean shared fraction of neighbours, in [0, 1].

    Raises
    ------
    ValueError
        If `k` is not a positive integer smaller than the rows compared, `clip_quantile` is outside (0, 1] or
        `max_rows` is invalid; for malformed input, a row of zeros after clipping, or a representation whose
        rows all point the same way.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
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
    return float(_shared_neighbours(zx, zy, k).to(torch.float64).mean()) / k
