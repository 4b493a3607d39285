"""Placing a batch's rows and word-level maps into the window's buffers, in corpus order, as the store keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from reprsim.extraction.adapter import to_numpy
from reprsim.extraction.alignment import causal_mask_rows
from reprsim.extraction.checks import check_distribution_rows
from reprsim.extraction.plan import Batch, ModelRun, WindowLayout


def place_rows(rows: list[np.ndarray], hidden: list[np.ndarray], window: WindowLayout, batch: Batch) -> int:
    """Copy a batch's word vectors into the window's buffers, each sentence at its corpus-order rows.

    One slice copy per sentence and layer (faster than a fancy index).

    Parameters
    ----------
    rows : list of numpy.ndarray
        Per layer, the batch's words in batch order x width (see checks.check_hidden).
    hidden : list of numpy.ndarray
        Per layer, the window's (words, width) buffer.
    window : WindowLayout
        The window.
    batch : Batch
        The batch.

    Returns
    -------
    int
        Words placed.
    """
    position = 0
    for i, n in zip(batch.indices, batch.lengths, strict=True):
        for window_rows, batch_rows in zip(hidden, rows, strict=True):
            window_rows[window.offsets[i] : window.offsets[i + 1]] = batch_rows[position : position + n]
        position += n
    return position


def place_attention(
    attention: Sequence[Sequence[Any]] | None,
    flat: list[np.ndarray | None],
    window: WindowLayout,
    batch: Batch,
    run: ModelRun,
) -> None:
    """Check a batch's word-level maps and copy each into its place in the window's flat array of its layer.

    Sentence i of the window goes at heads x squares[i]. The copy also detaches the maps from the adapter,
    which may reuse its output buffers while the window is written on another thread. The causal mask is
    applied after the copy when the run asks for it.

    Parameters
    ----------
    attention : sequence or None
        AdapterOutput.attention: per requested layer, the batch's (heads, n, n) maps in batch order.
    flat : list of numpy.ndarray or None
        Per layer, the window's flat buffer (None for layers without heads).
    window : WindowLayout
        The window.
    batch : Batch
        The batch.
    run : ModelRun
        The model's run: its layers, heads, causal mask and whether rows are checked as distributions
        (TransformerAdapter's maps are renormalised and checked as they are pooled, so it skips that).

    Raises
    ------
    ValueError
        When a layer or a map is missing or of the wrong shape, values are not real numbers, or a row is not
        a distribution; the message names the sentence and the layer.
    """
    heads = run.heads or ()
    if attention is None or len(attention) != len(run.layer_ids):
        got = "no attention" if attention is None else f"attention for {len(attention)} layers"
        raise ValueError(f"{batch.what}: adapter returned {got}, expected {len(run.layer_ids)} (one entry per layer)")
    for k, (layer, n_heads) in enumerate(zip(run.layer_ids, heads, strict=True)):
        target = flat[k]
        if n_heads == 0 or target is None:
            continue
        if len(attention[k]) != len(batch.indices):
            raise ValueError(
                f"{batch.what}, layer {layer}: {len(attention[k])} attention maps for {len(batch.indices)} sentences"
            )
        for j, i in enumerate(batch.indices):
            where = f"{batch.what}: sentence {batch.sentence_ids[j]}, layer {layer}"
            n = window.lengths[i]
            place = target[n_heads * window.squares[i] : n_heads * window.squares[i + 1]].reshape(n_heads, n, n)
            _place_map(attention[k][j], place, where)
            if run.check_rows:
                check_distribution_rows(place, where)
            if run.causal_attention:
                _mask_causally(place, where)


def _place_map(block: Any, place: np.ndarray, where: str) -> None:
    """Copy one sentence's (heads, n, n) map into its place, checking its shape and values."""
    shape = tuple(block.shape)
    if shape != place.shape:
        expected = ", ".join(str(d) for d in place.shape)
        raise ValueError(f"{where}: attention map of shape {shape}, expected ({expected})")
    try:
        place[...] = to_numpy(block)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _mask_causally(maps: np.ndarray, where: str) -> None:
    """Mask one sentence's maps, in place, to earlier words and renormalise them."""
    try:
        maps[...] = causal_mask_rows(torch.from_numpy(maps)).numpy()
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
