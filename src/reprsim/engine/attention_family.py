"""The attention measure family of the fit-once protocol (`reprsim.engine.scheduler.PairFamily`).

`AttentionFamily`: one attention measure on a sentence subsample shared by every layer; each layer's maps
are fitted once per tile (`reprsim.measures.attention.fit_attention`) and a pair of layers is scored from the
two fits.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import numpy as np

from reprsim.arrays import ArrayLike
from reprsim.measures import registry
from reprsim.measures.attention import MEASURE_KINDS, AttentionFit, attention_fit_bytes, fit_attention, score_attention

from .scheduler import PairScore, Tile, refit
from .sources import AttentionSource


class AttentionFamily:
    """One attention measure on a shared sentence subsample.

    Parameters
    ----------
    sources
        The attention layers.
    measure
        ``"attention_js"``, ``"attention_pearson"`` or ``"attention_cka"``.
    sentences
        Sorted indices of the sentences compared, shared by every layer.
    lengths
        Words of each chosen sentence (for the memory plan).

    Attributes
    ----------
    fits
        The `AttentionFit` of the open tile's layers, by index.
    """

    def __init__(self, sources: Sequence[AttentionSource], measure: str, sentences: np.ndarray,
                 lengths: Sequence[int]) -> None:
        self.sources, self.measure = list(sources), measure
        self.kind = MEASURE_KINDS[registry.get(measure).base]
        self.sentences, self.lengths = sentences, list(lengths)
        self.fits: dict[int, AttentionFit] = {}

    def fit_bytes(self, item: int) -> int:
        """Bytes of one layer's fit.

        Parameters
        ----------
        item
            Index of the layer.

        Returns
        -------
        int
            The fit's size for the layer's heads and the chosen sentences' lengths.
        """
        return attention_fit_bytes(self.sources[item].heads, self.lengths, self.kind)

    def pair_bytes(self, a: int, b: int) -> int:
        """Bytes a pair needs beyond its two fits: none.

        Parameters
        ----------
        a, b
            Indices of the pair's layers.

        Returns
        -------
        int
            ``0``.
        """
        return 0

    def _maps(self, item: int) -> list[ArrayLike]:
        """The layer's maps of the chosen sentences."""
        wanted = set(self.sentences.tolist())
        return [m for s, m in enumerate(self.sources[item].maps()) if s in wanted]

    def fit(self, tile: Tile) -> None:
        """Fit the tile's layers not fitted yet; drop fits the tile does not use.

        Parameters
        ----------
        tile
            The tile to open.

        Raises
        ------
        ValueError
            If a layer's maps are malformed (the message names the layer and the sentence).
        """
        self.fits = refit(self.fits, tile,
                          lambda k: fit_attention(self._maps(k), self.kind, name=_label(self.sources[k].id)))

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
            yield a, b, {self.measure: score_attention(self.fits[a], self.fits[b])}


def _label(id: Hashable) -> str:
    """How fits name a layer: its `LayerId.label` when it has one, else ``str(id)``."""
    label = getattr(id, "label", None)
    return label() if callable(label) else str(id)
