"""The options of one `extract` call, checked once before any model is loaded, and what of them keys an entry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reprsim.extraction.adapter import WordAdapter
from reprsim.extraction.alignment import check_subword_rule
from reprsim.extraction.models import check_dtype, resolve_device
from reprsim.extraction.rows import WORD_ROWS, check_rows_rule
from reprsim.extraction.transformer import check_long_sentences

# Bump when a change to extraction changes stored values, so old entries are not taken for new ones.
EXTRACTION_VERSION = 3  # 2: attention pooled as two batched products; last window cut in pieces;
# 3: whitespace-only pieces (a bare "▁" or "Ġ") belong to no word

ModelSpec = str | WordAdapter


@dataclass(frozen=True)
class ExtractOptions:
    """Options shared by every model of one extract call (validated once, by check_options).

    Parameters
    ----------
    layers : tuple of int or None
        Sorted distinct layer ids, or None for every layer.
    subword : str
        Subword pooling rule: "last", "first" or "mean".
    attention : bool
        Also store word-level attention maps.
    causal_attention : bool
        Mask the maps to earlier words and renormalise.
    batch_size : int
        Sentences per forward pass.
    device : torch.device
        Where models given by name run.
    dtype : str
        Model and storage precision.
    long_sentences : str
        "error" or "window" for sentences over a model's context.
    trust_remote_code : bool
        Allow models whose code comes with their weights.
    progress : bool
        Show progress bars.
    rows : str, default "word"
        What one stored row is: "word", or a text-level row per sentence ("last-token", "mean",
        "first-token"; see `reprsim.extraction.rows`).
    """

    layers: tuple[int, ...] | None
    subword: str
    attention: bool
    causal_attention: bool
    batch_size: int
    device: torch.device
    dtype: str
    long_sentences: str
    trust_remote_code: bool
    progress: bool
    rows: str = WORD_ROWS

    def key_fields(self) -> dict[str, Any]:
        """Return the options that change stored values (device and batch size change only rounding).

        Returns
        -------
        dict
            JSON-able fields for the entry's fingerprint, with EXTRACTION_VERSION; "rows" only for text-level
            rows, so that word-level entries keep the keys they had before rows existed.
        """
        fields: dict[str, Any] = {
            "layers": "all" if self.layers is None else list(self.layers),
            "attention": self.attention,
            "causal_attention": self.causal_attention,
            "dtype": self.dtype,
            "extraction_version": EXTRACTION_VERSION,
        }
        if self.rows != WORD_ROWS:
            fields["rows"] = self.rows
        return fields


def check_options(
    layers: Sequence[int] | str | None,
    subword: str,
    attention: bool | None,
    causal_attention: bool,
    batch_size: int,
    device: str,
    dtype: str,
    long_sentences: str,
    trust_remote_code: bool,
    progress: bool,
    rows: str = WORD_ROWS,
) -> ExtractOptions:
    """Validate every option of `extract` before any model is loaded.

    Parameters
    ----------
    layers : sequence of int, str or None
        Layer ids, "0,3,6", "all" or None.
    subword, attention, causal_attention, batch_size, device, dtype, long_sentences, trust_remote_code, progress
        As for `reprsim.extract` (attention None: True for word rows, False for text-level rows).
    rows : str, default "word"
        As for `reprsim.extract`.

    Returns
    -------
    ExtractOptions
        The checked options (the device resolved).

    Raises
    ------
    ValueError
        When an option is invalid; the message names it.
    """
    check_subword_rule(subword)
    check_rows_rule(rows)
    check_long_sentences(long_sentences)
    check_dtype(dtype)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if rows != WORD_ROWS and (attention or causal_attention):
        asked = "causal_attention=True (--causal-attention)" if causal_attention else "attention=True"
        raise ValueError(
            f"rows={rows!r} (--rows {rows}) stores one row per sentence and no attention maps, but {asked} was "
            "asked: leave attention unset (or False), or extract word rows (rows='word') for attention"
        )
    if attention is None:
        attention = rows == WORD_ROWS
    if causal_attention and not attention:
        raise ValueError("causal_attention=True (--causal-attention) needs attention=True (drop --no-attention)")
    return ExtractOptions(
        layers=parse_layers(layers),
        subword=subword,
        attention=bool(attention),
        causal_attention=bool(causal_attention),
        batch_size=batch_size,
        device=resolve_device(device),
        dtype=dtype,
        long_sentences=long_sentences,
        trust_remote_code=bool(trust_remote_code),
        progress=bool(progress),
        rows=rows,
    )


def parse_layers(layers: Sequence[int] | str | None) -> tuple[int, ...] | None:
    """Parse the layers option.

    Parameters
    ----------
    layers : sequence of int, str or None
        Layer ids, a comma-separated string such as "0,3,6", "all", or None.

    Returns
    -------
    tuple of int or None
        Sorted distinct non-negative layer ids, or None for every layer.

    Raises
    ------
    ValueError
        When an item is not a non-negative integer, or the list is empty.
    """
    if layers is None or (isinstance(layers, str) and layers.strip().lower() == "all"):
        return None
    items: Sequence[Any] = layers.split(",") if isinstance(layers, str) else layers
    parsed = []
    for item in items:
        try:
            value = int(str(item).strip()) if isinstance(item, str) else item
        except ValueError:
            raise ValueError(f"layers must be 'all' or integers like 0,3,6; got {layers!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"layer {item!r} is not a non-negative integer (0 = embeddings)")
        parsed.append(int(value))
    if not parsed:
        raise ValueError("layers is empty; pass None or 'all' for every layer")
    return tuple(sorted(set(parsed)))


def resolve_layer_ids(layers: tuple[int, ...] | None, n_layers: int, name: str) -> list[int]:
    """Check the requested layers against a model's layer count.

    Parameters
    ----------
    layers : tuple of int or None
        Parsed layer ids (see parse_layers), or None for every layer.
    n_layers : int
        The model's layers (ids 0 .. n_layers - 1).
    name : str
        The model's display name, for the message.

    Returns
    -------
    list of int
        The layer ids to extract.

    Raises
    ------
    ValueError
        When a requested layer does not exist in the model.
    """
    if layers is None:
        return list(range(n_layers))
    bad = [layer for layer in layers if layer >= n_layers]
    if bad:
        raise ValueError(f"layer {bad[0]} does not exist in {name}: it has layers 0..{n_layers - 1}")
    return list(layers)
