"""One model's extraction into a store entry: its identity, the loaded run, and the task a worker runs.

`entry_identity` names a model's entry (key and manifest) before anything is loaded; `extract_one` reuses a
complete entry, or loads the model and extracts the corpus into a new or resumed entry under the entry's
lock. `extraction_task` and `task_arguments` are what a Ray actor runs (`reprsim.extraction.on_ray`) and the
corpus-shard parts build on (`reprsim.extraction.corpus_shards`). `reprsim.extraction.extract` checks the
options once and calls `extract_one` per model.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from dataclasses import dataclass
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

__all__ = ["EntryIdentity", "entry_identity", "extract_one", "extraction_task", "task_arguments", "task_options"]


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


def task_options(arguments: dict[str, Any]) -> ExtractOptions:
    """A worker task's arguments (some may be left out: `extract`'s defaults), checked, without progress bars."""
    return check_options(progress=False, **task_arguments(**arguments))


def extraction_task(spec: str, name: str, corpus: Corpus, store: str, arguments: dict[str, Any]) -> str:
    """What one model's actor runs: `extract_one` of that model, as `reprsim.extraction.extract` runs it.

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
        The other keyword arguments of `reprsim.extraction.extract` (layers, subword, device, ...); those
        left out take `extract`'s defaults (`task_arguments`).

    Returns
    -------
    str
        The entry's key.
    """
    options = task_options(arguments)
    return extract_one(spec, name, corpus, ActivationStore(store), options).key


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
