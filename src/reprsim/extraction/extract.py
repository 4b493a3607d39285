"""`reprsim.extract`: run models over a corpus and write word-level activations to an ActivationStore.

The corpus is processed in windows of contiguous sentences (WINDOW_SENTENCES, on a fixed grid from sentence
0). Within a window, sentences are sorted by length into batches so similar lengths share padding, and the
window is written in corpus order with one write_sentences call, on a worker thread while the next window
is computed. A killed run therefore resumes at a window boundary (the last committed write) and recomputes
exactly the same batches: the finished entry is byte-identical to an uninterrupted run on the same machine.
An entry that is already complete is skipped without loading its model.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from reprsim._memory import anonymous_array
from reprsim.corpus import Corpus
from reprsim.extraction.adapter import SentenceError, WordAdapter, stack_rows, to_numpy
from reprsim.extraction.alignment import causal_mask_rows, check_subword_rule
from reprsim.extraction.models import (
    ModelSource,
    check_dtype,
    load_transformer,
    resolve_device,
    resolve_model,
)
from reprsim.extraction.transformer import TransformerAdapter, check_long_sentences
from reprsim.store import ActivationStore, EntryWriter, StoreEntry, make_key

WINDOW_SENTENCES = 256
TAIL_WINDOW_SENTENCES = 64  # the corpus's last window is written in pieces of this size
# Bump when a change to extraction changes stored values, so old entries are not taken for new ones.
EXTRACTION_VERSION = 3  # 2: attention pooled as two batched products; last window cut in pieces;
# 3: whitespace-only pieces (a bare "▁" or "Ġ") belong to no word

ModelSpec = str | WordAdapter


@dataclass(frozen=True)
class ExtractOptions:
    """Options shared by every model of one extract call (validated once)."""

    layers: tuple[int, ...] | None
    subword: str
    attention: bool
    causal_attention: bool
    batch_size: int
    device: torch.device
    dtype: str
    long_sentences: str
    trust_remote_code: bool
    progress: bool

    def key_fields(self) -> dict[str, Any]:
        """The options that change stored values (device and batch size change only rounding)."""
        return {
            "layers": "all" if self.layers is None else list(self.layers),
            "attention": self.attention,
            "causal_attention": self.causal_attention,
            "dtype": self.dtype,
            "extraction_version": EXTRACTION_VERSION,
        }


def extract(
    models: ModelSpec | Sequence[ModelSpec],
    corpus: Corpus | str,
    store: ActivationStore | str | Path,
    *,
    layers: Sequence[int] | str | None = None,
    subword: str = "last",
    attention: bool = True,
    causal_attention: bool = False,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str = "float32",
    max_sentences: int | None = None,
    long_sentences: str = "error",
    names: Sequence[str] | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> list[StoreEntry]:
    """Extract word vectors (and word-level attention) of each model over the corpus into the store.

    models: preset names ("minilm", "smollm2", "gemma3-270m", "mpnet", "<preset>-random"), Hugging Face hub
        ids, local model folders, or WordAdapter objects (your own PyTorch models), alone or in a list.
    corpus: a Corpus, or a source for Corpus.load ("builtin", a .txt or .conllu path).
    layers: layer indices (0 = embeddings) or None/"all". subword: "last", "first" or "mean" subword pooling.
    attention: also store word-level attention maps; causal_attention: mask them to earlier words and
        renormalise. long_sentences: "error" (default) or "window" (overlapping windows, see
        alignment.plan_windows). max_sentences: use only the first N sentences. names: display labels.
    device / dtype / trust_remote_code / subword / long_sentences apply to models given by name; an adapter
        object runs as it is. dtype is also the storage type of every entry.
    Returns the store entries in the order of `models`; complete entries are reused, not recomputed.
    """
    specs: list[ModelSpec] = [models] if isinstance(models, str) or not isinstance(models, Sequence) else list(models)
    if not specs:
        raise ValueError("extract needs at least one model")
    if names is not None and len(names) != len(specs):
        raise ValueError(f"names has {len(names)} labels for {len(specs)} models")
    options = _check_options(
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
    )
    corpus = corpus if isinstance(corpus, Corpus) else Corpus.load(corpus)
    if max_sentences is not None:
        if isinstance(max_sentences, bool) or not isinstance(max_sentences, int) or max_sentences < 1:
            raise ValueError(f"max_sentences must be a positive integer, got {max_sentences!r}")
        if max_sentences > len(corpus):  # an error, as for the loaders' n: not silently a smaller study
            raise ValueError(
                f"max_sentences={max_sentences} (--max-sentences) but corpus {corpus.name!r} has {len(corpus)} "
                "sentences"
            )
        corpus = corpus.head(max_sentences)
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    labels = [names[i] if names is not None else _default_name(spec) for i, spec in enumerate(specs)]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"two models share the display name {duplicates[0]!r}; pass names=[...] (--name)")
    return [extract_one(spec, label, corpus, store, options) for spec, label in zip(specs, labels, strict=True)]


def _check_options(
    layers: Sequence[int] | str | None,
    subword: str,
    attention: bool,
    causal_attention: bool,
    batch_size: int,
    device: str,
    dtype: str,
    long_sentences: str,
    trust_remote_code: bool,
    progress: bool,
) -> ExtractOptions:
    """Validate every option before any model is loaded, naming the bad argument."""
    check_subword_rule(subword)
    check_long_sentences(long_sentences)
    check_dtype(dtype)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if causal_attention and not attention:
        raise ValueError("causal_attention=True (--causal-attention) needs attention=True (drop --no-attention)")
    return ExtractOptions(
        layers=parse_layers(layers),
        subword=subword,
        attention=bool(attention),
        causal_attention=bool(causal_attention),
        batch_size=batch_size,
        device=resolve_device(device),
        dtype=dtype,
        long_sentences=long_sentences,
        trust_remote_code=bool(trust_remote_code),
        progress=bool(progress),
    )


def parse_layers(layers: Sequence[int] | str | None) -> tuple[int, ...] | None:
    """None for all layers; else sorted distinct non-negative ints ("0,3,6" and "all" accepted)."""
    if layers is None or (isinstance(layers, str) and layers.strip().lower() == "all"):
        return None
    items: Sequence[Any] = layers.split(",") if isinstance(layers, str) else layers
    parsed = []
    for item in items:
        try:
            value = int(str(item).strip()) if isinstance(item, str) else item
        except ValueError:
            raise ValueError(f"layers must be 'all' or integers like 0,3,6; got {layers!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"layer {item!r} is not a non-negative integer (0 = embeddings)")
        parsed.append(int(value))
    if not parsed:
        raise ValueError("layers is empty; pass None or 'all' for every layer")
    return tuple(sorted(set(parsed)))


def _default_name(spec: ModelSpec) -> str:
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


def extract_one(
    spec: ModelSpec, name: str, corpus: Corpus, store: ActivationStore, options: ExtractOptions
) -> StoreEntry:
    """Extract one model (or reuse its complete entry); see `extract`."""
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
    key = make_key(name, fingerprint)
    if store.has_complete(key):
        return store.get(key)
    with _existing_objects_frozen():
        if adapter is None:
            assert source is not None
            adapter = _load_adapter(source, name, options)
        return _extract_loaded(adapter, name, label, key, fingerprint, corpus, store, options)


def _extract_loaded(
    adapter: WordAdapter,
    name: str,
    label: str,
    key: str,
    fingerprint: dict[str, Any],
    corpus: Corpus,
    store: ActivationStore,
    options: ExtractOptions,
) -> StoreEntry:
    """Check the corpus against a loaded adapter, then extract it into a new or resumed entry."""
    validate_sentences(adapter, corpus.sentences, name)
    if len(adapter.attention_heads) != len(adapter.layer_widths):
        raise ValueError(
            f"{name}: attention_heads has {len(adapter.attention_heads)} entries and layer_widths "
            f"{len(adapter.layer_widths)}; give one head count per layer (0 where a layer has no attention)"
        )
    layer_ids = resolve_layer_ids(options.layers, len(adapter.layer_widths), name)
    widths = [int(adapter.layer_widths[layer]) for layer in layer_ids]
    heads = [int(adapter.attention_heads[layer]) for layer in layer_ids]
    store_attention = options.attention and any(h > 0 for h in heads)
    manifest = {
        "name": name,
        "model": label,
        "corpus_hash": corpus.hash,
        "fingerprint": fingerprint,
        "versions": _versions(),
    }
    writer = store.writer(
        key,
        manifest,
        layer_ids,
        widths,
        corpus.sentence_lengths,
        heads if store_attention else None,
        options.dtype,
    )
    try:
        run_windows(adapter, corpus, writer, layer_ids, widths, heads if store_attention else None, options, name)
    finally:
        release = getattr(adapter, "release_validated", None)
        if callable(release):
            release()
    return writer.finalize()


@contextlib.contextmanager
def _existing_objects_frozen() -> Iterator[None]:
    """Leave the objects that exist now (the libraries' and earlier models': about 390,000 with torch,
    transformers and MiniLM loaded) out of the garbage collector's passes until the block ends, then give
    them back (gc.freeze / gc.unfreeze).

    Loading a model and extracting allocate many objects; every so often they trigger a full collection,
    which walks every tracked object in the process: 0.12-0.25 s each, on the main thread (three while
    loading MiniLM in a fresh process, and one in three extractions of 1,000 sentences). Nothing is left
    frozen afterwards, and the collector is not touched when someone else froze objects or disabled it."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _load_adapter(source: ModelSource, name: str, options: ExtractOptions) -> TransformerAdapter:
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


