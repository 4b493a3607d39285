"""Representational dissimilarity matrices (RDMs) of one representation, and how two of them are compared.

An RDM holds the n (n - 1) / 2 dissimilarities between the rows (words) of one representation, as the upper
triangle in row-major order (the order of scipy's ``pdist`` and rsatoolbox's RDM vectors). `rdm_upper`
builds one of four kinds in blocks of rows:

- ``"correlation"``: ``1 - Pearson(row_i, row_j)`` (rsatoolbox's ``correlation``);
- ``"cosine"``: ``1 - cos(row_i, row_j)``;
- ``"euclidean"``: ``||row_i - row_j||``;
- ``"squared_euclidean"``: ``||row_i - row_j||^2`` (rsatoolbox's ``euclidean`` divides it by the width, a
  constant factor that no comparison sees).

`comparison_vector` turns an RDM into the one vector its comparison needs, so that a pair of fitted RDMs is
compared by one inner product (or, for Kendall's tau-a, one O(m log m) count), and `compare_vectors` scores
a pair. The comparisons are those of rsatoolbox's ``compare`` (names of similarity-repository in brackets):
``"pearson"`` (``corr``), ``"spearman"``, ``"tau_a"`` (``tau-a``), ``"cosine"`` and ``"cosine_cov"`` (the
whitened cosine, rsatoolbox's ``cosine_cov`` without a noise covariance: the cosine of the double-centred
``-D / 2``, diagonal included). `centred_distances` gives the double-centred Euclidean distance matrix of
distance correlation.

Dissimilarities that are equal in exact arithmetic are made equal in floating point, so that ranks tie
instead of being ordered by rounding noise: correlation and cosine distances (in [0, 2]) are snapped to a
grid of ``2**-40``, Euclidean ones to ``2**-40`` of the largest; a squared distance below the rounding of
its Gram-matrix formula (``64 eps (|x_i|^2 + |x_j|^2)`` on centred columns) is exactly 0.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import scipy.stats
import torch

from reprsim.arrays import CONSTANT_RTOL

RdmKind = Literal["correlation", "cosine", "euclidean", "squared_euclidean"]
Comparison = Literal["pearson", "spearman", "tau_a", "cosine", "cosine_cov"]
RDM_KINDS: tuple[str, ...] = get_args(RdmKind)
COMPARISONS: tuple[str, ...] = get_args(Comparison)

# Rows of an n x n product held at once.
BLOCK_ROWS = 2048
_TIE_GRID = 2.0**40
_ROUNDING_FLOOR = 64.0  # multiples of eps (|x_i|^2 + |x_j|^2) below which a squared distance is rounding


def check_rdm_options(rdm: object, compare: object, measure: str = "rsa") -> None:
    """Check an RDM kind and a comparison by name before any data is read.

    Parameters
    ----------
    rdm
        The RDM kind.
    compare
        The comparison.
    measure
        The measure's name, which starts the message.

    Raises
    ------
    ValueError
        If either is not a known name; the message lists the known ones.
    """
    if rdm not in RDM_KINDS:
        raise ValueError(f"{measure}: rdm must be one of {', '.join(RDM_KINDS)}, got {rdm!r}")
    if compare not in COMPARISONS:
        raise ValueError(f"{measure}: compare must be one of {', '.join(COMPARISONS)}, got {compare!r}")


def _name_rows(mask: torch.Tensor, rows: np.ndarray | None) -> tuple[int, str]:
    """How many rows a mask marks, and up to ten of their original indices."""
    where = torch.nonzero(mask).reshape(-1).cpu().numpy()
    original = where if rows is None else rows[where]
    return len(original), ", ".join(str(int(r)) for r in original[:10]) + (", ..." if len(original) > 10 else "")


def _constant_rows(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask of rows whose neurons all hold the same value (up to rounding)."""
    spread = (x - x.mean(dim=1, keepdim=True)).norm(dim=1)
    scale = x.abs().amax(dim=1) * (x.shape[1] ** 0.5)
    return spread <= CONSTANT_RTOL * scale


def _unit_directions(x: torch.Tensor, kind: str, name: str, rows: np.ndarray | None, measure: str) -> torch.Tensor:
    """Unit rows (centred across neurons first for the correlation distance), refusing rows without one."""
    if kind == "correlation":
        flat = _constant_rows(x)
        if bool(flat.any()):
            count, shown = _name_rows(flat, rows)
            raise ValueError(
                f"{measure}: {count} row(s) of {name} have zero variance across neurons (rows {shown}); the "
                "correlation distance 1 - Pearson is undefined for them. Drop those rows from both X and Y."
            )
        x = x - x.mean(dim=1, keepdim=True)
    norms = x.norm(dim=1, keepdim=True)
    zero = norms.reshape(-1) == 0
    if bool(zero.any()):
        count, shown = _name_rows(zero, rows)
        raise ValueError(f"{measure}: {count} row(s) of {name} are all zeros (rows {shown}); the cosine distance "
                         "is undefined for them. Drop those rows from both X and Y.")
    return x / norms


