"""The replicates and null values of one tile of n x n pairs, by kind of fit (see `reprsim.engine.sample_inference`).

- ``"kernel"``: RBF CKA, distance correlation, RSA with ``compare="cosine_cov"`` (centred matrices);
- ``"rsa"``: RSA's other comparisons (RDM vectors over the pairs of rows);
- ``"graph"``: the k-NN measures (graphs);
- ``"rows"``: measures without a per-representation fit, recomputed from the rows (brute force).

Work shared by a tile's pairs (a member's replicate terms, a replicate's subgraph or re-ranked RDM, a
permutation's re-indexing) is done once per member and replicate, then every pair is scored from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reprsim import inference
from reprsim.inference import InferenceOptions, Uncertainty
from reprsim.measures.knn import KnnGraph
from reprsim.measures.sample_fit import SampleFit, score_sample

from .kernel_inference import (
    KernelReplicates,
    SortedRdm,
    UpperPairs,
    analytic_kernel_null,
    analytic_rsa_null,
    compare_sub_vectors,
    null_square,
    permuted_dots,
    rsa_sub_vector,
    square_of,
)
from .knn_inference import (
    TABLE_MEASURES,
    RankedNeighbours,
    analytic_null_mean,
    permuted_graph_scores,
    permuted_row_scores,
    ranked_neighbours,
    subgraph,
)
from .sample_inference import (
    SentenceGroups,
    analytic_uncertainty,
    bootstrap_uncertainty,
    jackknife_uncertainty,
    merge,
    not_available,
    permutation_uncertainty,
)

Pair = tuple[int, int]
KERNEL_LAYOUTS = {"rbf_cka": "packed", "distance_correlation": "packed", "rsa": "packed"}


def kind_of(base: str, fit_options: Mapping[str, Any], fitted_here: bool) -> str:
    """Which resampling a measure takes: ``"kernel"``, ``"rsa"``, ``"graph"`` or ``"rows"``."""
    if not fitted_here:
        return "rows"
    if base in ("rbf_cka", "distance_correlation"):
        return "kernel"
    if base == "rsa":
        return "kernel" if fit_options.get("compare", "spearman") == "cosine_cov" else "rsa"
    return "graph"


@dataclass
class TileInputs:
    """What one tile's statistics are computed from.

    Parameters
    ----------
    members
        The tile's representations, in order.
    pairs
        The tile's pairs.
    fits
        Each member's fit (a `SampleFit`, or its rows for a ``"rows"`` measure).
    deep
        The k-NN measures' ranked neighbours per member (deep enough for the jackknife when it is asked for).
    estimates
        Each pair's value on every row.
    """

    members: Sequence[int]
    pairs: Sequence[Pair]
    fits: Mapping[int, Any]
    deep: Mapping[int, RankedNeighbours | None]
    estimates: Mapping[Pair, float]


class TileStatistics:
    """The statistics of every pair of a tile for one n x n measure.

    Parameters
    ----------
    measure, base
        The registry name and its base measure.
    kind
        From `kind_of`.
    options
        The statistics asked for.
    groups
        The subsample's sentences and jackknife groups.
    permutations
        (K, n) the study's row permutations (for ``null="permutation"``).
    larger_is_similar
        False for a distance.
    function
        The one-shot measure (for ``"rows"`` measures).
    """

    def __init__(self, measure: str, base: str, kind: str, options: InferenceOptions, groups: SentenceGroups,
                 permutations: torch.Tensor | None, larger_is_similar: bool,
                 function: Callable[..., float]) -> None:
        self.measure, self.base, self.kind, self.options = measure, base, kind, options
        self.groups, self.permutations = groups, permutations
        self.larger_is_similar, self.function = larger_is_similar, function
        self.sentence_counts = (inference.bootstrap_counts(groups.n_sentences, options.resamples, options.seed)
                                if options.ci == "bootstrap" and kind == "kernel" else None)
        self._pairs: UpperPairs | None = None
        self.group_counts = (inference.bootstrap_counts(groups.n_groups, options.resamples, options.seed)
                             if options.ci == "bootstrap" and kind != "kernel" and groups.n_groups else None)

    # --- the tile ------------------------------------------------------------------------------------------
    def compute(self, tile: TileInputs) -> dict[Pair, Uncertainty]:
        """{pair: Uncertainty} for every pair of the tile."""
        intervals = self._intervals(tile) if self.options.ci != "none" else {}
        nulls = self._nulls(tile) if self.options.null != "none" else {}
        return {p: merge([intervals.get(p, Uncertainty()), nulls.get(p, Uncertainty())]) for p in tile.pairs}

    def _intervals(self, tile: TileInputs) -> dict[Pair, Uncertainty]:
        if self.kind == "kernel" and self.options.ci == "bootstrap":
            if self.groups.n_sentences < 2:
                missing = not_available(f"{self.measure}: the row subsample has fewer than 2 sentences")
                return dict.fromkeys(tile.pairs, missing)
            assert self.sentence_counts is not None
            reps = self._kernel_replicates(tile, self.sentence_counts)
            return {p: bootstrap_uncertainty(reps[p], self.options.alpha) for p in tile.pairs}
        if self.groups.n_groups == 0:
            missing = not_available(f"{self.measure}: the row subsample has too few sentences for a jackknife")
            return dict.fromkeys(tile.pairs, missing)
        if self.kind == "kernel":
            loo = self._kernel_replicates(tile, self.groups.jackknife_weights())
        else:
            loo = self._leave_one_out(tile)
        return {p: jackknife_uncertainty(tile.estimates[p], loo[p], self.options, self.group_counts)
                for p in tile.pairs}

    def _nulls(self, tile: TileInputs) -> dict[Pair, Uncertainty]:
        if self.options.null == "analytic":
            return {p: self._analytic(tile, p) for p in tile.pairs}
        if self.kind == "rsa" and tile.fits[tile.members[0]].options and \
                dict(tile.fits[tile.members[0]].options).get("compare") == "tau_a":
            return {p: Uncertainty(null_method="not computed: Kendall's tau-a would need K counts of all pairs of "
                                   "dissimilarities; use compare='spearman'") for p in tile.pairs}
        null = self._null_values(tile)
        return {p: permutation_uncertainty(tile.estimates[p], null[p], self.options.alpha, self.larger_is_similar)
                for p in tile.pairs}

    # --- intervals ----------------------------------------------------------------------------------------
    def _kernel_replicates(self, tile: TileInputs, counts: np.ndarray) -> dict[Pair, np.ndarray]:
        engine = KernelReplicates(counts, self.groups.sentence)
        layout = KERNEL_LAYOUTS[self.base]
        terms = {m: engine.member(square_of(layout, tile.fits[m].data, tile.fits[m].n)) for m in tile.members}
        root = self.base == "distance_correlation"
        return {(a, b): engine.ratio(terms[a], terms[b], root) for a, b in tile.pairs}

    def _leave_one_out(self, tile: TileInputs) -> dict[Pair, np.ndarray]:
        masks = self.groups.keep_masks()
        loo = {p: np.full(len(masks), np.nan) for p in tile.pairs}
        ordered: dict[int, SortedRdm] = {}
        if self.kind == "rsa" and dict(tile.fits[tile.members[0]].options).get("compare") == "spearman":
            ordered = {m: SortedRdm(tile.fits[m].data.cpu().numpy()) for m in tile.members}
        if self.kind == "rsa" and self._pairs is None:
            self._pairs = UpperPairs(len(self.groups.sentence))
        for g, keep in enumerate(masks):
            pairs = self._pairs.kept(keep.cpu().numpy()) if self._pairs is not None else None
            held = {m: self._replicate_fit(tile, m, keep, pairs, ordered.get(m)) for m in tile.members}
            for a, b in tile.pairs:
                if held[a] is not None and held[b] is not None:
                    loo[a, b][g] = self._score_replicate(held[a], held[b], tile.fits[a])
        return loo

    def _replicate_fit(self, tile: TileInputs, m: int, keep: torch.Tensor, pairs: np.ndarray | None,
                       ordered: SortedRdm | None) -> Any:
        """One member's fit on the kept rows (None where the measure is undefined on them)."""
        fit = tile.fits[m]
        try:
            if self.kind == "rows":
                return fit[keep.cpu().numpy()] if isinstance(fit, np.ndarray) else fit[keep]
            if self.kind == "rsa":
                assert pairs is not None
                return rsa_sub_vector(fit.data.cpu().numpy(), pairs, str(dict(fit.options)["compare"]), ordered)
            neighbours = tile.deep[m]
            assert neighbours is not None
            return SampleFit(fit.measure, subgraph(neighbours, keep), fit.options, int(keep.sum()))
        except ValueError:
            return None

    def _score_replicate(self, a: Any, b: Any, fit: Any) -> float:
        try:
            if self.kind == "rows":
                return float(self.function(a, b))
            if self.kind == "rsa":
                return compare_sub_vectors(a, b, str(dict(fit.options)["compare"]))
            return score_sample(a, b)
        except ValueError:
            return float("nan")

    # --- nulls --------------------------------------------------------------------------------------------
    def _analytic(self, tile: TileInputs, pair: Pair) -> Uncertainty:
        a, b = tile.fits[pair[0]], tile.fits[pair[1]]
        if self.kind == "kernel":
            if self.base == "distance_correlation":
                return analytic_uncertainty(None, "distance correlation")
            kernel_mean = analytic_kernel_null(KERNEL_LAYOUTS[self.base], a.data, b.data, a.n)
            return analytic_uncertainty(kernel_mean, "tr(K) tr(L) / (n - 1) of the centred matrices")
        if self.kind == "rsa":
            compare = str(dict(a.options)["compare"])
            return analytic_uncertainty(analytic_rsa_null(compare, a.data, b.data), f"RSA, {compare}")
        if self.kind == "graph":
            mean = analytic_null_mean(self.base, a.data)
            what = {"mutual_knn": "chance level k / (n - 1)", "jaccard_knn": "hypergeometric overlap",
                    "cycle_knn": "hypergeometric, from X's in-degrees"}.get(self.base, self.base)
            return analytic_uncertainty(mean, what)
        return analytic_uncertainty(None, self.measure)

    def _null_values(self, tile: TileInputs) -> dict[Pair, np.ndarray]:
        perms = self.permutations
        assert perms is not None
        if self.kind in ("kernel", "rsa"):
            return self._vector_nulls(tile, perms)
        if self.kind == "graph":
            return {p: self._graph_null(tile, p, perms) for p in tile.pairs}
        out = {}
        for a, b in tile.pairs:
            fa, fb = tile.fits[a], tile.fits[b]
            values = []
            for p in perms:
                try:
                    values.append(float(self.function(fa, fb[p.cpu().numpy()] if isinstance(fb, np.ndarray)
                                                      else fb[p])))
                except ValueError:
                    values.append(float("nan"))
            out[a, b] = np.array(values)
        return out

    def _vector_nulls(self, tile: TileInputs, perms: torch.Tensor) -> dict[Pair, np.ndarray]:
        layout = "upper" if self.kind == "rsa" else KERNEL_LAYOUTS[self.base]
        left = sorted({a for a, _ in tile.pairs})
        right = sorted({b for _, b in tile.pairs})
        squares = {m: null_square(layout, tile.fits[m].data, tile.fits[m].n) for m in {*left, *right}}
        dots = permuted_dots([squares[m] for m in left], [squares[m] for m in right], perms.cpu().numpy())
        row, column = {m: i for i, m in enumerate(left)}, {m: i for i, m in enumerate(right)}
        out = {(a, b): dots[:, row[a], column[b]] for a, b in tile.pairs}
        if self.base == "distance_correlation":
            out = {p: np.sqrt(np.clip(v, 0.0, None)) for p, v in out.items()}
        return out

    def _graph_null(self, tile: TileInputs, pair: Pair, perms: torch.Tensor) -> np.ndarray:
        fa, fb = tile.fits[pair[0]], tile.fits[pair[1]]
        if self.base in TABLE_MEASURES:
            neighbours = tile.deep.get(pair[1]) or ranked_neighbours(fb.data, fb.k)
            return permuted_row_scores(self.base, fa.data, neighbours, perms)

        def score(a: KnnGraph, b: KnnGraph) -> float:
            return score_sample(SampleFit(fa.measure, a, fa.options, fa.n), SampleFit(fb.measure, b, fb.options, fb.n))

        return permuted_graph_scores(score, fa.data, fb.data, perms)
