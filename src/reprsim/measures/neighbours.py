"""Neighbourhood measures on two k-NN graphs: Jaccard, rank similarity, second-order cosine, CKNNA, cycle-kNN.

Each representation's graph is built once (`reprsim.measures.knn.knn_graph`: neighbours by cosine
similarity, a row never its own neighbour, ties towards the lower row index) and a pair is scored from two
graphs in O(n k log(n k)) (second-order cosine also reads 2 k similarities a row from the unit rows: O(n k p)
more). The definitions follow the published code:

- ReSi (Klabunde et al. 2025, github.com/mklabunde/resi, ``repsim/measures/nearest_neighbor.py``):
  `jaccard_knn`, `rank_similarity` (Wang et al. 2020's rank similarity with ReSi's normalisation) and
  `second_order_cosine` (Hamilton et al. 2016: on cosine similarities by default, as the papers define it;
  ``vectors="distance"`` is ReSi's code, which compares cosine distances). ReSi does not clip.
- platonic-rep (Huh et al. 2024, github.com/minyoungg/platonic-rep, ``metrics.py``): `cknna` and
  `cycle_knn`, on rows clipped at the 0.95 quantile of ``|x|`` and L2-normalised as the authors' pipeline
  prepares them (``measure_alignment.py``).

All of them build n x n similarities, so they run on a seeded row subsample when ``n > max_rows``.
"""

from __future__ import annotations

import math

import torch

from reprsim.arrays import ArrayLike
from reprsim.measures.knn import (
    DEFAULT_K,
    KnnGraph,
    check_same_rows,
    find_edges,
    graph_pair,
    row_similarities,
    shared_neighbours,
)


# --- scores from two graphs ---------------------------------------------------------------------------------
def score_jaccard(a: KnnGraph, b: KnnGraph) -> float:
    """Jaccard k-NN from two graphs: mean over rows of ``|N_a(i) & N_b(i)| / |N_a(i) | N_b(i)|``.

    Parameters
    ----------
    a, b
        Graphs on the same rows with the same k.

    Returns
    -------
    float
        The mean Jaccard index, in [0, 1].

    Raises
    ------
    ValueError
        If the graphs differ in n or k.
    """
    check_same_rows(a, b, "jaccard_knn")
    shared = shared_neighbours(a, b).to(torch.float64)
    return float((shared / (2 * a.k - shared)).mean())


def score_rank_similarity(a: KnnGraph, b: KnnGraph) -> float:
    """Rank similarity from two graphs (Wang et al. 2020 as ReSi computes it).

    Row i scores ``sum over j in J of 2 / ((1 + |r_a(j) - r_b(j)|) (r_a(j) + r_b(j)))`` divided by
    ``sum_{m=1}^{|J|} 1/m``, where ``J = N_a(i) & N_b(i)`` and ``r(j)`` is j's rank (1 = nearest) among i's
    neighbours; a row with no shared neighbour scores 0. The value is the mean over rows.

    Parameters
    ----------
    a, b
        Graphs on the same rows with the same k.

    Returns
    -------
    float
        The mean row score, in [0, 1].

    Raises
    ------
    ValueError
        If the graphs differ in n or k.
    """
    check_same_rows(a, b, "rank_similarity")
    found, position = find_edges(a.keys, b.keys)
    rows = a.rows[found]
    rank_a = a.ranks[found].to(torch.float64)
    rank_b = b.ranks[position[found]].to(torch.float64)
    terms = 2.0 / ((1.0 + (rank_a - rank_b).abs()) * (rank_a + rank_b))
    total = torch.zeros(a.n, dtype=torch.float64, device=terms.device).index_add_(0, rows, terms)
    shared = torch.bincount(rows, minlength=a.n)
    steps = torch.arange(1, a.k + 1, dtype=torch.float64, device=terms.device)
    harmonic = torch.cat([torch.ones(1, dtype=torch.float64, device=terms.device), (1.0 / steps).cumsum(0)])
    return float((total / harmonic[shared]).mean())  # harmonic[0] is 1: those rows have total 0


SECOND_ORDER_VECTORS = ("similarity", "distance")


def check_second_order_vectors(vectors: object) -> None:
    """Check second-order cosine's choice of vectors.

    Parameters
    ----------
    vectors
        ``"similarity"`` or ``"distance"``.

    Raises
    ------
    ValueError
        For any other value.
    """
    if vectors not in SECOND_ORDER_VECTORS:
        raise ValueError(f"second_order_cosine: vectors must be one of {', '.join(SECOND_ORDER_VECTORS)}, "
                         f"got {vectors!r}")


