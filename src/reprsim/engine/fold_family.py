"""Cross-validated linear predictivity of every pair, from one pass that keeps the moments per fold.

`FoldFamily` is the fit-once family (`reprsim.engine.scheduler.PairFamily`) of
`reprsim.measures.linear_predictivity` in an all-pairs comparison. Its folds are consecutive runs of whole
sentences (`reprsim.measures.predictivity.row_folds`), so one pass over a tile's rows into moments per fold
(`BlockedMoments` with the folds as its blocks) gives every pair's k `FoldStats`; each direction's ridge fits
and held-out scores then come from those, as the one-shot function computes them (`cross_validated`). Memory is
k + 1 copies of the tile's blocks (the k folds and their total), which the scheduler's budget counts.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from reprsim.measures import registry
from reprsim.measures.predictivity import FoldStats, check_score, cross_validated, row_folds
from reprsim.measures.spectral import check_lam

from .block_moments import BlockedMoments, MomentSums
from .checks import Precision
from .linear_fit import Directed
from .scheduler import PairScore, Tile, tile_blocks
from .sources import RepresentationSource, stream

__all__ = ["FOLD_MEASURES", "FoldFamily", "fold_bounds"]

# Measures computed from moments per fold rather than per sentence block or row subsample.
FOLD_MEASURES = frozenset({"linear_predictivity"})


def fold_bounds(sentence_lengths: Sequence[int], folds: int) -> np.ndarray:
    """Row offsets (k + 1,) of the folds of consecutive whole sentences `linear_predictivity` uses.

    Raises
    ------
    ValueError
        If `folds` is below 2 or exceeds the number of sentences (`row_folds`).
    """
    lengths = np.asarray(sentence_lengths, dtype=np.int64)
    fold_of_row = row_folds(int(lengths.sum()), folds, sentence_lengths=lengths)
    return np.concatenate([[0], np.cumsum(np.bincount(fold_of_row, minlength=folds))]).astype(np.int64)


def _fold_stats(sums: MomentSums, x: int, y: int) -> FoldStats:
    """One fold's centred moments of the pair (x predicted, y the regressors)."""
    return FoldStats(sums.n_rows(x), sums.mean(x), sums.mean(y), sums.centred(x, x), sums.centred(y, y),
                     sums.centred(x, y))


class FoldFamily:
    """`linear_predictivity` (with its options) of every pair, both directions, from moments per fold.

    Parameters
    ----------
    sources
        The representations, sharing rows.
    measure
        A `linear_predictivity` spec, e.g. ``"linear_predictivity(lam=1.0,score=r2)"``.
    sentence_lengths
        Rows per sentence: the folds keep sentences whole.
    device, precision, chunk_rows, progress
        As for `reprsim.engine.LinearFamily`.

    Attributes
    ----------
    passes
        Passes over the rows so far (one per tile).

    Raises
    ------
    ValueError
        For an option that does not apply here (``groups``, ``sentence_lengths``: the comparison's sentences
        are the folds' units), a bad ``lam``, ``score`` or ``folds``, or more folds than sentences.
    """

    def __init__(self, sources: Sequence[RepresentationSource], measure: str, sentence_lengths: Sequence[int], *,
                 device: torch.device, precision: Precision = "float64", chunk_rows: int = 8192,
                 progress: bool = False) -> None:
        info = registry.get(measure)
        other = sorted(set(info.options) - {"lam", "score", "folds"})
        if other:
            raise ValueError(f"{measure}: option(s) {', '.join(other)} do not apply in an all-pairs comparison, "
                             "whose folds are runs of the corpus's sentences")
        defaults = {k: p.default for k, p in inspect.signature(registry.get(info.base).function).parameters.items()}
        self.lam = check_lam(info.options.get("lam", defaults["lam"]), measure)
        self.score_kind = check_score(info.options.get("score", defaults["score"]))
        folds = info.options.get("folds", defaults["folds"])
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise ValueError(f"{measure}: folds must be an integer >= 2, got {folds!r}")
        self.sources, self.measure = list(sources), measure
        self.bounds = fold_bounds(sentence_lengths, folds)
        self.device, self.precision, self.chunk_rows, self.progress = device, precision, chunk_rows, progress
        self.folds = folds
        self.passes = 0
        self._blocked: BlockedMoments | None = None
        self._local: dict[int, int] = {}

    def fit_bytes(self, item: int) -> int:
        """Bytes of a representation's own block, once per fold and for the total.

        Parameters
        ----------
        item
            Index of the representation.

        Returns
        -------
        int
            ``8 d^2 (k + 1)``.
        """
        return 8 * self.sources[item].width ** 2 * (self.folds + 1)

    def pair_bytes(self, a: int, b: int) -> int:
        """Bytes of a pair's cross block, once per fold and for the total.

        Parameters
        ----------
        a, b
            Indices of the pair's representations.

        Returns
        -------
        int
            ``8 d_a d_b (k + 1)``.
        """
        return 8 * self.sources[a].width * self.sources[b].width * (self.folds + 1)

    def fit(self, tile: Tile) -> None:
        """One pass over the tile's rows into its blocks per fold.

        Parameters
        ----------
        tile
            The tile to open.

        Raises
        ------
        ValueError
            If a source gives bad rows (naming the representation), or rows that do not match the sentences.
        """
        self._local = {g: i for i, g in enumerate(tile.members)}
        blocked = BlockedMoments([self.sources[g].width for g in tile.members], tile_blocks(tile), self.bounds,
                                 device=self.device, precision=self.precision, row_norms=False)
        self.passes += 1
        stream([self.sources[g] for g in tile.members], blocked, self.chunk_rows,  # type: ignore[arg-type]
               self.progress, f"{self.measure}: pass {self.passes}")
        blocked.finish()
        blocked.release_buffers()
        self._blocked = blocked

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """Both directions of each pair of the tile, from its folds' moments.

        Parameters
        ----------
        tile
            The tile last passed to `fit`.

        Yields
        ------
        tuple of (int, int, dict)
            ``(a, b, {measure: Directed(a from b, b from a)})`` per pair, in the tile's order.

        Raises
        ------
        ValueError
            If a held-out fold has no varying neuron of the predicted layer (naming the pair).
        """
        assert self._blocked is not None
        folds = self._blocked.block_sums
        for a, b in tile.pairs:
            i, j = self._local[a], self._local[b]
            try:
                forward = cross_validated([_fold_stats(f, i, j) for f in folds], self.lam, self.score_kind)
                backward = forward if i == j else cross_validated([_fold_stats(f, j, i) for f in folds], self.lam,
                                                                  self.score_kind)
            except ValueError as exc:
                raise ValueError(f"pair ({self.sources[a].id!r}, {self.sources[b].id!r}): {exc}") from exc
            yield a, b, {self.measure: Directed(forward, backward)}
        self._blocked = None
