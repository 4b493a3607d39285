"""The three measure families of the fit-once protocol (`reprsim.engine.scheduler.PairFamily`).

- `LinearFamily`: every linear measure (CKA, the CCA family, linreg, maxsim, Procrustes). A tile's fit is one
  streaming pass over the rows forming the tile's cross-product blocks (and the covariance of each
  representation seen for the first time, kept as a `LinearFit` for every later tile); a pair is scored from
  the two fits and its cross block.
- `SampleFamily`: one n x n measure (RBF CKA, RSA, mutual k-NN) on a shared row subsample.
- `AttentionFamily`: one attention measure on a shared sentence subsample.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from reprsim.arrays import ArrayLike, ConstantNeuronWarning, FewRowsWarning
from reprsim.measures import registry
from reprsim.measures.attention import MEASURE_KINDS, AttentionFit, attention_fit_bytes, fit_attention, score_attention
from reprsim.measures.sample_fit import SAMPLE_FIT_MEASURES, fit_sample, sample_fit_bytes, score_sample

from .linear_fit import CCA_TYPE_MEASURES, LinearFit, SvccaOptions
from .linear_score import PairTerms, derive, neuron_matches
from .moments import CrossMoments, Precision
from .scheduler import PairScore, Tile
from .sources import AttentionSource, RepresentationSource, read_rows, stream


@contextlib.contextmanager
def _one_blas_thread_each(workers: int, device: torch.device) -> Iterator[int]:
    """Run small decompositions as `workers` parallel single-threaded jobs (restores the thread count).

    LAPACK on d x d matrices of a few hundred scales poorly across threads (and collapses when the cores
    are shared), while independent pairs parallelise perfectly.
    """
    if device.type != "cpu" or workers <= 1:
        yield 1
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield workers
    finally:
        torch.set_num_threads(before)


def _prepare(fit: LinearFit, measures: Sequence[str], svcca_options: SvccaOptions) -> None:
    """Compute the per-representation decompositions the measures will use, before pairs share them."""
    if any(m in measures for m in ("linreg", "r2_lr", "cca_r2", "cca_rho", "pwcca")):
        fit.whitener  # noqa: B018 (cached)
        if "pwcca" in measures:
            fit.loadings  # noqa: B018
    if "svcca" in measures:
        fit.svcca_basis(svcca_options)
    fit.drop_decompositions()


def warn_about_fits(fits: Mapping[int, LinearFit], ids: Sequence[Hashable], measures: Sequence[str]) -> None:
    """One warning for all constant neurons, and one when the rows are too few for CCA-type measures."""
    constant = [(ids[i], s.n_constant) for i, s in sorted(fits.items()) if s.n_constant]
    if constant:
        listing = ", ".join(f"{rid!r}: {k}" for rid, k in constant[:10])
        more = f" and {len(constant) - 10} more" if len(constant) > 10 else ""
        warnings.warn(
            f"constant neurons (zero variance) excluded from neuron-level and CCA-type scores: {listing}{more}",
            ConstantNeuronWarning,
            stacklevel=3,
        )
    if CCA_TYPE_MEASURES & set(measures) and fits:
        any_fit = next(iter(fits.values()))
        widest = max(s.width for s in fits.values())
        if any_fit.n < 10 * widest:
            warnings.warn(
                f"n={any_fit.n} rows is fewer than 10 x the widest representation ({widest}); CCA-type "
                "measures approach 1 as rank reaches n and say little about similarity here",
                FewRowsWarning,
                stacklevel=3,
            )


class LinearFamily:
    """Every linear measure of many representations, from streaming passes over their rows.

    Parameters
    ----------
    sources
        The representations.
    measures
        Checked names from `reprsim.engine.ENGINE_MEASURES`.
    device
        The torch device of the accumulators and derivations.
    precision
        "float64" GEMMs, or "float32" GEMMs added into float64 sums.
    svcca
        SVCCA's options.
    chunk_rows
        Rows per chunk of a pass.
    neuron_matches_too
        Also give each pair's per-neuron maxsim matches (under the key "neurons").
    workers
        Parallel pair derivations on the CPU.
    progress
        Show a progress bar over each pass.
    """

    def __init__(
        self,
        sources: Sequence[RepresentationSource],
        measures: Sequence[str],
        *,
        device: torch.device,
        precision: Precision,
        svcca: SvccaOptions,
        chunk_rows: int,
        neuron_matches_too: bool = False,
        workers: int = 1,
        progress: bool = False,
    ) -> None:
        self.sources = list(sources)
        self.measures = tuple(measures)
        self.device, self.precision, self.svcca = device, precision, svcca
        self.chunk_rows, self.neuron_matches_too = chunk_rows, neuron_matches_too
        self.workers, self.progress = max(1, workers), progress
        self.ids = [s.id for s in self.sources]
        self.fits: dict[int, LinearFit] = {}
        self.passes = 0
        self._moments: CrossMoments | None = None
        self._local: dict[int, int] = {}

    def fit_bytes(self, item: int) -> int:
        """Bytes of the representation's covariance block."""
        return 8 * self.sources[item].width ** 2

    def pair_bytes(self, a: int, b: int) -> int:
        """Bytes of the pair's cross-product block."""
        return 8 * self.sources[a].width * self.sources[b].width

    def fit(self, tile: Tile) -> None:
        """Stream the rows once for the tile's cross blocks and the covariances of representations new to it."""
        self._moments = None
        new = [m for m in tile.members if m not in self.fits]
        moments, self._local = self._accumulate(tile, new)

        def build(g: int) -> LinearFit:
            fit = LinearFit.from_moments(moments, self._local[g], name=f"representation {self.ids[g]!r}")
            _prepare(fit, self.measures, self.svcca)
            return fit

        with _one_blas_thread_each(self.workers, self.device) as n, ThreadPoolExecutor(n) as pool:
            self.fits.update(zip(new, pool.map(build, new), strict=True))
        self._moments = moments

    def _accumulate(self, tile: Tile, new: Sequence[int]) -> tuple[CrossMoments, dict[int, int]]:
        """One pass over the rows of the tile's members: its cross blocks and the new members' own blocks."""
        local = {g: i for i, g in enumerate(tile.members)}
        blocks = {(min(a, b), max(a, b)) for a, b in tile.pairs} | {(m, m) for m in new}
        moments = CrossMoments(
            [self.sources[g].width for g in tile.members],
            sorted((local[a], local[b]) for a, b in blocks),
            device=self.device,
            precision=self.precision,
            row_norms="debiased_cka" in self.measures,
            diagonal=False,
        )
        self.passes += 1
        stream([self.sources[g] for g in tile.members], moments, self.chunk_rows, self.progress,
               f"pass {self.passes}" if self.passes > 1 else "streaming rows")
        return moments, local

    def terms(self, a: int, b: int) -> PairTerms:
        """The pair's cross terms from the open tile."""
        assert self._moments is not None
        m, la, lb = self._moments, self._local[a], self._local[b]
        return PairTerms(self.fits[a], self.fits[b], m.centred(la, lb),
                         m.centred_norm_product(la, lb) if m.row_norms else None)

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """Every measure of each pair of the tile, derived in parallel on the CPU."""

        def one(pair: tuple[int, int]) -> PairScore:
            a, b = pair
            terms = self.terms(a, b)
            try:
                values: dict[str, Any] = dict(derive(terms, self.measures, self.svcca))
                if self.neuron_matches_too:
                    values["neurons"] = neuron_matches(terms)
            except ValueError as exc:
                raise ValueError(f"pair ({self.ids[a]!r}, {self.ids[b]!r}): {exc}") from exc
            return a, b, values

        with _one_blas_thread_each(self.workers, self.device) as n, ThreadPoolExecutor(n) as pool:
            yield from pool.map(one, tile.pairs)
        self._moments = None


