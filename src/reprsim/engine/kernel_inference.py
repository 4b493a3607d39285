"""Resampling the n x n measures whose fit is a matrix or an RDM vector: RBF CKA, distance correlation, RSA.

Replicates by weights (`KernelReplicates`). RBF CKA, distance correlation and RSA's whitened cosine
(``compare="cosine_cov"``) are V-statistics: ratios of Frobenius products of double-centred n x n matrices.
Recomputing one on resampled rows, duplicates included, is the same as weighting the rows by their
multiplicities w: with W = diag(w), s = sum w and K, L the centred matrices (centring again with weights
gives the same products),

    <K, L>_w = sum_ij w_i w_j K_ij L_ij - (2 / s) sum_i w_i (K w)_i (L w)_i + (w'K w)(w'L w) / s^2,

and the value is <K, L>_w / sqrt(<K, K>_w <L, L>_w) (its square root for distance correlation). A duplicated
row of a V-statistic adds the same diagonal terms a repeated draw from the empirical distribution does, so
the bootstrap with replacement is the plug-in bootstrap and needs no correction. The weights are constant
within a sentence, so the first sum is c' A c with A the sentence-by-sentence sums of K o L: each replicate
costs O(sentences^2) per pair after one O(n^2) aggregation, and the delete-one-group jackknife is the same
computation with 0/1 weights. The kernel's bandwidth (RBF: the median distance of the whole subsample) is
held fixed in every replicate: it is a setting of the kernel, and a duplicated row would otherwise pull the
median towards zero.

Permutation nulls (`permuted_dots`). Permuting the rows of Y permutes its centred matrix or RDM: entry
(i, j) becomes entry (p(i), p(j)), and ranks and centring are unchanged. Each null value is then one
Frobenius product of X's matrix with Y's permuted matrix, computed for all of a tile's pairs at once (a
matrix product per permutation and block of rows).

RSA's other comparisons (Pearson, Spearman, cosine, Kendall's tau-a) compare the vectors of the pairs of
rows (i < j); a duplicated row adds pairs of zero dissimilarity, which no weighting undoes, so they are
resampled by the delete-one-group jackknife: the sub-vector of the pairs of kept rows is re-centred and
re-ranked (`rsa_sub_vector`), exactly the vector the measure builds on the kept rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from reprsim.measures.rsm import average_ranks, kendall_tau_a, square_from_upper

# Entries of a permuted matrix built at once per member (about 32 rows of 2,000: the gathers stay in cache).
_BLOCK_ENTRIES = 1 << 16
LAYOUTS = ("square", "upper", "packed")


def square_of(layout: str, data: torch.Tensor, n: int) -> torch.Tensor:
    """The n x n matrix of a fit's vector: ``"square"`` (row-major n^2) or ``"packed"`` (sqrt(2) upper, diag).

    The packed form's Frobenius products are those of the matrices; unpacking divides the upper entries by
    sqrt(2) and mirrors them.
    """
    if layout == "square":
        return data.reshape(n, n)
    m = n * (n - 1) // 2
    out = torch.empty(n, n, dtype=data.dtype, device=data.device)
    i, j = torch.triu_indices(n, n, offset=1, device=data.device)
    upper = data[:m] / math.sqrt(2.0)
    out[i, j] = upper
    out[j, i] = upper
    out[torch.arange(n), torch.arange(n)] = data[m:]
    return out


def _sentence_sums(matrix: torch.Tensor, sentence: torch.Tensor, n_sentences: int) -> torch.Tensor:
    """(S, S) sums of a matrix's entries over pairs of sentences."""
    n = matrix.shape[0]
    rows = torch.zeros(n_sentences, n, dtype=matrix.dtype, device=matrix.device).index_add_(0, sentence, matrix)
    return torch.zeros(n_sentences, n_sentences, dtype=matrix.dtype, device=matrix.device).index_add_(1, sentence, rows)


