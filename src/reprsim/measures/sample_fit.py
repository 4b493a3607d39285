"""Per-representation fits of the n x n measures (RBF CKA, RSA, mutual k-NN).

Each of these builds an n x n object per representation (a centred Gram, ranked dissimilarities, neighbour
sets) and then compares two such objects cheaply. An all-pairs comparison of R representations therefore fits
each representation once (R fits) and scores every pair from the fits, instead of rebuilding both objects
for each of the R^2 pairs. `score_sample(fit_sample(m, X), fit_sample(m, Y))` equals `m(X, Y)` on the same rows.
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
    """One representation's n x n object for one measure; `k` is the neighbour count of mutual k-NN."""

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
    v = v - v.mean() if what == "rsa" else v
    norm = float(v.norm())
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValueError(f"{what}: the representation's n x n matrix has no variation; the measure is undefined")
    return v / norm


def fit_sample(measure: str, X: ArrayLike, *, t: float = 0.8, k: int = DEFAULT_K, clip_quantile: float | None = 0.95,
        name: str = "X") -> SampleFit:
    """The n x n profile of X for `measure` ("rbf_cka", "rsa" or "mutual_knn"), on all of X's rows."""
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
    """The measure's value between two representations from their profiles (same rows, same options)."""
    if a.measure != b.measure or a.data.shape != b.data.shape or a.k != b.k:
        raise ValueError(
            f"profiles do not match: {a.measure} {tuple(a.data.shape)} k={a.k} vs "
            f"{b.measure} {tuple(b.data.shape)} k={b.k}"
        )
    if a.measure == "mutual_knn":
        return float((a.data & b.data).sum(dim=1).to(torch.float64).mean()) / a.k
    return float(torch.dot(a.data, b.data))
