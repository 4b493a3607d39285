"""One model's extraction split over corpus shards: parts extracted apart, then joined into the one entry.

For a long corpus, `reprsim.extraction.on_ray` runs one actor per (model x corpus shard). Each part is a run
of whole extraction windows (`reprsim.extraction.plan.WINDOW_SENTENCES` sentences), extracted into an entry
of its own in the store's hidden part store (``<store>/.parts``, which `ActivationStore.entries` does not
list), with the windows and batches the whole corpus would have: a part starts on the window grid, and only
the corpus's last part cuts its last window into pieces (``whole_windows``). `join_parts` then copies the
parts, window by window, into the model's entry, under its writer lock, and removes them.

The joined entry is the one a single extraction writes, byte for byte (the tests compare the files): the
same windows, batches and writes. Every step resumes: a part is an ordinary entry (resumed from its durable
prefix), a half-joined entry continues at its durable prefix, and a finished entry is reused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reprsim.corpus import Corpus
from reprsim.extraction.one_model import entry_identity, extract_one, task_options
from reprsim.extraction.plan import WINDOW_SENTENCES, window_bounds
from reprsim.store import ActivationStore, StoreEntry

__all__ = ["PARTS", "corpus_parts", "join_parts", "part_task"]

PARTS = ".parts"  # the part store's folder inside the store (hidden: not an entry)


def corpus_parts(n_sentences: int, count: int) -> list[tuple[int, int]]:
    """Cut sentences 0..n into `count` runs of whole windows of about equal numbers of windows.

    Parameters
    ----------
    n_sentences
        Sentences of the corpus.
    count
        Parts wanted.

    Returns
    -------
    list of tuple of int
        The parts' sentences [first, stop), in order.

    Raises
    ------
    ValueError
        If `count` is not a positive integer, or the corpus has fewer windows than `count`.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"corpus_shards must be a positive integer, got {count!r}")
    windows = -(-n_sentences // WINDOW_SENTENCES)
    if count > windows:
        raise ValueError(f"corpus_shards={count} (--corpus-shards) but the corpus has {n_sentences} sentences, "
                         f"{windows} window(s) of {WINDOW_SENTENCES}: a shard is whole windows, so choose at most "
                         f"{windows}")
    cuts = [round(k * windows / count) * WINDOW_SENTENCES for k in range(count)] + [n_sentences]
    return [(cuts[k], min(cuts[k + 1], n_sentences)) for k in range(count)]


def _part_corpus(corpus: Corpus, part: tuple[int, int]) -> Corpus:
    """The sentences of one part, as a corpus of their own."""
    return Corpus([list(s) for s in corpus.sentences[part[0]:part[1]]], name=f"{corpus.name}[{part[0]}:{part[1]}]",
                  source=corpus.source)


def part_task(spec: str, name: str, corpus: Corpus, store: str, arguments: dict[str, Any],
              part: tuple[int, int]) -> str:
    """What one (model x corpus shard) actor runs: the part's sentences into the part store; its key.

    Parameters
    ----------
    spec, name, corpus, store, arguments
        As `reprsim.extraction.one_model.extraction_task` takes them (the whole corpus).
    part
        The part's sentences [first, stop) (`corpus_parts`).

    Returns
    -------
    str
        The part's key in the part store.
    """
    options = task_options(arguments)
    if ActivationStore(store).has_complete(entry_identity(spec, name, corpus, options).key):
        return ""  # the model's entry is done already: nothing to extract or join
    last = part[1] == len(corpus)
    # The part's name holds its place in the corpus: the same sentences as another corpus's part (or as its
    # last part, whose last window is cut in pieces) are another part.
    label = f"{name}.part-{part[0]}-{part[1]}-of-{len(corpus)}"
    entry = extract_one(spec, label, _part_corpus(corpus, part), ActivationStore(Path(store) / PARTS), options,
                        whole_windows=not last)
    return entry.key


def _attention_of(entry: StoreEntry, layer: int, skip: int) -> Iterator[np.ndarray]:
    """A part's maps of one layer, sentence by sentence, from sentence `skip` on."""
    for s, maps in enumerate(entry.iter_attention(layer)):
        if s >= skip:
            yield maps


def join_parts(spec: str, name: str, corpus: Corpus, store: str, arguments: dict[str, Any],
               parts: Sequence[tuple[int, int]], *part_keys: str) -> str:
    """Copy a model's parts, window by window, into its entry of the whole corpus; remove them; its key.

    Parameters
    ----------
    spec, name, corpus, store, arguments
        As for `part_task`.
    parts
        The parts' sentences, in order.
    *part_keys
        The parts' keys in the part store (what each `part_task` returned; empty when the entry was complete).

    Returns
    -------
    str
        The entry's key.

    Raises
    ------
    ValueError
        If the parts do not cover the corpus in order, or do not hold the same layers.
    """
    options = task_options(arguments)
    identity = entry_identity(spec, name, corpus, options)
    target = ActivationStore(store)
    part_store = ActivationStore(Path(store) / PARTS)
    if [p[0] for p in parts] != [0] + [p[1] for p in parts[:-1]] or parts[-1][1] != len(corpus):
        raise ValueError(f"model {name!r}: the parts {list(parts)} do not cover the corpus's {len(corpus)} sentences")
    with target.writing(identity.key):
        if not target.has_complete(identity.key):
            _copy_parts(target, identity.key, identity.manifest, [part_store.get(k) for k in part_keys], parts,
                        len(corpus), name)
    for key in part_keys:
        if not key:
            continue
        with part_store.writing(key):  # another join of the same parts may have removed it already
            if key in part_store.keys():
                part_store.remove(key)
    return identity.key


def _copy_parts(target: ActivationStore, key: str, manifest: dict[str, Any], entries: Sequence[StoreEntry],
                parts: Sequence[tuple[int, int]], n_sentences: int, name: str) -> None:
    """Write the parts into the entry, window by window on the whole corpus's grid, from its durable prefix."""
    first = entries[0]
    for e in entries[1:]:
        if e.layer_ids != first.layer_ids or e.has_attention != first.has_attention:
            raise ValueError(f"model {name!r}: the parts {first.key} and {e.key} hold different layers")
    layers = first.layer_ids
    heads = [first.heads(layer) for layer in layers] if first.has_attention else None
    lengths = [n for e in entries for n in e.sentence_lengths]
    writer = target.writer(key, manifest, layers, [first.layer_width(la) for la in layers], lengths, heads,
                           first.dtype)
    for entry, (start, stop) in zip(entries, parts, strict=True):
        if writer.done_sentences >= stop:
            continue
        offsets = np.concatenate([[0], np.cumsum(entry.sentence_lengths)])
        skip = writer.done_sentences - start
        maps = {la: _attention_of(entry, la, skip) for la, h in zip(layers, heads or [], strict=False) if h}
        for a, b in window_bounds(writer.done_sentences, n_sentences):
            if a >= stop:
                break
            assert b <= stop, "a window straddles two parts"
            rows = int(offsets[a - start]), int(offsets[b - start])
            hidden = [entry.read_rows(la, *rows) for la in layers]
            attention = None if heads is None else [
                [next(maps[la]) for _ in range(b - a)] if h else None for la, h in zip(layers, heads, strict=True)]
            writer.write_sentences(a, b, hidden, attention)
    writer.finalize()
