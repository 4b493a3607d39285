"""Row shards of a corpus: runs of whole sentences, and one pass over a shard's rows into mergeable moments.

`Shard` names shard i of N; `shard_sentences` and `shard_rows` say which sentences and rows it holds;
`shard_moments` streams them into every block of a study's layers, and `shard_block_parts` into moments per
sentence block (the statistics' blocks, `reprsim.engine.BlockedMoments`; a block a shard boundary cuts is
added back by the merge). `reprsim.shards` (files for any
scheduler) and `reprsim.ray_compare` (Ray tasks) both split the linear pass this way, so both merge to the
same moments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reprsim.engine import CrossMoments, RepresentationSource, resolve_device
from reprsim.engine.block_moments import BlockedMoments, shard_block_bounds
from reprsim.engine.checks import PairSpec
from reprsim.engine.sources import stream
from reprsim.store import StoreEntry
from reprsim.store.layout import word_offsets

__all__ = [
    "Shard", "most_blocks_per_shard", "shard_block_parts", "shard_bytes", "shard_moments", "shard_rows",
    "shard_sentences",
]


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1-based, as ``3/8`` on the command line and in SLURM arrays ``--array=1-8``).

    Raises
    ------
    ValueError
        If the index is not in 1..count.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: the index must be in 1..{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """A shard from ``"i/N"``.

        Raises
        ------
        ValueError
            If the text is not two integers ``i/N`` with 1 <= i <= N.
        """
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"shard {text!r}: write it as i/N, e.g. 3/8 (shard 3 of 8, counted from 1)")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def file_name(self) -> str:
        """The moments file's name, ``moments-00003-of-00008.npz``."""
        return f"moments-{self.index:05d}-of-{self.count:05d}.npz"


def shard_sentences(sentence_lengths: Sequence[int], shard: Shard) -> tuple[int, int]:
    """The sentences [first, stop) of a shard: N contiguous runs of whole sentences of about equal words.

    Boundary k is the first sentence starting at or after word k n / N, moved so that every shard keeps at
    least one sentence.

    Raises
    ------
    ValueError
        If the corpus has fewer sentences than shards.
    """
    n_sentences, count = len(sentence_lengths), shard.count
    if count > n_sentences:
        raise ValueError(f"shard {shard}: the corpus has {n_sentences} sentences, fewer than {count} shards")
    offsets = word_offsets(list(sentence_lengths))
    bounds = [0]
    for k in range(1, count + 1):
        target = int(np.searchsorted(offsets, k * int(offsets[-1]) / count)) if k < count else n_sentences
        bounds.append(min(max(target, bounds[-1] + 1), n_sentences - (count - k)))
    return bounds[shard.index - 1], bounds[shard.index]


def shard_rows(sentence_lengths: Sequence[int], shard: Shard) -> tuple[int, int]:
    """The rows (words) [start, stop) of a shard (`shard_sentences`' sentences).

    Raises
    ------
    ValueError
        If the corpus has fewer sentences than shards.
    """
    first, stop = shard_sentences(sentence_lengths, shard)
    offsets = word_offsets(list(sentence_lengths))
    return int(offsets[first]), int(offsets[stop])


def shard_bytes(widths: Sequence[int]) -> int:
    """Bytes of a shard's blocks: 8 d_a d_b for every a <= b (the moments file is about this size)."""
    total = sum(widths)
    return 4 * (total * total + sum(w * w for w in widths))


def _shard_sources(entries: Sequence[StoreEntry], rows: tuple[int, int],
                   members: Sequence[int] | None) -> list[RepresentationSource]:
    """The shard's rows of the entries' layers (entry by entry), or of the chosen members in their order."""
    sources = [RepresentationSource.from_store(e, layer, rows) for e in entries for layer in e.layer_ids]
    return sources if members is None else [sources[i] for i in members]


def shard_moments(entries: Sequence[StoreEntry], rows: tuple[int, int], *, row_norms: bool,
                  members: Sequence[int] | None = None, blocks: PairSpec = "all", device: str = "auto",
                  chunk_rows: int = 8192, progress: bool = False, description: str = "shard") -> CrossMoments:
    """One pass over rows [start, stop) of the entries' layers, into the blocks asked for.

    Parameters
    ----------
    entries
        The store entries, in the study's order; their layers, entry by entry, are the representations.
    rows
        The shard's rows (`shard_rows`).
    row_norms
        Keep the row-norm sums (debiased and lange CKA, `reprsim.engine.linear_family.pass_needs_row_norms`).
    members
        The representations to read, by index (default: every layer); the moments number them 0, 1, ...
        in this order.
    blocks
        ``"all"`` (every block a <= b, the diagonal included) or (a, b) pairs of member positions, with no
        diagonal block added (a column tile of `reprsim.engine.LinearFamily`).
    device, chunk_rows, progress
        As for `reprsim.compare`.
    description
        The progress bar's label.

    Returns
    -------
    CrossMoments
        The shard's moments, ready to merge.
    """
    sources = _shard_sources(entries, rows, members)
    moments = CrossMoments([s.width for s in sources], blocks, device=device, row_norms=row_norms,
                           diagonal=blocks == "all")
    stream(sources, moments, chunk_rows, progress, description)
    return moments


def shard_block_parts(entries: Sequence[StoreEntry], rows: tuple[int, int], bounds: np.ndarray, *, row_norms: bool,
                      members: Sequence[int] | None = None, blocks: Sequence[tuple[int, int]] | None = None,
                      device: str = "auto", chunk_rows: int = 8192, progress: bool = False,
                      description: str = "shard") -> dict[int, CrossMoments]:
    """One pass over rows [start, stop) into moments per sentence block, for the statistics (ci) to merge.

    Parameters
    ----------
    entries, rows, row_norms, members, device, chunk_rows, progress, description
        As for `shard_moments`.
    bounds
        (G + 1,) row offsets of the sentence blocks over the whole corpus (`reprsim.inference.sentence_blocks`).
    blocks
        (a, b) pairs of member positions, every member's diagonal block included (default: every a <= b).

    Returns
    -------
    dict of int to CrossMoments
        Sentence block -> its moments over the shard's rows of it (the blocks the shard overlaps);
        `reprsim.engine.block_moments.merge_block_parts` adds shards' parts and
        `reprsim.engine.BlockedMoments.from_parts` makes the whole from them.
    """
    sources = _shard_sources(entries, rows, members)
    count = len(sources)
    pairs = list(blocks) if blocks is not None else [(a, b) for a in range(count) for b in range(a, count)]
    held, local = shard_block_bounds(bounds, rows)
    blocked = BlockedMoments([s.width for s in sources], pairs, local, device=resolve_device(device),
                             precision="float64", row_norms=row_norms)
    stream(sources, blocked, chunk_rows, progress, description)  # type: ignore[arg-type]
    blocked.release_buffers()
    if blocked.rows_seen != rows[1] - rows[0]:
        raise ValueError(f"{description}: the pass gave {blocked.rows_seen} rows, not the shard's {rows[1] - rows[0]}")
    return dict(zip(held, blocked.parts, strict=True))


def most_blocks_per_shard(bounds: np.ndarray, sentence_lengths: Sequence[int], count: int) -> int:
    """The most sentence blocks one of `count` shards overlaps: the copies of a tile's blocks its task holds.

    Shards and blocks are cut apart, so uneven sentences can give one shard many more than G / N + 1.
    """
    return max(len(shard_block_bounds(bounds, shard_rows(sentence_lengths, Shard(i, count)))[0])
               for i in range(1, count + 1))
