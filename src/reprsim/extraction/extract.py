"""`reprsim.extract`: run models over a corpus and write word-level (or text-level) activations to a store.

This module is the entry point: it checks the options once, then for each model finds its entry (a complete
one is reused without loading the model), loads the model, checks the corpus against it, and hands the
windows to windows.run_windows. How the corpus is cut is in plan.py, the checks of a model's output in
checks.py, and where each row and map goes in placement.py.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprsim.corpus import Corpus
from reprsim.extraction.adapter import WordAdapter
from reprsim.extraction.checks import check_layer_counts, validate_sentences
from reprsim.extraction.models import ModelSource, load_transformer, resolve_model
from reprsim.extraction.options import ExtractOptions, ModelSpec, check_options, resolve_layer_ids
from reprsim.extraction.plan import ModelRun
from reprsim.extraction.rows import WORD_ROWS, stored_row_counts
from reprsim.extraction.transformer import TransformerAdapter
from reprsim.extraction.windows import run_windows
from reprsim.store import ActivationStore, StoreEntry, make_key


def extract(
    models: ModelSpec | Sequence[ModelSpec],
    corpus: Corpus | str,
    store: ActivationStore | str | Path,
    *,
    layers: Sequence[int] | str | None = None,
    subword: str = "last",
    attention: bool | None = None,
    causal_attention: bool = False,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str = "float32",
    max_sentences: int | None = None,
    long_sentences: str = "error",
    names: Sequence[str] | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
    rows: str = "word",
    backend: str = "local",
    address: str | None = None,
    gpus_per_model: float | None = None,
    corpus_shards: int = 1,
) -> list[StoreEntry]:
    """Extract word vectors (and word-level attention) of each model over the corpus into the store.

    Options that concern how a model is loaded (device, dtype, trust_remote_code, subword, long_sentences)
    apply to models given by name; an adapter object runs as it is. dtype is also the storage type of every
    entry. Complete entries are reused, not recomputed; a half-written one is resumed. With text-level
    rows (``rows`` other than "word") each entry holds one row per sentence instead of one per word.

    Parameters
    ----------
    models : str, WordAdapter, or a sequence of them
        Preset names ("minilm", "smollm2", "gemma3-270m", "mpnet", "<preset>-random"), Hugging Face hub ids,
        local model folders, or WordAdapter objects (your own PyTorch models).
    corpus : Corpus or str
        A Corpus, or a source for Corpus.load ("builtin", a .txt or .conllu path).
    store : ActivationStore, str or pathlib.Path
        The store, or its folder (created if missing).
    layers : sequence of int, str or None, default None
        Layer indices (0 = embeddings), "0,3,6", or None/"all" for every layer.
    subword : str, default "last"
        Subword pooling: "last", "first" or "mean".
    attention : bool, optional
        Also store word-level attention maps; by default True for word rows and False for text-level rows
        (which store no attention: True with them is an error).
    causal_attention : bool, default False
        Mask the maps to earlier words and renormalise them (needs attention).
    batch_size : int, default 32
        Sentences per forward pass.
    device : str, default "auto"
        "cpu", "cuda", "cuda:N" or "auto".
    dtype : str, default "float32"
        Model and storage precision: "float32", "float16" or "bfloat16".
    max_sentences : int, optional
        Use only the first N sentences (at most the corpus's size).
    long_sentences : str, default "error"
        Sentences over a model's context: "error", or "window" (overlapping windows, see
        alignment.plan_windows).
    names : sequence of str, optional
        Display labels, one per model (default: the model's name, a folder's name, or the adapter's class).
    trust_remote_code : bool, default False
        Allow models whose code comes with their weights.
    progress : bool, default True
        Show progress bars.
    rows : str, default "word"
        What one stored row is: "word" (one per word), or one per sentence pooled from the model's tokens:
        "last-token" (the last token of the sentence that belongs to a word), "mean" (the mean over those
        tokens) or "first-token" (the CLS token of an encoder that opens sequences with one, else the first
        such token); see `reprsim.extraction.rows`. Entries are keyed by it.
    backend : str, default "local"
        Where the models run: "local" (this process, one after another) or "ray" (one Ray actor per model,
        `reprsim.extraction.on_ray`; models given by name; the store at the same path on every worker).
    address : str, optional
        The Ray cluster's address ("auto": a running one; default: a local cluster).
    gpus_per_model : float, optional
        GPUs each Ray actor declares (default: 1 when the cluster has GPUs, else 0).
    corpus_shards : int, default 1
        On Ray, split each model's corpus into this many runs of whole windows (256 sentences), each
        extracted by an actor of its own and then joined into the model's entry
        (`reprsim.extraction.corpus_shards`); the entry is the same, byte for byte.

    Returns
    -------
    list of StoreEntry
        The store entries, in the order of `models`.

    Raises
    ------
    ValueError
        When an option is invalid, two models share a display name, a model is neither a name nor a
        WordAdapter, or a model's output does not fit the corpus; the message names the option, model,
        sentence or layer.
    """
    specs: list[ModelSpec] = [models] if isinstance(models, str) or not isinstance(models, Sequence) else list(models)
    if not specs:
        raise ValueError("extract needs at least one model")
    if names is not None and len(names) != len(specs):
        raise ValueError(f"names has {len(names)} labels for {len(specs)} models")
    options = check_options(
        layers,
        subword,
        attention,
        causal_attention,
        batch_size,
        device,
        dtype,
        long_sentences,
        trust_remote_code,
        progress,
        rows,
    )
    corpus = _first_sentences(corpus if isinstance(corpus, Corpus) else Corpus.load(corpus), max_sentences)
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    labels = [names[i] if names is not None else _default_name(spec) for i, spec in enumerate(specs)]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"two models share the display name {duplicates[0]!r}; pass names=[...] (--name)")
    if backend == "local" and (corpus_shards != 1 or gpus_per_model is not None or address is not None):
        given = [o for o, v in (("corpus_shards", corpus_shards != 1), ("gpus_per_model", gpus_per_model is not None),
                                ("address", address is not None)) if v]
        raise ValueError(f"{', '.join(given)} (--{given[0].replace('_', '-')}) only apply to the Ray backend: add "
                         "backend='ray' (--backend ray)")
    if gpus_per_model is not None and (isinstance(gpus_per_model, bool) or not isinstance(gpus_per_model, int | float)
                                       or not gpus_per_model >= 0):
        raise ValueError(f"gpus_per_model (--gpus-per-model) must be a number >= 0, got {gpus_per_model!r}")
    if backend == "ray":
        by_name = [spec for spec in specs if isinstance(spec, str)]
        if len(by_name) != len(specs):
            raise ValueError("on the Ray backend, models are given by name (a preset, hub id or folder); an "
                             "adapter object runs only on the local backend")
        from .on_ray import extract_on_ray

        arguments = task_arguments(layers=layers, subword=subword, attention=attention,
                                   causal_attention=causal_attention, batch_size=batch_size, device=device,
                                   dtype=dtype, long_sentences=long_sentences, trust_remote_code=trust_remote_code,
                                   rows=rows)
        keys = extract_on_ray(by_name, labels, corpus, str(store.path.resolve()), [arguments] * len(by_name),
                              address=address, task=extraction_task, gpus_per_model=gpus_per_model, progress=progress,
                              corpus_shards=corpus_shards)
        return [store.get(key) for key in keys]
    if backend != "local":
        raise ValueError(f"backend {backend!r}: choose one of local, ray")
    return [extract_one(spec, label, corpus, store, options) for spec, label in zip(specs, labels, strict=True)]


def task_arguments(*, layers: Sequence[int] | str | None = None, subword: str = "last", attention: bool | None = None,
                   causal_attention: bool = False, batch_size: int = 32, device: str = "auto", dtype: str = "float32",
                   long_sentences: str = "error", trust_remote_code: bool = False,
                   rows: str = "word") -> dict[str, Any]:
    """The options of one model's extraction as a worker's task takes them (`extraction_task`, corpus shards).

    Parameters are those of `extract`.

    Returns
    -------
    dict
        The keyword arguments of `reprsim.extraction.options.check_options` but ``progress``.
    """
    return {"layers": layers, "subword": subword, "attention": attention, "causal_attention": causal_attention,
            "batch_size": batch_size, "device": device, "dtype": dtype, "long_sentences": long_sentences,
            "trust_remote_code": trust_remote_code, "rows": rows}


def extraction_task(spec: str, name: str, corpus: Corpus, store: str, arguments: dict[str, Any]) -> str:
    """What one model's actor runs: `reprsim.extraction.extract` of that model; its entry's key.

    Parameters
    ----------
    spec
        The model (a preset, hub id or local folder).
    name
        Its display name.
    corpus
        The corpus (already cut to ``max_sentences``).
    store
        The store's path, as the worker sees it.
    arguments
        The other keyword arguments of `reprsim.extraction.extract` (layers, subword, device, ...).

    Returns
    -------
    str
        The entry's key.
    """
    (entry,) = extract([spec], corpus, store, names=[name], progress=False, **arguments)
    return entry.key


def _first_sentences(corpus: Corpus, max_sentences: int | None) -> Corpus:
    """Cut the corpus to max_sentences (an error when it has fewer: not silently a smaller study)."""
    if max_sentences is None:
        return corpus
    if isinstance(max_sentences, bool) or not isinstance(max_sentences, int) or max_sentences < 1:
        raise ValueError(f"max_sentences must be a positive integer, got {max_sentences!r}")
    if max_sentences > len(corpus):
        raise ValueError(
            f"max_sentences={max_sentences} (--max-sentences) but corpus {corpus.name!r} has {len(corpus)} "
            "sentences"
        )
    return corpus.head(max_sentences)


def _default_name(spec: ModelSpec) -> str:
    """Name a model when no name is given: the spec, a folder's name, or the adapter's."""
    if isinstance(spec, str):
        path = Path(spec).expanduser()
        return path.resolve().name if path.is_dir() else spec
    return str(getattr(spec, "name", type(spec).__name__))


def _versions() -> dict[str, str]:
    """Library versions in the manifest: a resume under other versions is refused rather than mixed."""
    found = {}
    for package in ("torch", "transformers"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


@dataclass(frozen=True)
class EntryIdentity:
    """What names a model's store entry before anything is loaded: its key and manifest.

    Attributes
    ----------
    key
        The entry's key (`reprsim.store.make_key` of the name and the fingerprint).
    manifest
        The entry's manifest (name, model, corpus hash, fingerprint, library versions, rows).
    source
        The resolved model, for a model given by name.
    adapter
        The adapter, for a model given as one.
    """

    key: str
    manifest: dict[str, Any]
    source: ModelSource | None
    adapter: WordAdapter | None


def entry_identity(spec: ModelSpec, name: str, corpus: Corpus, options: ExtractOptions) -> EntryIdentity:
    """The key and manifest of a model's entry for this corpus and these options (nothing loaded).

    Raises
    ------
    ValueError
        When the model is neither a name nor a WordAdapter.
    """
    source = resolve_model(spec, options.trust_remote_code) if isinstance(spec, str) else None
    adapter: WordAdapter | None = None
    if source is not None:
        model_fields: dict[str, Any] = {
            "source": source.identity,
            "subword": options.subword,
            "long_sentences": options.long_sentences,
        }
        label = source.spec
    else:
        if not isinstance(spec, WordAdapter):
            raise ValueError(
                f"model {spec!r} is neither a name/path nor a WordAdapter (needs layer_widths, "
                "attention_heads, fingerprint() and encode())"
            )
        adapter = spec
        model_fields = {"adapter": type(spec).__name__, "fingerprint": spec.fingerprint()}
        label = type(spec).__name__
    fingerprint = {"model": model_fields, "corpus_hash": corpus.hash, **options.key_fields()}
    manifest = {
        "name": name,
        "model": label,
        "corpus_hash": corpus.hash,
        "fingerprint": fingerprint,
        "versions": _versions(),
    }
    if options.rows != WORD_ROWS:  # absent for word rows: their manifests stay as they were
        manifest["rows"] = options.rows
    return EntryIdentity(make_key(name, fingerprint), manifest, source, adapter)


def extract_one(
    spec: ModelSpec, name: str, corpus: Corpus, store: ActivationStore, options: ExtractOptions,
    whole_windows: bool = False,
) -> StoreEntry:
    """Extract one model into the store, or reuse its complete entry.

    Parameters
    ----------
    spec : str or WordAdapter
        A model name or folder, or an adapter.
    name : str
        Its display name.
    corpus : Corpus
        The corpus (already cut to max_sentences).
    store : ActivationStore
        The store.
    options : ExtractOptions
        The checked options.
    whole_windows : bool, default False
        Write the last window whole too, as every other (a corpus shard that is not the corpus's last, so
        that its windows and batches are those of the whole corpus: `reprsim.extraction.corpus_shards`).

    Returns
    -------
    StoreEntry
        The model's entry.

    Raises
    ------
    ValueError
        When the model is neither a name nor a WordAdapter, or its output does not fit the corpus.
    """
    identity = entry_identity(spec, name, corpus, options)
    key = identity.key
    if store.has_complete(key):
        return store.get(key)

    def waiting() -> None:
        if options.progress:
            print(f"{name}: another process is writing store entry {key}; waiting for it", file=sys.stderr)

    # Another process may be writing this entry: wait for it, then reuse or resume what it left.
    with store.writing(key, on_wait=waiting):
        if store.has_complete(key):
            return store.get(key)
        adapter = identity.adapter
        if adapter is None:
            assert identity.source is not None
            adapter = _load_adapter(identity.source, name, options)
        return _extract_loaded(adapter, name, key, identity.manifest, corpus, store, options, whole_windows)


def _extract_loaded(
    adapter: WordAdapter,
    name: str,
    key: str,
    manifest: dict[str, Any],
    corpus: Corpus,
    store: ActivationStore,
    options: ExtractOptions,
    whole_windows: bool = False,
) -> StoreEntry:
    """Check the corpus against a loaded adapter, then extract it into a new or resumed entry."""
    validate_sentences(adapter, corpus.sentences, name)
    check_layer_counts(adapter, name)
    layer_ids = resolve_layer_ids(options.layers, len(adapter.layer_widths), name)
    widths = [int(adapter.layer_widths[layer]) for layer in layer_ids]
    heads = [int(adapter.attention_heads[layer]) for layer in layer_ids]
    stored_heads = heads if options.attention and any(h > 0 for h in heads) else None
    row_counts = stored_row_counts(corpus.sentence_lengths, options.rows)
    writer = store.writer(key, manifest, layer_ids, widths, row_counts, stored_heads, options.dtype)
    run = ModelRun(
        adapter=adapter,
        name=name,
        layer_ids=tuple(layer_ids),
        widths=tuple(widths),
        heads=None if stored_heads is None else tuple(stored_heads),
        batch_size=options.batch_size,
        causal_attention=options.causal_attention,
        # TransformerAdapter renormalises and checks its maps as it pools them; other adapters are checked here
        check_rows=not isinstance(adapter, TransformerAdapter),
        progress=options.progress,
        rows=options.rows,
        whole_windows=whole_windows,
    )
    try:
        run_windows(run, corpus, writer)
    finally:
        release = getattr(adapter, "release_validated", None)
        if callable(release):
            release()
    return writer.finalize()


def _load_adapter(source: ModelSource, name: str, options: ExtractOptions) -> TransformerAdapter:
    """Load a model given by name and wrap it in a TransformerAdapter, as the options ask."""
    model, tokenizer = load_transformer(
        source,
        attention=options.attention,
        device=options.device,
        dtype=options.dtype,
        trust_remote_code=options.trust_remote_code,
        progress=options.progress,
    )
    return TransformerAdapter(
        model,
        tokenizer,
        subword=options.subword,
        long_sentences=options.long_sentences,
        identity=source.identity,
        name=name,
    )
