"""`reprsim.extract`: run models over a corpus and write word-level (or text-level) activations to a store.

This module is the entry point: it checks the options once, then for each model (`one_model.extract_one`)
finds its entry (a complete one is reused without loading the model), loads the model, checks the corpus
against it, and hands the windows to windows.run_windows. How the corpus is cut is in plan.py, the checks of
a model's output in checks.py, and where each row and map goes in placement.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reprsim.corpus import Corpus
from reprsim.extraction.one_model import (
    EntryIdentity,
    entry_identity,
    extract_one,
    extraction_task,
    task_arguments,
)
from reprsim.extraction.options import ModelSpec, check_options
from reprsim.store import ActivationStore, StoreEntry

__all__ = ["EntryIdentity", "entry_identity", "extract", "extract_one", "extraction_task", "task_arguments"]


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

