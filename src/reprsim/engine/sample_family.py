"""The n x n measure family of the fit-once protocol (`reprsim.engine.scheduler.PairFamily`).

`SampleFamily`: one n x n measure (RBF CKA, RSA, mutual k-NN) on a row subsample shared by every
representation; each representation is fitted once per tile (`reprsim.measures.sample_fit`) and a pair is
scored from the two fits. With statistics asked for (``inference``), each pair's value also gets an
interval and a null from the same fits (`reprsim.engine.sample_inference` says which method each measure
uses); the replicates and permutations are the same for every pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from reprsim.inference import NO_INFERENCE, InferenceOptions
from reprsim.measures import registry
from reprsim.measures.knn import DEFAULT_K, KnnGraph
from reprsim.measures.sample_fit import (
    GRAM_SPACE_MEASURES,
    SAMPLE_FIT_MEASURES,
    fit_sample,
    fit_sample_deep,
    graph_fit,
    keeps_rows,
    sample_fit_bytes,
    score_sample,
    shared_graph_key,
)

from .knn_inference import RankedNeighbours, ranked_neighbours
from .sample_inference import SentenceGroups, row_permutations, sentence_groups
from .sample_replicates import KERNEL_LAYOUTS, TileInputs, TileStatistics, kind_of
from .scheduler import PairScore, Tile, refit
from .sources import RepresentationSource, read_rows


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
    inference
        The statistics to attach to every value (none by default).
    sentence_of_row
        The corpus sentence of each subsample row (same length as `rows`), the unit of the resampling;
        ``None`` makes every row its own sentence.
    graphs
        k-NN graphs by (representation, `reprsim.measures.sample_fit.shared_graph_key`), shared by the
        families of one comparison on the same rows: a neighbourhood measure takes a representation's graph
        from there when another measure has built it, and puts the graphs it builds there (without
        statistics, whose fits search deeper).

    Attributes
    ----------
    fits
        The fits of the open tile's representations, by index.
    fitted
        How many fits have been made (a representation refitted in a later tile counts again).
    deep
        With statistics on, the k-NN measures' ranked neighbours of the open tile's representations.

    Raises
    ------
    ValueError
        For options that do not apply here, or a `sentence_of_row` of the wrong shape.
    """

    def __init__(self, sources: Sequence[RepresentationSource], measure: str, rows: np.ndarray,
                 chunk_rows: int, inference: InferenceOptions = NO_INFERENCE,
                 sentence_of_row: np.ndarray | None = None,
                 graphs: dict[tuple[int, Any], Any] | None = None) -> None:
        self.sources, self.measure, self.rows, self.chunk_rows = list(sources), measure, rows, chunk_rows
        info = registry.get(measure)
        # Linear and debiased CKA's Gram-space fits have no resampling of their own: with statistics they
        # take the rows path (the measure recomputed per replicate), as measures without a fit do.
        self.base = info.base
        self.fitted_here = info.base in SAMPLE_FIT_MEASURES and not (
            inference.enabled and info.base in GRAM_SPACE_MEASURES)
        self.function = info.function
        self.fit_options = dict(info.options)
        if self.fitted_here:
            takes = {"t", "k", "clip_quantile", "rdm", "compare", "vectors"}
            other = sorted(set(self.fit_options) - takes)
            if other:
                raise ValueError(f"{measure}: option(s) {', '.join(other)} do not apply in an all-pairs comparison, "
                                 "whose rows are chosen once for every measure (subsample_rows, seed)")
        self.fits: dict[int, Any] = {}
        self.deep: dict[int, RankedNeighbours | None] = {}
        self._held: dict[int, tuple[Any, RankedNeighbours | None]] = {}
        self.fitted = 0
        self.inference = inference
        self.graphs = graphs
        self.graph_key = shared_graph_key(self.base, self.fit_options) \
            if self.fitted_here and graphs is not None and not inference.enabled else None
        self.statistics: TileStatistics | None = None
        self.groups: SentenceGroups | None = None
        if inference.enabled:
            self.kind = kind_of(self.base, self.fit_options, self.fitted_here)
            grouped = inference.ci == "jackknife" or (inference.ci == "bootstrap" and self.kind != "kernel")
            self.groups = sentence_groups(sentence_of_row, len(rows), inference.blocks, warn=grouped)
            perms = row_permutations(len(rows), inference.permutations, inference.seed) \
                if inference.null == "permutation" else None
            self.statistics = TileStatistics(measure, self.base, self.kind, inference, self.groups, perms,
                                             info.larger_is_similar, self.function)

    def _depth(self) -> int:
        """Neighbours per row a k-NN fit keeps: k, and one group's rows more for the jackknife."""
        k = int(self.fit_options.get("k", DEFAULT_K))
        if self.statistics is None or self.inference.ci == "none" or self.groups is None:
            return k
        return min(len(self.rows) - 1, k + self.groups.largest_group_rows)

    def fit_bytes(self, item: int) -> int:
        """Bytes of one representation's fit.

        Parameters
        ----------
        item
            Index of the representation.

        Returns
        -------
        int
            The fit's size on the subsample, or the float32 subsample rows for a measure without a fit.
        """
        n = len(self.rows)
        if not self.fitted_here:
            return 4 * n * self.sources[item].width
        width = self.sources[item].width
        base = sample_fit_bytes(self.base, n, k=int(self.fit_options.get("k", DEFAULT_K)), width=width)
        return base + self._statistics_bytes(n, base, width)

    def _statistics_bytes(self, n: int, base: int, width: int) -> int:
        """What a member's statistics hold beyond its fit while a tile is scored."""
        if self.statistics is None:
            return 0
        kind, options = self.statistics.kind, self.inference
        extra = 0
        if kind == "graph":
            extra += 40 * n * self._depth()  # the deep graph and its rank-ordered table
            if keeps_rows(self.base) and options.ci != "none":
                extra += 8 * n * width  # each leave-one-out subgraph's copy of the kept unit rows
        elif kind == "kernel":
            # The intervals and the permutation null each unpack a member's fit into its n x n matrix.
            replicates = options.resamples if options.ci == "bootstrap" else options.blocks
            square = 8 * n * n if KERNEL_LAYOUTS[self.base] != "square" else 0
            extra += (square + 8 * replicates * n if options.ci != "none" else 0)
            extra += (square or 4 * n * n) if options.null == "permutation" else 0
        elif kind == "rsa" and options.ci != "none":
            extra += base  # one re-ranked sub-RDM per member and replicate
        return extra

    def pair_bytes(self, a: int, b: int) -> int:
        """Bytes a pair needs beyond its two fits: none.

        Parameters
        ----------
        a, b
            Indices of the pair's representations.

        Returns
        -------
        int
            ``0``.
        """
        return 0

    def fit(self, tile: Tile) -> None:
        """Fit the tile's representations not fitted yet, reading only the subsample's rows; drop the others.

        Parameters
        ----------
        tile
            The tile to open.
        """
        self._held = refit(self._held, tile, self._fit_one)
        self.fits = {k: held[0] for k, held in self._held.items()}
        self.deep = {k: held[1] for k, held in self._held.items()}

    def fit_member(self, k: int) -> tuple[Any, RankedNeighbours | None]:
        """One representation's fit, made apart from any tile (a remote executor's fit task).

        Parameters
        ----------
        k
            Index of the representation.

        Returns
        -------
        tuple
            What `hold` takes for it.
        """
        return self._fit_one(k)

    def hold(self, fits: Mapping[int, tuple[Any, RankedNeighbours | None]]) -> None:
        """Hold fits made by `fit_member` (elsewhere) as the open tile's, instead of calling `fit`.

        Parameters
        ----------
        fits
            Index -> `fit_member`'s result, for every member of the tile to score.
        """
        self._held = dict(fits)
        self.fits = {k: held[0] for k, held in self._held.items()}
        self.deep = {k: held[1] for k, held in self._held.items()}

    def _fit_one(self, k: int) -> tuple[Any, RankedNeighbours | None]:
        """Fit one representation on the subsample's rows (the rows themselves for a measure without a fit)."""
        shared = self.graphs if self.graph_key is not None else None
        if shared is not None and (k, self.graph_key) in shared:
            rows = read_rows(self.sources[k], self.rows, self.chunk_rows) if keeps_rows(self.base) else None
            return graph_fit(self.base, shared[k, self.graph_key], rows, name=self._name(k), **self.fit_options), None
        data = read_rows(self.sources[k], self.rows, self.chunk_rows)
        self.fitted += 1
        if not self.fitted_here:
            return data, None
        if self.statistics is not None and self.statistics.kind == "graph":
            deep_fit, deep = fit_sample_deep(self.base, data, self._depth(), name=self._name(k), **self.fit_options)
            return deep_fit, ranked_neighbours(deep, deep_fit.k)
        fit = fit_sample(self.base, data, name=self._name(k), **self.fit_options)
        if shared is not None and isinstance(fit.data, KnnGraph):  # the graph alone: 24 n k bytes a layer
            shared[k, self.graph_key] = dataclasses.replace(fit.data, unit_rows=None)
        return fit, None

    def _name(self, k: int) -> str:
        """What a fit's errors call representation k: its id."""
        return str(self.sources[k].id)

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """The measure of each pair of the tile from the two fits.

        Parameters
        ----------
        tile
            The tile last passed to `fit`.

        Yields
        ------
        tuple of (int, int, dict)
            ``(a, b, {measure: value})`` per pair, in the tile's order; with statistics on, also
            ``"uncertainty": {measure: Uncertainty}``.
        """
        values = {(a, b): self._value(a, b) for a, b in tile.pairs}
        if self.statistics is None:
            for (a, b), value in values.items():
                yield a, b, {self.measure: value}
            return
        stats = self.statistics.compute(TileInputs(tile.members, tile.pairs, self.fits, self.deep, values))
        for (a, b), value in values.items():
            yield a, b, {self.measure: value, "uncertainty": {self.measure: stats[a, b]}}

    def _value(self, a: int, b: int) -> float:
        """The measure of one pair from the two fits."""
        fa, fb = self.fits[a], self.fits[b]
        return float(score_sample(fa, fb) if self.fitted_here else self.function(fa, fb))
