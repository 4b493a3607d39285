"""Checks of what an adapter gives against the corpus, each failing with a message naming model and sentence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from reprsim.extraction.adapter import SentenceError, WordAdapter, stack_rows
from reprsim.extraction.plan import Batch, ModelRun

# What maps computed in bfloat16 meet: each value is rounded by up to 2^-8 of itself.
ROW_SUM_TOLERANCE = 1e-2


def validate_sentences(adapter: WordAdapter, sentences: Sequence[Sequence[str]], name: str) -> None:
    """Fail in seconds, before any model run or store write, where the adapter can check sentences up front.

    TransformerAdapter.validate tokenizes them (words with no token, sentences over the context); an adapter
    without a ``validate`` method is not checked here.

    Parameters
    ----------
    adapter : WordAdapter
        The loaded model.
    sentences : sequence of sequence of str
        The corpus's sentences.
    name : str
        The model's display name.

    Raises
    ------
    ValueError
        When the adapter refuses a sentence; the message names the model and the sentence's corpus index.
    """
    validate = getattr(adapter, "validate", None)
    if callable(validate):
        try:
            validate(sentences)
        except SentenceError as err:
            raise ValueError(f"{name}, sentence {err.row}: {err.reason}") from None


def check_layer_counts(adapter: WordAdapter, name: str) -> None:
    """Check that an adapter gives one head count per layer.

    Parameters
    ----------
    adapter : WordAdapter
        The loaded model.
    name : str
        Its display name.

    Raises
    ------
    ValueError
        When attention_heads and layer_widths have different lengths.
    """
    if len(adapter.attention_heads) != len(adapter.layer_widths):
        raise ValueError(
            f"{name}: attention_heads has {len(adapter.attention_heads)} entries and layer_widths "
            f"{len(adapter.layer_widths)}; give one head count per layer (0 where a layer has no attention)"
        )


def check_output(output: object, batch: Batch) -> None:
    """Check that an adapter's encode returned an AdapterOutput (or something with its fields).

    Parameters
    ----------
    output : object
        What encode returned.
    batch : Batch
        The batch it was given.

    Raises
    ------
    ValueError
        When it has no ``hidden`` field.
    """
    if not hasattr(output, "hidden"):
        raise ValueError(
            f"{batch.what}: encode returned {type(output).__name__}; it must return AdapterOutput(hidden=..., "
            "attention=...)"
        )


def check_hidden(hidden: Sequence[Any], batch: Batch, run: ModelRun) -> list[np.ndarray]:
    """Turn an adapter's hidden states into (words in batch, width) arrays, checked against the corpus.

    Parameters
    ----------
    hidden : sequence
        AdapterOutput.hidden: per requested layer, one array of the batch's words, or per-sentence arrays.
    batch : Batch
        The batch.
    run : ModelRun
        The model's run (its layers and widths).

    Returns
    -------
    list of numpy.ndarray
        Per layer, the batch's words (in batch order) x the layer's width, float32.

    Raises
    ------
    ValueError
        When a layer is missing, a sentence has another number of words, or a width is wrong; the message
        names the layer and the sentence.
    """
    if len(hidden) != len(run.layer_ids):
        raise ValueError(f"{batch.what}: adapter returned {len(hidden)} layers for {len(run.layer_ids)} requested")
    rows = []
    for layer, width, output in zip(run.layer_ids, run.widths, hidden, strict=True):
        if not isinstance(output, np.ndarray | torch.Tensor):
            _check_sentence_arrays(output, batch, layer, width)
        try:
            array = stack_rows(output)
        except ValueError as err:
            raise ValueError(f"{batch.what}, layer {layer}: {err}") from None
        words = sum(batch.lengths)
        if array.shape != (words, width):
            raise ValueError(
                f"{batch.what}, layer {layer}: adapter returned shape {array.shape}, but the corpus has "
                f"{words} words in these sentences and the layer is {width} wide"
            )
        rows.append(array)
    return rows


def _check_sentence_arrays(output: Sequence[Any], batch: Batch, layer: int, width: int) -> None:
    """Each per-sentence array is its own sentence's (words, width): catches sentences returned reordered."""
    if len(output) != len(batch.lengths):
        raise ValueError(
            f"{batch.what}, layer {layer}: {len(output)} per-sentence arrays for {len(batch.lengths)} sentences"
        )
    for sentence, part, n in zip(batch.sentence_ids, output, batch.lengths, strict=True):
        if tuple(np.shape(part)) != (n, width):
            raise ValueError(
                f"{batch.what}: sentence {sentence}, layer {layer}: adapter returned shape "
                f"{tuple(np.shape(part))}, expected ({n}, {width}) (its words x the layer's width; "
                "sentences in the order given)"
            )


def check_distribution_rows(maps: np.ndarray, where: str) -> None:
    """Check that every row of word-level maps is a distribution: non-negative, summing to 1.

    Parameters
    ----------
    maps : numpy.ndarray
        (heads, n, n) maps of one sentence.
    where : str
        Names the model, sentence and layer in the message.

    Raises
    ------
    ValueError
        When a row has a negative or NaN value, or sums to more than ROW_SUM_TOLERANCE away from 1; the
        message names the head and the word.
    """
    sums = maps.sum(axis=-1)
    fine = (np.abs(sums - 1.0) <= ROW_SUM_TOLERANCE) & (maps >= 0.0).all(axis=-1)  # False for NaN too
    if not fine.all():
        bad = np.argwhere(~fine)[0]
        raise ValueError(
            f"{where}: attention row (head {bad[0]}, word {bad[1]}) sums to {float(sums[tuple(bad)]):.6g} with "
            f"smallest value {float(maps[tuple(bad)].min()):.6g}; each row must be a distribution over the "
            "sentence's words (non-negative, summing to 1)"
        )