class KernelReplicates:
    """Weighted Frobenius products of centred n x n matrices under many row weightings.

    Parameters
    ----------
    counts
        (R, S) sentence weights of the R replicates (bootstrap multiplicities, or 0/1 for a jackknife).
    sentence
        (n,) the sentence index of each row.
    """

    def __init__(self, counts: np.ndarray, sentence: np.ndarray) -> None:
        self.counts = torch.as_tensor(np.asarray(counts, dtype=np.float64))
        self.sentence = torch.as_tensor(np.asarray(sentence, dtype=np.int64))
        self.n_sentences = int(self.counts.shape[1])
        self.weights = self.counts[:, self.sentence]  # (R, n)
        self.total = self.weights.sum(1)

    def member(self, matrix: torch.Tensor) -> dict[str, torch.Tensor]:
        """One representation's per-replicate terms: K w, w'K w and <K, K>_w."""
        kw = self.weights @ matrix  # K is symmetric: (K w_r)_i for every replicate r
        quad = (kw * self.weights).sum(1)
        terms = {"matrix": matrix, "kw": kw, "quad": quad}
        terms["own"] = self.product(terms, terms)
        return terms

    def product(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        """(R,) <K_a, K_b>_w for every replicate."""
        sums = _sentence_sums(a["matrix"] * b["matrix"], self.sentence, self.n_sentences)
        first = ((self.counts @ sums) * self.counts).sum(1)
        second = (self.weights * a["kw"] * b["kw"]).sum(1)
        return first - 2.0 * second / self.total + a["quad"] * b["quad"] / self.total**2

    def ratio(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], root: bool) -> np.ndarray:
        """(R,) the measure's replicates: the CKA ratio (its square root, clipped at 0, with `root`)."""
        cross = a["own"] if a is b else self.product(a, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (cross / torch.sqrt(a["own"] * b["own"])).cpu().numpy()
        return np.sqrt(np.clip(value, 0.0, None)) if root else value


# --- permutation nulls ---------------------------------------------------------------------------------------
def permuted_dots(left: Sequence[np.ndarray], right: Sequence[np.ndarray], perms: np.ndarray) -> np.ndarray:
    """(K, L, R) Frobenius products of each left matrix with each right matrix with its rows and columns permuted.

    ``out[k, a, b] = sum_ij A_a[i, j] B_b[p(i), p(j)]`` with p = perms[k]: the product of X's matrix with
    that of Y[p]. The permuted matrix is built in blocks of rows (each block's rows gathered whole, then
    their columns), which keeps the gathers in cache, and every left matrix meets every right matrix in one
    matrix product per block.

    Parameters
    ----------
    left, right
        n x n float64 matrices (symmetric) of the members on each side.
    perms
        (K, n) row permutations.

    Returns
    -------
    numpy.ndarray
        The products.
    """
    n = left[0].shape[0]
    out = np.zeros((perms.shape[0], len(left), len(right)))
    block = max(1, min(n, _BLOCK_ENTRIES // max(n, 1)))
    moved = np.empty((len(right), block, n))
    for k, p in enumerate(perms):
        for start in range(0, n, block):
            stop = min(start + block, n)
            rows = p[start:stop]
            for m, matrix in enumerate(right):
                np.take(np.take(matrix, rows, axis=0), p, axis=1, out=moved[m, : stop - start])
            fixed = np.stack([a[start:stop].reshape(-1) for a in left])
            out[k] += fixed @ moved[:, : stop - start].reshape(len(right), -1).T
    return out


def null_square(layout: str, data: torch.Tensor, n: int) -> np.ndarray:
    """The n x n float64 matrix whose Frobenius products with another are the fits' inner products.

    ``"square"`` and ``"packed"`` fits are their matrices; an ``"upper"`` RDM vector (pairs i < j) becomes the
    symmetric matrix with zero diagonal scaled by 1 / sqrt(2), so that products count each pair once.
    """
    if layout == "upper":
        return (square_from_upper(data, n) / math.sqrt(2.0)).cpu().numpy()
    return square_of(layout, data, n).cpu().numpy()


# --- RSA's vector comparisons on kept rows ------------------------------------------------------------------
class UpperPairs:
    """The pairs i < j of n rows in row-major order (the order of an RDM vector).

    Parameters
    ----------
    n
        Rows.
    """

    def __init__(self, n: int) -> None:
        i, j = np.triu_indices(n, 1)
        self.i, self.j = i.astype(np.int32), j.astype(np.int32)

    def kept(self, keep: np.ndarray) -> np.ndarray:
        """(n(n-1)/2,) bool: the pairs whose rows are both kept."""
        return keep[self.i] & keep[self.j]


class SortedRdm:
    """One RDM vector's sort order and runs of ties, to re-rank any subset of its entries in O(m).

    Parameters
    ----------
    vector
        The fit's vector (for Spearman, centred average ranks: an order-keeping map of the dissimilarities).
    """

    def __init__(self, vector: np.ndarray) -> None:
        self.order = np.argsort(vector, kind="stable")
        self.position = np.empty_like(self.order)
        self.position[self.order] = np.arange(vector.size)
        ordered = vector[self.order]
        starts = np.ones(vector.size, dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        run = np.cumsum(starts) - 1
        # Only entries in runs of equal values need their ranks averaged; keep just those.
        tied = np.bincount(run)[run] > 1
        self.tied_at = np.flatnonzero(tied)
        self.tied_run = np.unique(run[tied], return_inverse=True)[1].reshape(-1)

    def ranks(self, kept: np.ndarray) -> np.ndarray:
        """(m,) each entry's average rank among the kept entries (meaningless where not kept)."""
        in_order = np.take(kept, self.order)
        rank = np.cumsum(in_order, dtype=np.float64)
        if self.tied_at.size:
            alive = in_order[self.tied_at]
            at, run = self.tied_at[alive], self.tied_run[alive]
            total = np.bincount(run, weights=rank[at], minlength=int(self.tied_run.max()) + 1)
            count = np.bincount(run, minlength=total.size)
            rank[at] = total[run] / count[run]
        return np.take(rank, self.position)


def rsa_sub_vector(vector: np.ndarray, kept: np.ndarray, compare: str, ordered: SortedRdm | None = None) -> np.ndarray:
    """The comparison vector of the kept rows' RDM, from the whole RDM's comparison vector.

    Parameters
    ----------
    vector
        The fit's vector (`reprsim.measures.rsm.comparison_vector`: an affine, order-keeping map of the
        dissimilarities for Pearson and Spearman, a scaling for cosine, the dissimilarities for tau-a).
    kept
        Mask of the kept pairs (`UpperPairs.kept`).
    compare
        ``"pearson"``, ``"spearman"``, ``"cosine"`` or ``"tau_a"``.
    ordered
        The vector's `SortedRdm`, for Spearman (re-ranks in O(m) instead of sorting again).

    Returns
    -------
    numpy.ndarray
        tau-a: the kept dissimilarities. Otherwise the vector `comparison_vector` gives on the kept rows,
        spread over the whole RDM's entries with zeros at the pairs left out (so that two such vectors'
        inner product is the comparison).

    Raises
    ------
    ValueError
        If the kept dissimilarities are all equal (the comparison is undefined).
    """
    if compare == "tau_a":
        return vector[kept]
    if compare == "spearman":
        sub = ordered.ranks(kept) if ordered is not None else vector.copy()
        if ordered is None:
            sub[kept] = average_ranks(torch.from_numpy(vector[kept])).numpy()
    else:
        sub = vector.copy()
    if compare in ("pearson", "spearman"):
        sub -= sub.mean(where=kept)
    sub = np.where(kept, sub, 0.0)
    norm = float(np.linalg.norm(sub))
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValueError(f"rsa replicate: every kept dissimilarity is equal; the {compare} comparison is undefined")
    return sub / norm


def compare_sub_vectors(a: np.ndarray, b: np.ndarray, compare: str) -> float:
    """The comparison of two `rsa_sub_vector` results."""
    if compare == "tau_a":
        return kendall_tau_a(torch.from_numpy(a), torch.from_numpy(b))
    return float(np.dot(a, b))


def analytic_kernel_null(layout: str, a: torch.Tensor, b: torch.Tensor, n: int) -> float:
    """The exact permutation mean of <v_a, v_b permuted> for double-centred matrices at unit norm.

    For centred symmetric A, B (zero row sums), a random permutation gives E = tr(A) tr(B) / (n - 1): the
    diagonal lands on the diagonal, and the off-diagonal entries sum to -tr.
    """
    if layout == "square":
        ta, tb = torch.diagonal(a.reshape(n, n)).sum(), torch.diagonal(b.reshape(n, n)).sum()
    else:
        m = n * (n - 1) // 2
        ta, tb = a[m:].sum(), b[m:].sum()
    return float(ta * tb) / (n - 1)


def analytic_rsa_null(compare: str, a: torch.Tensor, b: torch.Tensor) -> float | None:
    """RSA's exact permutation mean: 0 for Pearson, Spearman and tau-a; (sum a)(sum b) / m for cosine.

    A random row permutation sends each pair of rows to a uniformly random pair, so the mean of the permuted
    vector's entry is the mean of the vector: zero for the centred comparisons, and Kendall's tau is
    symmetric under the swap of any two dissimilarities.
    """
    if compare in ("pearson", "spearman", "tau_a"):
        return 0.0
    if compare == "cosine":
        return float(a.sum() * b.sum()) / a.numel()
    return None
