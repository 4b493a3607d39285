"""All-pairs comparison: every stored representation against every other, on every chosen measure.

Three paths, by what a measure needs:
- streamable representation measures (linear CKA, maxsim, linreg, the CCA family, Procrustes, debiased CKA)
  go through the engine's single streaming pass of cross-products, so memory does not grow with the corpus;
- measures that build n x n matrices (RBF CKA, RSA, mutual k-NN) run on one seeded row subsample shared by
  every representation, and the table says so (`subsample`, `n_rows`);
- attention measures fit each layer's stored word-level maps of a sentence subsample once
  (`fit_attention`) and score every pair of layers from the fits.

Results already present in `previous` are kept and not recomputed, so adding a model to a study costs only
the pairs that involve it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from reprsim import measures as registry
from reprsim._version import __version__
from reprsim.measures.attention import (
    MEASURE_KINDS,
    AttentionKind,
    AttentionProfile,
    attention_profile_bytes,
    attention_profile_similarity,
    fit_attention,
)
from reprsim.measures.fitted import FITTED_MEASURES, fit, profile_similarity
from reprsim.measures.knn import DEFAULT_K
from reprsim.results import DIRECTED, SYMMETRIC, LayerId, ResultTable
from reprsim.store import ActivationStore, StoreEntry

# Measures left out of "all": minibatch CKA estimates what linear/debiased CKA give exactly here.
NOT_IN_ALL = frozenset({"minibatch_cka"})


@dataclass(frozen=True)
class Representation:
    """One stored layer: its identity in the results and where its rows come from."""

    layer_id: LayerId
    entry: StoreEntry
    layer: int

    @property
    def width(self) -> int:
        return self.entry.layer_width(self.layer)

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        return self.entry.iter_rows(self.layer, chunk_rows=chunk_rows)


def resolve_measures(names: Sequence[str]) -> list[str]:
    """Expand "all" and check every name against the registry (KeyError listing what exists)."""
    chosen: list[str] = []
    for name in names:
        expanded = [m for m in registry.available() if m not in NOT_IN_ALL] if name == "all" else [name]
        for m in expanded:
            registry.get(m)
            if m not in chosen:
                chosen.append(m)
    if not chosen:
        raise ValueError("no measures chosen")
    return chosen


def select_entries(store: ActivationStore, models: Sequence[str] | None) -> list[StoreEntry]:
    """The store's complete entries, optionally only the named ones (display names or entry keys), checked
    to share one corpus and to have distinct display names (results are keyed by them)."""
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
    check_same_corpus(chosen)
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
    """previous without the rows of models whose store entry is not the one they were computed from (the
    model was extracted again with other options): those rows are computed again, with a warning."""
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
    return ResultTable(frame[keep].reset_index(drop=True), {**previous.provenance, "entries": entries_now})


class StaleResultsWarning(UserWarning):
    """Rows of an earlier results file came from a store entry that has since been replaced."""


def check_same_corpus(entries: Sequence[StoreEntry]) -> None:
    """Every entry must hold the same words in the same order: same corpus hash and row count."""
    first = entries[0]
    for entry in entries[1:]:
        if entry.corpus_hash != first.corpus_hash or entry.n_words != first.n_words:
            raise ValueError(
                f"store entries {first.name!r} and {entry.name!r} were extracted from different corpora "
                f"(corpus hash {first.corpus_hash} with {first.n_words} words vs {entry.corpus_hash} with "
                f"{entry.n_words} words); re-extract them on the same corpus"
            )


def representations(entries: Sequence[StoreEntry]) -> list[Representation]:
    return [Representation(LayerId(e.name, layer), e, layer) for e in entries for layer in e.layer_ids]


def ordered_pairs(n: int, symmetric: bool) -> list[tuple[int, int]]:
    """Index pairs to compute: i <= j for symmetric measures, every (i, j) for directed ones."""
    return [(i, j) for i in range(n) for j in range(n) if not symmetric or i <= j]


def _record(a: LayerId, b: LayerId, measure: str, value: float, level: str, n_rows: int,
            subsample: bool) -> dict[str, Any]:
    info = registry.get(measure)
    return {
        "model_a": a.model, "layer_a": a.layer, "model_b": b.model, "layer_b": b.layer,
        "measure": measure, "direction": SYMMETRIC if info.symmetric else DIRECTED,
        "value": float(value), "level": level, "n_rows": n_rows, "subsample": subsample,
    }


def _done_keys(previous: ResultTable | None) -> set[tuple[str, int, str, int, str]]:
    if previous is None:
        return set()
    f = previous.frame
    return set(zip(f.model_a, f.layer_a, f.model_b, f.layer_b, f.measure, strict=True))


def _todo(reps: Sequence[Any], measure: str, done: set[tuple[str, int, str, int, str]]) -> list[tuple[int, int]]:
    info = registry.get(measure)
    ids = [r.layer_id for r in reps]

    def computed(a: LayerId, b: LayerId) -> bool:
        # A symmetric pair counts as done in either order: an earlier run may have listed the models
        # in another order (--models, a study's list, or the store's).
        return (a.model, a.layer, b.model, b.layer, measure) in done or (
            info.symmetric and (b.model, b.layer, a.model, a.layer, measure) in done
        )

    return [(i, j) for i, j in ordered_pairs(len(reps), info.symmetric) if not computed(ids[i], ids[j])]


# --- streamable representation measures: one pass of cross-products -----------------------------------
def streamed_records(reps: Sequence[Representation], names: Sequence[str],
                     done: set[tuple[str, int, str, int, str]], device: str, chunk_rows: int,
                     progress: bool) -> list[dict[str, Any]]:
    """Linear measures from the engine's single streaming pass over every needed pair (i <= j)."""
    from reprsim.engine import RepresentationSource, all_pairs
    from reprsim.engine.derive import Directed

    todo = {m: set(_todo(reps, m, done)) for m in names}
    pairs = sorted({(min(i, j), max(i, j)) for p in todo.values() for i, j in p})
    if not pairs:
        return []
    sources = [RepresentationSource.from_store(r.entry, r.layer) for r in reps]
    n = reps[0].entry.n_words
    records = []
    for result in all_pairs(sources, list(names), pairs, device=device, chunk_rows=chunk_rows, progress=progress):
        i, j = result.a, result.b
        for m, value in result.values.items():
            directions: list[tuple[int, int, float]]
            if isinstance(value, Directed):
                directions = [(i, j, value.a_to_b), (j, i, value.b_to_a)][: 1 if i == j else 2]
            else:
                directions = [(i, j, value)]
            for a, b, v in directions:
                if (a, b) in todo[m]:
                    records.append(_record(reps[a].layer_id, reps[b].layer_id, m, float(v),
                                           "representation", n, False))
    return records


