"""All-pairs comparison: every stored representation against every other, on every chosen measure.

`compare` runs one study's comparison from an activation store and returns a `ResultTable`. Three paths, by
what a measure needs:

- streamable representation measures (linear CKA, maxsim, linreg, the CCA family, Procrustes, debiased CKA)
  go through the engine's single streaming pass of cross-products, so memory does not grow with the corpus;
- measures that build n x n matrices (RBF CKA, RSA, mutual k-NN) run on one seeded row subsample shared by
  every representation, and the table says so (`subsample`, `n_rows`);
- attention measures fit each layer's stored word-level maps of a sentence subsample once
  (`fit_attention`) and score every pair of layers from the fits.

Results already present in `previous` are kept and not recomputed, so adding a model to a study costs only
the pairs that involve it. Each path drives its measure family (`reprsim.engine.PairFamily`) through the one
scheduler (`reprsim.engine.score_pairs`) under a memory budget: `LINEAR_BUDGET_BYTES`,
`PROFILE_BUDGET_BYTES` and `ATTENTION_FIT_BUDGET_BYTES`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprsim import measures as registry
from reprsim._version import __version__
from reprsim.engine import (
    ENGINE_MEASURES,
    AttentionFamily,
    AttentionSource,
    Directed,
    LinearFamily,
    PairFamily,
    RepresentationSource,
    SampleFamily,
    SvccaOptions,
    resolve_device,
    score_pairs,
)
from reprsim.engine.families import warn_about_fits
from reprsim.engine.linear_score import check_measures
from reprsim.layers import LayerId
from reprsim.measures.knn import DEFAULT_K
from reprsim.results import DIRECTED, SYMMETRIC, ResultTable
from reprsim.store import ActivationStore, StoreEntry

# Measures on each row's k nearest neighbours: they need more rows than k.
KNN_MEASURES = frozenset({"mutual_knn", "jaccard_knn", "rank_similarity", "second_order_cosine", "cknna", "cycle_knn"})

# Measures left out of "all": minibatch CKA estimates what linear/debiased CKA give exactly here; uniformity
# difference has no per-representation fit, so it would rebuild two n x n distance matrices for every pair.
NOT_IN_ALL = frozenset({"minibatch_cka", "uniformity_difference", "linear_predictivity"})
# Measures compare cannot compute yet, with the reason.
NOT_IN_COMPARE = {
    "linear_predictivity": "it cross-validates over folds of whole sentences, which the all-pairs pass does not "
    "keep yet; call reprsim.measures.linear_predictivity on two stored layers (StoreEntry.read_rows) with "
    "sentence_lengths=entry.sentence_lengths",
}


def resolve_measures(names: Sequence[str]) -> list[str]:
    """Expand ``"all"`` and check every name against the measure registry.

    Parameters
    ----------
    names
        Registry names, or ``"all"`` for every registered measure except those in `NOT_IN_ALL`.

    Returns
    -------
    list of str
        The measures, each once, in the order given.

    Raises
    ------
    KeyError
        If a name is not registered (the message lists what exists).
    ValueError
        If no measure is chosen.
    """
    chosen: list[str] = []
    for name in names:
        expanded = [m for m in registry.available() if m not in NOT_IN_ALL] if name == "all" else [name]
        for m in expanded:
            info = registry.get(m)
            if info.base in NOT_IN_COMPARE:
                raise ValueError(f"compare cannot compute {m}: {NOT_IN_COMPARE[info.base]}")
            canonical = info.name
            if canonical not in chosen:
                chosen.append(canonical)
    if not chosen:
        raise ValueError("no measures chosen")
    return chosen


def _select_entries(store: ActivationStore, models: Sequence[str] | None) -> list[StoreEntry]:
    """The store's complete entries (or the named ones), checked to share a corpus and have distinct names."""
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


def _without_stale_rows(previous: ResultTable, entries: Sequence[StoreEntry]) -> ResultTable:
    """Previous without the rows of models whose store entry has been replaced since (warns when any)."""
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
    """Rows of an earlier results file came from a store entry that has since been replaced.

    `compare` drops those rows and computes them again (a model extracted again with other options).
    """