class SampleFamily:
    """One n x n measure (RBF CKA, RSA, mutual k-NN) on a shared row subsample.

    Parameters
    ----------
    sources
        The representations.
    measure
        A registry name; measures without a per-representation fit (minibatch CKA) hold the rows as their
        fit and call the measure per pair.
    rows
        Sorted indices of the subsample's rows, shared by every representation.
    chunk_rows
        Rows per chunk read.
    """

    def __init__(self, sources: Sequence[RepresentationSource], measure: str, rows: np.ndarray,
                 chunk_rows: int) -> None:
        self.sources, self.measure, self.rows, self.chunk_rows = list(sources), measure, rows, chunk_rows
        self.fits: dict[int, Any] = {}
        self.fitted = 0

    def fit_bytes(self, item: int) -> int:
        """Bytes of one fit (or of the rows, for a measure without a fit)."""
        n = len(self.rows)
        if self.measure in SAMPLE_FIT_MEASURES:
            return sample_fit_bytes(self.measure, n)
        return 4 * n * self.sources[item].width

    def pair_bytes(self, a: int, b: int) -> int:
        """Scoring a pair holds nothing beyond the two fits."""
        return 0

    def fit(self, tile: Tile) -> None:
        """Fit the tile's representations not fitted yet; drop fits the tile does not use."""
        keep = set(tile.members)
        self.fits = {k: v for k, v in self.fits.items() if k in keep}
        for k in tile.members:
            if k not in self.fits:
                data = read_rows(self.sources[k], self.rows, self.chunk_rows)
                self.fits[k] = fit_sample(self.measure, data) if self.measure in SAMPLE_FIT_MEASURES else data
                self.fitted += 1

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """The measure of each pair of the tile from the two fits."""
        function = registry.get(self.measure).function
        for a, b in tile.pairs:
            fa, fb = self.fits[a], self.fits[b]
            value = score_sample(fa, fb) if self.measure in SAMPLE_FIT_MEASURES else function(fa, fb)
            yield a, b, {self.measure: float(value)}


