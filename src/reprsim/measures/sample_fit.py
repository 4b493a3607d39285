"""Per-representation fits of the n x n measures (RBF CKA, RSA, mutual k-NN).

Each of these builds an n x n object per representation (a centred Gram, ranked dissimilarities, neighbour
sets) and then compares two such objects cheaply. An all-pairs comparison of R representations therefore fits
each representation once (R fits) and scores every pair from the fits, instead of rebuilding both objects
for each of the R^2 pairs. ``score_sample(fit_sample(m, X), fit_sample(m, Y))`` equals ``m(X, Y)`` on the same
rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reprsim.arrays import ArrayLike, as_matrix
from reprsim.measures.cka import centre_gram_, rbf_gram, require_variation
from reprsim.measures.knn import DEFAULT_K, clip_at_quantile, neighbour_sets, unit_rows
from reprsim.measures.rsa import average_ranks, correlation_rdm_upper

SAMPLE_FIT_MEASURES = ("rbf_cka", "rsa", "mutual_knn")


@dataclass(frozen=True)
class SampleFit:
    """One representation's n x n object for one measure, made by `fit_sample`.

    Parameters
    ----------
    measure
        ``"rbf_cka"``, ``"rsa"`` or ``"mutual_knn"``.
    data
        rbf_cka: the double-centred RBF Gram matrix, flattened and scaled to unit norm (n^2 float64);
        rsa: the average ranks of the RDM's upper triangle, centred and scaled to unit norm
        (n (n - 1) / 2 float64); mutual_knn: the n x n boolean neighbour mask (see
        `reprsim.measures.knn.neighbour_sets`).
    k
        The neighbour count of mutual k-NN; 0 for the other measures.
    """

    measure: str
    data: torch.Tensor
    k: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes the fit holds."""
        return self.data.numel() * self.data.element_size()


def sample_fit_bytes(measure: str, n: int) -> int:
    """Bytes a `SampleFit` of `measure` on n rows holds (to tile all-pairs work under a memory budget).

    Parameters
    ----------
    measure
        One of `SAMPLE_FIT_MEASURES`; other measures fit nothing (0 bytes).
    n
        Rows of the subsample.

    Returns
    -------
    int
        The bytes.
    """
    return {"rbf_cka": 8 * n * n, "rsa": 4 * n * (n - 1), "mutual_knn": n * n}.get(measure, 0)


def _unit(v: torch.Tensor, what: str) -> torch.Tensor:
    """Scale v (centred first for rsa) to unit norm, refusing a zero or non-finite norm."""
    v = v - v.mean() if what == "rsa" else v
    norm = float(v.norm())
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValueError(f"{what}: the representation's n x n matrix has no variation; the measure is undefined")
    return v / norm


def fit_sample(measure: str, X: ArrayLike, *, t: float = 0.8, k: int = DEFAULT_K, clip_quantile: float | None = 0.95,
        name: str = "X") -> SampleFit:
    """Fit the n x n object of one representation for one measure, on all of its rows.

    The caller chooses the rows (the measures' own seeded subsample is not applied here), and every
    representation compared must be fitted on the same rows with the same options.

    Parameters
    ----------
    measure
        One of `SAMPLE_FIT_MEASURES`: ``"rbf_cka"``, ``"rsa"`` or ``"mutual_knn"``.
    X
        The representation, n x p.
    t
        rbf_cka only: the bandwidth as a fraction of the median distance (see
        `reprsim.measures.cka.rbf_gram`).
    k
        mutual_knn only: neighbours per row, ``1 <= k < n``.
    clip_quantile
        mutual_knn only: clip X at this quantile of ``|x|`` first; ``None`` or 1 clips nothing.
    name
        What the error messages call the representation.

    Returns
    -------
    SampleFit
        The fit, to be scored with `score_sample`.

    Raises
    ------
    ValueError
        For an unknown `measure`, malformed input, `k` out of range, or a representation the measure is
        undefined on (constant, rows without variance, a zero median distance, or an n x n object without
        variation).
    """
    x = as_matrix(X, name)
    if measure == "rbf_cka":
        require_variation(x, name, "rbf_cka")
        gram = centre_gram_(rbf_gram(x, float(t), name))
        return SampleFit(measure, _unit(gram.reshape(-1), measure))
    if measure == "rsa":
        return SampleFit(measure, _unit(average_ranks(correlation_rdm_upper(x, name, None)), measure))
    if measure == "mutual_knn":
        if not 1 <= k < x.shape[0]:
            raise ValueError(f"mutual_knn: k={k} must be in [1, n) with n={x.shape[0]} rows")
        return SampleFit(measure, neighbour_sets(unit_rows(clip_at_quantile(x, clip_quantile), name), k), k)
    raise ValueError(f"no per-representation fit for measure {measure!r}; fitted measures: {SAMPLE_FIT_MEASURES}")


def score_sample(a: SampleFit, b: SampleFit) -> float:
    """The measure's value between two representations, from their fits.

    Parameters
    ----------
    a, b
        Fits of the same measure on the same rows with the same options (see `fit_sample`).

    Returns
    -------
    float
        The value the measure gives on those rows: rbf_cka and rsa from the inner product of the two unit
        vectors, mutual_knn from the shared neighbours.

    Raises
    ------
    ValueError
        If the fits differ in measure, shape or ``k``.
    """
    if a.measure != b.measure or a.data.shape != b.data.shape or a.k != b.k:
        raise ValueError(
            f"profiles do not match: {a.measure} {tuple(a.data.shape)} k={a.k} vs "
            f"{b.measure} {tuple(b.data.shape)} k={b.k}"
        )
    if a.measure == "mutual_knn":
        return float((a.data & b.data).sum(dim=1).to(torch.float64).mean()) / a.k
    return float(torch.dot(a.data, b.data))