def _check_same_corpus(entries: Sequence[StoreEntry]) -> None:
    """Refuse entries that do not hold the same words in the same order (corpus hash and row count)."""
    first = entries[0]
    for entry in entries[1:]:
        if entry.corpus_hash != first.corpus_hash or entry.n_words != first.n_words:
            raise ValueError(
                f"store entries {first.name!r} and {entry.name!r} were extracted from different corpora "
                f"(corpus hash {first.corpus_hash} with {first.n_words} words vs {entry.corpus_hash} with "
                f"{entry.n_words} words); re-extract them on the same corpus"
            )


def _representations(entries: Sequence[StoreEntry]) -> list[RepresentationSource]:
    """Every stored layer of every entry, as engine sources named by `LayerId`."""
    return [RepresentationSource.from_store(e, layer) for e in entries for layer in e.layer_ids]


def _attention_layers(entries: Sequence[StoreEntry]) -> list[AttentionSource]:
    """Every stored attention layer (with heads) of every entry extracted with attention."""
    return [AttentionSource.from_store(e, layer)
            for e in entries if e.has_attention for layer in e.layer_ids if e.heads(layer) > 0]


def _ordered_pairs(n: int, symmetric: bool) -> list[tuple[int, int]]:
    """Index pairs to compute: i <= j for symmetric measures, every (i, j) for directed ones."""
    return [(i, j) for i in range(n) for j in range(n) if not symmetric or i <= j]


def _record(a: LayerId, b: LayerId, measure: str, value: float, level: str, n_rows: int,
            subsample: bool) -> dict[str, Any]:
    """One results-table row."""
    info = registry.get(measure)
    return {
        "model_a": a.model, "layer_a": a.layer, "model_b": b.model, "layer_b": b.layer,
        "measure": measure, "direction": SYMMETRIC if info.symmetric else DIRECTED,
        "value": float(value), "level": level, "n_rows": n_rows, "subsample": subsample,
    }


def _done_keys(previous: ResultTable | None) -> set[tuple[str, int, str, int, str]]:
    """(model_a, layer_a, model_b, layer_b, measure) of every row already computed."""
    if previous is None:
        return set()
    f = previous.frame
    return set(zip(f.model_a, f.layer_a, f.model_b, f.layer_b, f.measure, strict=True))


def _todo(reps: Sequence[Any], measure: str, done: set[tuple[str, int, str, int, str]]) -> list[tuple[int, int]]:
    """The index pairs of one measure that are not computed yet."""
    info = registry.get(measure)
    ids: list[LayerId] = [r.id for r in reps]

    def computed(a: LayerId, b: LayerId) -> bool:
        # A symmetric pair counts as done in either order: an earlier run may have listed the models
        # in another order (--models, a study's list, or the store's).
        return (a.model, a.layer, b.model, b.layer, measure) in done or (
            info.symmetric and (b.model, b.layer, a.model, a.layer, measure) in done
        )

    return [(i, j) for i, j in _ordered_pairs(len(reps), info.symmetric) if not computed(ids[i], ids[j])]


def _family_records(family: PairFamily, ids: Sequence[LayerId], todo: dict[str, list[tuple[int, int]]],
                    budget: int, level: str, n_rows: int, subsample: bool, progress: bool,
                    description: str, unordered: bool = False) -> list[dict[str, Any]]:
    """Run one family through the scheduler over the pairs some measure still needs, as table records.

    With `unordered`, each pair is scored once as (min, max) and a directed value (`Directed`) gives both
    orders' records; only the records that `todo` asks for are kept.
    """
    wanted = {m: set(pairs) for m, pairs in todo.items()}
    pairs = sorted({(min(p), max(p)) if unordered else p for ps in todo.values() for p in ps})
    if not pairs:
        return []
    scored = {(i, j): values for i, j, values in score_pairs(family, pairs, budget, progress=progress,
                                                            description=description)}
    records = []
    for i, j in pairs:  # in pair order, whatever the tiling
        for m, value in scored[i, j].items():
            directions: list[tuple[int, int, float]]
            if isinstance(value, Directed):
                directions = [(i, j, value.a_to_b), (j, i, value.b_to_a)][: 1 if i == j else 2]
            else:
                directions = [(i, j, value)]
            for a, b, v in directions:
                if (a, b) in wanted.get(m, ()):
                    records.append(_record(ids[a], ids[b], m, float(v), level, n_rows, subsample))
    return records


