"""Resampling the k-NN graph measures without a new neighbour search: subgraphs, relabelled graphs, nulls.

- Delete-one-group jackknife: a representation's fit keeps each row's ``k + d`` nearest rows in rank order
  (`RankedNeighbours`), d the most rows any group holds. Leaving a group out removes at most d of a row's
  listed neighbours, so its k nearest remaining rows are the first k survivors of its list: the replicate's
  graph (`subgraph`) is exactly the graph a new search on the remaining rows finds, in O(n (k + d)).
- Permutation null: permuting the rows of Y relabels its graph (`relabelled`): edge (u, v) becomes
  (q(u), q(v)), q the inverse permutation; no search. Mutual k-NN, Jaccard and rank similarity are scored
  for many permutations at once from per-row neighbour tables (`permuted_row_scores`).
- Closed-form permutation means (`analytic_null_mean`): under a random relabelling, row i's neighbour set
  in Y is a uniform k-subset of the other n - 1 rows, so its overlap with N_X(i) is hypergeometric: mutual
  k-NN's mean is k / (n - 1), Jaccard's the hypergeometric mean of s / (2k - s), and cycle-kNN's
  1 - mean_i C(n - 1 - d_i, k) / C(n - 1, k) with d_i the number of rows that have i among their X-neighbours.

Among rows tied at the k-th similarity the graphs keep the tie-break of the representation's own row order
(the lower index); a search on permuted rows could break such exact ties the other way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from reprsim.measures.knn import KnnGraph, find_edges

# Permutations scored at once by `permuted_row_scores` (bounds its (P, n, k) tables).
PERMUTATION_CHUNK = 32
# Graph measures scored for many permutations at once from neighbour tables.
TABLE_MEASURES = ("mutual_knn", "jaccard_knn", "rank_similarity")


@dataclass(frozen=True)
class RankedNeighbours:
    """Each row's nearest other rows in rank order, beyond k, so that subgraphs need no new search.

    Parameters
    ----------
    k
        Neighbours per row of the measure's graph.
    table
        (n, depth) the row's neighbours, nearest first (ties towards the lower index).
    similarities
        (n, depth) their cosine similarities.
    unit_rows
        The unit rows when the measure reads similarities outside the graph (second-order cosine), else
        ``None``.
    """

    k: int
    table: torch.Tensor
    similarities: torch.Tensor
    unit_rows: torch.Tensor | None = None

    @property
    def n(self) -> int:
        """Rows."""
        return int(self.table.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        tensors = [self.table, self.similarities] + ([self.unit_rows] if self.unit_rows is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)


def ranked_neighbours(deep: KnnGraph, k: int) -> RankedNeighbours:
    """The rank-ordered neighbour table of a graph searched with depth >= k neighbours per row.

    Parameters
    ----------
    deep
        A `KnnGraph` with ``deep.k >= k`` (its first k ranks are the graph with k neighbours).
    k
        The measure's neighbour count.

    Returns
    -------
    RankedNeighbours
        The table.
    """
    n, depth = deep.n, deep.k
    table = torch.empty(n, depth, dtype=torch.int64, device=deep.keys.device)
    sims = torch.empty(n, depth, dtype=deep.similarities.dtype, device=deep.keys.device)
    rows, slots = deep.rows, deep.ranks - 1
    table[rows, slots] = deep.columns
    sims[rows, slots] = deep.similarities
    return RankedNeighbours(k, table, sims, deep.unit_rows)


def _graph_from_table(columns: torch.Tensor, sims: torch.Tensor, rows: torch.Tensor | None) -> KnnGraph:
    """A KnnGraph from (m, k) neighbour columns and similarities in rank order."""
    m, k = columns.shape
    order = torch.argsort(columns, dim=1)
    ranks = torch.arange(1, k + 1, device=columns.device).expand(m, k).gather(1, order)
    keys = (torch.arange(m, device=columns.device)[:, None] * m + columns.gather(1, order)).reshape(-1)
    return KnnGraph(m, k, keys, ranks.reshape(-1), sims.gather(1, order).reshape(-1), rows)


def subgraph(neighbours: RankedNeighbours, keep: torch.Tensor) -> KnnGraph:
    """The k-NN graph of the kept rows (renumbered 0..m-1 in order), as a new search on them would find it.

    Parameters
    ----------
    neighbours
        The representation's ranked neighbours.
    keep
        (n,) bool, the rows kept.

    Returns
    -------
    KnnGraph
        The graph on the kept rows.

    Raises
    ------
    ValueError
        If a kept row has fewer than k kept rows in its list (the table is not deep enough for this
        deletion, or k is not below the kept rows).
    """
    k = neighbours.k
    kept = torch.nonzero(keep).reshape(-1)
    renumber = torch.cumsum(keep.to(torch.int64), 0) - 1
    table = neighbours.table[kept]
    alive = keep[table]
    take = alive & (torch.cumsum(alive.to(torch.int64), 1) <= k)
    short = take.sum(1) < k
    if bool(short.any()):
        raise ValueError(f"k-NN replicate: {int(short.sum())} kept row(s) have fewer than k={k} kept neighbours "
                         f"in their list of {table.shape[1]}")
    columns = renumber[table[take]].reshape(-1, k)
    sims = neighbours.similarities[kept][take].reshape(-1, k)
    return _graph_from_table(columns, sims, None if neighbours.unit_rows is None else neighbours.unit_rows[kept])


def point_graph(neighbours: RankedNeighbours) -> KnnGraph:
    """The graph with k neighbours per row on every row (the point estimate's graph)."""
    k = neighbours.k
    return _graph_from_table(neighbours.table[:, :k], neighbours.similarities[:, :k], neighbours.unit_rows)


def inverse_permutation(p: torch.Tensor) -> torch.Tensor:
    """The inverse permutation q, with q[p[i]] = i."""
    q = torch.empty_like(p)
    q[p] = torch.arange(p.numel(), device=p.device)
    return q


def relabelled(graph: KnnGraph, p: torch.Tensor) -> KnnGraph:
    """The graph of the representation with its rows permuted: row i of the result is row p[i].

    Parameters
    ----------
    graph
        The graph of Y.
    p
        (n,) int64 permutation.

    Returns
    -------
    KnnGraph
        The graph of ``Y[p]``: edge (u, v) of Y becomes (q[u], q[v]), q the inverse of p.
    """
    q = inverse_permutation(p)
    n = graph.n
    keys = q[graph.rows] * n + q[graph.columns]
    order = torch.argsort(keys)
    moved = None if graph.unit_rows is None else graph.unit_rows[p]
    return KnnGraph(n, graph.k, keys[order], graph.ranks[order], graph.similarities[order], moved)


def _harmonic(k: int, device: torch.device) -> torch.Tensor:
    """H_0 = 1 (rows without a shared neighbour score 0 whatever the divisor), H_1..H_k."""
    steps = torch.arange(1, k + 1, dtype=torch.float64, device=device)
    return torch.cat([torch.ones(1, dtype=torch.float64, device=device), (1.0 / steps).cumsum(0)])


def permuted_row_scores(measure: str, a: KnnGraph, b: RankedNeighbours, perms: torch.Tensor) -> np.ndarray:
    """Mutual k-NN, Jaccard or rank similarity of (X, Y[p]) for every permutation p, from neighbour tables.

    Parameters
    ----------
    measure
        One of `TABLE_MEASURES`.
    a
        The graph of X.
    b
        Y's ranked neighbours (its first k columns are Y's graph).
    perms
        (K, n) int64 permutations.

    Returns
    -------
    numpy.ndarray
        (K,) the values.
    """
    n, k = a.n, a.k
    table = b.table[:, :k]
    harmonic = _harmonic(k, table.device)
    out = []
    rows = torch.arange(n, device=table.device)[None, :, None]
    for start in range(0, perms.shape[0], PERMUTATION_CHUNK):
        p = perms[start:start + PERMUTATION_CHUNK]
        q = torch.empty_like(p)
        q.scatter_(1, p, torch.arange(n, device=p.device).expand_as(p))
        # Row i of Y[p] has the neighbours q(N_Y(p(i))) with the same ranks.
        neighbours = torch.gather(q, 1, table[p].reshape(p.shape[0], -1)).reshape(p.shape[0], n, k)
        found, position = find_edges((rows * n + neighbours).reshape(-1), a.keys)
        found = found.reshape(p.shape[0], n, k)
        shared = found.sum(2).to(torch.float64)
        if measure == "mutual_knn":
            out.append(shared.mean(1) / k)
        elif measure == "jaccard_knn":
            out.append((shared / (2 * k - shared)).mean(1))
        else:
            rank_b = torch.arange(1, k + 1, dtype=torch.float64, device=table.device).expand_as(found)
            rank_a = a.ranks[position.reshape(found.shape)].to(torch.float64)
            terms = torch.where(found, 2.0 / ((1.0 + (rank_a - rank_b).abs()) * (rank_a + rank_b)), 0.0)
            out.append((terms.sum(2) / harmonic[shared.to(torch.int64)]).mean(1))
    return torch.cat(out).cpu().numpy()


def permuted_graph_scores(score: Callable[[KnnGraph, KnnGraph], float], a: KnnGraph, b: KnnGraph,
                          perms: torch.Tensor) -> np.ndarray:
    """Any graph measure of (X, Y[p]) for every permutation p, from the relabelled graph of Y."""
    return np.array([score(a, relabelled(b, p)) for p in perms], dtype=np.float64)


def analytic_null_mean(measure: str, a: KnnGraph) -> float | None:
    """The exact permutation mean of a graph measure (X's graph `a`), or ``None`` where none is known.

    Parameters
    ----------
    measure
        A k-NN measure's registry base name.
    a
        The graph of X (the side whose rows stay in place).

    Returns
    -------
    float or None
        mutual_knn: k / (n - 1); jaccard_knn: E[s / (2k - s)] for s hypergeometric (n - 1 rows, k marked,
        k drawn); cycle_knn: 1 - mean_i C(n - 1 - d_i, k) / C(n - 1, k), d_i X's in-degree of row i; other
        measures ``None``.
    """
    n, k = a.n, a.k
    if measure == "mutual_knn":
        return k / (n - 1)
    if measure == "jaccard_knn":
        s = np.arange(k + 1)
        return float((stats.hypergeom(n - 1, k, k).pmf(s) * s / (2 * k - s)).sum())
    if measure == "cycle_knn":
        d = torch.bincount(a.columns, minlength=n).cpu().numpy().astype(np.float64)
        t = np.arange(k, dtype=np.float64)
        open_fraction = np.clip((n - 1 - d[:, None] - t) / (n - 1 - t), 0.0, None).prod(axis=1)
        return float(1.0 - open_fraction.mean())
    return None
