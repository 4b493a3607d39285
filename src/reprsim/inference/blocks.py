"""Sentence blocks, the unit every resampling of reprsim works on, and the bootstrap's block weights.

Rows of one sentence are dependent (one context), so resampling rows would understate the uncertainty;
reprsim resamples whole sentences, grouped into G blocks. A block is a contiguous run of whole sentences in
corpus order with about n / G rows: neighbouring sentences of one document share a topic, and contiguous
blocks keep such dependence inside a block (as a block bootstrap needs), while letting the engine's
streaming pass route each chunk of rows to at most a few blocks. The assignment is deterministic given the
sentence lengths and G; the seed drives only the bootstrap weights and the permutations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sentence_blocks(sentence_lengths: Sequence[int] | np.ndarray, blocks: int) -> np.ndarray:
    """Row boundaries of G contiguous blocks of whole sentences with near-equal row counts.

    Parameters
    ----------
    sentence_lengths
        Rows per sentence, in corpus order (sentences with no rows are allowed and join a neighbour).
    blocks
        G.

    Returns
    -------
    numpy.ndarray
        (G + 1,) int64 row offsets: block g holds rows ``bounds[g]:bounds[g + 1]``; every block is non-empty
        and ends at a sentence boundary.

    Raises
    ------
    ValueError
        If G is below 2 or larger than the number of sentences with rows.
    """
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 2:
        raise ValueError(f"blocks must be an integer >= 2, got {blocks!r}")
    raw = np.asarray(sentence_lengths)
    whole = raw.dtype.kind in "iu" or raw.size == 0 or (
        raw.dtype.kind == "f" and bool(np.all(np.isfinite(raw))) and bool(np.all(raw == np.round(raw))))
    if raw.ndim != 1 or not whole or (raw < 0).any():
        raise ValueError("sentence_lengths must be a 1-D sequence of non-negative integer row counts")
    lengths = raw.astype(np.int64)
    ends = np.cumsum(lengths)[lengths > 0]  # the row offset after each sentence with rows
    if blocks > len(ends):
        raise ValueError(f"blocks={blocks} is larger than the number of sentences with rows ({len(ends)}); choose "
                         f"at most {len(ends)}")
    n = int(ends[-1])
    # The sentence end nearest each ideal cut, kept strictly increasing so that no block is empty.
    cuts = np.empty(blocks - 1, dtype=np.int64)
    lowest = 0
    for g in range(1, blocks):
        ideal = n * g / blocks
        i = int(np.searchsorted(ends, ideal))
        candidates = [j for j in (i - 1, i) if 0 <= j < len(ends)]
        j = min(candidates, key=lambda c: abs(int(ends[c]) - ideal))
        j = min(max(j, lowest), len(ends) - (blocks - g) - 1)
        cuts[g - 1] = ends[j]
        lowest = j + 1
    return np.concatenate([[0], cuts, [n]]).astype(np.int64)


def block_of_rows(bounds: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The block index of each row.

    Parameters
    ----------
    bounds
        Row offsets from `sentence_blocks`.
    rows
        Row indices.

    Returns
    -------
    numpy.ndarray
        int64 block indices, one per row.
    """
    return np.searchsorted(bounds, np.asarray(rows), side="right").astype(np.int64) - 1


def bootstrap_counts(n_blocks: int, resamples: int, seed: int) -> np.ndarray:
    """Block multiplicities of B bootstrap replicates (each a draw of G blocks with replacement).

    Parameters
    ----------
    n_blocks
        G.
    resamples
        B.
    seed
        The generator's seed; the same seed gives every value of a study the same replicates, so that
        differences of two values can be resampled together (`reprsim.inference.difference_statistics`).

    Returns
    -------
    numpy.ndarray
        (B, G) int64 counts, each row summing to G.

    Raises
    ------
    ValueError
        If G or B is below 1 (the message names ``blocks`` or ``resamples``).
    """
    for value, name in ((n_blocks, "blocks"), (resamples, "resamples")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_blocks, size=(resamples, n_blocks))
    counts = np.zeros((resamples, n_blocks), dtype=np.int64)
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    return counts