def _upper_of_block(block: torch.Tensor, start: int) -> torch.Tensor:
    """The entries of rows start.. of an n x n matrix block that lie above the diagonal, row-major."""
    n, rows = block.shape[1], block.shape[0]
    out = torch.empty(rows * (2 * n - 2 * start - rows - 1) // 2, dtype=block.dtype, device=block.device)
    copy_upper(block, start, out)
    return out


def copy_upper(block: torch.Tensor, start: int, out: torch.Tensor) -> None:
    """Write the entries above the diagonal of rows start.. of an n x n matrix (`block`) into `out`, row-major.

    Row slices copied one by one move each entry once: faster than a mask or an index list of n^2 / 2 pairs,
    and `out` may be part of a larger vector (a pack) or a CPU view of a numpy array.

    Parameters
    ----------
    block
        Rows start..start + b of the matrix, b x n.
    start
        The matrix row of the block's first row.
    out
        At least as long as the entries copied.
    """
    n, at = block.shape[1], 0
    for r in range(block.shape[0]):
        width = n - start - r - 1
        if width > 0:
            out[at:at + width] = block[r, start + r + 1:]
            at += width


def squared_distances_upper(x: torch.Tensor) -> torch.Tensor:
    """Upper triangle of the squared Euclidean distance matrix, with rounding below its floor made exactly 0.

    Parameters
    ----------
    x
        The representation, n x p, float64.

    Returns
    -------
    torch.Tensor
        The ``n (n - 1) / 2`` squared distances, row-major.
    """
    z = x - x.mean(dim=0, keepdim=True)  # distances ignore a shift; the Gram formula cancels less without one
    norms = (z * z).sum(dim=1)
    floor = _ROUNDING_FLOOR * torch.finfo(z.dtype).eps
    parts = []
    for start in range(0, z.shape[0], BLOCK_ROWS):
        block_norms = norms[start:start + BLOCK_ROWS, None]
        scale = block_norms + norms[None, :]
        sq = (scale - 2.0 * (z[start:start + BLOCK_ROWS] @ z.T)).clamp_(min=0.0)
        sq[sq <= floor * scale] = 0.0
        parts.append(_upper_of_block(sq, start))
    return torch.cat(parts)


def _snap(v: torch.Tensor, unit: float) -> torch.Tensor:
    """Round v to a grid of ``unit * 2**-40``, so values equal in exact arithmetic tie."""
    if unit <= 0.0:
        return v
    return torch.round(v * (_TIE_GRID / unit)) * (unit / _TIE_GRID)


def rdm_upper(x: torch.Tensor, kind: str, name: str, rows: np.ndarray | None, measure: str = "rsa") -> torch.Tensor:
    """Upper triangle of one representation's RDM.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    kind
        One of `RDM_KINDS`.
    name
        What the error messages call the representation.
    rows
        The original indices of x's rows, to name bad rows in the errors; ``None`` when x is the whole input.
    measure
        The measure's name, which starts the messages.

    Returns
    -------
    torch.Tensor
        The ``n (n - 1) / 2`` dissimilarities above the diagonal, row-major (scipy ``pdist`` order), snapped
        so that exact ties stay ties (see the module docstring).

    Raises
    ------
    ValueError
        For an unknown `kind`; for the correlation distance, rows with zero variance across neurons; for the
        cosine distance, rows of zeros (each counted and named by up to ten indices).
    """
    if kind in ("correlation", "cosine"):
        z = _unit_directions(x, kind, name, rows, measure)
        parts = [_upper_of_block(1.0 - z[s:s + BLOCK_ROWS] @ z.T, s) for s in range(0, z.shape[0], BLOCK_ROWS)]
        return _snap(torch.cat(parts), 1.0)
    if kind in ("euclidean", "squared_euclidean"):
        sq = squared_distances_upper(x)
        d = sq if kind == "squared_euclidean" else sq.sqrt()
        return _snap(d, float(d.max()) if d.numel() else 0.0)
    raise ValueError(f"{measure}: rdm must be one of {', '.join(RDM_KINDS)}, got {kind!r}")


def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Rank the entries of a vector, ties sharing their average rank (``scipy.stats.rankdata``'s "average").

    An argsort of millions of values is bound by its indirect moves, so this sorts plain 64-bit keys
    instead: each the value's leading bits (as an order-preserving integer) with its index in the trailing
    bits. Only values sharing their leading bits can come out misordered or tied; those runs (rare and
    short, or exact ties) are sorted again on their full keys. Several times faster than ``torch.sort`` on
    the tens of millions of dissimilarities of an RDM.

    Parameters
    ----------
    v
        A 1-D tensor of m finite values.

    Returns
    -------
    torch.Tensor
        float64 ranks 1..m in the order of `v`, on its device.
    """
    values = v.detach().to(torch.float64).cpu().numpy()
    m = values.size
    bits = (values + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0, which ties with it
    if m and float(values.min()) < 0.0:  # negatives order by their complemented bits, below every positive
        bits = np.where(bits >> np.uint64(63) == 1, ~bits, bits | np.uint64(1 << 63))
    shift = np.uint64(max(1, (m - 1).bit_length()))
    low = np.uint64((1 << int(shift)) - 1)
    keys = bits & ~low
    keys |= np.arange(m, dtype=np.uint64)
    keys.sort()
    after = np.flatnonzero((keys[1:] >> shift) == (keys[:-1] >> shift)) + 1  # same leading bits as the one before
    keys &= low
    order = keys.view(np.int64)
    sorted_ranks = np.arange(1.0, m + 1.0)
    if after.size:
        shared = _run_members(after, m)
        order[shared] = order[shared][np.argsort(bits[order[shared]], kind="stable")]
        tied = after[bits[order[after]] == bits[order[after - 1]]]  # equal to the value before
        if tied.size:  # a run of c tied values from position s (0-based) has the average rank s + (c + 1) / 2
            members = _run_members(tied, m)
            is_tied = np.zeros(m, dtype=bool)
            is_tied[tied] = True
            first = ~is_tied[members]  # a run starts where a value differs from the one before
            run = np.cumsum(first) - 1
            counts = np.bincount(run)
            sorted_ranks[members] = (members[first] + (counts + 1) * 0.5)[run]
    ranks = np.empty(m)
    ranks[order] = sorted_ranks
    return torch.from_numpy(ranks).to(v.device)


def _run_members(after: np.ndarray, m: int) -> np.ndarray:
    """Sorted positions (of m) of the runs formed by each position in `after` and the one before it."""
    member = np.zeros(m, dtype=bool)
    member[after] = True
    member[after - 1] = True
    return np.flatnonzero(member)


def square_from_upper(upper: torch.Tensor, n: int) -> torch.Tensor:
    """The symmetric n x n matrix with zero diagonal whose upper triangle is `upper` (row-major).

    Parameters
    ----------
    upper
        ``n (n - 1) / 2`` values.
    n
        The matrix size.

    Returns
    -------
    torch.Tensor
        The matrix.
    """
    D = torch.zeros(n, n, dtype=upper.dtype, device=upper.device)
    i, j = torch.triu_indices(n, n, offset=1, device=upper.device)
    D[i, j] = upper
    D[j, i] = upper
    return D


def double_centred_compact(D: torch.Tensor) -> torch.Tensor:
    """Double-centre a symmetric matrix and pack it so that inner products of packs are Frobenius products.

    Parameters
    ----------
    D
        A symmetric n x n matrix (it is centred in place).

    Returns
    -------
    torch.Tensor
        ``[sqrt(2) * upper triangle, diagonal]`` of ``H D H`` (``n (n + 1) / 2`` values): for two packs u, v,
        ``u . v = <H D_1 H, H D_2 H>_F``.
    """
    D -= D.mean(dim=0, keepdim=True)
    D -= D.mean(dim=1, keepdim=True)
    return packed_symmetric(D)


def packed_symmetric(D: torch.Tensor) -> torch.Tensor:
    """``[sqrt(2) * upper triangle, diagonal]`` of a symmetric matrix: inner products of packs are Frobenius products.

    Parameters
    ----------
    D
        A symmetric n x n matrix.

    Returns
    -------
    torch.Tensor
        The ``n (n + 1) / 2`` packed values (upper triangle row-major, then the diagonal).
    """
    n = D.shape[0]
    m = n * (n - 1) // 2
    packed = torch.empty(m + n, dtype=D.dtype, device=D.device)  # filled in place: no second copy of the pack
    copy_upper(D, 0, packed)
    packed[:m].mul_(math.sqrt(2.0))
    packed[m:] = torch.diagonal(D)
    return packed


def _unit(v: torch.Tensor, what: str) -> torch.Tensor:
    """Scale v to unit norm, refusing a vector without variation (the message is `what`)."""
    norm = float(v.norm())
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValueError(what)
    return v / norm


def comparison_vector(upper: torch.Tensor, compare: str, n: int, name: str, measure: str = "rsa") -> torch.Tensor:
    """The vector of one RDM that its comparison with another RDM needs.

    Parameters
    ----------
    upper
        The RDM's upper triangle (see `rdm_upper`).
    compare
        One of `COMPARISONS`.
    n
        Rows of the representation.
    name
        What the error messages call it.
    measure
        The measure's name, which starts the messages.

    Returns
    -------
    torch.Tensor
        ``"pearson"``: the centred dissimilarities at unit norm; ``"spearman"``: their centred average ranks
        at unit norm; ``"cosine"``: the dissimilarities at unit norm; ``"cosine_cov"``: the packed
        double-centred ``-D / 2`` at unit norm (see `double_centred_compact`); ``"tau_a"``: the
        dissimilarities themselves.

    Raises
    ------
    ValueError
        If the comparison is undefined for this RDM: every dissimilarity equal (or all zero for the cosines).
    """
    undefined = f"{measure}: every dissimilarity of {name} is equal; the {compare} comparison of RDMs is undefined"
    if compare == "tau_a":
        if upper.numel() < 2 or bool((upper == upper[0]).all()):
            raise ValueError(undefined)
        return upper
    if compare == "pearson":
        return _unit(upper - upper.mean(), undefined)
    if compare == "spearman":
        ranks = average_ranks(upper)
        return _unit(ranks - ranks.mean(), undefined)
    if compare == "cosine":
        return _unit(upper, f"{measure}: every dissimilarity of {name} is zero; the cosine comparison is undefined")
    if compare == "cosine_cov":
        packed = double_centred_compact(square_from_upper(-0.5 * upper, n))
        return _unit(packed, f"{measure}: the double-centred RDM of {name} is zero; the whitened cosine is "
                     "undefined")
    raise ValueError(f"{measure}: compare must be one of {', '.join(COMPARISONS)}, got {compare!r}")


def _tie_pairs(v: torch.Tensor) -> int:
    """Pairs of entries of v that are tied."""
    _, counts = torch.unique(v, return_counts=True)
    counts = counts.to(torch.int64)
    return int((counts * (counts - 1) // 2).sum())


def kendall_tau_a(u: torch.Tensor, v: torch.Tensor) -> float:
    """Kendall's tau-a of two vectors: (concordant - discordant pairs) / all pairs, ties counted in neither.

    Computed in O(m log m) from scipy's tau-b: ``tau_a = tau_b sqrt((P - T_u)(P - T_v)) / P`` with P the
    ``m (m - 1) / 2`` pairs and T the tied pairs of each vector (rsatoolbox's ``tau-a``).

    Parameters
    ----------
    u, v
        1-D tensors of the same length, neither constant.

    Returns
    -------
    float
        tau-a, in [-1, 1].
    """
    m = u.numel()
    pairs = m * (m - 1) // 2
    tau_b = float(scipy.stats.kendalltau(u.cpu().numpy(), v.cpu().numpy(), variant="b").statistic)
    return tau_b * math.sqrt(float(pairs - _tie_pairs(u)) * float(pairs - _tie_pairs(v))) / pairs


def compare_vectors(a: torch.Tensor, b: torch.Tensor, compare: str) -> float:
    """Compare two RDMs from their comparison vectors (see `comparison_vector`).

    Parameters
    ----------
    a, b
        The vectors of the two RDMs, made with the same `compare`.
    compare
        One of `COMPARISONS`.

    Returns
    -------
    float
        The comparison's value: Pearson, Spearman, cosine or whitened cosine from one inner product,
        Kendall's tau-a by counting pairs.
    """
    if compare == "tau_a":
        return kendall_tau_a(a, b)
    return float(torch.dot(a, b))


def centred_distances(x: torch.Tensor, name: str, measure: str = "distance_correlation") -> torch.Tensor:
    """The double-centred Euclidean distance matrix of one representation, packed and at unit norm.

    Parameters
    ----------
    x
        The representation, n x p, float64.
    name
        What the error message calls it.
    measure
        The measure's name, which starts the message.

    Returns
    -------
    torch.Tensor
        ``A / ||A||_F`` packed by `double_centred_compact`, A the double-centred distance matrix: two packs'
        inner product is ``dCov^2(X, Y) / sqrt(dVar^2(X) dVar^2(Y))``.

    Raises
    ------
    ValueError
        If every row is the same (zero distance variance).
    """
    d = squared_distances_upper(x).sqrt_()
    packed = double_centred_compact(square_from_upper(d, x.shape[0]))
    return _unit(packed, f"{measure}: every row of {name} is the same; its distance variance is 0 and the "
                 "distance correlation is undefined")
