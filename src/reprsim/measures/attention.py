"""Attention-level similarity between two layers (Wu et al. 2020).

Inputs ``A`` and ``B`` are sequences (or one-pass iterables, such as
`reprsim.store.StoreEntry.iter_attention`) of per-sentence word-level attention maps, each an array of
shape (heads, T, T) whose rows are distributions: row i of head h is where word i attends. ``A`` and ``B``
describe the same sentences in the same order, so sentence s has the same length ``T_s`` in both; the head
counts of ``A`` and ``B`` may differ.

- Head similarity by Jensen-Shannon: ``s(h, h') = 1 - mean over all (sentence, query word) of
  JS(a_h,i || b_h',i)``, natural log (floor ``1 - ln 2``).
- Pearson variant: ``s(h, h') = mean over (sentence, query word) of Pearson(a_h,i, b_h',i)``. A row that is
  constant (uniform attention, or a one-word sentence) has no correlation; such rows are left out of every
  pair they belong to, counted, and reported with a warning.
- Layer similarity: ``mean over heads h of A of max over heads h' of B of s(h, h')`` (directed, A -> B).
- Attention CKA: each head's maps flattened over all sentences (rows (sentence, i, j), columns heads), then
  linear CKA between the two layers' matrices (symmetric).

Per-layer fits (the attention analogue of `reprsim.engine.LinearFit` and
`reprsim.measures.sample_fit.SampleFit`): every measure first turns one layer's maps into an
`AttentionFit` (`fit_attention`), flattened over all sentences into an (H, N) float64 array,
``N = sum of T_s^2``, plus per-head constants; a pair of layers is then scored from the two fits
(`score_attention`) with a few matmuls (Pearson, CKA) or one vectorised pass over the entries (JS). The
per-pair functions below fit both sides and score them, so there is one implementation, and an all-pairs
comparison fits each layer once instead of once per pair. Input is read one sentence at a time; a fit holds
``8 * H * N`` bytes (200 sentences of T = 25 with 12 heads: 12 MB).

The fits live in `reprsim.measures.attention_fit` (with the map validation) and their scoring in
`reprsim.measures.attention_score`; their public names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from .attention_fit import (
    ATTENTION_KINDS,
    MEASURE_KINDS,
    AttentionFit,
    AttentionKind,
    attention_fit_bytes,
    fit_attention,
    fit_pair,
)
from .attention_score import MAX_PAIR_ELEMENTS, score_attention, score_attention_heads

__all__ = [
    "ATTENTION_KINDS",
    "MAX_PAIR_ELEMENTS",
    "MEASURE_KINDS",
    "AttentionFit",
    "AttentionKind",
    "HeadSimilarity",
    "attention_cka",
    "attention_fit_bytes",
    "attention_head_similarity",
    "attention_js",
    "attention_pearson",
    "fit_attention",
    "score_attention",
    "score_attention_heads",
]

HeadSimilarity = Literal["js", "pearson"]


def attention_head_similarity(A: Iterable[Any], B: Iterable[Any], kind: HeadSimilarity = "js") -> np.ndarray:
    """Head-by-head similarity matrix ``s(h, h')`` of two attention layers.

    Parameters
    ----------
    A, B
        Per-sentence (heads, T, T) maps of the two layers, the same sentences in the same order (see the
        module docstring).
    kind
        ``"js"``: ``1 - mean JS`` (natural log); ``"pearson"``: mean row-wise Pearson correlation.

    Returns
    -------
    numpy.ndarray
        (heads of A) x (heads of B), float64.

    Raises
    ------
    ValueError
        For an unknown `kind`; for maps that are not distributions or do not match between A and B (counts
        of sentences, words or heads), naming the side and the sentence; for pearson, if a pair of heads
        shares no query word whose rows both vary.

    Warns
    -----
    UserWarning
        pearson: when constant attention rows (uniform, or one-word sentences) were left out.
    """
    if kind not in ("js", "pearson"):
        raise ValueError(f"attention_head_similarity: kind must be 'js' or 'pearson', got {kind!r}")
    return score_attention_heads(*fit_pair(A, B, kind))


def attention_js(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Layer similarity A -> B from Jensen-Shannon head similarity (Wu et al. 2020).

    ``mean over heads h of A of max over heads h' of B of s(h, h')``, with
    ``s(h, h') = 1 - mean over (sentence, query word) of JS(a_h,i || b_h',i)`` in natural log, so the floor
    is ``1 - ln 2``; near-uniform attention scores high against everything. Directed; invariant to
    permuting heads.

    Parameters
    ----------
    A
        Per-sentence (heads, T, T) maps of the layer whose heads are matched.
    B
        The same sentences' maps of the layer searched for partners.

    Returns
    -------
    float
        The layer similarity, in [1 - ln 2, 1].

    Raises
    ------
    ValueError
        For maps that are not distributions or do not match between A and B (counts of sentences, words or
        heads), naming the side and the sentence.
    """
    return score_attention(*fit_pair(A, B, "js"))


def attention_pearson(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Layer similarity A -> B from row-wise Pearson head similarity (Wu et al. 2020).

    ``mean over heads h of A of max over heads h' of B of s(h, h')``, with ``s(h, h')`` the mean Pearson
    correlation of the two heads' attention rows over (sentence, query word). Constant rows (uniform
    attention, one-word sentences) have no correlation: they are left out of every pair they belong to and
    counted in a warning. Directed; invariant to permuting heads.

    Parameters
    ----------
    A
        Per-sentence (heads, T, T) maps of the layer whose heads are matched.
    B
        The same sentences' maps of the layer searched for partners.

    Returns
    -------
    float
        The layer similarity, in [-1, 1].

    Raises
    ------
    ValueError
        For maps that are not distributions or do not match between A and B, or when a pair of heads shares
        no query word whose rows both vary.

    Warns
    -----
    UserWarning
        When constant attention rows were left out.
    """
    return score_attention(*fit_pair(A, B, "pearson"))


def attention_cka(A: Iterable[Any], B: Iterable[Any]) -> float:
    """Linear CKA between the layers' heads: rows are every (sentence, i, j) attention weight, columns heads.

    Each head is centred over all entries of all sentences together (an exact two-pass mean); the cross term
    is one (H, N) x (N, H') matmul. Symmetric; invariant to permuting heads.

    Parameters
    ----------
    A, B
        Per-sentence (heads, T, T) maps of the two layers, the same sentences in the same order.

    Returns
    -------
    float
        Linear CKA, in [0, 1].

    Raises
    ------
    ValueError
        For maps that are not distributions or do not match between A and B, or when every head of one
        layer has constant weights over all (sentence, i, j).
    """
    return score_attention(*fit_pair(A, B, "cka"))
