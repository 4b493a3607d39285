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

The three paths live in `reprsim.comparison_records` and the choice and checks of the store entries in
`reprsim.comparison_entries`; this module resolves the measures, runs the paths and records their warnings.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprsim import measures as registry
from reprsim._version import __version__
from reprsim.engine import ENGINE_MEASURES, AttentionFamily, RepresentationSource, SampleFamily, resolve_device
from reprsim.engine.checks import PrecisionChoice, check_precision_choice
from reprsim.engine.fold_family import FOLD_MEASURES, FoldFamily
from reprsim.engine.linear_fit import pass_precision
from reprsim.engine.linear_inference import block_bytes_factor, inference_provenance
from reprsim.inference import InferenceOptions
from reprsim.measures.knn import DEFAULT_K
from reprsim.results import ResultTable
from reprsim.row_shards import most_blocks_per_shard
from reprsim.store import ActivationStore, StoreEntry

from .comparison_entries import (
    StaleResultsWarning,
    check_previous_corpus,
    representations,
    select_entries,
    without_stale_rows,
)
from .comparison_records import (
    ATTENTION_FIT_BUDGET_BYTES,
    LINEAR_BUDGET_BYTES,
    PROFILE_BUDGET_BYTES,
    attention_records,
    block_bounds,
    done_keys,
    folded_records,
    gram_capable,
    gram_space_measures,
    linear_plan,
    space_costs,
    streamed_records,
    subsample_rows,
    subsampled_records,
)

__all__ = [
    "ATTENTION_FIT_BUDGET_BYTES",
    "BACKENDS",
    "KNN_MEASURES",
    "LINEAR_BUDGET_BYTES",
    "NOT_IN_ALL",
    "NOT_IN_COMPARE",
    "PROFILE_BUDGET_BYTES",
    "StaleResultsWarning",
    "attention_records",
    "compare",
    "resolve_measures",
    "streamed_records",
    "subsample_rows",
    "subsampled_records",
]

# Where the linear pass runs (`compare`'s backend).
BACKENDS = ("local", "ray")

# Measures on each row's k nearest neighbours: they need more rows than k.
KNN_MEASURES = frozenset({"mutual_knn", "jaccard_knn", "rank_similarity", "second_order_cosine", "cknna", "cycle_knn"})

# Measures left out of "all": minibatch CKA estimates what linear/debiased CKA give exactly here; uniformity
# difference has no per-representation fit, so it would rebuild two n x n distance matrices for every pair.
NOT_IN_ALL = frozenset({"minibatch_cka", "uniformity_difference", "linear_predictivity"})
# Measures compare cannot compute yet, with the reason.
NOT_IN_COMPARE: dict[str, str] = {}


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