def validate_sentences(adapter: WordAdapter, sentences: Sequence[Sequence[str]], name: str) -> None:
    """Fail in seconds, before any model run or store write, when the adapter can check sentences up front
    (TransformerAdapter.validate tokenizes them: words with no token, sentences over the context)."""
    validate = getattr(adapter, "validate", None)
    if callable(validate):
        try:
            validate(sentences)
        except SentenceError as err:
            raise ValueError(f"{name}, sentence {err.row}: {err.reason}") from None


def resolve_layer_ids(layers: tuple[int, ...] | None, n_layers: int, name: str) -> list[int]:
    """The requested layers checked against the model's layer count (0 .. n_layers-1)."""
    if layers is None:
        return list(range(n_layers))
    bad = [layer for layer in layers if layer >= n_layers]
    if bad:
        raise ValueError(f"layer {bad[0]} does not exist in {name}: it has layers 0..{n_layers - 1}")
    return list(layers)


def window_bounds(
    done: int, n_sentences: int, size: int = WINDOW_SENTENCES, tail: int = TAIL_WINDOW_SENTENCES
) -> list[tuple[int, int]]:
    """[start, stop) windows on a fixed grid covering sentences done..n_sentences.

    The grid is 0, size, 2*size, ... except in the corpus's last `size` window, which is cut at multiples of
    `tail` (a divisor of size): nothing overlaps the write of the very last window, so it is kept small. The
    grid depends on n_sentences only, so a resumed run forms the same windows and batches.
    """
    if size % tail:
        raise ValueError(f"the tail window ({tail}) must divide the window ({size})")
    last_full = ((n_sentences - 1) // size) * size if n_sentences else 0
    bounds = []
    start = done
    while start < n_sentences:
        step = size if start < last_full else tail
        stop = min(n_sentences, (start // step + 1) * step)
        bounds.append((start, stop))
        start = stop
    return bounds


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: longest first (memory errors show up at once)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def run_windows(
    adapter: WordAdapter,
    corpus: Corpus,
    writer: EntryWriter,
    layer_ids: list[int],
    widths: list[int],
    heads: list[int] | None,
    options: ExtractOptions,
    name: str,
) -> None:
    """Compute and write every window from the writer's durable prefix on, with a words/s progress bar."""
    sentences = corpus.sentences
    done = writer.done_sentences
    lengths = corpus.sentence_lengths
    bar = tqdm(
        total=corpus.n_words,
        initial=sum(lengths[:done]),
        unit="word",
        unit_scale=True,
        desc=f"extract {name}",
        disable=not options.progress,
        dynamic_ncols=True,
    )
    # One window is written (files, fsync, progress.json) on a worker thread while the model computes the
    # next. Windows are committed strictly in order; a failing write stops the run within a batch with the
    # writer's own error, and an interrupted run still finishes (and records) the window being written,
    # since leaving the pool waits for it.
    bounds = window_bounds(done, len(sentences))
    # Per window: its words (rows of each hidden layer) and sum of n^2 (values per head of its attention maps).
    sizes = [(sum(lengths[a:b]), sum(n * n for n in lengths[a:b])) for a, b in bounds]
    buffers = WindowBuffers(
        widths, max((r for r, _ in sizes), default=0), heads, max((q for _, q in sizes), default=0)
    )
    pending: Future[None] | None = None

    def raise_failed_write() -> None:
        """Called between batches: a failed write stops the run now, not after the window in progress."""
        if pending is not None and pending.done():
            pending.result()

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reprsim-store") as pool:
            for (start, stop), (rows, squares) in zip(bounds, sizes, strict=True):
                hidden, attention = buffers.take(rows, squares)
                extract_window(
                    adapter,
                    sentences,
                    start,
                    stop,
                    layer_ids,
                    hidden,
                    heads,
                    attention,
                    options,
                    name,
                    bar,
                    raise_failed_write,
                )
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_sentences, start, stop, hidden, attention)
            if pending is not None:
                pending.result()
    finally:
        bar.close()


def extract_window(
    adapter: WordAdapter,
    sentences: Sequence[Sequence[str]],
    start: int,
    stop: int,
    layer_ids: list[int],
    hidden: list[np.ndarray],
    heads: list[int] | None,
    attention: list[np.ndarray | None] | None,
    options: ExtractOptions,
    name: str,
    bar: Any,
    between_batches: Callable[[], None] = lambda: None,
) -> None:
    """Fill `hidden` (one (window words, width) array per layer) with the window's word vectors in corpus
    order, and `attention` (with heads: one flat array per layer, None for layers without heads) with its
    word-level maps back to back in corpus order, as the store keeps them."""
    window = sentences[start:stop]
    lengths = [len(s) for s in window]
    offsets = [0, *itertools.accumulate(lengths)]
    squares = [0, *itertools.accumulate(n * n for n in lengths)]
    widths = [h.shape[1] for h in hidden]
    for batch in length_batches(lengths, options.batch_size):
        between_batches()
        batch_sentences = [window[i] for i in batch]
        try:
            output = adapter.encode(batch_sentences, layer_ids, heads is not None)
        except SentenceError as err:
            raise ValueError(f"{name}, sentence {start + batch[err.row]}: {err.reason}") from None
        sentence_ids = [start + i for i in batch]  # corpus indices, for error messages
        what = f"{name}, sentences {sentence_ids[:5]}"
        if not hasattr(output, "hidden"):
            raise ValueError(
                f"{what}: encode returned {type(output).__name__}; it must return AdapterOutput(hidden=..., "
                "attention=...)"
            )
        rows = _check_hidden(output.hidden, [lengths[i] for i in batch], widths, layer_ids, what, sentence_ids)
        # The batch's sentences go back to corpus order, one slice copy each (faster than a fancy index).
        position = 0
        for i in batch:
            for window_rows, batch_rows in zip(hidden, rows, strict=True):
                window_rows[offsets[i] : offsets[i + 1]] = batch_rows[position : position + lengths[i]]
            position += lengths[i]
        if attention is not None and heads is not None:
            _place_attention(output.attention, attention, squares, batch, lengths, heads, layer_ids, options, what,
                             sentence_ids, check_rows=not isinstance(adapter, TransformerAdapter))
        bar.update(position)


class WindowBuffers:
    """Two sets of per-window buffers, used by turns: one window fills a set while the previous window is
    written from the other (its write has finished before the set comes round again, since a window is
    submitted only after the write before it is done). Reusing them spares the page faults of fresh
    allocations, which cost as much as the copy into them.

    A set holds one (rows, width) array per layer and, with `heads`, one flat array per layer for the
    word-level maps (heads x sum of n^2 values; None for layers without heads). The second set is made when
    first needed: a corpus of one window never holds it."""

    def __init__(
        self, widths: Sequence[int], capacity: int, heads: Sequence[int] | None = None, square_capacity: int = 0
    ) -> None:
        self._widths = list(widths)
        self._capacity = capacity
        self._heads = heads
        self._square_capacity = square_capacity
        self._sets: list[tuple[list[np.ndarray], list[np.ndarray | None] | None]] = []
        self._turn = 0

    def _new_set(self) -> tuple[list[np.ndarray], list[np.ndarray | None] | None]:
        rows = self._capacity
        hidden = [anonymous_array(rows * width, np.float32).reshape(rows, width) for width in self._widths]
        if self._heads is None:
            return hidden, None
        return hidden, [anonymous_array(h * self._square_capacity, np.float32) if h else None for h in self._heads]

    def take(self, rows: int, squares: int = 0) -> tuple[list[np.ndarray], list[np.ndarray | None] | None]:
        """The next set, cut to `rows` rows and (with heads) `squares` = sum of n^2 over the window's sentences."""
        if self._turn == len(self._sets):
            self._sets.append(self._new_set())
        hidden, maps = self._sets[self._turn]
        self._turn ^= 1
        cut_maps = None
        if maps is not None and self._heads is not None:
            cut_maps = [None if m is None else m[: h * squares] for m, h in zip(maps, self._heads, strict=True)]
        return [buffer[:rows] for buffer in hidden], cut_maps


def _check_hidden(
    hidden: Sequence[Any],
    lengths: list[int],
    widths: list[int],
    layer_ids: list[int],
    what: str,
    sentence_ids: list[int],
) -> list[np.ndarray]:
    """Adapter output as (words in batch, width) arrays, checked against the corpus's word counts."""
    if len(hidden) != len(layer_ids):
        raise ValueError(f"{what}: adapter returned {len(hidden)} layers for {len(layer_ids)} requested")
    rows = []
    for layer, width, output in zip(layer_ids, widths, hidden, strict=True):
        if not isinstance(output, np.ndarray | torch.Tensor):
            # Per-sentence arrays: each must be its own sentence's (words, width), which also catches
            # sentences returned in another order than asked (the total alone would not).
            if len(output) != len(lengths):
                raise ValueError(
                    f"{what}, layer {layer}: {len(output)} per-sentence arrays for {len(lengths)} sentences"
                )
            for sentence, part, n in zip(sentence_ids, output, lengths, strict=True):
                if tuple(np.shape(part)) != (n, width):
                    raise ValueError(
                        f"{what}: sentence {sentence}, layer {layer}: adapter returned shape "
                        f"{tuple(np.shape(part))}, expected ({n}, {width}) (its words x the layer's width; "
                        "sentences in the order given)"
                    )
        try:
            array = stack_rows(output)
        except ValueError as err:
            raise ValueError(f"{what}, layer {layer}: {err}") from None
        if array.shape != (sum(lengths), width):
            raise ValueError(
                f"{what}, layer {layer}: adapter returned shape {array.shape}, but the corpus has "
                f"{sum(lengths)} words in these sentences and the layer is {width} wide"
            )
        rows.append(array)
    return rows


def _place_attention(
    attention: Sequence[Sequence[Any]] | None,
    flat: list[np.ndarray | None],
    squares: list[int],
    batch: list[int],
    lengths: list[int],
    heads: list[int],
    layer_ids: list[int],
    options: ExtractOptions,
    what: str,
    sentence_ids: list[int],
    check_rows: bool = True,
) -> None:
    """Check per-sentence word-level maps, apply the causal mask if asked, and copy each into its place in
    the window's flat array of its layer (sentence i at heads x squares[i]). The copy also detaches the maps
    from the adapter, which may reuse its output buffers while the window is written on another thread.

    check_rows: also check that every row is a distribution (non-negative, summing to 1), as the protocol
    asks; TransformerAdapter's maps are renormalised and checked as they are pooled, so it skips this."""
    if attention is None or len(attention) != len(layer_ids):
        got = "no attention" if attention is None else f"attention for {len(attention)} layers"
        raise ValueError(f"{what}: adapter returned {got}, expected {len(layer_ids)} (one entry per layer)")
    for k, (layer, n_heads) in enumerate(zip(layer_ids, heads, strict=True)):
        target = flat[k]
        if n_heads == 0 or target is None:
            continue
        if len(attention[k]) != len(batch):
            raise ValueError(f"{what}, layer {layer}: {len(attention[k])} attention maps for {len(batch)} sentences")
        for j, i in enumerate(batch):
            block = attention[k][j]
            shape = tuple(block.shape)
            n = lengths[i]
            where = f"{what}: sentence {sentence_ids[j]}, layer {layer}"
            if shape != (n_heads, n, n):
                raise ValueError(f"{where}: attention map of shape {shape}, expected ({n_heads}, {n}, {n})")
            place = target[n_heads * squares[i] : n_heads * squares[i + 1]].reshape(n_heads, n, n)
            try:
                place[...] = to_numpy(block)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            if check_rows:
                _check_distribution_rows(place, where)
            if options.causal_attention:
                try:
                    place[...] = causal_mask_rows(torch.from_numpy(place)).numpy()
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from None


def _check_distribution_rows(maps: np.ndarray, where: str) -> None:
    """Every row of (heads, n, n) maps is non-negative and sums to 1, or a ValueError naming it. The tolerance,
    1e-2, is what maps computed in bfloat16 meet (each value rounded by up to 2^-8 of itself)."""
    sums = maps.sum(axis=-1)
    fine = (np.abs(sums - 1.0) <= 1e-2) & (maps >= 0.0).all(axis=-1)  # False for NaN too
    if not fine.all():
        bad = np.argwhere(~fine)[0]
        raise ValueError(
            f"{where}: attention row (head {bad[0]}, word {bad[1]}) sums to {float(sums[tuple(bad)]):.6g} with "
            f"smallest value {float(maps[tuple(bad)].min()):.6g}; each row must be a distribution over the "
            "sentence's words (non-negative, summing to 1)"
        )
