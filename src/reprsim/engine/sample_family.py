"""The n x n measure family of the fit-once protocol (`reprsim.engine.scheduler.PairFamily`).

`SampleFamily`: one n x n measure (RBF CKA, RSA, mutual k-NN) on a row subsample shared by every
representation; each representation is fitted once per tile (`reprsim.measures.sample_fit`) and a pair is
scored from the two fits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from reprsim.measures import registry
from reprsim.measures.knn import DEFAULT_K
from reprsim.measures.sample_fit import SAMPLE_FIT_MEASURES, fit_sample, sample_fit_bytes, score_sample

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

    Attributes
    ----------
    fits
        The fits of the open tile's representations, by index.
    fitted
        How many fits have been made (a representation refitted in a later tile counts again).
    """

    def __init__(self, sources: Sequence[RepresentationSource], measure: str, rows: np.ndarray,
                 chunk_rows: int) -> None:
        self.sources, self.measure, self.rows, self.chunk_rows = list(sources), measure, rows, chunk_rows
        info = registry.get(measure)
        self.base, self.fitted_here = info.base, info.base in SAMPLE_FIT_MEASURES
        self.function = info.function
        self.fit_options = dict(info.options)
        if self.fitted_here:
            takes = {"t", "k", "clip_quantile", "rdm", "compare", "vectors"}
            other = sorted(set(self.fit_options) - takes)
            if other:
                raise ValueError(f"{measure}: option(s) {', '.join(other)} do not apply in an all-pairs comparison, "
                                 "whose rows are chosen once for every measure (subsample_rows, seed)")
        self.fits: dict[int, Any] = {}
        self.fitted = 0

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
        if self.fitted_here:
            return sample_fit_bytes(self.base, n, k=int(self.fit_options.get("k", DEFAULT_K)))
        return 4 * n * self.sources[item].width

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
        self.fits = refit(self.fits, tile, self._fit_one)

    def _fit_one(self, k: int) -> Any:
        """Fit one representation on the subsample's rows (the rows themselves for a measure without a fit)."""
        data = read_rows(self.sources[k], self.rows, self.chunk_rows)
        self.fitted += 1
        return fit_sample(self.base, data, **self.fit_options) if self.fitted_here else data

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """The measure of each pair of the tile from the two fits.

        Parameters
        ----------
        tile
            The tile last passed to `fit`.

        Yields
        ------
        tuple of (int, int, dict)
            ``(a, b, {measure: value})`` per pair, in the tile's order.
        """
        for a, b in tile.pairs:
            fa, fb = self.fits[a], self.fits[b]
            value = score_sample(fa, fb) if self.fitted_here else self.function(fa, fb)
            yield a, b, {self.measure: float(value)}