# --- n x n measures: a shared row subsample ------------------------------------------------------------
def subsample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded subsample, shared by every representation (all rows if n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def read_subsample(rep: Representation, rows: np.ndarray, chunk_rows: int) -> np.ndarray:
    """The chosen rows of one representation, read chunk by chunk (never the whole layer)."""
    parts = []
    start = 0
    for chunk in rep.chunks(chunk_rows):
        stop = start + chunk.shape[0]
        lo, hi = np.searchsorted(rows, [start, stop])
        parts.append(chunk[rows[lo:hi] - start])
        start = stop
    return np.concatenate(parts).astype(np.float32, copy=False)


PROFILE_BUDGET_BYTES = 2 << 30  # n x n profiles held at once; beyond it, representations are fitted in tiles


def profile_bytes(measure: str, n: int) -> int:
    return {"rbf_cka": 8 * n * n, "rsa": 4 * n * (n - 1), "mutual_knn": n * n}.get(measure, 0)


def tiles(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[i : i + size]) for i in range(0, len(indices), size)]


def subsampled_records(reps: Sequence[Representation], names: Sequence[str],
                       done: set[tuple[str, int, str, int, str]], size: int, seed: int, chunk_rows: int,
                       progress: bool) -> list[dict[str, Any]]:
    """n x n measures on one shared row subsample; each representation's n x n profile is fitted once per
    tile of representations (all at once when they fit in PROFILE_BUDGET_BYTES)."""
    todo = {m: _todo(reps, m, done) for m in names}
    n_pairs = sum(len(p) for p in todo.values())
    if n_pairs == 0:
        return []
    rows = subsample_rows(reps[0].entry.n_words, size, seed)
    needed = sorted({k for pairs in todo.values() for pair in pairs for k in pair})
    data = {k: read_subsample(reps[k], rows, chunk_rows)
            for k in tqdm(needed, desc="reading subsample", unit="layer", disable=not progress)}
    subsample = len(rows) < reps[0].entry.n_words
    records = []
    with tqdm(total=n_pairs, desc="n x n measures", unit="pair", disable=not progress) as bar:
        for m, pairs in todo.items():
            if not pairs:
                continue
            tile = max(1, PROFILE_BUDGET_BYTES // max(1, 2 * profile_bytes(m, len(rows))))
            if m not in FITTED_MEASURES:
                # Measures with no per-representation fit (e.g. minibatch CKA) run per pair on the subsample.
                fn = registry.get(m).function
                for i, j in pairs:
                    records.append(_record(reps[i].layer_id, reps[j].layer_id, m, fn(data[i], data[j]),
                                           "representation", len(rows), subsample))
                    bar.update()
                continue
            used = sorted({k for pair in pairs for k in pair})
            wanted = set(pairs)
            for block_a in tiles(used, tile):
                fits_a = {k: fit(m, data[k]) for k in block_a}
                for block_b in tiles(used, tile):
                    fits_b = fits_a if block_b == block_a else {k: fit(m, data[k]) for k in block_b}
                    for i in block_a:
                        for j in block_b:
                            if (i, j) in wanted:
                                value = profile_similarity(fits_a[i], fits_b[j])
                                records.append(_record(reps[i].layer_id, reps[j].layer_id, m, value,
                                                       "representation", len(rows), subsample))
                                bar.update()
    return records


# --- attention measures ----------------------------------------------------------------------------------
def attention_layers(entries: Sequence[StoreEntry]) -> list[Representation]:
    return [Representation(LayerId(e.name, layer), e, layer)
            for e in entries if e.has_attention for layer in e.layer_ids if e.heads(layer) > 0]


def read_attention(rep: Representation, sentences: np.ndarray) -> list[np.ndarray]:
    wanted = set(sentences.tolist())
    return [m for s, m in enumerate(rep.entry.iter_attention(rep.layer)) if s in wanted]


ATTENTION_FIT_BUDGET_BYTES = 2 << 30  # attention profiles held at once; beyond it, layers are fitted in tiles


def fit_attention_layers(reps: Sequence[Representation], maps: dict[int, list[np.ndarray]], block: list[int],
                         kind: AttentionKind) -> dict[int, AttentionProfile]:
    """Per-layer attention profiles of the layers in `block` (indices into reps), errors naming the layer."""
    return {k: fit_attention(maps[k], kind, name=reps[k].layer_id.label()) for k in block}


def attention_records(entries: Sequence[StoreEntry], names: Sequence[str],
                      done: set[tuple[str, int, str, int, str]], max_sentences: int, seed: int,
                      progress: bool) -> list[dict[str, Any]]:
    """Attention measures on a shared sentence subsample: each layer is fitted once per measure (per tile of
    layers when the profiles exceed ATTENTION_FIT_BUDGET_BYTES) and every pair is scored from the fits."""
    reps = attention_layers(entries)
    if not reps or not names:
        return []
    todo = {m: _todo(reps, m, done) for m in names}
    n_pairs = sum(len(p) for p in todo.values())
    if n_pairs == 0:
        return []
    n_sentences = entries[0].n_sentences
    sentences = subsample_rows(n_sentences, max_sentences, seed)
    needed = sorted({k for pairs in todo.values() for pair in pairs for k in pair})
    maps = {k: read_attention(reps[k], sentences)
            for k in tqdm(needed, desc="reading attention", unit="layer", disable=not progress)}
    lengths = [int(t) for t in np.asarray(entries[0].sentence_lengths)[sentences]]
    n_words = sum(lengths)
    subsample = len(sentences) < n_sentences
    records = []
    with tqdm(total=n_pairs, desc="attention measures", unit="pair", disable=not progress) as bar:
        for m, pairs in todo.items():
            if not pairs:
                continue
            kind = MEASURE_KINDS[m]
            used = sorted({k for pair in pairs for k in pair})
            largest = max(attention_profile_bytes(reps[k].entry.heads(reps[k].layer), lengths, kind) for k in used)
            tile = max(1, ATTENTION_FIT_BUDGET_BYTES // max(1, 2 * largest))
            wanted = set(pairs)
            for block_a in tiles(used, tile):
                fits_a = fit_attention_layers(reps, maps, block_a, kind)
                for block_b in tiles(used, tile):
                    fits_b = fits_a if block_b == block_a else fit_attention_layers(reps, maps, block_b, kind)
                    for i in block_a:
                        for j in block_b:
                            if (i, j) in wanted:
                                value = attention_profile_similarity(fits_a[i], fits_b[j])
                                records.append(_record(reps[i].layer_id, reps[j].layer_id, m, value,
                                                       "attention", n_words, subsample))
                                bar.update()
    return records


def compare(
    store: str | Path | ActivationStore,
    measures: Sequence[str] = ("all",),
    models: Sequence[str] | None = None,
    *,
    previous: ResultTable | None = None,
    device: str = "auto",
    chunk_rows: int = 8192,
    subsample_rows: int = 5000,
    attention_sentences: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> ResultTable:
    """Compare every stored representation with every other on each measure; returns a ResultTable.

    measures: registry names or "all"; models: display names of store entries (default: all entries);
    previous: an earlier table of the same study whose rows are kept and not recomputed;
    subsample_rows: rows used by n x n measures (RBF CKA, RSA, mutual k-NN); attention_sentences: sentences
    used by attention measures; device: "auto" | "cpu" | "cuda" for the streaming engine.
    """
    if not isinstance(store, ActivationStore):
        store = ActivationStore(store, create=False)
    for name, value, minimum in (("chunk_rows", chunk_rows, 2), ("subsample_rows", subsample_rows, 10),
                                 ("attention_sentences", attention_sentences, 1)):
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value}")
    names = resolve_measures(measures)
    entries = select_entries(store, models)
    reps = representations(entries)
    earlier_entries: dict[str, str] = {}  # entries of models in previous that this call does not compare
    if previous is not None:
        check_previous_corpus(previous, entries[0])
        previous = without_stale_rows(previous, entries)
        earlier_entries = previous.provenance.get("entries") or {}
    done = _done_keys(previous)

    from reprsim.engine import ENGINE_MEASURES

    streamed = [m for m in names if m in ENGINE_MEASURES]
    sampled = [m for m in names if registry.get(m).level != "attention" and m not in streamed]
    attention = [m for m in names if registry.get(m).level == "attention"]

    if "mutual_knn" in sampled and min(entries[0].n_words, subsample_rows) <= DEFAULT_K:
        raise ValueError(  # checked before the other measures run, not after
            f"mutual_knn compares each word's {DEFAULT_K} nearest neighbours and needs more than {DEFAULT_K} rows; the "
            f"corpus has {entries[0].n_words} words: choose measures without it (--measures) or a larger corpus"
        )
    records = streamed_records(reps, streamed, done, device, chunk_rows, progress)
    records += subsampled_records(reps, sampled, done, subsample_rows, seed, chunk_rows, progress)
    records += attention_records(entries, attention, done, attention_sentences, seed, progress)

    provenance = {
        "reprsim_version": __version__,
        "store": str(store.path),
        "corpus_hash": entries[0].corpus_hash,
        "n_words": entries[0].n_words,
        "entries": {**earlier_entries, **{e.name: e.key for e in entries}},
        "measures": names,
        "subsample_rows": subsample_rows,
        "attention_sentences": attention_sentences,
        "seed": seed,
    }
    new = ResultTable.from_records(records, provenance) if records else None
    if previous is None:
        if new is None:
            raise ValueError("nothing to compare")
        return new
    if new is None:
        return previous
    return ResultTable.concat([previous, new], provenance=provenance)


def check_previous_corpus(previous: ResultTable, entry: StoreEntry) -> None:
    old = previous.provenance.get("corpus_hash")
    if old is not None and old != entry.corpus_hash:
        raise ValueError(
            f"the previous results were computed on corpus {old}, the store holds corpus {entry.corpus_hash}; "
            "use a new results file"
        )