def score_second_order_cosine(a: KnnGraph, b: KnnGraph, vectors: str = "similarity") -> float:
    """Second-order cosine similarity from two graphs that keep their similarity matrices.

    For row i, with ``U = N_a(i) | N_b(i)``, the vectors ``v_a = (s_a(i, j))_{j in U}`` and
    ``v_b = (s_b(i, j))_{j in U}`` of cosine similarities (Hamilton et al. 2016), or of cosine distances
    ``1 - s`` (ReSi's code), are compared by their cosine; the value is the mean over rows. Similarities are
    clamped to [-1, 1] and distances to [0, 2], as scikit-learn's cosine distance is. A row whose two vectors
    are both zero scores 1; one whose vector is zero on one side only scores 0, as rsatoolbox's cosine of a
    zero vector.

    Parameters
    ----------
    a, b
        Graphs on the same rows with the same k, built with ``keep_rows=True``.
    vectors
        ``"similarity"`` or ``"distance"``.

    Returns
    -------
    float
        The mean row cosine, in [-1, 1] (in [0, 1] for distances).

    Raises
    ------
    ValueError
        If the graphs differ in n or k, or do not keep their similarity matrices, or for unknown `vectors`.
    """
    check_same_rows(a, b, "second_order_cosine")
    check_second_order_vectors(vectors)
    if a.unit_rows is None or b.unit_rows is None:
        raise ValueError("second_order_cosine: the k-NN graphs must keep their unit rows "
                         "(knn_graph(..., keep_rows=True))")
    union = torch.unique(torch.cat([a.keys, b.keys]))  # sorted, each edge once
    rows, columns = torch.div(union, a.n, rounding_mode="floor"), torch.remainder(union, a.n)
    s_a = row_similarities(a.unit_rows, rows, columns).clamp_(-1.0, 1.0)
    s_b = row_similarities(b.unit_rows, rows, columns).clamp_(-1.0, 1.0)
    v_a, v_b = (s_a, s_b) if vectors == "similarity" else (1.0 - s_a, 1.0 - s_b)

    def per_row(v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(a.n, dtype=v.dtype, device=v.device).index_add_(0, rows, v)

    dot, norm_a, norm_b = per_row(v_a * v_b), per_row(v_a * v_a).sqrt(), per_row(v_b * v_b).sqrt()
    both = (norm_a > 0) & (norm_b > 0)
    cosine = torch.where(both, dot / torch.where(both, norm_a * norm_b, 1.0), 0.0)
    cosine = torch.where((norm_a == 0) & (norm_b == 0), 1.0, cosine)
    return float(cosine.mean())


def _masked_hsic(keys: torch.Tensor, k_values: torch.Tensor, l_values: torch.Tensor, n: int) -> float:
    """Song et al.'s unbiased HSIC of two n x n matrices that are zero outside the sorted edge keys.

    The matrices need not be symmetric; as in platonic-rep's ``hsic_unbiased``:
    ``(tr(K L) + sum(K) sum(L) / ((n-1)(n-2)) - 2 sum(K L) / (n-2)) / (n (n-3))``, the diagonals being zero.
    """
    if keys.numel() == 0:
        return 0.0
    rows = torch.div(keys, n, rounding_mode="floor")
    cols = torch.remainder(keys, n)
    found, position = find_edges(cols * n + rows, keys)  # edge (j, i) for each (i, j)
    trace = float((k_values[found] * l_values[position[found]]).sum())  # sum_ij K_ij L_ji
    k_columns = torch.zeros(n, dtype=torch.float64, device=keys.device).index_add_(0, cols, k_values)
    l_rows = torch.zeros(n, dtype=torch.float64, device=keys.device).index_add_(0, rows, l_values)
    product_sum = float(k_columns @ l_rows)  # 1^T K L 1
    total = trace + float(k_values.sum()) * float(l_values.sum()) / ((n - 1) * (n - 2)) - 2.0 * product_sum / (n - 2)
    return total / (n * (n - 3))


def score_cknna(a: KnnGraph, b: KnnGraph) -> float:
    """CKNNA from two graphs (Huh et al. 2024; platonic-rep's ``cknna`` with ``unbiased=True``).

    With K, L the cosine-similarity matrices and M the edges shared by both graphs (j in ``N_a(i) & N_b(i)``),
    ``CKNNA = HSIC_u(M o K, M o L) / sqrt(HSIC_u(M_a o K, M_a o K) HSIC_u(M_b o L, M_b o L))``, HSIC_u the
    unbiased estimator of Song et al. on these (not symmetric) masked matrices.

    Parameters
    ----------
    a, b
        Graphs on the same rows with the same k (a from X, b from Y).

    Returns
    -------
    float
        CKNNA(X, Y); 1 for identical graphs.

    Raises
    ------
    ValueError
        If the graphs differ in n or k, or a graph's own masked HSIC is not positive (the ratio is undefined).
    """
    check_same_rows(a, b, "cknna")
    found, position = find_edges(a.keys, b.keys)
    cross = _masked_hsic(a.keys[found], a.similarities[found], b.similarities[position[found]], a.n)
    own_a = _masked_hsic(a.keys, a.similarities, a.similarities, a.n)
    own_b = _masked_hsic(b.keys, b.similarities, b.similarities, b.n)
    for own, name in ((own_a, "X"), (own_b, "Y")):
        if not own > 0.0:
            raise ValueError(f"cknna: the unbiased HSIC of {name}'s masked kernel with itself is {own:.3g}, not "
                             "positive; CKNNA is undefined for this representation (try a larger k)")
    return cross / math.sqrt(own_a * own_b)


def score_cycle_knn(a: KnnGraph, b: KnnGraph) -> float:
    """Cycle-kNN from two graphs (platonic-rep's ``cycle_knn(feats_A=X, feats_B=Y)``).

    Row i counts when some j among its Y-neighbours ``N_b(i)`` has i among its X-neighbours ``N_a(j)``: the
    walk i -> Y's neighbour -> X's neighbour comes back to i.

    Parameters
    ----------
    a, b
        Graphs on the same rows with the same k (a from X, b from Y).

    Returns
    -------
    float
        The fraction of rows whose cycle closes, in [0, 1].

    Raises
    ------
    ValueError
        If the graphs differ in n or k.
    """
    check_same_rows(a, b, "cycle_knn")
    rows, cols = b.rows, b.columns
    found, _ = find_edges(cols * b.n + rows, a.keys)  # is (j, i) an edge of X for each edge (i, j) of Y?
    closed = torch.zeros(b.n, dtype=torch.bool, device=rows.device)
    closed[rows[found]] = True
    return float(closed.to(torch.float64).mean())


# --- one-shot functions ---------------------------------------------------------------------------------------
def jaccard_knn(X: ArrayLike, Y: ArrayLike, k: int = DEFAULT_K, max_rows: int | None = 10000, seed: int = 0,
                clip_quantile: float | None = None) -> float:
    """Jaccard k-NN similarity (ReSi): mean over rows of ``|N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)|``.

    ``N(i)`` holds the k nearest other rows of i by cosine similarity (see `reprsim.measures.knn`). Symmetric;
    1 for identical inputs; invariant to permuting neurons, orthogonal maps and isotropic scaling (without
    clipping).

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    k
        Neighbours per row, ``1 <= k < n`` (n: the rows compared, after subsampling).
    max_rows
        When ``n > max_rows`` both matrices use the same ``max_rows`` rows drawn with `seed`; ``None`` uses
        all rows.
    seed
        Seed of the row subsample.
    clip_quantile
        Clip each matrix at this quantile of ``|x|`` first, in (0, 1]; ``None`` (ReSi's choice) clips nothing.

    Returns
    -------
    float
        The mean Jaccard index, in [0, 1].

    Raises
    ------
    ValueError
        If `k` is not a positive integer smaller than the rows compared, `clip_quantile` is outside (0, 1] or
        `max_rows` is invalid; for malformed input, a row of zeros, or a representation whose rows all point
        the same way.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    return score_jaccard(*graph_pair(X, Y, k, max_rows, seed, clip_quantile, "jaccard_knn"))


def rank_similarity(X: ArrayLike, Y: ArrayLike, k: int = DEFAULT_K, max_rows: int | None = 10000, seed: int = 0,
                    clip_quantile: float | None = None) -> float:
    """Rank similarity (Wang et al. 2020, as ReSi computes it) of the two k-NN graphs.

    Shared neighbours count more when they are near and ranked alike in both (see `score_rank_similarity`).
    Symmetric; 1 for identical inputs; invariant to permuting neurons, orthogonal maps and isotropic
    scaling (without clipping).

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    k
        Neighbours per row, ``1 <= k < n``.
    max_rows
        When ``n > max_rows`` both matrices use the same ``max_rows`` rows drawn with `seed`; ``None`` uses
        all rows.
    seed
        Seed of the row subsample.
    clip_quantile
        Clip each matrix at this quantile of ``|x|`` first, in (0, 1]; ``None`` (ReSi's choice) clips nothing.

    Returns
    -------
    float
        The mean row score, in [0, 1].

    Raises
    ------
    ValueError
        As `jaccard_knn`.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    return score_rank_similarity(*graph_pair(X, Y, k, max_rows, seed, clip_quantile, "rank_similarity"))


def second_order_cosine(X: ArrayLike, Y: ArrayLike, k: int = DEFAULT_K, max_rows: int | None = 5000, seed: int = 0,
                        clip_quantile: float | None = None, vectors: str = "similarity") -> float:
    """Second-order cosine similarity (Hamilton et al. 2016; ReSi).

    Per row, the cosine similarities (or distances) to the union of its k nearest neighbours in X and in Y,
    compared by their cosine, averaged over rows (see `score_second_order_cosine`). Symmetric; 1 for
    identical inputs; invariant to permuting neurons, orthogonal maps and isotropic scaling (without
    clipping).

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    k
        Neighbours per row, ``1 <= k < n``.
    max_rows
        When ``n > max_rows`` both matrices use the same ``max_rows`` rows drawn with `seed` (the graphs
        are built from n x n similarities in blocks); ``None`` uses all rows.
    seed
        Seed of the row subsample.
    clip_quantile
        Clip each matrix at this quantile of ``|x|`` first, in (0, 1]; ``None`` (ReSi's choice) clips nothing.
    vectors
        ``"similarity"``: the second-order vectors hold cosine similarities, as Hamilton et al. and ReSi's
        paper define them; ``"distance"``: cosine distances, as ReSi's code computes them.

    Returns
    -------
    float
        The mean row cosine, in [-1, 1].

    Raises
    ------
    ValueError
        As `jaccard_knn`, or for unknown `vectors`.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    check_second_order_vectors(vectors)
    graphs = graph_pair(X, Y, k, max_rows, seed, clip_quantile, "second_order_cosine", keep_rows=True)
    return score_second_order_cosine(*graphs, vectors=vectors)


def cknna(X: ArrayLike, Y: ArrayLike, k: int = DEFAULT_K, max_rows: int | None = 10000, seed: int = 0,
          clip_quantile: float | None = 0.95) -> float:
    """CKNNA, centred kernel nearest-neighbour alignment (Huh et al. 2024; platonic-rep's ``cknna``).

    Unbiased-HSIC CKA of the cosine kernels restricted to the neighbour pairs both representations share
    (see `score_cknna`). 1 for identical inputs. Not exactly symmetric: the masked kernels are not
    symmetric matrices, and the unbiased HSIC's ``1^T K L 1`` term depends on their order; ``cknna(X, Y)`` is
    platonic-rep's ``cknna(feats_A=X, feats_B=Y)``.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q, at least 4 rows.
    k
        Neighbours per row, ``2 <= k < n``.
    max_rows
        When ``n > max_rows`` both matrices use the same ``max_rows`` rows drawn with `seed`; ``None`` uses
        all rows.
    seed
        Seed of the row subsample.
    clip_quantile
        Clip each matrix at this quantile of ``|x|`` first, in (0, 1]; ``None`` or 1 clips nothing.

    Returns
    -------
    float
        CKNNA(X, Y), at most about 1.

    Raises
    ------
    ValueError
        As `jaccard_knn` (with ``k >= 2``), fewer than 4 rows, or a masked kernel whose own HSIC is not
        positive.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    return score_cknna(*graph_pair(X, Y, k, max_rows, seed, clip_quantile, "cknna", minimum_k=2, min_rows=4))


def cycle_knn(X: ArrayLike, Y: ArrayLike, k: int = DEFAULT_K, max_rows: int | None = 10000, seed: int = 0,
              clip_quantile: float | None = 0.95) -> float:
    """Cycle-kNN (platonic-rep's ``cycle_knn``): the fraction of rows that a Y-neighbour has as X-neighbour.

    Row i counts when some j among its k nearest rows in Y has i among its k nearest rows in X: directed,
    ``cycle_knn(X, Y)`` walks from i to its neighbours in Y and back through X's graph. For X with itself it
    is the fraction of rows with a reciprocal neighbour, usually just below 1.

    Parameters
    ----------
    X, Y
        Row-aligned representations, n x p and n x q.
    k
        Neighbours per row, ``1 <= k < n``.
    max_rows
        When ``n > max_rows`` both matrices use the same ``max_rows`` rows drawn with `seed`; ``None`` uses
        all rows.
    seed
        Seed of the row subsample.
    clip_quantile
        Clip each matrix at this quantile of ``|x|`` first, in (0, 1]; ``None`` or 1 clips nothing.

    Returns
    -------
    float
        The fraction of closed cycles, in [0, 1].

    Raises
    ------
    ValueError
        As `jaccard_knn`.

    Warns
    -----
    SubsampleWarning
        When it runs on a subsample.
    """
    return score_cycle_knn(*graph_pair(X, Y, k, max_rows, seed, clip_quantile, "cycle_knn"))
