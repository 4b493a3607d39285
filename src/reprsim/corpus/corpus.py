"""The Corpus: a list of sentences, each a list of words, with a content hash used in every cache key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from reprsim.corpus.builtin import BUILTIN_NAME, builtin_source, read_builtin
from reprsim.corpus.loaders import read_conllu, read_text
from reprsim.corpus.text import clean_sentence

CONLLU_SUFFIXES = frozenset({".conllu", ".conll"})


def corpus_hash(sentences: list[list[str]]) -> str:
    """Hash a list of sentences: the content key that every store entry and cache key uses.

    The sentences are serialised as compact UTF-8 JSON (``ensure_ascii=False``, no spaces), which is
    unambiguous for any words (a word containing a space or a quote cannot collide with two words).

    Parameters
    ----------
    sentences : list of list of str
        The sentences, each a list of words, exactly as they should be hashed (no cleaning is applied here).

    Returns
    -------
    str
        The sha256 hex digest (64 lower-case hexadecimal characters).
    """
    payload = json.dumps(sentences, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _check_positive(value: int, argument: str) -> int:
    """Validate a positive integer option (bool excluded), naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be a positive integer, got {value!r}")
    return value


class Corpus:
    """Sentences of words, cleaned once, with a content hash.

    Every word is normalised to Unicode NFC and stripped of control (Cc) and format (Cf) characters; words
    that become empty are removed (see `reprsim.corpus.text`). The hash of the cleaned sentences is computed
    once, at construction, and identifies the corpus in every store entry and cache key; `name` and `source`
    do not enter it, so two corpora with the same sentences are equal.

    The cleaned sentences are shared, not copied, by `sentences`, iteration and indexing: treat them as
    read-only.

    Parameters
    ----------
    sentences : list of list of str
        The sentences, each a list (or tuple) of str words; a tuple of sentences is accepted too.
    name : str, default "corpus"
        A label for messages and reports.
    source : str, default "<memory>"
        Where the sentences came from (a path, or a description of the built-in corpus).

    Attributes
    ----------
    name : str
        The label given at construction.
    source : str
        The origin given at construction.

    Raises
    ------
    ValueError
        If `sentences` is empty or not a list/tuple, if a sentence is a str or contains a non-str word, or if
        a sentence has no words left after cleaning; the message names the corpus and the sentence index.

    Examples
    --------
    >>> corpus = Corpus([["The", "cat", "sat"], ["It", "slept"]], name="toy")
    >>> len(corpus), corpus.n_words
    (2, 5)
    """

    def __init__(self, sentences: list[list[str]], name: str = "corpus", source: str = "<memory>") -> None:
        if not isinstance(sentences, list | tuple) or not sentences:
            raise ValueError(f"corpus {name!r} must be a non-empty list of sentences")
        cleaned: list[list[str]] = []
        for index, sentence in enumerate(sentences):
            if isinstance(sentence, str) or not all(isinstance(word, str) for word in sentence):
                raise ValueError(f"corpus {name!r}: sentence {index} must be a list of str words")
            words = clean_sentence(list(sentence))
            if not words:
                raise ValueError(f"corpus {name!r}: sentence {index} has no words (after cleaning)")
            cleaned.append(words)
        self._sentences = cleaned
        self.name = name
        self.source = source
        self._hash = corpus_hash(cleaned)

    # --- loaders -------------------------------------------------------------------------------------
    @classmethod
    def from_text(
        cls,
        path: str | Path,
        *,
        n: int | None = None,
        max_words: int | None = None,
        skip_empty: bool = False,
        name: str | None = None,
    ) -> Corpus:
        """Load a plain-text file: one sentence per line, words separated by whitespace.

        Parameters
        ----------
        path : str or Path
            The UTF-8 text file (a leading byte-order mark is ignored).
        n : int, optional
            Keep only the first `n` sentences (after `max_words` has dropped long ones); an error if fewer
            remain.
        max_words : int, optional
            Drop sentences longer than this many words, before `n` is applied.
        skip_empty : bool, default False
            Skip lines with no words instead of raising.
        name : str, optional
            The corpus name; defaults to the file's stem.

        Returns
        -------
        Corpus
            The corpus, with `source` set to `path`.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If the path is a folder, the file is empty or not UTF-8, a line has no words (unless
            `skip_empty`), or `n` / `max_words` is not a positive integer or cannot be satisfied (see
            `reprsim.corpus.loaders.read_text`, `head` and `drop_longer_than`).
        """
        corpus = cls(read_text(path, skip_empty=skip_empty), name=name or Path(path).stem, source=str(path))
        return corpus._select(n, max_words)

    @classmethod
    def from_conllu(
        cls, path: str | Path, *, n: int | None = None, max_words: int | None = None, name: str | None = None
    ) -> Corpus:
        """Load the FORM column of a CoNLL-U file.

        Multiword-token lines ("1-2") and empty nodes ("1.1") are skipped, so the words are the syntactic
        tokens; blank lines separate sentences and "#" lines are comments.

        Parameters
        ----------
        path : str or Path
            The UTF-8 CoNLL-U file.
        n : int, optional
            Keep only the first `n` sentences (after `max_words` has dropped long ones); an error if fewer
            remain.
        max_words : int, optional
            Drop sentences longer than this many words, before `n` is applied.
        name : str, optional
            The corpus name; defaults to the file's stem.

        Returns
        -------
        Corpus
            The corpus, with `source` set to `path`.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If the file is empty, not UTF-8 or malformed, a FORM cleans to nothing, or `n` / `max_words` is
            invalid or cannot be satisfied (see `reprsim.corpus.loaders.read_conllu`).
        """
        corpus = cls(read_conllu(path), name=name or Path(path).stem, source=str(path))
        return corpus._select(n, max_words)

    @classmethod
    def builtin(cls, n: int | None = None, *, max_words: int | None = None) -> Corpus:
        """Load the built-in English news corpus (gensim's ``lee_background.cor``, about 2,600 sentences).

        Parameters
        ----------
        n : int, optional
            Keep only the first `n` sentences (after `max_words` has dropped long ones); an error if fewer
            remain.
        max_words : int, optional
            Drop sentences longer than this many words, before `n` is applied.

        Returns
        -------
        Corpus
            The corpus, named ``"lee-background"``, with a location-independent `source`.

        Raises
        ------
        FileNotFoundError
            If gensim (which ships the file) is not installed.
        ValueError
            If `n` / `max_words` is invalid or cannot be satisfied.
        """
        return cls(read_builtin(), name=BUILTIN_NAME, source=builtin_source())._select(n, max_words)

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        n: int | None = None,
        max_words: int | None = None,
        skip_empty: bool = False,
    ) -> Corpus:
        """Load a corpus by source: ``"builtin"``, a CoNLL-U file or a plain-text file.

        The suffix decides the format: ``.conllu`` or ``.conll`` (any case) is read as CoNLL-U, any other
        suffix as plain text.

        Parameters
        ----------
        source : str or Path
            ``"builtin"`` for the built-in corpus, otherwise a file path.
        n : int, optional
            Keep only the first `n` sentences (after `max_words` has dropped long ones).
        max_words : int, optional
            Drop sentences longer than this many words, before `n` is applied.
        skip_empty : bool, default False
            Skip lines with no words (plain-text files only; ignored otherwise).

        Returns
        -------
        Corpus
            The loaded corpus.

        Raises
        ------
        FileNotFoundError
            If the file (or gensim, for ``"builtin"``) is missing.
        ValueError
            If the file cannot be read as a corpus, or `n` / `max_words` is invalid or cannot be satisfied.
        """
        if str(source) == "builtin":
            return cls.builtin(n, max_words=max_words)
        if Path(source).suffix.lower() in CONLLU_SUFFIXES:
            return cls.from_conllu(source, n=n, max_words=max_words)
        return cls.from_text(source, n=n, max_words=max_words, skip_empty=skip_empty)

    # --- selections ----------------------------------------------------------------------------------
    def _select(self, n: int | None, max_words: int | None) -> Corpus:
        """Apply loader options: drop long sentences first, then keep the first n of the rest."""
        corpus = self
        if max_words is not None:
            corpus = corpus.drop_longer_than(max_words)
        if n is not None:
            corpus = corpus.head(n)
        return corpus

    def head(self, n: int) -> Corpus:
        """Keep the first `n` sentences.

        Parameters
        ----------
        n : int
            How many sentences to keep.

        Returns
        -------
        Corpus
            A new corpus with the same name and source.

        Raises
        ------
        ValueError
            If `n` is not a positive integer (bool excluded), or if the corpus has fewer than `n` sentences: a
            silent shortfall would skew results.
        """
        _check_positive(n, "n")
        if n > len(self._sentences):
            raise ValueError(f"corpus {self.name!r} has {len(self._sentences)} sentences, fewer than n={n}")
        return Corpus(self._sentences[:n], name=self.name, source=self.source)

    def drop_longer_than(self, k: int) -> Corpus:
        """Keep only the sentences of at most `k` words.

        Long sentences cost memory quadratic in their length in attention maps, hence this filter.

        Parameters
        ----------
        k : int
            The longest sentence kept, in words.

        Returns
        -------
        Corpus
            A new corpus with the same name and source, sentences in their original order.

        Raises
        ------
        ValueError
            If `k` is not a positive integer (bool excluded; the message calls it ``max_words``), or if every
            sentence is longer than `k`.
        """
        _check_positive(k, "max_words")
        kept = [sentence for sentence in self._sentences if len(sentence) <= k]
        if not kept:
            raise ValueError(f"corpus {self.name!r}: every sentence is longer than {k} words")
        return Corpus(kept, name=self.name, source=self.source)

    # --- views ---------------------------------------------------------------------------------------
    @property
    def sentences(self) -> list[list[str]]:
        """The sentences (shared lists: do not modify)."""
        return self._sentences

    @property
    def sentence_lengths(self) -> list[int]:
        """Words per sentence, in order."""
        return [len(sentence) for sentence in self._sentences]

    @property
    def n_words(self) -> int:
        """Total number of words (the row count of every stored layer)."""
        return sum(len(sentence) for sentence in self._sentences)

    @property
    def hash(self) -> str:
        """The sha256 hex digest of the cleaned sentences (see `corpus_hash`); name and source do not enter it."""
        return self._hash

    def __len__(self) -> int:
        return len(self._sentences)

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self._sentences)

    def __getitem__(self, index: int) -> list[str]:
        return self._sentences[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Corpus) and other._hash == self._hash

    def __hash__(self) -> int:
        return hash(self._hash)

    def __repr__(self) -> str:
        return (
            f"Corpus({self.name!r}, {len(self)} sentences, {self.n_words} words, "
            f"hash={self._hash[:12]}, source={self.source!r})"
        )
