"""What one stored row is: a word (the default), or a whole sentence (text) pooled from its tokens.

Text-level rows are what cross-model studies of whole texts compare (Wolfram & Schein 2025 take a decoder's
last token; Huh et al. 2024 the mean over tokens). The rules, over the tokens that belong to a word (special
tokens, padding and whitespace-only pieces excluded, as for word rows):

- ``last-token``: the sentence's last such token;
- ``mean``: the mean of all of them;
- ``first-token``: the tokenizer's CLS token when the model is not a causal decoder and its tokenizer opens
  every sequence with ``cls_token`` (BERT's ``[CLS]``, RoBERTa's and MPNet's ``<s>``), else the first such
  token. A decoder's BOS is never taken: under causal attention its vector is the same for every text.

A sentence cut into windows (``long_sentences="window"``) takes each token from the window its word is kept
from, so every token counts once. For an adapter of your own, the words it returns are its tokens: rows are
pooled from its word vectors, unless it has an ``encode_texts(sentences, layers, rows)`` method (as
`reprsim.extraction.TransformerAdapter` does) that pools its own tokens.

A pooled entry stores one row per sentence: its ``sentence_lengths`` are all 1, so every store invariant
(rows = sum of sentence lengths, one window of rows per sentence) holds unchanged, and its manifest records
``rows``. No attention is stored for pooled rows (a map over one row per sentence would mean nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

WORD_ROWS = "word"
ROW_RULES: tuple[str, ...] = (WORD_ROWS, "last-token", "mean", "first-token")
TEXT_ROW_RULES: tuple[str, ...] = ROW_RULES[1:]


def check_rows_rule(rows: str) -> None:
    """Reject an unknown rows rule early, before any model is loaded.

    Parameters
    ----------
    rows : str
        One of ROW_RULES.

    Raises
    ------
    ValueError
        When it is none of them.
    """
    if rows not in ROW_RULES:
        raise ValueError(f"rows must be one of {', '.join(ROW_RULES)} (--rows); got {rows!r}")


def stored_row_counts(sentence_lengths: Sequence[int], rows: str) -> list[int]:
    """Rows an entry stores for each sentence: its words, or 1 for text-level rows.

    Parameters
    ----------
    sentence_lengths : sequence of int
        Words of each sentence of the corpus.
    rows : str
        One of ROW_RULES.

    Returns
    -------
    list of int
        The entry's sentence_lengths.
    """
    check_rows_rule(rows)
    return list(sentence_lengths) if rows == WORD_ROWS else [1] * len(sentence_lengths)


def pool_word_rows(words: np.ndarray, lengths: Sequence[int], rows: str) -> np.ndarray:
    """Pool consecutive sentences' word vectors into one row per sentence (for adapters without tokens).

    Parameters
    ----------
    words : numpy.ndarray
        (sum of lengths, width) word vectors, sentence after sentence.
    lengths : sequence of int
        Words of each sentence (each at least 1).
    rows : str
        One of TEXT_ROW_RULES: "last-token" takes the last word, "first-token" the first, "mean" the mean.

    Returns
    -------
    numpy.ndarray
        (len(lengths), width) float32.

    Raises
    ------
    ValueError
        When the rule is not a text-level one, or the lengths do not cover the rows.
    """
    if rows not in TEXT_ROW_RULES:
        raise ValueError(f"pool_word_rows pools text-level rows ({', '.join(TEXT_ROW_RULES)}); got {rows!r}")
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    if len(ends) and (ends[-1] != words.shape[0] or int(min(lengths)) < 1):
        raise ValueError(f"{words.shape[0]} word rows for sentences of {list(lengths)} words")
    starts = ends - np.asarray(lengths, dtype=np.int64)
    if rows == "last-token":
        return np.ascontiguousarray(words[ends - 1], dtype=np.float32)
    if rows == "first-token":
        return np.ascontiguousarray(words[starts], dtype=np.float32)
    sums = np.add.reduceat(words.astype(np.float64), starts, axis=0) if len(starts) else words[:0]
    return (sums / np.asarray(lengths, dtype=np.float64)[:, None]).astype(np.float32)


def text_token_weights(
    counted: torch.Tensor, first_real: torch.Tensor, cls_first: torch.Tensor, unit_rows: torch.Tensor,
    n_sentences: int, rows: str,
) -> torch.Tensor:
    """Build the weights that turn each sequence's token vectors into its sentence's text-level row.

    A sentence's row is the sum, over the sequences (windows) of that sentence, of weights[u] @ hidden[u].

    Parameters
    ----------
    counted : torch.Tensor
        (units, tokens) bool: the token belongs to a word this sequence keeps (see the module docstring).
    first_real : torch.Tensor
        (units,) long: position of each sequence's first non-padding token.
    cls_first : torch.Tensor
        (units,) bool: that token is the CLS token that first-token takes (only ever the sentence's first
        sequence, and never for a causal decoder).
    unit_rows : torch.Tensor
        (units,) long: the sentence of each sequence, non-decreasing, in 0..n_sentences-1.
    n_sentences : int
        Sentences of the batch.
    rows : str
        One of TEXT_ROW_RULES.

    Returns
    -------
    torch.Tensor
        (units, tokens) float32 weights.

    Raises
    ------
    ValueError
        When the rule is not a text-level one, or a sentence has no counted token.
    """
    if rows not in TEXT_ROW_RULES:
        raise ValueError(f"text-level rows are {', '.join(TEXT_ROW_RULES)}; got {rows!r}")
    counted = counted.to(torch.bool)
    n_units, n_tokens = counted.shape
    per_sentence = torch.zeros(n_sentences, dtype=torch.float32).index_add_(
        0, unit_rows, counted.sum(-1).to(torch.float32)
    )
    if bool((per_sentence == 0).any()):
        empty = int(torch.nonzero(per_sentence == 0)[0])
        raise ValueError(f"batch sentence {empty} has no token that belongs to a word")
    if rows == "mean":
        return counted.to(torch.float32) / per_sentence[unit_rows].unsqueeze(-1)
    weights = torch.zeros(n_units, n_tokens, dtype=torch.float32)
    positions = torch.arange(n_tokens)
    has_tokens = counted.any(-1)
    for sentence in range(n_sentences):
        units = [u for u in torch.nonzero(unit_rows == sentence).flatten().tolist() if bool(has_tokens[u])]
        if rows == "last-token":  # the last window keeps the sentence's last words
            weights[units[-1], int(positions[counted[units[-1]]].max())] = 1.0
            continue
        first = int(torch.nonzero(unit_rows == sentence)[0])
        if bool(cls_first[first]):
            weights[first, int(first_real[first])] = 1.0
        else:
            weights[units[0], int(positions[counted[units[0]]].min())] = 1.0
    return weights


def pool_text_rows(
    hidden: torch.Tensor, weights: torch.Tensor, unit_rows: torch.Tensor, n_sentences: int
) -> torch.Tensor:
    """Pool one layer's token vectors into one float32 row per sentence.

    Tokens with no weight are zeroed first, so a NaN or inf at a pad position cannot leak through a zero
    weight. For first-token and last-token the weights are 0/1, so a row is the chosen token's vector exactly.

    Parameters
    ----------
    hidden : torch.Tensor
        (units, tokens, d) token vectors.
    weights : torch.Tensor
        (units, tokens) weights (see text_token_weights).
    unit_rows : torch.Tensor
        (units,) the sentence of each sequence.
    n_sentences : int
        Sentences of the batch.

    Returns
    -------
    torch.Tensor
        (n_sentences, d) float32.
    """
    weights = weights.to(hidden.device)
    clean = torch.where((weights > 0).unsqueeze(-1), hidden.to(torch.float32), 0.0)
    per_unit = torch.einsum("ut,utd->ud", weights, clean)
    out = torch.zeros(n_sentences, hidden.shape[-1], dtype=torch.float32, device=hidden.device)
    return out.index_add_(0, unit_rows.to(hidden.device), per_unit)
