"""The linear measure family of the fit-once protocol (`reprsim.engine.scheduler.PairFamily`).

- `LinearFamily`: every linear measure (CKA, the CCA family, linreg, maxsim, Procrustes). A tile's fit is one
  streaming pass over the rows forming the tile's cross-product blocks (and the covariance of each
  representation seen for the first time, kept as a `LinearFit` for every later tile); a pair is scored from
  the two fits and its cross block.
- `MomentsFamily`: the linear family over moments accumulated (or merged) by hand, for `pair_results`.
- `warn_about_fits`: the study-wide warnings about the fits (constant neurons, too few rows for CCA).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from reprsim.arrays import ConstantNeuronWarning, FewRowsWarning
from reprsim.inference import NO_INFERENCE, InferenceOptions
from reprsim.measures import registry

from . import linear_influence
from .block_moments import BlockedMoments, MomentSums
from .block_score import prepare_fit
from .checks import Precision, PrecisionChoice
from .linear_fit import CCA_TYPE_MEASURES, LinearFit, SvccaOptions, needs_row_norms, pass_precision
from .linear_inference import LinearStatistics, block_bytes_factor
from .linear_score import PairTerms, derive, neuron_matches, svcca_options_of
from .moments import CrossMoments
from .scheduler import PairScore, Tile, tile_blocks
from .sources import RepresentationSource, stream


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
    bases = {registry.parse_spec(m)[0]: m for m in measures}
    if any(m in bases for m in ("linreg", "r2_lr", "cca_r2", "cca_rho", "pwcca")):
        fit.whitener  # noqa: B018 (cached)
        if "pwcca" in bases:
            fit.loadings  # noqa: B018
    for m in measures:
        if registry.parse_spec(m)[0] == "svcca":
            fit.svcca_basis(svcca_options_of(registry.get(m).options, svcca_options))
    prepare_fit(fit, measures)
    fit.drop_decompositions()


def warn_about_fits(fits: Mapping[int, LinearFit], ids: Sequence[Hashable], measures: Sequence[str]) -> None:
    """Warn once about every constant neuron of a study, and once when its rows are too few for CCA.

    Parameters
    ----------
    fits
        The fits of the study's representations, by index.
    ids
        Names of the representations (indexed like `fits`), used in the message.
    measures
        The measures computed; the row-count warning is given only when one of them is CCA-type
        (``cca_r2``, ``cca_rho``, ``svcca``, ``pwcca``).

    Warns
    -----
    ConstantNeuronWarning
        When some representation has constant (zero-variance) neurons, which neuron-level and CCA-type
        scores exclude; the message lists the first ten representations with their counts.
    FewRowsWarning
        When a CCA-type measure was computed on fewer than 10 x the widest representation's width in rows
        (the measures then approach 1 as the rank reaches n).
    """
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

    A pair's scores are ``{measure: value}``, a float for a symmetric measure and a `Directed` for a directed
    one; memory per tile is the members' covariance blocks plus the tile's cross blocks (8 d_a d_b bytes each).

    Parameters
    ----------
    sources
        The representations.
    measures
        Checked names from `reprsim.engine.ENGINE_MEASURES`.
    device
        The torch device of the accumulators and derivations.
    precision
        ``"auto"`` (float32 GEMMs when every measure allows it, `pass_precision`), ``"float64"`` GEMMs, or
        ``"float32"`` GEMMs added into float64 sums.
    svcca
        SVCCA's options.
    chunk_rows
        Rows per chunk of a pass.
    neuron_matches_too
        Also give each pair's per-neuron maxsim matches (a `Directed` of `NeuronMatch` under the key
        ``"neurons"``).
    workers
        Parallel pair derivations on the CPU (values below 1 count as 1).
    progress
        Show a progress bar over each pass.
    inference
        The statistics to attach (`reprsim.engine.linear_inference`); each pair's scores then carry
        ``"uncertainty"``: ``{measure: Uncertainty}`` (a `Directed` of them for a directed measure).
    bounds
        (G + 1,) row offsets of the sentence blocks, needed when ``inference.ci`` is not ``"none"``.

    Attributes
    ----------
    ids
        The representations' ids, in source order.
    fits
        The `LinearFit` of every representation fitted so far, by index (kept across tiles).
    passes
        How many passes over the rows have been made.
    precision
        The GEMM precision the passes run in (`pass_precision` of the choice).
    """

    def __init__(
        self,
        sources: Sequence[RepresentationSource],
        measures: Sequence[str],
        *,
        device: torch.device,
        precision: PrecisionChoice,
        svcca: SvccaOptions,
        chunk_rows: int,
        neuron_matches_too: bool = False,
        workers: int = 1,
        progress: bool = False,
        inference: InferenceOptions = NO_INFERENCE,
        bounds: np.ndarray | None = None,
    ) -> None:
        if inference.ci != "none" and bounds is None:
            raise ValueError("intervals need the sentence blocks' row bounds (bounds=)")
        self.inference, self.bounds = inference, bounds
        self._factor = block_bytes_factor(inference)
        self._blocked: BlockedMoments | None = None
        self.sources = list(sources)
        self.measures = tuple(measures)
        self.device, self.svcca = device, svcca
        self.precision: Precision = pass_precision(precision, self.measures, inference.enabled)
        self.chunk_rows, self.neuron_matches_too = chunk_rows, neuron_matches_too
        self.workers, self.progress = max(1, workers), progress
        self.ids = [s.id for s in self.sources]
        self.fits: dict[int, LinearFit] = {}
        self.passes = 0
        self._moments: CrossMoments | MomentSums | None = None
        self._local: dict[int, int] = {}

    def fit_bytes(self, item: int) -> int:
        """Bytes of a representation's covariance block.

        Parameters
        ----------
        item
            Index of the representation.

        Returns
        -------
        int
            ``8 d^2`` for width d (G + 2 times that when intervals keep per-block copies).
        """
        return 8 * self.sources[item].width ** 2 * self._factor

    def pair_bytes(self, a: int, b: int) -> int:
        """Bytes of a pair's cross-product block.

        Parameters
        ----------
        a, b
            Indices of the pair's representations.

        Returns
        -------
        int
            ``8 d_a d_b`` (G + 2 times that when intervals keep per-block copies).
        """
        return 8 * self.sources[a].width * self.sources[b].width * self._factor

    def fit(self, tile: Tile) -> None:
        """Stream the rows once for the tile's cross blocks and the covariances of representations new to it.

        Each new representation's `LinearFit` is built and its decompositions for the chosen measures
        computed (in parallel on the CPU), then kept for every later tile.

        Parameters
        ----------
        tile
            The tile to open.

        Raises
        ------
        ValueError
            If a source gives bad rows (non-finite values, a wrong width, more or fewer rows than the
            others) or a decomposition fails, naming the representation.
        """
        self._moments = None
        new = [m for m in tile.members if m not in self.fits]
        moments, self._local = self._accumulate(tile, new)
        self.fits.update(self._new_fits(moments, new))
        self._moments = moments

    def _new_fits(self, moments: CrossMoments | MomentSums, new: Sequence[int]) -> dict[int, LinearFit]:
        """The fits of the tile's new members from its moments, with their decompositions (in parallel)."""

        def build(g: int) -> LinearFit:
            fit = LinearFit.from_moments(moments, self._local[g], name=f"representation {self.ids[g]!r}")
            _prepare(fit, self.measures, self.svcca)
            return fit

        with _one_blas_thread_each(self.workers, self.device) as n, ThreadPoolExecutor(n) as pool:
            return dict(zip(new, pool.map(build, new), strict=True))

    def _accumulate(self, tile: Tile, new: Sequence[int]) -> tuple[CrossMoments | MomentSums, dict[int, int]]:
        """One pass over the rows of the tile's members: its cross blocks and the new members' own blocks."""
        local = {g: i for i, g in enumerate(tile.members)}
        if self.inference.ci != "none":
            return self._accumulate_blocks(tile), local
        blocks = {(min(a, b), max(a, b)) for a, b in tile.pairs} | {(m, m) for m in new}
        self.passes += 1
        return self._pass(tile.members, sorted((local[a], local[b]) for a, b in blocks)), local

    def _pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> CrossMoments:
        """One pass over the members' rows into the blocks (indices local to `members`)."""
        moments = CrossMoments([self.sources[g].width for g in members], blocks, device=self.device,
                               precision=self.precision, row_norms=self._row_norms(), diagonal=False)
        stream([self.sources[g] for g in members], moments, self.chunk_rows, self.progress,
               f"pass {self.passes}" if self.passes > 1 else "streaming rows")
        return moments

    def _row_norms(self) -> bool:
        """Whether the pass keeps row norms (`pass_needs_row_norms`)."""
        return pass_needs_row_norms(self.measures, self.inference)

    def _accumulate_blocks(self, tile: Tile) -> MomentSums:
        """One pass keeping every block of the tile (every member's own included) per sentence block."""
        self.passes += 1
        self._blocked = self._blocked_pass(tile.members, tile_blocks(tile))
        return self._blocked.total

    def _blocked_pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> BlockedMoments:
        """One pass over the members' rows into the blocks per sentence block, finished."""
        assert self.bounds is not None
        blocked = BlockedMoments([self.sources[g].width for g in members], blocks, self.bounds,
                                 device=self.device, precision=self.precision, row_norms=self._row_norms())
        stream([self.sources[g] for g in members], blocked, self.chunk_rows,  # type: ignore[arg-type]
               self.progress, f"pass {self.passes}" if self.passes > 1 else "streaming rows")
        blocked.finish()
        return blocked

    def terms(self, a: int, b: int) -> PairTerms:
        """The cross terms of a pair of the open tile.

        Parameters
        ----------
        a, b
            Indices of a pair of the tile last passed to `fit`.

        Returns
        -------
        PairTerms
            The two fits with the pair's centred cross block (and row-norm product for debiased CKA).
        """
        assert self._moments is not None
        m, la, lb = self._moments, self._local[a], self._local[b]
        return PairTerms(self.fits[a], self.fits[b], m.centred(la, lb),
                         m.centred_norm_product(la, lb) if m.row_norms else None)

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """Every measure of each pair of the tile, derived in parallel on the CPU.

        Parameters
        ----------
        tile
            The tile last passed to `fit`; its cross blocks are released once every pair is scored.

        Yields
        ------
        tuple of (int, int, dict)
            ``(a, b, {measure: value})`` per pair, in the tile's order (plus ``"neurons"`` when asked for).

        Raises
        ------
        ValueError
            If a measure is undefined for a pair (e.g. every neuron constant); the message names the pair.
        """

        def one(pair: tuple[int, int]) -> PairScore:
            a, b = pair
            return a, b, derive_pair(self.terms(a, b), self.measures, self.svcca, self.neuron_matches_too,
                                     f"pair ({self.ids[a]!r}, {self.ids[b]!r})")

        with _one_blas_thread_each(self.workers, self.device) as n, ThreadPoolExecutor(n) as pool:
            if not self.inference.enabled:
                yield from pool.map(one, tile.pairs)
            else:
                scored = list(pool.map(one, tile.pairs))
                yield from self._with_uncertainty(tile, scored, pool.map)
        self._moments = None
        self._blocked = None

    def _with_uncertainty(self, tile: Tile, scored: list[PairScore], map_parallel: Any) -> Iterator[PairScore]:
        """The tile's scores with each measure's statistics under ``"uncertainty"``."""
        local = self._local
        bases = {m: registry.parse_spec(m)[0] for m in self.measures}

        def refit(sums: MomentSums, i: int, measures: Sequence[str]) -> LinearFit:
            fit = LinearFit.from_moments(sums, i, name=f"representation {self.ids[tile.members[i]]!r}")
            _prepare(fit, measures, self.svcca)
            return fit

        def derive_pair(fa: LinearFit, fb: LinearFit, sums: MomentSums, i: int, j: int,
                        measures: Sequence[str]) -> Any:
            norms = sums.centred_norm_product(i, j) if sums.row_norms else None
            return derive(PairTerms(fa, fb, sums.centred(i, j), norms), measures, self.svcca)

        fits = {local[m]: self.fits[m] for m in tile.members}
        linear = linear_influence.linearised_measures(self.measures, self.inference.jackknife, self.svcca)
        total = self._moments
        assert total is not None

        def gradients(i: int, j: int) -> Callable[[str], Any]:
            terms = PairTerms(fits[i], fits[j], total.centred(i, j))
            return lambda m: linear_influence.GRADIENTS[bases[m]](terms, registry.get(m).options, self.svcca)

        if linear:
            used = {bases[m] for m in linear}
            list(map_parallel(lambda f: linear_influence.prepare_gradients(f, used), fits.values()))
        stats = LinearStatistics(self._blocked, self.inference, refit, derive_pair, map_parallel, gradients, linear)
        members = [local[m] for m in tile.members]
        pairs = [(local[a], local[b]) for a, b, _ in scored]
        estimates = {(local[a], local[b]): values for a, b, values in scored}
        per_pair = stats.uncertainties(members, pairs, estimates, fits, bases)
        for fit in fits.values():
            fit.drop_decompositions()
        for (a, b, values), pair in zip(scored, pairs, strict=True):
            yield a, b, {**values, "uncertainty": per_pair[pair]}


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

    Notes
    -----
    The moments are held whole already, so tiling would save nothing: `pair_results` drives this family with
    no budget limit (one tile).
    """

    def __init__(self, moments: CrossMoments, ids: Sequence[Hashable], measures: Sequence[str], *,
                 svcca: SvccaOptions, neuron_matches_too: bool = False, workers: int = 1) -> None:
        sources = [RepresentationSource(id=i, width=w, chunks=lambda _: iter(())) for i, w in zip(ids, moments.widths,
                                                                                              strict=True)]
        super().__init__(sources, measures, device=moments.device, precision=moments.precision, svcca=svcca,
                         chunk_rows=1, neuron_matches_too=neuron_matches_too, workers=workers)
        self.moments = moments

    def _accumulate(self, tile: Tile, new: Sequence[int]) -> tuple[CrossMoments, dict[int, int]]:
        """The given moments, indexed as they are (no pass)."""
        return self.moments, {i: i for i in range(self.moments.n_reps)}


def prepare_fit_for(fit: LinearFit, measures: Sequence[str], svcca: SvccaOptions) -> None:
    """Compute the decompositions of a fit that the measures will use, before its pairs share them."""
    _prepare(fit, measures, svcca)


def derive_pair(terms: PairTerms, measures: Sequence[str], svcca: SvccaOptions, neurons: bool,
                label: str) -> dict[str, Any]:
    """Every measure of one pair from its terms (and its neuron matches with `neurons`), errors naming `label`.

    Raises
    ------
    ValueError
        If a measure is undefined for the pair, the message starting with `label`.
    """
    try:
        values: dict[str, Any] = dict(derive(terms, measures, svcca))
        if neurons:
            values["neurons"] = neuron_matches(terms)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc
    return values


def pass_bytes(widths: Sequence[int], blocks: Sequence[tuple[int, int]], chunk_rows: int, copies: int = 1) -> int:
    """Bytes one pass over a tile holds: `copies` of its float64 blocks and one staged float64 chunk of rows.

    What `reprsim.comparison.plan_lines` prints per task and a Ray task declares (`reprsim.ray_compare`).

    Parameters
    ----------
    widths
        The tile's members' widths.
    blocks
        The tile's (a, b) blocks, in member positions.
    chunk_rows
        Rows per chunk.
    copies
        Copies of the blocks held (the sentence blocks one shard overlaps, with statistics).

    Returns
    -------
    int
        The bytes.
    """
    return 8 * copies * sum(widths[a] * widths[b] for a, b in blocks) + 8 * chunk_rows * sum(widths)


def pass_needs_row_norms(measures: Sequence[str], inference: InferenceOptions = NO_INFERENCE) -> bool:
    """Whether a pass keeps the row-norm sums: for debiased/lange CKA, and for linear CKA's analytic null."""
    needs_null = inference.null != "none" and any(registry.parse_spec(m)[0] == "linear_cka" for m in measures)
    return needs_row_norms(measures) or needs_null