# Which measures of a call a warning concerns, by its category (others concern every measure of the call).
_CONCERNS: dict[str, frozenset[str]] = {
    "FewRowsWarning": frozenset({"cca_r2", "cca_rho", "svcca", "pwcca"}),
    "ConstantNeuronWarning": frozenset({"maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "pwcca"}),
}


@contextlib.contextmanager
def recording_warnings(measures: Sequence[str], sink: list[dict[str, str]]) -> Iterator[None]:
    """Record reprsim's warnings raised inside as provenance entries and raise every warning again.

    An entry is ``{"category", "message", "measure"}``, one per measure concerned, each once; the console and
    the report then both show it. Every warning is caught while the work runs (so that each is recorded) and
    raised again once per category and message afterwards, through the caller's filters ("default" shows it
    once, "error" raises it then), also when the work fails. Warnings of other packages are only raised again.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            caught = recorded
            yield
    finally:
        failing = sys.exc_info()[0] is not None
        replayed: set[tuple[type[Warning], str]] = set()
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
            key = (w.category, str(w.message))
            if key in replayed:
                continue
            replayed.add(key)
            try:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, registry=_SHOWN)
            except Warning:
                if not failing:  # "error" filters raise now; never over the work's own failure
                    raise


def _inference_of(table: ResultTable) -> dict[str, Any] | None:
    """The statistics options an earlier table was computed with (``None`` without statistics)."""
    entry = table.provenance.get("inference")
    if not (isinstance(entry, dict) and "options" in entry):
        return None
    # Tables from before the linearised jackknife were computed with refits.
    return {"jackknife": "exact", **entry["options"]}


def _methods(names: Sequence[str], records: Sequence[dict[str, Any]],
             options: InferenceOptions) -> dict[str, dict[str, str]]:
    """Each measure's interval and null methods (as its values report them), for the provenance."""
    streamed = [m for m in names if registry.get(m).base in ENGINE_MEASURES]
    methods = inference_provenance(streamed, {m: registry.get(m).base for m in streamed}, options)
    for r in records:
        entry = methods.setdefault(r["measure"], {"ci": "none" if options.ci == "none" else "",
                                                  "null": "none" if options.null == "none" else ""})
        for key, column in (("ci", "ci_method"), ("null", "null_method")):
            if not entry[key] and r.get(column):
                entry[key] = r[column]
    for entry in methods.values():
        for key in ("ci", "null"):
            entry[key] = entry[key] or "not available"
    return methods


# Where the replayed warnings' "default" filter remembers what it has shown (one registry per process).
_SHOWN: dict[Any, Any] = {}


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
    ci: str = "none",
    null: str = "none",
    blocks: int = 50,
    resamples: int = 1000,
    permutations: int = 200,
    alpha: float = 0.05,
    jackknife: str = "linearised",
    backend: str = "local",
    address: str | None = None,
    shards: int | None = None,
    memory_per_task: int | None = None,
    space: str = "auto",
    precision: str = "auto",
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
    ci
        Intervals: ``"bootstrap"``, ``"jackknife"`` or ``"none"`` (docs/guide/statistics.md says which method
        each measure uses).
    null
        Null baselines: ``"analytic"``, ``"permutation"`` or ``"none"``.
    blocks
        G, the number of sentence blocks resampled (at most the number of sentences).
    resamples
        B, bootstrap replicates.
    permutations
        K, permutations of the null.
    alpha
        Intervals have level 1 - alpha; calibrated scores use the null's (1 - alpha) quantile.
    jackknife
        The linear measures' leave-one-block-out values: ``"linearised"`` (first order, one set of gradients
        per pair) or ``"exact"`` (every representation refitted once per block: G times the work).
    backend
        Where the linear measures' pass runs: ``"local"`` (this process, tiled under `LINEAR_BUDGET_BYTES`),
        or ``"ray"`` (one Ray task per row shard and a tree of merges, `reprsim.ray_compare`; the n x n and
        attention measures as one task per layer's fit and per group of pairs, `reprsim.ray_pairs`; the store
        must be at the same path on every worker). The table, statistics included, is the same to 1e-10.
    address
        The Ray cluster's address (``"auto"``: a running one; default: a local cluster).
    shards
        Row shards of the Ray backend, one task each per column tile (default: the cluster's CPUs).
    memory_per_task
        Bytes of cross-product blocks one pass holds (one Ray task on the Ray backend); more blocks are cut
        into column tiles, each a pass over the rows (default: `LINEAR_BUDGET_BYTES`, 4 GiB).
    space
        The route of linear and debiased CKA: ``"feature"`` (the pass's d x d cross-products), ``"gram"``
        (each layer's n x n Gram matrix on every row; no statistics) or ``"auto"`` (Gram space when every
        linear measure asked for is one of the two, no statistics are, and it costs fewer multiply-adds:
        rows well below the layers' total width, as with one row per text). The values are the same.
    precision
        The linear measures' products: ``"auto"`` (float32 when every linear measure asked for holds
        float64's values to about 1e-8 whatever the layers' conditioning, as the CKA family and maxsim do, and
        no statistics are asked for; float64 otherwise), ``"float64"``, or ``"float32"`` (faster, and within
        a condition number times 1e-7 for the CCA family and linreg). The Ray backend's passes are float64.

    Returns
    -------
    ResultTable
        ``previous``'s rows (if any) and the new ones. The provenance records the reprsim version, the store,
        the corpus hash and word count, each model's store entry, the measures, ``subsample_rows``,
        ``attention_sentences``, ``seed`` and, with statistics, ``inference``: the options and each
        measure's interval and null methods. With statistics the table has the columns se, ci_low,
        ci_high, null_mean, p_value and calibrated (missing where a statistic does not apply).

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
    run = plan_comparison(store, measures, models, previous=previous, chunk_rows=chunk_rows,
                          subsample_rows=subsample_rows, attention_sentences=attention_sentences, seed=seed,
                          options=InferenceOptions(ci=ci, null=null, blocks=blocks, resamples=resamples,
                                                   permutations=permutations, alpha=alpha, seed=seed,
                                                   jackknife=jackknife), space=space, precision=precision)
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    _refuse_ray_options(backend, shards, address, run.precision)
    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or shards < 1):
        raise ValueError(f"shards must be a positive integer, got {shards!r}")
    budget = LINEAR_BUDGET_BYTES if memory_per_task is None else memory_per_task
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"memory_per_task must be a positive number of bytes, got {memory_per_task!r}")
    with recording_warnings(run.streamed, run.raised):
        if backend == "ray":
            records = _records_on_ray(run, device, address, shards, budget, progress)
        else:
            records = streamed_records(run.reps, run.streamed, run.done, device, chunk_rows, progress, run.options,
                                       block_bounds(run.entries[0].sentence_lengths, run.options)
                                       if run.streamed else None, budget=budget, precision=run.precision)
    extra = {"linear_precision": _linear_precision(run, backend)} if run.streamed else {}
    return finish_comparison(run, records + other_records(run, progress, backend, address, device, budget), **extra)


def _linear_precision(run: ComparisonPlan, backend: str) -> str:
    """The precision of the linear measures' passes (float64 on Ray, whose row shards are summed so)."""
    if backend == "ray":
        return "float64"
    return pass_precision(run.precision, run.streamed, run.options.enabled)


def plan_lines(store: str | Path | ActivationStore, measures: Sequence[str] = ("all",),
               models: Sequence[str] | None = None, *, previous: ResultTable | None = None,
               backend: str = "local", address: str | None = None, shards: int | None = None,
               memory_per_task: int | None = None, subsample_rows: int = 5000, attention_sentences: int = 500,
               seed: int = 0, chunk_rows: int = 8192, ci: str = "none", blocks: int = 50,
               space: str = "auto", null: str = "none", precision: str = "auto") -> list[str]:
    """What `compare` with these options would do, in lines a person reads (``reprsim compare --plan``).

    Nothing is computed: the lines give the pairs, the column tiles (passes over the rows), the tasks and
    the bytes per task of the linear measures, and the subsamples of the others.

    Parameters
    ----------
    store, measures, models, previous, backend, address, shards, memory_per_task, subsample_rows,
    attention_sentences, seed, chunk_rows, ci, blocks, space, null, precision
        As for `compare` (the statistics' intervals keep copies of the blocks per sentence block, which the
        plan counts). Without `shards` or `address`, the Ray backend's shards are this machine's CPUs
        (what a local cluster gets).

    Returns
    -------
    list of str
        The plan.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    run = plan_comparison(store, measures, models, previous=previous, chunk_rows=chunk_rows,
                          subsample_rows=subsample_rows, attention_sentences=attention_sentences, seed=seed,
                          options=InferenceOptions(ci=ci, null=null, blocks=blocks), space=space,
                          precision=precision)
    _refuse_ray_options(backend, shards, address, run.precision)
    budget = LINEAR_BUDGET_BYTES if memory_per_task is None else memory_per_task
    if backend == "ray" and shards is None:
        if address is not None:
            from reprsim.ray_compare import default_shards
            from reprsim.ray_support import connect

            shards = default_shards(connect(address), run.entries[0].n_sentences)
        else:
            shards = min(os.cpu_count() or 1, run.entries[0].n_sentences)
    count = min(shards, run.entries[0].n_sentences) if backend == "ray" and shards else 1
    copies = 1
    bounds = block_bounds(run.entries[0].sentence_lengths, run.options) if run.streamed else None
    if bounds is not None:  # intervals: a local pass holds G + 2 copies; a shard's task, the blocks it overlaps
        copies = (most_blocks_per_shard(bounds, run.entries[0].sentence_lengths, count) if backend == "ray"
                  else block_bytes_factor(run.options))
    linear = linear_plan(run.reps, run.streamed, run.done, budget, count, chunk_rows, run.options, copies)
    lines = [f"{len(run.entries)} models, {len(run.reps)} layers, {linear['rows']:,} rows (words)"]
    if run.streamed:
        where = (f"on ray: {count} row shards per tile, {linear['tasks']} tasks "
                 f"({'shards' if bounds is not None else 'shards and merges'})"
                 if backend == "ray" else "in this process")
        lines.append(f"linear measures ({len(run.streamed)}): {linear['pairs']} pairs in {linear['tiles']} column "
                     f"tiles = {linear['tiles']} passes over the rows, {where}, "
                     f"{_linear_precision(run, backend)} products; up to "
                     f"{linear['bytes_per_task'] / 2**20:,.1f} MiB per {'task' if backend == 'ray' else 'pass'} "
                     f"(blocks and one chunk of rows; budget {budget / 2**20:,.0f} MiB of blocks)")
    where = ("on ray: one task per layer's fit and per group of pairs" if backend == "ray"
             else "in this process")
    capable = gram_capable(run.gram + run.streamed)
    if capable:
        feature, gram = space_costs(linear["rows"], [r.width for r in run.reps], len(capable))
        route = (f"in sample space ({', '.join(run.gram)}): one n x n Gram matrix per layer on all "
                 f"{linear['rows']:,} rows, {where}" if run.gram else "in feature space (the pass)")
        lines.append(f"CKA route: {route}; cost model {gram:.2g} multiply-adds in sample space against "
                     f"{feature:.2g} in feature space")
    if run.folded:
        lines.append(f"cross-validated measures ({len(run.folded)}): passes over the rows keeping the moments per "
                     "fold (k + 1 copies of the blocks, tiled under the same budget), in this process")
    if run.sampled:
        lines.append(f"n x n measures ({len(run.sampled)}): on a seeded subsample of "
                     f"{min(subsample_rows, linear['rows']):,} rows, one fit per layer, {where}")
    if run.attention:
        lines.append(f"attention measures ({len(run.attention)}): on a seeded subsample of "
                     f"{min(attention_sentences, run.entries[0].n_sentences):,} sentences, one fit per layer, "
                     f"{where}")
    return lines


def _refuse_ray_options(backend: str, shards: int | None, address: str | None, precision: str = "auto") -> None:
    """Options the backend would ignore: refuse them, naming them."""
    given = [name for name, value in (("shards", shards), ("address", address)) if value is not None]
    if backend != "ray" and given:
        raise ValueError(f"{', '.join(given)} (--{given[0]}) only apply to the Ray backend: add backend='ray' "
                         "(--backend ray)")
    if backend == "ray" and precision == "float32":
        raise ValueError("precision='float32' (--precision float32): the Ray backend's row shards are summed in "
                         "float64; use precision='auto' or 'float64'")


def _records_on_ray(run: ComparisonPlan, device: str, address: str | None, shards: int | None, budget: int,
                    progress: bool) -> list[dict[str, Any]]:
    """The linear measures' records, each column tile's pass run as Ray tasks over row shards."""
    from reprsim.ray_compare import RayLinearFamily
    from reprsim.ray_support import check_ray

    check_ray()
    family = functools.partial(RayLinearFamily, store=str(run.store.path.resolve()), keys=[e.key for e in run.entries],
                               sentence_lengths=run.entries[0].sentence_lengths, shards=shards, address=address)
    bounds = block_bounds(run.entries[0].sentence_lengths, run.options) if run.streamed else None
    return streamed_records(run.reps, run.streamed, run.done, device, run.chunk_rows, progress, run.options, bounds,
                            family=family, budget=budget, precision="float64")


@dataclass
class ComparisonPlan:
    """A checked comparison, ready to run: what `compare` computes, from which entries, after which table.

    `plan_comparison` makes one; `compare` runs its three paths, and `reprsim.shards` runs the linear one from
    merged shard moments instead. `finish_comparison` turns the records into the table.

    Attributes
    ----------
    store
        The activation store.
    names
        Every measure, resolved.
    streamed, sampled, attention
        The measures of each path.
    entries
        The store entries compared, and `reps` their layers as engine sources.
    options
        The statistics asked for.
    previous
        The earlier table whose rows are kept (``None``: none, or discarded).
    done
        The keys of its rows (`reprsim.comparison_records.done_keys`).
    earlier_entries
        The entries of models in `previous` that this comparison leaves out.
    subsample_rows, attention_sentences, seed, chunk_rows
        As for `compare`.
    raised
        The warnings recorded so far (those of `previous` first).
    folded
        The cross-validated measures (`reprsim.engine.FoldFamily`), from a pass keeping moments per fold.
    gram
        The CKA measures computed in sample space, from each layer's n x n Gram matrix on every row
        (`reprsim.comparison_records.gram_space_measures`), instead of in `streamed`.
    precision
        The linear passes' precision choice (`reprsim.engine.linear_fit.pass_precision`).
    """

    store: ActivationStore
    names: list[str]
    streamed: list[str]
    sampled: list[str]
    attention: list[str]
    entries: list[StoreEntry]
    reps: list[RepresentationSource]
    options: InferenceOptions
    previous: ResultTable | None
    done: set[tuple[str, int, str, int, str]]
    earlier_entries: dict[str, str]
    subsample_rows: int
    attention_sentences: int
    seed: int
    chunk_rows: int
    raised: list[dict[str, str]] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    gram: list[str] = field(default_factory=list)
    precision: PrecisionChoice = "auto"


def plan_comparison(store: str | Path | ActivationStore, measures: Sequence[str], models: Sequence[str] | None, *,
                    previous: ResultTable | None, chunk_rows: int, subsample_rows: int, attention_sentences: int,
                    seed: int, options: InferenceOptions, space: str = "auto",
                    precision: str = "auto") -> ComparisonPlan:
    """Check a comparison's options, measures, entries and earlier table before any work.

    Parameters are those of `compare`, the statistics as `InferenceOptions`; the errors and the
    `StaleResultsWarning` are those `compare` documents. `space` chooses the CKA measures' route
    (`reprsim.comparison_records.gram_space_measures`).

    Returns
    -------
    ComparisonPlan
        The checked comparison.
    """
    precision = check_precision_choice(precision)
    if not isinstance(store, ActivationStore):
        store = ActivationStore(store, create=False)
    for name, value, minimum in (("chunk_rows", chunk_rows, 2), ("subsample_rows", subsample_rows, 10),
                                 ("attention_sentences", attention_sentences, 1)):
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value}")
    names = resolve_measures(measures)
    entries = select_entries(store, models)
    earlier_entries: dict[str, str] = {}  # entries of models in previous that this call does not compare
    if previous is not None and _inference_of(previous) != (options.as_dict() if options.enabled else None):
        warnings.warn("the statistics options differ from those of the earlier results; every row is computed "
                      "again", StaleResultsWarning, stacklevel=3)
        previous = None
    if previous is not None:
        check_previous_corpus(previous, entries[0])
        previous = without_stale_rows(previous, entries)
        earlier_entries = previous.provenance.get("entries") or {}

    streamed = [m for m in names if registry.get(m).base in ENGINE_MEASURES]
    reps = representations(entries)
    gram = gram_space_measures(streamed, space, entries[0].n_words, [r.width for r in reps], options)
    streamed = [m for m in streamed if m not in gram]
    folded = [m for m in names if registry.get(m).base in FOLD_MEASURES]
    for m in folded:  # its options and folds, checked before any measure runs
        FoldFamily(reps[:1], m, entries[0].sentence_lengths, device=resolve_device("cpu"))
    sampled = [m for m in names if registry.get(m).level != "attention" and m not in streamed + folded + gram]
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
    return ComparisonPlan(store, names, streamed, sampled, attention, entries, reps, options,
                          previous, done_keys(previous), earlier_entries, subsample_rows, attention_sentences,
                          seed, chunk_rows, raised, folded, gram, precision)


def other_records(run: ComparisonPlan, progress: bool, backend: str = "local",
                  address: str | None = None, device: str = "auto",
                  budget: int = LINEAR_BUDGET_BYTES) -> list[dict[str, Any]]:
    """The records of the cross-validated, the n x n (on the row subsample) and the attention measures.

    Parameters
    ----------
    run
        The comparison.
    progress
        Show progress bars.
    backend
        ``"local"``, or ``"ray"``: every fit and every group of pairs is a Ray task (`reprsim.ray_pairs`).
    address
        The Ray cluster's address.
    device
        Where the cross-validated measures' pass runs (``"auto"``, ``"cpu"``, ``"cuda"``).
    budget
        Bytes of blocks of one cross-validated pass (k + 1 copies each); more are cut into column tiles.

    Returns
    -------
    list of dict
        Results-table records, measure by measure.
    """
    records: list[dict[str, Any]] = []
    lengths = run.entries[0].sentence_lengths
    for m in run.folded:  # its pass runs here on every backend
        with recording_warnings([m], run.raised):
            records += folded_records(run.reps, [m], run.done, device, run.chunk_rows, progress, lengths, budget)
    families: dict[str, Any] = {"sampled": SampleFamily, "attention": AttentionFamily}
    if backend == "ray" and (run.sampled or run.attention or run.gram):
        from reprsim.ray_pairs import ray_attention_family, ray_sample_family

        path, keys = str(run.store.path.resolve()), [e.key for e in run.entries]
        families = {"sampled": functools.partial(ray_sample_family, store=path, keys=keys, address=address),
                    "attention": functools.partial(ray_attention_family, store=path, keys=keys, address=address)}
    for m in run.gram:  # every row: the same values as the pass's
        with recording_warnings([m], run.raised):
            records += subsampled_records(run.reps, [m], run.done, run.entries[0].n_words, run.seed,
                                          run.chunk_rows, progress, family=families["sampled"])
    graphs: dict[tuple[int, Any], Any] = {}  # one k-NN graph per layer for every neighbourhood measure
    for m in run.sampled:
        with recording_warnings([m], run.raised):
            records += subsampled_records(run.reps, [m], run.done, run.subsample_rows, run.seed, run.chunk_rows,
                                          progress, run.options, lengths, family=families["sampled"],
                                          graphs=graphs)
    for m in run.attention:
        with recording_warnings([m], run.raised):
            records += attention_records(run.entries, [m], run.done, run.attention_sentences, run.seed, progress,
                                         run.options, family=families["attention"])
    return records


def finish_comparison(run: ComparisonPlan, records: list[dict[str, Any]],
                      **provenance_extra: Any) -> ResultTable:
    """The comparison's table: the earlier rows and the new records, with the provenance.

    Parameters
    ----------
    run
        The comparison.
    records
        Its new records, every path's.
    **provenance_extra
        More provenance entries (`reprsim.shards` records its shards).

    Returns
    -------
    ResultTable
        As `compare` returns it.

    Raises
    ------
    ValueError
        If there is nothing to compare.
    """
    entries, options = run.entries, run.options
    provenance: dict[str, Any] = {
        "reprsim_version": __version__,
        "store": str(run.store.path),
        "corpus_hash": entries[0].corpus_hash,
        "n_words": entries[0].n_words,
        "entries": {**run.earlier_entries, **{e.name: e.key for e in entries}},
        "measures": run.names,
        "subsample_rows": run.subsample_rows,
        "attention_sentences": run.attention_sentences,
        "seed": run.seed,
        "warnings": run.raised,
        **provenance_extra,
    }
    if run.gram:
        provenance["sample_space"] = run.gram
    if options.enabled:
        provenance["inference"] = {"options": options.as_dict(), "methods": _methods(run.names, records, options)}
    for r in records:  # the methods go in the provenance, once per measure
        r.pop("ci_method", None), r.pop("null_method", None)
    new = ResultTable.from_records(records, provenance) if records else None
    previous = run.previous
    if previous is None:
        if new is None:
            raise ValueError("nothing to compare")
        return new
    if new is None:
        return previous
    return ResultTable.concat([previous, new], provenance=provenance)
