"""The attention measure family of the fit-once protocol (`reprsim.engine.scheduler.PairFamily`).

`AttentionFamily`: one attention measure on a sentence subsample shared by every layer; each layer's maps
are fitted once per tile (`reprsim.measures.attention.fit_attention`) and a pair of layers is scored from the
two fits. With statistics asked for (``inference``), each value also gets an interval from resampling the
sentences (`reprsim.engine.attention_inference`), the same draws for every pair of layers.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence

import numpy as np

from reprsim.arrays import ArrayLike
from reprsim.inference import NO_INFERENCE, InferenceOptions
from reprsim.measures import registry
from reprsim.measures.attention import MEASURE_KINDS, AttentionFit, attention_fit_bytes, fit_attention, score_attention

from .attention_inference import AttentionReplicates, attention_uncertainty, replicate_weights
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
        Words of each chosen sentence (for the memory plan and the resampling).
    inference
        The statistics to attach to every value (none by default).

    Attributes
    ----------
    fits
        The `AttentionFit` of the open tile's layers, by index.
    """

    def __init__(self, sources: Sequence[AttentionSource], measure: str, sentences: np.ndarray,
                 lengths: Sequence[int], inference: InferenceOptions = NO_INFERENCE) -> None:
        self.sources, self.measure = list(sources), measure
        self.kind = MEASURE_KINDS[registry.get(measure).base]
        self.sentences, self.lengths = sentences, list(lengths)
        self.fits: dict[int, AttentionFit] = {}
        self.inference = inference
        self.replicates: AttentionReplicates | None = None
        self._no_interval = ""
        if inference.ci != "none":
            weights, self._no_interval = replicate_weights(inference, self.lengths)
            if weights is not None:
                self.replicates = AttentionReplicates(self.kind, weights, self.lengths)

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
        self.fits = refit(self.fits, tile, self.fit_member)

    def fit_member(self, k: int) -> AttentionFit:
        """One layer's fit, made apart from any tile (a remote executor's fit task).

        Parameters
        ----------
        k
            Index of the layer.

        Returns
        -------
        AttentionFit
            What `hold` takes for it.

        Raises
        ------
        ValueError
            If the layer's maps are malformed (naming the layer and the sentence).
        """
        return fit_attention(self._maps(k), self.kind, name=_label(self.sources[k].id))

    def hold(self, fits: Mapping[int, AttentionFit]) -> None:
        """Hold fits made by `fit_member` (elsewhere) as the open tile's, instead of calling `fit`.

        Parameters
        ----------
        fits
            Index -> fit, for every member of the tile to score.
        """
        self.fits = dict(fits)

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
            ``"uncertainty": {measure: Uncertainty}``. The Jensen-Shannon value then comes from the same
            per-sentence sums as its replicates (equal to the one-pass value up to rounding).
        """
        for a, b in tile.pairs:
            fa, fb = self.fits[a], self.fits[b]
            if not self.inference.enabled:
                yield a, b, {self.measure: score_attention(fa, fb)}
                continue
            replicates = None
            if self.kind == "js" and self.replicates is not None:
                if fa.kind != fb.kind or fa.lengths != fb.lengths:
                    score_attention(fa, fb)  # raises the one-pass error, naming the sentence
                replicates, value = self.replicates.values(fa, fb, a, b)
            else:
                value = score_attention(fa, fb)
                if self.replicates is not None:
                    replicates = self.replicates.values(fa, fb, a, b)[0]
            u = attention_uncertainty(self.inference, value, replicates, self._no_interval, self.measure)
            yield a, b, {self.measure: value, "uncertainty": {self.measure: u}}


def _label(id: Hashable) -> str:
    """How fits name a layer: its `LayerId.label` when it has one, else ``str(id)``."""
    label = getattr(id, "label", None)
    return label() if callable(label) else str(id)
