"""Corpora: sentences of words from plain text, CoNLL-U or the built-in English news corpus."""

from reprsim.corpus.corpus import Corpus, corpus_hash

__all__ = ["Corpus", "corpus_hash"]