class AttentionFamily:
    """One attention measure on a shared sentence subsample.

    Parameters
    ----------
    sources
        The attention layers.
    measure
        "attention_js", "attention_pearson" or "attention_cka".
    sentences
        Sorted indices of the sentences compared, shared by every layer.
    lengths
        Words of each chosen sentence (for the memory plan).
    """

    def __init__(self, sources: Sequence[AttentionSource], measure: str, sentences: np.ndarray,
                 lengths: Sequence[int]) -> None:
        self.sources, self.measure = list(sources), measure
        self.kind = MEASURE_KINDS[measure]
        self.sentences, self.lengths = sentences, list(lengths)
        self.fits: dict[int, AttentionFit] = {}

    def fit_bytes(self, item: int) -> int:
        """Bytes of one layer's fit."""
        return attention_fit_bytes(self.sources[item].heads, self.lengths, self.kind)

    def pair_bytes(self, a: int, b: int) -> int:
        """Scoring a pair holds nothing beyond the two fits."""
        return 0

    def _maps(self, item: int) -> list[ArrayLike]:
        wanted = set(self.sentences.tolist())
        return [m for s, m in enumerate(self.sources[item].maps()) if s in wanted]

    def fit(self, tile: Tile) -> None:
        """Fit the tile's layers not fitted yet; drop fits the tile does not use."""
        keep = set(tile.members)
        self.fits = {k: v for k, v in self.fits.items() if k in keep}
        for k in tile.members:
            if k not in self.fits:
                self.fits[k] = fit_attention(self._maps(k), self.kind, name=_label(self.sources[k].id))

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """The measure of each pair of the tile from the two fits."""
        for a, b in tile.pairs:
            yield a, b, {self.measure: score_attention(self.fits[a], self.fits[b])}


def _label(id: Hashable) -> str:
    label = getattr(id, "label", None)
    return label() if callable(label) else str(id)


class MomentsFamily(LinearFamily):
    """The linear family over moments accumulated (or merged) by hand: no pass over rows, one tile.

    Parameters
    ----------
    moments
        Moments holding the diagonal block of every representation in a pair and each pair's cross block.
    ids
        Names of the representations.
    measures, svcca, neuron_matches_too, workers
        As for `LinearFamily`.
    """

    def __init__(self, moments: CrossMoments, ids: Sequence[Hashable], measures: Sequence[str], *,
                 svcca: SvccaOptions, neuron_matches_too: bool = False, workers: int = 1) -> None:
        sources = [RepresentationSource(id=i, width=w, chunks=lambda _: iter(())) for i, w in zip(ids, moments.widths,
                                                                                              strict=True)]
        super().__init__(sources, measures, device=moments.device, precision=moments.precision, svcca=svcca,
                         chunk_rows=1, neuron_matches_too=neuron_matches_too, workers=workers)
        self.moments = moments

    def _accumulate(self, tile: Tile, new: Sequence[int]) -> tuple[CrossMoments, dict[int, int]]:
        return self.moments, {i: i for i in range(self.moments.n_reps)}