# Which measures of a call a warning concerns, by its category (others concern every measure of the call).
_CONCERNS: dict[str, frozenset[str]] = {
    "FewRowsWarning": frozenset({"cca_r2", "cca_rho", "svcca", "pwcca"}),
    "ConstantNeuronWarning": frozenset({"maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "pwcca"}),
}


@contextlib.contextmanager
def _recording_warnings(measures: Sequence[str], sink: list[dict[str, str]]) -> Iterator[None]:
    """Record reprsim's warnings raised inside as provenance entries and raise every warning again.

    An entry is ``{"category", "message", "measure"}``, one per measure concerned, each once; the console and
    the report then both show it. Warnings of other packages are only raised again.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        category = w.category.__name__
        concerned = _CONCERNS.get(category)
        ours = w.category.__module__.startswith("reprsim")
        for m in measures if ours else ():
            if concerned is not None and registry.get(m).base not in concerned:
                continue
            entry = {"category": category, "message": str(w.message), "measure": m}
            if entry not in sink:
                sink.append(entry)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# --- linear measures: one streaming pass of cross-products ----------------------------------------------
LINEAR_BUDGET_BYTES = 4 << 30  # cross-product blocks held per pass; beyond it, the rows are streamed per tile


def streamed_records(reps: Sequence[RepresentationSource], names: Sequence[str],
                     done: set[tuple[str, int, str, int, str]], device: str, chunk_rows: int,
                     progress: bool) -> list[dict[str, Any]]:
    """Linear measures from the engine's streaming pass over every needed pair (i <= j).

    Every layer is fitted once; when the blocks exceed `LINEAR_BUDGET_BYTES` the rows are streamed once
    per tile.

    Parameters
    ----------
    reps
        Every stored layer, as sources named by `LayerId`.
    names
        Measures from `reprsim.engine.ENGINE_MEASURES`.
    done
        (model_a, layer_a, model_b, layer_b, measure) of the rows already computed; a symmetric pair counts
        as done in either order.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    chunk_rows
        Rows per chunk of a pass.
    progress
        Show progress bars.

    Returns
    -------
    list of dict
        Results-table records (level ``"representation"``, ``subsample`` False): one per symmetric pair,
        both orders of a directed measure.

    Warns
    -----
    ConstantNeuronWarning, FewRowsWarning
        As `reprsim.engine.all_pairs`.
    """
    if not names:
        return []
    family = LinearFamily(reps, check_measures(names), device=resolve_device(device), precision="float64",
                          svcca=SvccaOptions(), chunk_rows=chunk_rows, workers=torch.get_num_threads(),
                          progress=progress)
    ids: list[LayerId] = [r.id for r in reps]  # type: ignore[misc]
    records = _family_records(family, ids, {m: _todo(reps, m, done) for m in names}, LINEAR_BUDGET_BYTES,
                              "representation", int(reps[0].n_rows or 0), False, progress, "pairs", unordered=True)
    warn_about_fits(family.fits, ids, names)
    return records


# --- n x n measures: a shared row subsample ------------------------------------------------------------
def subsample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded subsample, shared by every representation.

    Parameters
    ----------
    n
        The number of rows to choose from.
    size
        How many to choose.
    seed
        The random generator's seed.

    Returns
    -------
    numpy.ndarray
        ``size`` sorted indices drawn without replacement, or every index when ``n <= size``.
    """
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


PROFILE_BUDGET_BYTES = 2 << 30  # n x n fits held at once; beyond it, representations are fitted in tiles


def subsampled_records(reps: Sequence[RepresentationSource], names: Sequence[str],
                       done: set[tuple[str, int, str, int, str]], size: int, seed: int, chunk_rows: int,
                       progress: bool) -> list[dict[str, Any]]:
    """N x n measures on one shared row subsample, every pair scored from per-representation fits.

    Each representation is fitted once per measure (once per tile of representations when the fits exceed
    `PROFILE_BUDGET_BYTES`).

    Parameters
    ----------
    reps
        Every stored layer, as sources named by `LayerId`.
    names
        Registry names of n x n measures (RBF CKA, RSA, mutual k-NN, ...).
    done
        (model_a, layer_a, model_b, layer_b, measure) of the rows already computed; a symmetric pair counts
        as done in either order.
    size
        Rows in the subsample (all rows when the corpus has no more).
    seed
        The subsample's seed.
    chunk_rows
        Rows per chunk read.
    progress
        Show progress bars.

    Returns
    -------
    list of dict
        Results-table records (level ``"representation"``, ``n_rows`` the subsample's size, ``subsample``
        True when it is smaller than the corpus).
    """
    if not reps:
        return []
    n_words = int(reps[0].n_rows or 0)
    rows = subsample_rows(n_words, size, seed)
    ids: list[LayerId] = [r.id for r in reps]  # type: ignore[misc]
    records = []
    for m in names:
        family = SampleFamily(reps, m, rows, chunk_rows)
        records += _family_records(family, ids, {m: _todo(reps, m, done)}, PROFILE_BUDGET_BYTES, "representation",
                                   len(rows), len(rows) < n_words, progress, f"{m} pairs")
    return records


# --- attention measures ----------------------------------------------------------------------------------
ATTENTION_FIT_BUDGET_BYTES = 2 << 30  # attention fits held at once; beyond it, layers are fitted in tiles


def attention_records(entries: Sequence[StoreEntry], names: Sequence[str],
                      done: set[tuple[str, int, str, int, str]], max_sentences: int, seed: int,
                      progress: bool) -> list[dict[str, Any]]:
    """Attention measures on a shared sentence subsample, every pair of layers scored from per-layer fits.

    Each layer is fitted once per measure (once per tile of layers when the fits exceed
    `ATTENTION_FIT_BUDGET_BYTES`). Only entries extracted with attention, and their layers with heads, take
    part.

    Parameters
    ----------
    entries
        The store entries compared.
    names
        Registry names of attention measures.
    done
        (model_a, layer_a, model_b, layer_b, measure) of the rows already computed; a symmetric pair counts
        as done in either order.
    max_sentences
        Sentences in the subsample (all when the corpus has no more).
    seed
        The subsample's seed.
    progress
        Show progress bars.

    Returns
    -------
    list of dict
        Results-table records (level ``"attention"``, ``n_rows`` the subsample's words, ``subsample`` True
        when it is smaller than the corpus); empty when no layer has attention.
    """
    layers = _attention_layers(entries)
    if not layers or not names:
        return []
    n_sentences = entries[0].n_sentences
    sentences = subsample_rows(n_sentences, max_sentences, seed)
    lengths = [int(t) for t in np.asarray(entries[0].sentence_lengths)[sentences]]
    ids: list[LayerId] = [a.id for a in layers]  # type: ignore[misc]
    records = []
    for m in names:
        family = AttentionFamily(layers, m, sentences, lengths)
        records += _family_records(family, ids, {m: _todo(layers, m, done)}, ATTENTION_FIT_BUDGET_BYTES,
                                   "attention", sum(lengths), len(sentences) < n_sentences, progress, f"{m} pairs")
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
    """Compare every stored representation with every other on each measure.

    Parameters
    ----------
    store
        The activation store, or its folder (which must exist).
    measures
        Registry names, or ``"all"`` (every registered measure but minibatch CKA, which estimates what
        linear and debiased CKA give exactly here).
    models
        Store entries to compare, by display name or entry key (default: every complete entry). They must
        share one corpus and have distinct display names (results are keyed by them).
    previous
        An earlier table of the same study whose rows are kept and not recomputed, so adding a model costs
        only the pairs that involve it. Rows of a model whose store entry has been replaced since are
        computed again.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for the streaming engine.
    chunk_rows
        Rows per chunk streamed (at least 2).
    subsample_rows
        Rows of the shared seeded subsample used by the n x n measures (RBF CKA, RSA, mutual k-NN; at
        least 10).
    attention_sentences
        Sentences of the shared seeded subsample used by the attention measures (at least 1).
    seed
        Seed of both subsamples.
    progress
        Show progress bars.

    Returns
    -------
    ResultTable
        ``previous``'s rows (if any) and the new ones. The provenance records the reprsim version, the store,
        the corpus hash and word count, each model's store entry, the measures, ``subsample_rows``,
        ``attention_sentences`` and ``seed``.

    Raises
    ------
    FileNotFoundError
        If the store folder does not exist.
    KeyError
        If a measure is not registered, or a model is not in the store (naming an unfinished entry when
        there is one, and listing the models there).
    ValueError
        If `chunk_rows`, `subsample_rows` or `attention_sentences` is too small, no measure is chosen, the
        store holds no complete entries, a model name matches several entries or two entries share a
        display name, the entries come from different corpora, `previous` was computed on another corpus,
        ``mutual_knn`` is asked for while the corpus or the subsample has no more rows than its k neighbours
        (checked before any measure runs), there is nothing to compare, or a measure is undefined for a pair.

    Warns
    -----
    StaleResultsWarning
        When rows of `previous` came from store entries that have since been replaced.
    ConstantNeuronWarning, FewRowsWarning
        As `reprsim.engine.all_pairs`, for the linear measures.
    """
    if not isinstance(store, ActivationStore):
        store = ActivationStore(store, create=False)
    for name, value, minimum in (("chunk_rows", chunk_rows, 2), ("subsample_rows", subsample_rows, 10),
                                 ("attention_sentences", attention_sentences, 1)):
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value}")
    names = resolve_measures(measures)
    entries = _select_entries(store, models)
    reps = _representations(entries)
    earlier_entries: dict[str, str] = {}  # entries of models in previous that this call does not compare
    if previous is not None:
        _check_previous_corpus(previous, entries[0])
        previous = _without_stale_rows(previous, entries)
        earlier_entries = previous.provenance.get("entries") or {}
    done = _done_keys(previous)

    streamed = [m for m in names if registry.get(m).base in ENGINE_MEASURES]
    sampled = [m for m in names if registry.get(m).level != "attention" and m not in streamed]
    attention = [m for m in names if registry.get(m).level == "attention"]

    for m in sampled:  # checked before the other measures run, not after
        info = registry.get(m)
        k = int(info.options.get("k", DEFAULT_K))
        if info.base in KNN_MEASURES and min(entries[0].n_words, subsample_rows) <= k:
            raise ValueError(
                f"{m} compares each word's {k} nearest neighbours and needs more than {k} rows; the corpus has "
                f"{entries[0].n_words} words: choose measures without it (--measures) or a larger corpus"
            )
    raised: list[dict[str, str]] = list(previous.provenance.get("warnings") or []) if previous is not None else []
    with _recording_warnings(streamed, raised):
        records = streamed_records(reps, streamed, done, device, chunk_rows, progress)
    for m in sampled:
        with _recording_warnings([m], raised):
            records += subsampled_records(reps, [m], done, subsample_rows, seed, chunk_rows, progress)
    for m in attention:
        with _recording_warnings([m], raised):
            records += attention_records(entries, [m], done, attention_sentences, seed, progress)

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
        "warnings": raised,
    }
    new = ResultTable.from_records(records, provenance) if records else None
    if previous is None:
        if new is None:
            raise ValueError("nothing to compare")
        return new
    if new is None:
        return previous
    return ResultTable.concat([previous, new], provenance=provenance)


def _check_previous_corpus(previous: ResultTable, entry: StoreEntry) -> None:
    """Refuse a previous table computed on another corpus than the store's."""
    old = previous.provenance.get("corpus_hash")
    if old is not None and old != entry.corpus_hash:
        raise ValueError(
            f"the previous results were computed on corpus {old}, the store holds corpus {entry.corpus_hash}; "
            "use a new results file"
        )
