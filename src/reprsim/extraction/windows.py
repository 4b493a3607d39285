"""Running one model over the corpus window by window, each window written while the next is computed.

A window's sentences run in batches of similar length (plan.length_batches); their word vectors and maps are
placed in the window's buffers in corpus order and written with one write_sentences call, on a worker thread
while the model computes the next window. A killed run therefore resumes at a window boundary (the last
committed write) and recomputes exactly the same batches: the finished entry is byte-identical to an
uninterrupted run on the same machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from reprsim.corpus import Corpus
from reprsim.extraction.adapter import AdapterOutput, SentenceError
from reprsim.extraction.checks import check_hidden, check_output
from reprsim.extraction.placement import place_attention, place_rows
from reprsim.extraction.plan import (
    TAIL_WINDOW_SENTENCES,
    WINDOW_SENTENCES,
    Batch,
    ModelRun,
    WindowLayout,
    length_batches,
    window_bounds,
)
from reprsim.extraction.rows import WORD_ROWS, pool_word_rows, stored_row_counts
from reprsim.store import EntryWriter


class WindowArrays(NamedTuple):
    """The buffers one window is computed into and written from.

    Parameters
    ----------
    hidden : list of numpy.ndarray
        Per layer, a (window words, width) float32 array.
    attention : list of numpy.ndarray or None, or None
        With attention: per layer, a flat float32 array of the window's maps back to back (None for layers
        without heads); None when no attention is stored.
    """

    hidden: list[np.ndarray]
    attention: list[np.ndarray | None] | None


class WindowBuffers:
    """Two sets of per-window buffers, used by turns: one window fills a set while the other is written.

    The previous window's write has finished before its set comes round again, since a window is submitted
    only after the write before it is done. Reusing the sets spares the page faults of fresh allocations,
    which cost as much as the copy into them. The second set is made when first needed: a corpus of one
    window never holds it.

    Parameters
    ----------
    widths : sequence of int
        Width of each layer.
    capacity : int
        Words of the largest window.
    heads : sequence of int, optional
        Heads of each layer (0 where it has none); None when no attention is stored.
    square_capacity : int, default 0
        Largest sum of n^2 over a window's sentences (values per head of its maps).
    """

    def __init__(
        self, widths: Sequence[int], capacity: int, heads: Sequence[int] | None = None, square_capacity: int = 0
    ) -> None:
        self._widths = list(widths)
        self._capacity = capacity
        self._heads = heads
        self._square_capacity = square_capacity
        self._sets: list[WindowArrays] = []
        self._turn = 0

    def _new_set(self) -> WindowArrays:
        """Allocate one set of buffers at full capacity."""
        hidden = [np.zeros((self._capacity, width), dtype=np.float32) for width in self._widths]
        if self._heads is None:
            return WindowArrays(hidden, None)
        maps = [np.zeros(h * self._square_capacity, dtype=np.float32) if h else None for h in self._heads]
        return WindowArrays(hidden, maps)

    def take(self, rows: int, squares: int = 0) -> WindowArrays:
        """Return the next set, cut to one window.

        Parameters
        ----------
        rows : int
            The window's words.
        squares : int, default 0
            Sum of n^2 over the window's sentences (with heads).

        Returns
        -------
        WindowArrays
            Views of the set's buffers, of the window's size.
        """
        if self._turn == len(self._sets):
            self._sets.append(self._new_set())
        hidden, maps = self._sets[self._turn]
        self._turn ^= 1
        cut_maps = None
        if maps is not None and self._heads is not None:
            cut_maps = [None if m is None else m[: h * squares] for m, h in zip(maps, self._heads, strict=True)]
        return WindowArrays([buffer[:rows] for buffer in hidden], cut_maps)


def run_windows(run: ModelRun, corpus: Corpus, writer: EntryWriter) -> None:
    """Compute and write every window from the writer's durable prefix on, with a words/s progress bar.

    Windows are committed strictly in order; a failing write stops the run within a batch with the writer's
    own error, and an interrupted run still finishes (and records) the window being written, since leaving
    the pool waits for it.

    Parameters
    ----------
    run : ModelRun
        The model and what it is asked for.
    corpus : Corpus
        The corpus.
    writer : EntryWriter
        The entry's writer; extraction starts at its done_sentences.

    Raises
    ------
    ValueError
        When the adapter fails a sentence or returns output that does not fit the corpus (from
        extract_window), or the store refuses a window.
    """
    sentences = corpus.sentences
    done = writer.done_sentences
    lengths = corpus.sentence_lengths
    row_counts = stored_row_counts(lengths, run.rows)  # the entry's rows per sentence: words, or 1 per text
    bar = tqdm(
        total=corpus.n_words,
        initial=sum(lengths[:done]),
        unit="word",
        unit_scale=True,
        desc=f"extract {run.name}",
        disable=not run.progress,
        dynamic_ncols=True,
    )
    bounds = window_bounds(done, len(sentences), tail=WINDOW_SENTENCES if run.whole_windows else TAIL_WINDOW_SENTENCES)
    # Per window: its rows (of each hidden layer) and sum of n^2 (values per head of its attention maps).
    sizes = [(sum(row_counts[a:b]), sum(n * n for n in row_counts[a:b])) for a, b in bounds]
    buffers = WindowBuffers(
        run.widths, max((r for r, _ in sizes), default=0), run.heads, max((q for _, q in sizes), default=0)
    )
    pending: Future[None] | None = None

    def raise_failed_write() -> None:
        """Stop the run now, between batches, when the previous window's write has failed."""
        if pending is not None and pending.done():
            pending.result()

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reprsim-store") as pool:
            for (start, stop), (rows, squares) in zip(bounds, sizes, strict=True):
                arrays = buffers.take(rows, squares)
                window = WindowLayout.of(start, row_counts[start:stop])
                extract_window(run, sentences[start:stop], window, arrays, bar.update, raise_failed_write)
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_sentences, start, stop, arrays.hidden, arrays.attention)
            if pending is not None:
                pending.result()
    finally:
        bar.close()


