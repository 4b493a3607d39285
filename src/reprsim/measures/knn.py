"""The k-nearest-neighbour graph of one representation, and mutual k-NN alignment (Huh et al. 2024).

Every neighbourhood measure (mutual k-NN here; Jaccard, rank similarity, second-order cosine, CKNNA and
cycle-kNN in `reprsim.measures.neighbours`) compares the k-NN graphs of two representations. A graph is built
once per representation (`knn_graph`, in blocks of `BLOCK_ROWS` rows with a top-k threshold per row) and any
number of pairs are scored from two graphs in O(n k log(n k)), without another n x n product.

Neighbours are by inner product of unit rows (cosine similarity), optionally after clipping the matrix at a
quantile of its absolute values (outlier activations would otherwise dominate inner products; Huh et al.'s
code clips at 0.95). The quantile is the exact one over all entries of the matrix (the authors' ``exact=True``
path: the sorted ``|x|`` value at index ``floor(q * n * p)``); their faster default averages per-row quantiles
instead, which differs slightly. A row is never its own neighbour. Among rows tied at the k-th similarity the
lower row indices are taken, and a row's neighbours are ranked by similarity, ties again towards the lower
index, so the graph is deterministic.

Mutual k-NN averages ``|N_X(i) & N_Y(i)| / k`` over rows. The neighbour search is n x n, so it runs on a
seeded row subsample when ``n > max_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reprsim.arrays import ArrayLike
from reprsim.measures._subsample import as_subsampled_pair

# Rows of the n x n similarity matrix held at once while searching neighbours.
BLOCK_ROWS = 2048

# Neighbours per row when the caller does not choose (Huh et al. 2024 and ReSi use 10).
DEFAULT_K = 10


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


def unit_rows(x: torch.Tensor, name: str, measure: str = "mutual_knn") -> torch.Tensor:
    """Scale every row to unit Euclidean norm.

    Parameters
    ----------
    x
        The (clipped) representation, n x p.
    name
        What the error messages call it.
    measure
        The measure's name, which starts the error messages.

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
            f"{measure}: {int(zero.sum())} row(s) of {name} are all zeros after clipping (first: row "
            f"{first} of the rows compared); they have no nearest neighbours by inner product"
        )
    unit = x / norms
    # Rows that are positive multiples of one row normalise to it within a few rounding errors.
    if float((unit - unit[:1]).abs().max()) <= 16 * torch.finfo(unit.dtype).eps:
        raise ValueError(
            f"{measure}: every row of {name} points the same way after clipping (a constant representation); "
            "no row is nearer to one row than to another, so nearest neighbours are undefined"
        )
    return unit


def check_k(k: object, measure: str, minimum: int = 1) -> int:
    """Check a neighbour count before any data is read.

    Parameters
    ----------
    k
        The neighbour count given.
    measure
        The measure's name, which starts the message.
    minimum
        The smallest count the measure is defined with (2 for CKNNA).

    Returns
    -------
    int
        `k`.

    Raises
    ------
    ValueError
        If `k` is not an integer of at least `minimum` (booleans are not counts).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise ValueError(f"{measure}: k must be {what}, got {k!r}")
    return k


def check_k_below_rows(k: int, n: int, measure: str) -> None:
    """Refuse a neighbour count that leaves a row fewer than k other rows.

    Parameters
    ----------
    k
        Neighbours per row.
    n
        Rows compared (after any subsample).
    measure
        The measure's name, which starts the message.

    Raises
    ------
    ValueError
        If ``k >= n``, naming both.
    """
    if k >= n:
        raise ValueError(f"{measure}: k={k} must be smaller than the number of rows compared (n={n})")


def check_clip_quantile(q: float | None, measure: str) -> None:
    """Check a clipping quantile.

    Parameters
    ----------
    q
        The quantile, or ``None``.
    measure
        The measure's name, which starts the message.

    Raises
    ------
    ValueError
        If `q` is neither ``None`` nor a number in (0, 1].
    """
    if q is not None and (isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 < float(q) <= 1.0):
        raise ValueError(f"{measure}: clip_quantile must be in (0, 1] or None, got {q!r}")


def _neighbour_mask(sims: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of each row's k largest entries; among ties at the k-th value, the lowest indices win."""
    # O(n) per row (a top-k threshold, not a full sort), and deterministic whatever the top-k routine does
    # with ties.
    kth = torch.topk(sims, k, dim=1).values[:, -1:]
    above = sims > kth
    tied = sims == kth
    mask = above | tied
    over = (mask.sum(dim=1) > k).nonzero().squeeze(1)  # rows with more ties at the k-th value than room
    if over.numel():
        room = k - above[over].sum(dim=1, keepdim=True)
        tied_over = tied[over]
        mask[over] = above[over] | (tied_over & (tied_over.cumsum(dim=1) <= room))
    return mask


