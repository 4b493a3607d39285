"""The store entries a comparison compares: chosen by name or key, checked, and turned into engine sources.

`select_entries` picks the store's complete entries (or the named ones) and refuses entries that share a
display name or do not hold the same rows of the same corpus; `without_stale_rows` and
`check_previous_corpus` check an earlier results table against them; `representations` and
`attention_layers` give their stored layers as engine sources named by `LayerId`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from reprsim.engine import AttentionSource, RepresentationSource
from reprsim.results import ResultTable
from reprsim.store import ActivationStore, StoreEntry


class StaleResultsWarning(UserWarning):
    """Rows of an earlier results file came from a store entry that has since been replaced.

    `compare` drops those rows and computes them again (a model extracted again with other options).
    """


def select_entries(store: ActivationStore, models: Sequence[str] | None) -> list[StoreEntry]:
    """The store's complete entries (or the named ones), checked to share a corpus and have distinct names.

    Parameters
    ----------
    store
        The activation store.
    models
        Entries by display name or key, in the order wanted; ``None`` for every complete entry.

    Returns
    -------
    list of StoreEntry
        The entries.

    Raises
    ------
    KeyError
        If a model is not in the store (naming an unfinished entry when there is one).
    ValueError
        If the store holds no complete entries, a name matches several entries, two entries share a display
        name, or the entries do not hold the same rows of the same corpus.
    """
    entries = store.entries()
    if not entries:
        raise ValueError(f"activation store {store.path} holds no complete entries; run `reprsim extract` first")
    chosen = entries if models is None else [_entry_named(store, entries, m) for m in models]
    by_name: dict[str, StoreEntry] = {}
    for entry in chosen:
        if entry.name in by_name:
            raise ValueError(
                f"two store entries share the display name {entry.name!r} ({by_name[entry.name].key} and "
                f"{entry.key}); choose one by its key with --models, or remove the other "
                f"(`reprsim store remove {store.path} KEY`)"
            )
        by_name[entry.name] = entry
    _check_same_corpus(chosen)
    return chosen


def _entry_named(store: ActivationStore, entries: Sequence[StoreEntry], model: str) -> StoreEntry:
    """The complete entry whose key is `model`, or the only one whose display name is."""
    for entry in entries:
        if entry.key == model:
            return entry
    named = [entry for entry in entries if entry.name == model]
    if len(named) == 1:
        return named[0]
    if named:
        raise ValueError(
            f"{len(named)} store entries are named {model!r} ({', '.join(e.key for e in named)}); choose one "
            f"by its key with --models, or remove the others (`reprsim store remove {store.path} KEY ...`)"
        )
    incomplete = [key for key in store.incomplete() if key.startswith(model)]
    hint = f" ({incomplete[0]} is there but unfinished: run `reprsim extract` again to finish it)" if incomplete else ""
    raise KeyError(
        f"model {model!r} is not in store {store.path}{hint}; available: {', '.join(sorted({e.name for e in entries}))}"
    )


def without_stale_rows(previous: ResultTable, entries: Sequence[StoreEntry]) -> ResultTable:
    """An earlier table without the rows of models whose store entry has been replaced since.

    Parameters
    ----------
    previous
        The earlier table; its provenance names each model's store entry.
    entries
        The entries compared now.

    Returns
    -------
    ResultTable
        `previous` itself when nothing is stale, else a copy without the stale models' rows and entries.

    Warns
    -----
    StaleResultsWarning
        When some rows are dropped, naming the models and their old entries.
    """
    old = previous.provenance.get("entries") or {}
    stale = sorted(e.name for e in entries if e.name in old and old[e.name] != e.key)
    if not stale:
        return previous
    warnings.warn(
        f"results for {', '.join(map(repr, stale))} came from other store entries "
        f"({', '.join(str(old[name]) for name in stale)}); computing them again",
        StaleResultsWarning,
        stacklevel=3,
    )
    frame = previous.frame
    keep = ~(frame["model_a"].isin(stale) | frame["model_b"].isin(stale))
    entries_now = {name: key for name, key in old.items() if name not in stale}
    kept = previous.subset(keep.to_numpy())  # keeps the rows' replicate and null arrays
    return ResultTable(kept.frame, {**previous.provenance, "entries": entries_now}, kept._arrays)


def _check_same_corpus(entries: Sequence[StoreEntry]) -> None:
    """Refuse entries that do not hold the same rows in the same order (rows rule, corpus hash and row count)."""
    first = entries[0]
    for entry in entries[1:]:
        if entry.rows != first.rows:
            raise ValueError(
                f"store entries {first.name!r} ({first.key}, rows {first.rows!r}) and {entry.name!r} ({entry.key}, "
                f"rows {entry.rows!r}) hold different rows: one row per word and one per sentence, or two "
                "poolings of a sentence, cannot be compared; extract both with the same --rows"
            )
        if entry.corpus_hash != first.corpus_hash or entry.n_words != first.n_words:
            raise ValueError(
                f"store entries {first.name!r} and {entry.name!r} were extracted from different corpora "
                f"(corpus hash {first.corpus_hash} with {first.n_words} words vs {entry.corpus_hash} with "
                f"{entry.n_words} words); re-extract them on the same corpus"
            )


def check_previous_corpus(previous: ResultTable, entry: StoreEntry) -> None:
    """Refuse a previous table computed on another corpus than the store's.

    Parameters
    ----------
    previous
        The earlier table; its provenance may name its corpus hash.
    entry
        An entry of the store compared now.

    Raises
    ------
    ValueError
        If the corpus hashes differ.
    """
    old = previous.provenance.get("corpus_hash")
    if old is not None and old != entry.corpus_hash:
        raise ValueError(
            f"the previous results were computed on corpus {old}, the store holds corpus {entry.corpus_hash}; "
            "use a new results file"
        )


def representations(entries: Sequence[StoreEntry]) -> list[RepresentationSource]:
    """Every stored layer of every entry, as engine sources named by `LayerId`.

    Parameters
    ----------
    entries
        The entries compared.

    Returns
    -------
    list of RepresentationSource
        Entry by entry, layer by layer.
    """
    return [RepresentationSource.from_store(e, layer) for e in entries for layer in e.layer_ids]


def attention_layers(entries: Sequence[StoreEntry]) -> list[AttentionSource]:
    """Every stored attention layer (with heads) of every entry extracted with attention.

    Parameters
    ----------
    entries
        The entries compared.

    Returns
    -------
    list of AttentionSource
        Entry by entry, layer by layer; empty when no entry has attention.
    """
    return [AttentionSource.from_store(e, layer)
            for e in entries if e.has_attention for layer in e.layer_ids if e.heads(layer) > 0]
