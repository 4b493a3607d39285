"""How one model's extraction is cut up: windows of sentences on a fixed grid, batches of similar length.

The corpus is processed in windows of contiguous sentences (WINDOW_SENTENCES, on a fixed grid from sentence
0), each written with one write_sentences call. Within a window, sentences are sorted by length into batches
so similar lengths share padding. Both depend on the corpus only, so a resumed run forms exactly the windows
and batches an uninterrupted one would have.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from reprsim.extraction.adapter import WordAdapter
from reprsim.extraction.rows import WORD_ROWS

WINDOW_SENTENCES = 256
TAIL_WINDOW_SENTENCES = 64  # the corpus's last window is written in pieces of this size


@dataclass(frozen=True)
class ModelRun:
    """One model's extraction: the adapter, what it is asked for, and how its output is checked.

    Parameters
    ----------
    adapter : WordAdapter
        The loaded model.
    name : str
        Its display name, in messages and the progress bar.
    layer_ids : tuple of int
        The layers extracted, in order.
    widths : tuple of int
        Width of each of those layers.
    heads : tuple of int or None
        Attention heads of each layer (0 where it has none), or None when no attention is stored.
    batch_size : int
        Sentences per forward pass.
    causal_attention : bool
        Mask the word-level maps to earlier words and renormalise them.
    check_rows : bool
        Check that every attention row is a distribution (adapters that do not check it themselves).
    progress : bool
        Show a words/s progress bar.
    rows : str, default "word"
        What one stored row is: a word, or one text-level row per sentence (see `reprsim.extraction.rows`).
    whole_windows : bool, default False
        Write the corpus's last window whole, not in pieces (`window_bounds`' tail): for a corpus shard that
        is not the corpus's last (`reprsim.extraction.corpus_shards`).
    """

    adapter: WordAdapter
    name: str
    layer_ids: tuple[int, ...]
    widths: tuple[int, ...]
    heads: tuple[int, ...] | None
    batch_size: int
    causal_attention: bool
    check_rows: bool
    progress: bool
    rows: str = WORD_ROWS
    whole_windows: bool = False


@dataclass(frozen=True)
class WindowLayout:
    """Where each sentence of a window goes in the window's buffers.

    Parameters
    ----------
    start : int
        Corpus index of the window's first sentence.
    lengths : list of int
        Stored rows of each sentence of the window: its words, or 1 for text-level rows.
    offsets : list of int
        Row where sentence i's rows start in the window's hidden buffers (length + 1 values).
    squares : list of int
        Running sums of n^2: sentence i's maps start at heads x squares[i] in a layer's flat attention buffer.
    """

    start: int
    lengths: list[int]
    offsets: list[int]
    squares: list[int]

    @classmethod
    def of(cls, start: int, lengths: Sequence[int]) -> WindowLayout:
        """Lay out a window of sentences.

        Parameters
        ----------
        start : int
            Corpus index of its first sentence.
        lengths : sequence of int
            Stored rows of each of its sentences.

        Returns
        -------
        WindowLayout
            The window's layout.
        """
        return cls(
            start=start,
            lengths=list(lengths),
            offsets=[0, *itertools.accumulate(lengths)],
            squares=[0, *itertools.accumulate(n * n for n in lengths)],
        )


@dataclass(frozen=True)
class Batch:
    """The sentences of one forward pass.

    Parameters
    ----------
    indices : list of int
        Positions of its sentences in the window, in the order they are passed to the model.
    sentence_ids : list of int
        Their corpus indices, for messages.
    lengths : list of int
        Their stored rows (their words, or 1 each for text-level rows).
    what : str
        How messages name the batch: the model and its first sentences.
    """

    indices: list[int]
    sentence_ids: list[int]
    lengths: list[int]
    what: str

    @classmethod
    def of(cls, indices: list[int], window: WindowLayout, name: str) -> Batch:
        """Describe a batch of a window's sentences.

        Parameters
        ----------
        indices : list of int
            Positions of its sentences in the window.
        window : WindowLayout
            The window.
        name : str
            The model's display name.

        Returns
        -------
        Batch
            The batch.
        """
        sentence_ids = [window.start + i for i in indices]
        return cls(
            indices=indices,
            sentence_ids=sentence_ids,
            lengths=[window.lengths[i] for i in indices],
            what=f"{name}, sentences {sentence_ids[:5]}",
        )


def window_bounds(
    done: int, n_sentences: int, size: int = WINDOW_SENTENCES, tail: int = TAIL_WINDOW_SENTENCES
) -> list[tuple[int, int]]:
    """Cut sentences done..n_sentences into [start, stop) windows on a fixed grid.

    The grid is 0, size, 2*size, ... except in the corpus's last `size` window, which is cut at multiples of
    `tail`: nothing overlaps the write of the very last window, so it is kept small. The grid depends on
    n_sentences only, so a resumed run forms the same windows and batches.

    Parameters
    ----------
    done : int
        Sentences already stored (a window boundary of an earlier run, or 0).
    n_sentences : int
        Sentences of the corpus.
    size : int, default WINDOW_SENTENCES
        Sentences per window.
    tail : int, default TAIL_WINDOW_SENTENCES
        Sentences per piece of the last window; a divisor of `size`.

    Returns
    -------
    list of tuple of int
        The windows, in order.

    Raises
    ------
    ValueError
        When `tail` does not divide `size`.
    """
    if size % tail:
        raise ValueError(f"the tail window ({tail}) must divide the window ({size})")
    last_full = ((n_sentences - 1) // size) * size if n_sentences else 0
    bounds = []
    start = done
    while start < n_sentences:
        step = size if start < last_full else tail
        stop = min(n_sentences, (start // step + 1) * step)
        bounds.append((start, stop))
        start = stop
    return bounds


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Group sentences into batches of similar length, longest first (memory errors show up at once).

    Parameters
    ----------
    lengths : sequence of int
        Words of each sentence.
    batch_size : int
        Sentences per batch (the last may have fewer).

    Returns
    -------
    list of list of int
        Indices into `lengths`, batch by batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