@dataclass(frozen=True)
class KnnGraph:
    """Each row's k nearest other rows of one representation, as a sorted edge list.

    Edge ``(i, j)`` (j is among the k nearest rows of i) has the key ``i * n + j``; the keys are sorted, so
    row i's edges are contiguous and in increasing j, and two graphs on the same rows are matched by a
    binary search instead of an n x n mask.

    Parameters
    ----------
    n
        Rows of the representation.
    k
        Neighbours per row.
    keys
        The ``n k`` edge keys ``i * n + j``, sorted (int64).
    ranks
        Aligned with `keys`: 1 for the nearest neighbour of i up to k for the k-th (int64).
    similarities
        Aligned with `keys`: the inner product of the unit rows i and j (float64).
    unit_rows
        The unit rows themselves (n x p), kept only for measures that read similarities outside the graph
        (second-order cosine, through `row_similarities`); ``None`` otherwise.
    """

    n: int
    k: int
    keys: torch.Tensor
    ranks: torch.Tensor
    similarities: torch.Tensor
    unit_rows: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        """Bytes the graph holds."""
        kept = [self.unit_rows] if self.unit_rows is not None else []
        tensors = [self.keys, self.ranks, self.similarities, *kept]
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def rows(self) -> torch.Tensor:
        """The source row i of every edge, aligned with `keys`."""
        return torch.div(self.keys, self.n, rounding_mode="floor")

    @property
    def columns(self) -> torch.Tensor:
        """The neighbour j of every edge, aligned with `keys`."""
        return torch.remainder(self.keys, self.n)


def knn_graph_bytes(n: int, k: int, with_rows: bool = False, width: int = 0) -> int:
    """Bytes of a `KnnGraph` on n rows with k neighbours each.

    Parameters
    ----------
    n
        Rows.
    k
        Neighbours per row.
    with_rows
        Whether the graph keeps its unit rows.
    width
        The rows' width, when it keeps them.

    Returns
    -------
    int
        ``24 n k`` (keys, ranks, similarities), plus ``8 n width`` with the rows.
    """
    return 24 * n * k + (8 * n * width if with_rows else 0)


