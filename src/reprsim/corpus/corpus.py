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
    """sha256 hex digest of the sentences, serialised as compact UTF-8 JSON (unambiguous for any words)."""
    payload = json.dumps(sentences, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _check_positive(value: int, argument: str) -> int:
    """Validate a positive integer option (bool excluded), naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be a positive integer, got {value!r}")
    return value


class Corpus:
    """Sentences of words, cleaned once (NFC; control and format characters dropped; empty words removed).

    `sentences` is shared, not copied: treat it as read-only (the hash is computed once, at construction).
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
        """Load a plain-text file, one sentence per line, words separated by whitespace."""
        corpus = cls(read_text(path, skip_empty=skip_empty), name=name or Path(path).stem, source=str(path))
        return corpus._select(n, max_words)

    @classmethod
    def from_conllu(
        cls, path: str | Path, *, n: int | None = None, max_words: int | None = None, name: str | None = None
    ) -> Corpus:
        """Load the FORM column of a CoNLL-U file (multiword tokens and empty nodes skipped)."""
        corpus = cls(read_conllu(path), name=name or Path(path).stem, source=str(path))
        return corpus._select(n, max_words)

    @classmethod
    def builtin(cls, n: int | None = None, *, max_words: int | None = None) -> Corpus:
        """The built-in English news corpus (gensim's lee_background.cor, ~2,600 sentences)."""
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
        """Load "builtin", a CoNLL-U file (.conllu/.conll) or a plain-text file (any other suffix)."""
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
        """The first n sentences (ValueError if there are fewer: a silent shortfall would skew results)."""
        _check_positive(n, "n")
        if n > len(self._sentences):
            raise ValueError(f"corpus {self.name!r} has {len(self._sentences)} sentences, fewer than n={n}")
        return Corpus(self._sentences[:n], name=self.name, source=self.source)

    def drop_longer_than(self, k: int) -> Corpus:
        """The sentences of at most k words (long sentences cost quadratic attention memory)."""
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
        """sha256 hex of the cleaned sentences; name and source do not enter it."""
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
