"""Word-by-word tokenization of pre-split sentences for `TransformerAdapter`, with windows for long ones.

`SentenceTokenization` is the tokenizing half of the adapter: it turns a batch of sentences (lists of words)
into `TokenizedUnit` sequences, checking that every word maps to tokens of its own, and splits a sentence over
the context into overlapping windows when asked to. It reads the settings `TransformerAdapter` resolves from
probing the tokenizer (space prefix, BOS prepending, context limit; see `reprsim.extraction.transformer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from reprsim.extraction.adapter import SentenceError
from reprsim.extraction.alignment import WordWindow, alignment_problem, drop_space_pieces, plan_windows
from reprsim.extraction.probes import call_tokenizer

LONG_SENTENCE_MODES: tuple[str, ...] = ("error", "window")


@dataclass(frozen=True)
class TokenizedUnit:
    """One sequence fed to the model: a sentence, or one window of a long sentence.

    Parameters
    ----------
    row : int
        The sentence's index in the batch.
    window : WordWindow
        The words of the sentence this sequence holds (all of them, for a sentence that fits).
    input_ids : list of int
        Token ids, special tokens included.
    word_ids : list of int or None
        Each token's word, relative to window.start (None for special tokens and whitespace-only pieces).
    """

    row: int
    window: WordWindow
    input_ids: list[int]
    word_ids: list[int | None]


def units_by_row(units: list[TokenizedUnit]) -> dict[int, list[TokenizedUnit]]:
    """Group units by their sentence's row in the batch (a long sentence has one per window).

    Parameters
    ----------
    units : list of TokenizedUnit
        Units in batch order.

    Returns
    -------
    dict of int to list of TokenizedUnit
        Each row's units, in order.
    """
    grouped: dict[int, list[TokenizedUnit]] = {}
    for unit in units:
        grouped.setdefault(unit.row, []).append(unit)
    return grouped


def check_long_sentences(mode: str) -> None:
    """Reject an unknown long-sentence strategy early.

    Parameters
    ----------
    mode : str
        The strategy: "error" or "window".

    Raises
    ------
    ValueError
        When it is neither.
    """
    if mode not in LONG_SENTENCE_MODES:
        raise ValueError(f"long_sentences must be one of {', '.join(LONG_SENTENCE_MODES)}; got {mode!r}")


class SentenceTokenization:
    """Tokenize sentences word by word into the sequences a model runs on (a mixin of `TransformerAdapter`).

    The class that mixes it in sets the attributes below before tokenizing; validated sentences are kept in
    ``_validated`` until `tokenize` uses them, and ``_space_ids`` caches which token ids decode to whitespace.

    Attributes
    ----------
    tokenizer : transformers tokenizer
        The fast tokenizer.
    name : str
        The display name, in messages.
    long_sentences : str
        Sentences over the context: "error" or "window".
    space_prefix : bool
        Prefix " " to words 2..n.
    prepend_bos : bool
        Prepend the BOS token.
    max_tokens : int or None
        The context limit, special tokens included (None: no limit).
    """

    tokenizer: Any
    name: str
    long_sentences: str
    space_prefix: bool
    prepend_bos: bool
    max_tokens: int | None
    _validated: dict[tuple[str, ...], list[TokenizedUnit]]
    _space_ids: dict[int, bool]

    def validate(self, sentences: Sequence[Sequence[str]], chunk: int = 1024) -> None:
        """Tokenize sentences without running the model, failing on the first bad one.

        Lets the driver fail in seconds, before hours of extraction, on a word that maps to no token or a
        sentence over the context limit. The tokenized sentences are kept until `tokenize` uses them (each
        once), so a validated corpus is not tokenized a second time during extraction (about 50 MB of token
        ids per million words, freed as the run goes).

        Parameters
        ----------
        sentences : sequence of sequence of str
            The corpus's sentences.
        chunk : int, default 1024
            Sentences per tokenizer call.

        Raises
        ------
        SentenceError
            For the first bad sentence; its row is the sentence's index in `sentences`.
        """
        self._validated = {}
        for begin in range(0, len(sentences), chunk):
            part = sentences[begin : begin + chunk]
            try:
                units = self._tokenize_now(part)
            except SentenceError as err:
                raise SentenceError(begin + err.row, err.reason) from None
            for row, row_units in units_by_row(units).items():
                self._validated.setdefault(tuple(part[row]), row_units)  # a repeated sentence: its first copy

    def release_validated(self) -> None:
        """Drop what validate kept and tokenize has not used (sentences a resumed run had already done)."""
        self._validated = {}

    def tokenize(self, sentences: Sequence[Sequence[str]]) -> list[TokenizedUnit]:
        """Tokenize a batch into the sequences the model runs on, checked word by word.

        Parameters
        ----------
        sentences : sequence of sequence of str
            The batch's sentences.

        Returns
        -------
        list of TokenizedUnit
            Whole sentences, or windows of long ones, in batch order.

        Raises
        ------
        SentenceError
            When a word maps to no token, or a sentence is over the context (in "error" mode).
        """
        known = [self._validated.pop(tuple(words), None) for words in sentences]
        missing = [row for row, units in enumerate(known) if units is None]
        if missing:
            try:
                fresh = units_by_row(self._tokenize_now([sentences[row] for row in missing]))
            except SentenceError as err:
                raise SentenceError(missing[err.row], err.reason) from None
            for i, row in enumerate(missing):
                known[row] = fresh[i]
        return [replace(unit, row=row) for row, units in enumerate(known) for unit in units or ()]

    def _tokenize_now(self, sentences: Sequence[Sequence[str]]) -> list[TokenizedUnit]:
        """Tokenize afresh (not from validate's): one tokenizer call, then the word-by-word checks."""
        ids, word_ids = self._tokenize_runs([list(s) for s in sentences], [False] * len(sentences))
        units: list[TokenizedUnit] = []
        for row, words in enumerate(sentences):
            kept, blank_words = drop_space_pieces(word_ids[row], self._space_flags(ids[row]))
            problem = alignment_problem(kept, words, self.name, blank_words)
            if problem:
                raise SentenceError(row, problem)
            whole = WordWindow(0, len(words), 0, len(words))
            if self.max_tokens is None or len(ids[row]) <= self.max_tokens:
                units.append(TokenizedUnit(row, whole, ids[row], kept))
                continue
            if self.long_sentences == "error":
                raise SentenceError(
                    row,
                    f"{len(ids[row])} tokens (with special tokens) is more than {self.name}'s context of "
                    f"{self.max_tokens}; drop long sentences (--max-words) or use long_sentences='window' "
                    "(--long-sentences window)",
                )
            units.extend(self._window_units(row, words, word_ids[row]))
        return units

    def _tokenize_runs(
        self, runs: list[list[str]], continues: list[bool]
    ) -> tuple[list[list[int]], list[list[int | None]]]:
        """Tokenize runs of words; a run that continues a sentence gets the space prefix on its first word."""
        texts = [
            [w if (i == 0 and not cont) or not self.space_prefix else " " + w for i, w in enumerate(run)]
            for run, cont in zip(runs, continues, strict=True)
        ]
        ids, word_ids = call_tokenizer(self.tokenizer, texts)
        self._learn_space_pieces(ids)
        if self.prepend_bos:
            bos = int(self.tokenizer.bos_token_id)
            ids = [[bos, *row] for row in ids]
            word_ids = [[None, *row] for row in word_ids]
        return ids, word_ids

    def _window_units(self, row: int, words: Sequence[str], word_ids: list[int | None]) -> list[TokenizedUnit]:
        """Split an over-long sentence into overlapping windows (see alignment.plan_windows)."""
        assert self.max_tokens is not None
        counts = [0] * len(words)
        for w in word_ids:
            if w is not None:
                counts[w] += 1
        n_special = len(word_ids) - sum(counts)
        try:
            windows = plan_windows(counts, self.max_tokens - n_special)
        except ValueError as err:
            raise SentenceError(row, f"cannot window this sentence for {self.name}: {err}") from None
        runs = [list(words[w.start : w.stop]) for w in windows]
        ids, wids = self._tokenize_runs(runs, [w.start > 0 for w in windows])
        units: list[TokenizedUnit] = []
        for window, unit_ids, unit_wids in zip(windows, ids, wids, strict=True):
            kept, blank_words = drop_space_pieces(unit_wids, self._space_flags(unit_ids))
            problem = alignment_problem(kept, runs[len(units)], self.name, blank_words)
            if problem or len(unit_ids) > self.max_tokens:
                raise SentenceError(
                    row, problem or f"window of words {window.start}..{window.stop - 1} re-tokenized longer"
                )
            units.append(TokenizedUnit(row, window, unit_ids, kept))
        return units

    def _learn_space_pieces(self, ids: list[list[int]]) -> None:
        """Decode every token id not seen before, once (one batched call), to know which are whitespace only."""
        new = sorted({i for row in ids for i in row} - self._space_ids.keys())
        if not new:
            return
        pieces = [[i] for i in new]
        backend = getattr(self.tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: 20x faster here
        if backend is not None:
            texts = backend.decode_batch(pieces, skip_special_tokens=False)
        elif callable(getattr(self.tokenizer, "batch_decode", None)):
            texts = self.tokenizer.batch_decode(pieces, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        else:
            return  # a tokenizer that cannot decode: every piece counts as content
        self._space_ids.update((i, isinstance(t, str) and not t.strip()) for i, t in zip(new, texts, strict=True))

    def _space_flags(self, ids: list[int]) -> list[bool]:
        """For each token, whether it decodes to whitespace only (a bare "▁" or "Ġ" piece)."""
        return [self._space_ids.get(i, False) for i in ids]