def row_similarities(z: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Inner products ``z_i . z_j`` of the given (row, column) pairs, computed in slices of bounded size.

    Parameters
    ----------
    z
        Unit rows, n x p.
    rows, columns
        The pairs, aligned int64 vectors.

    Returns
    -------
    torch.Tensor
        One similarity per pair.
    """
    out = torch.empty(rows.numel(), dtype=z.dtype, device=z.device)
    step = max(1, 2**22 // max(1, z.shape[1]))  # about 32 MiB of gathered rows per side
    for start in range(0, rows.numel(), step):
        stop = start + step
        out[start:stop] = (z[rows[start:stop]] * z[columns[start:stop]]).sum(dim=1)
    return out


def knn_graph(z: torch.Tensor, k: int, keep_rows: bool = False) -> KnnGraph:
    """Build the k-NN graph of unit rows by inner product, in blocks of `BLOCK_ROWS` rows.

    Parameters
    ----------
    z
        Unit rows, n x p (see `unit_rows`).
    k
        Neighbours per row, ``1 <= k < n``.
    keep_rows
        Keep the unit rows in the graph (see `KnnGraph.unit_rows`).

    Returns
    -------
    KnnGraph
        The graph: among rows tied at the k-th similarity the lowest indices are taken, and each row's
        neighbours are ranked by decreasing similarity, ties towards the lower index.
    """
    n = z.shape[0]
    keys, ranks, sims = [], [], []
    positions = torch.arange(1, k + 1, device=z.device)
    # Repeated rows (a word type's static embedding, a repeated sentence) must tie exactly, or the tie rule
    # becomes whatever the matrix product's kernel does in the last bit: score them from one copy.
    distinct, copy_of = torch.unique(z, dim=0, return_inverse=True)
    repeated = distinct.shape[0] < n
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        own = torch.arange(start, stop, device=z.device)
        block = (z[start:stop] @ distinct.T)[:, copy_of] if repeated else z[start:stop] @ z.T
        block[own - start, own] = -torch.inf
        rows, cols = _neighbour_mask(block, k).nonzero(as_tuple=True)  # row-major: k ascending columns a row
        values = block[rows, cols].reshape(-1, k)
        order = torch.sort(values, dim=1, descending=True, stable=True).indices  # ties keep the lower index first
        rank = torch.empty_like(order).scatter_(1, order, positions.expand_as(order))
        keys.append((rows + start) * n + cols)
        ranks.append(rank.reshape(-1))
        sims.append(values.reshape(-1))
    return KnnGraph(n, k, torch.cat(keys), torch.cat(ranks), torch.cat(sims), z if keep_rows else None)


def prepared_graph(x: torch.Tensor, k: int, clip_quantile: float | None, name: str, measure: str,
                   keep_rows: bool = False) -> KnnGraph:
    """Clip, normalise the rows and build the k-NN graph of one representation.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    k
        Neighbours per row, already checked with `check_k`.
    clip_quantile
        Clip at this quantile of ``|x|`` first; ``None`` or 1 clips nothing.
    name
        What the error messages call the representation.
    measure
        The measure's name, which starts the error messages.
    keep_rows
        Keep the unit rows (see `KnnGraph.unit_rows`).

    Returns
    -------
    KnnGraph
        The graph.

    Raises
    ------
    ValueError
        If ``k >= n``, a row is zero after clipping, or every row points the same way.
    """
    check_k_below_rows(k, x.shape[0], measure)
    return knn_graph(prepared_rows(x, clip_quantile, name, measure), k, keep_rows)


def prepared_rows(x: torch.Tensor, clip_quantile: float | None, name: str, measure: str) -> torch.Tensor:
    """The unit rows a k-NN graph is searched on: `unit_rows` of `clip_at_quantile`.

    Takes `prepared_graph`'s arguments but k, and raises its errors about the rows.
    """
    return unit_rows(clip_at_quantile(x, clip_quantile), name, measure)


def graph_pair(X: ArrayLike, Y: ArrayLike, k: int, max_rows: int | None, seed: int, clip_quantile: float | None,
               measure: str, minimum_k: int = 1, min_rows: int = 2,
               keep_rows: bool = False) -> tuple[KnnGraph, KnnGraph]:
    """Check the options, take the seeded row subsample and build both k-NN graphs (the one-shot measures).

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    k
        Neighbours per row.
    max_rows, seed
        The row subsample (see `reprsim.measures._subsample.as_subsampled_pair`).
    clip_quantile
        Clip each matrix at this quantile of ``|x|`` first; ``None`` or 1 clips nothing.
    measure
        The measure's name, which starts the messages.
    minimum_k
        The smallest `k` the measure is defined with.
    min_rows
        The fewest rows the measure is defined on.
    keep_rows
        Keep each graph's unit rows.

    Returns
    -------
    tuple of KnnGraph
        The graphs of X and Y on the same rows.

    Raises
    ------
    ValueError
        For a bad `k` (also ``k >= n``), `clip_quantile` or `max_rows`, malformed input, a row of zeros
        after clipping, or a representation whose rows all point the same way.
    """
    check_k(k, measure, minimum_k)
    check_clip_quantile(clip_quantile, measure)
    x, y, _ = as_subsampled_pair(X, Y, max_rows, seed, measure, min_rows=min_rows)
    return (prepared_graph(x, k, clip_quantile, "X", measure, keep_rows),
            prepared_graph(y, k, clip_quantile, "Y", measure, keep_rows))


def check_same_rows(a: KnnGraph, b: KnnGraph, measure: str) -> None:
    """Refuse to compare graphs of different row counts or neighbour counts.

    Parameters
    ----------
    a, b
        The graphs.
    measure
        The measure's name, which starts the message.

    Raises
    ------
    ValueError
        If the graphs differ in n or k.
    """
    if a.n != b.n or a.k != b.k:
        raise ValueError(f"{measure}: the k-NN graphs differ (n={a.n}, k={a.k} vs n={b.n}, k={b.k}); "
                         "both must be built on the same rows with the same k")


def find_edges(keys: torch.Tensor, graph_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Look up edge keys in a sorted key list.

    Parameters
    ----------
    keys
        Keys to look up (any order).
    graph_keys
        A sorted key list (a `KnnGraph.keys` or a sorted subset of one).

    Returns
    -------
    found : torch.Tensor
        Boolean, aligned with `keys`: the key is in `graph_keys`.
    position : torch.Tensor
        Aligned with `keys`: its index in `graph_keys` where found (meaningless elsewhere).
    """
    if graph_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool), torch.zeros_like(keys)
    position = torch.searchsorted(graph_keys, keys).clamp_(max=graph_keys.numel() - 1)
    return graph_keys[position] == keys, position


def shared_neighbours(a: KnnGraph, b: KnnGraph) -> torch.Tensor:
    """Per row i, ``|N_a(i) & N_b(i)|``.

    Parameters
    ----------
    a, b
        Graphs on the same rows with the same k.

    Returns
    -------
    torch.Tensor
        n int64 counts.
    """
    found, _ = find_edges(a.keys, b.keys)
    return torch.bincount(a.rows[found], minlength=a.n)


def score_mutual_knn(a: KnnGraph, b: KnnGraph) -> float:
    """Mutual k-NN from two graphs: the mean over rows of ``|N_a(i) & N_b(i)| / k``.

    Parameters
    ----------
    a, b
        Graphs on the same rows with the same k.

    Returns
    -------
    float
        The mean shared fraction, in [0, 1].

    Raises
    ------
    ValueError
        If the graphs differ in n or k.
    """
    check_same_rows(a, b, "mutual_knn")
    return float(shared_neighbours(a, b).to(torch.float64).mean()) / a.k


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
    return score_mutual_knn(*graph_pair(X, Y, k, max_rows, seed, clip_quantile, "mutual_knn"))