def extract_window(
    run: ModelRun,
    sentences: Sequence[Sequence[str]],
    window: WindowLayout,
    arrays: WindowArrays,
    advance: Callable[[int], object],
    between_batches: Callable[[], None] = lambda: None,
) -> None:
    """Fill a window's buffers with its word vectors (or text-level rows) and word-level maps, in corpus order.

    Parameters
    ----------
    run : ModelRun
        The model and what it is asked for.
    sentences : sequence of sequence of str
        The window's sentences.
    window : WindowLayout
        Where each of them goes.
    arrays : WindowArrays
        The window's buffers, of its size: hidden rows per layer, and with attention the maps of each layer
        back to back, as the store keeps them.
    advance : callable
        Called with the words of each batch done (a progress bar's update).
    between_batches : callable, optional
        Called before each batch (to stop early when the previous window's write has failed).

    Raises
    ------
    ValueError
        When the adapter fails a sentence, or its output does not fit the sentences; the message names the
        model and the sentence's corpus index.
    """
    want_attention = run.heads is not None
    words_of = [len(words) for words in sentences]
    for indices in length_batches(words_of, run.batch_size):  # by words: similar lengths share padding
        between_batches()
        batch = Batch.of(indices, window, run.name)
        try:
            if run.rows == WORD_ROWS:
                output = run.adapter.encode([sentences[i] for i in indices], list(run.layer_ids), want_attention)
            else:
                output = _encode_text_rows(run, [sentences[i] for i in indices], batch)
        except SentenceError as err:
            raise ValueError(f"{run.name}, sentence {batch.sentence_ids[err.row]}: {err.reason}") from None
        check_output(output, batch)
        place_rows(check_hidden(output.hidden, batch, run), arrays.hidden, window, batch)
        if arrays.attention is not None and want_attention:
            place_attention(output.attention, arrays.attention, window, batch, run)
        advance(sum(words_of[i] for i in indices))


def _encode_text_rows(run: ModelRun, sentences: list[Sequence[str]], batch: Batch) -> AdapterOutput:
    """One text-level row per sentence: the adapter's own token pooling (encode_texts), else its word vectors pooled."""
    encode_texts = getattr(run.adapter, "encode_texts", None)
    if callable(encode_texts):
        output = encode_texts(sentences, list(run.layer_ids), run.rows)
        if not isinstance(output, AdapterOutput):
            raise ValueError(f"{batch.what}: encode_texts returned {type(output).__name__}, not AdapterOutput")
        return output
    output = run.adapter.encode(sentences, list(run.layer_ids), False)
    check_output(output, batch)
    word_lengths = [len(words) for words in sentences]
    words = check_hidden(output.hidden, replace(batch, lengths=word_lengths), run)
    return AdapterOutput(hidden=[pool_word_rows(layer, word_lengths, run.rows) for layer in words])
