"""Crash-safe, resumable writing of one store entry.

Each write_sentences call writes the rows (and attention blocks) of a contiguous range of sentences, flushes
them to disk, and only then replaces progress.json atomically. A writer killed at any point therefore leaves
a durable prefix of `done_sentences` sentences; rows written past it are simply rewritten on resume, and
because a chunk holding rows of the prefix is only ever replaced atomically (append.py) and chunks are encoded
deterministically, the finished entry is byte-identical to one written without interruption.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from reprsim._version import __version__
from reprsim.store import codec, layout
from reprsim.store._files import (
    atomic_write_text,
    canonical_json,
    file_sha256,
    fsync_path,
    fsync_paths,
    read_json,
    remove_leftovers,
    remove_tree,
)
from reprsim.store.append import ArrayAppender, raw_codecs
from reprsim.store.checksums import checksum_arrays
from reprsim.store.entry import CorruptEntryError, StoreEntry, array_names, as_index, check_format_version

# Every array: uncompressed little-endian values with a crc32c per chunk, written by ArrayAppender (append.py).
CODECS = "bytes (little-endian) + crc32c"


def _check_int_list(values: Sequence[int], argument: str, minimum: int) -> list[int]:
    """Validate a list of ints (bools excluded) >= minimum, naming the argument."""
    result = list(values)
    for i, value in enumerate(result):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{argument}[{i}] must be an integer >= {minimum}, got {value!r}")
    return [int(v) for v in result]


def build_record(
    key: str,
    manifest: dict[str, Any],
    layer_ids: Sequence[int],
    layer_widths: Sequence[int],
    sentence_lengths: Sequence[int],
    heads: Sequence[int] | None,
    dtype: str,
    chunk_rows: int | None,
    attention_chunk: int,
) -> dict[str, Any]:
    """Validate a writer's arguments and build the manifest.json record: the caller's manifest + store fields.

    Parameters
    ----------
    key : str
        The entry's key (already checked as a folder name).
    manifest : dict
        The caller's manifest (JSON-serialisable).
    layer_ids : sequence of int
        Distinct layer ids, >= 0.
    layer_widths : sequence of int
        Width of each layer, >= 1.
    sentence_lengths : sequence of int
        Words per sentence, >= 1 each, at least one sentence.
    heads : sequence of int or None
        Attention heads per layer (0 for layers without attention), or None for an entry without attention.
    dtype : str
        Storage dtype name (see codec.DTYPES).
    chunk_rows : int or None
        Rows per chunk of every hidden-state array, or None to choose per layer (layout.auto_chunk_rows).
    attention_chunk : int
        Values per chunk of the attention arrays.

    Returns
    -------
    dict
        The record, as it reads back from manifest.json (lists, not tuples).

    Raises
    ------
    ValueError
        When an argument is invalid; the message names it.
    """
    if not isinstance(manifest, dict):
        raise ValueError(f"manifest must be a dict, got {type(manifest).__name__}")
    try:
        canonical_json(manifest)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"manifest for {key!r} is not JSON-serialisable: {exc}") from exc
    codec.check_dtype(dtype)
    layers = _check_int_list(layer_ids, "layer_ids", 0)
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layer_ids must be non-empty and distinct, got {layers}")
    widths = _check_int_list(layer_widths, "layer_widths", 1)
    if len(widths) != len(layers):
        raise ValueError(f"layer_widths has {len(widths)} values for {len(layers)} layer_ids")
    lengths = _check_int_list(sentence_lengths, "sentence_lengths", 1)
    if not lengths:
        raise ValueError("sentence_lengths is empty")
    head_counts = None if heads is None else _check_int_list(heads, "heads", 0)
    if head_counts is not None and len(head_counts) != len(layers):
        raise ValueError(f"heads has {len(head_counts)} values for {len(layers)} layer_ids")
    record = {
        "format": layout.FORMAT,
        "format_version": layout.FORMAT_VERSION,
        "reprsim_version": __version__,
        "key": key,
        "manifest": manifest,
        "dtype": dtype,
        "storage_dtype": codec.STORAGE_DTYPE[dtype].name,
        "layer_ids": layers,
        "layer_widths": widths,
        "heads": head_counts,
        "sentence_lengths": lengths,
        "n_words": sum(lengths),
        "chunk_rows": [
            chunk_rows or layout.auto_chunk_rows(width, codec.STORAGE_DTYPE[dtype].itemsize) for width in widths
        ],
        "attention_chunk": attention_chunk,
        "codecs": CODECS,
    }
    # Round-trip through JSON so the record compares equal to what manifest.json reads back (tuples -> lists).
    return dict(json.loads(canonical_json(record)))


def _encode_naming_sentence(values: np.ndarray, bounds: np.ndarray, start: int, dtype: str, what: str) -> np.ndarray:
    """Encode the values of sentences start, start + 1, ... (sentence start+i: values[bounds[i]:bounds[i+1]]).

    One check for all of them; only when it fails are the sentences checked one by one, so the error names
    the first bad sentence.
    """
    try:
        return codec.encode(values, dtype, f"{what}, sentences [{start}, {start + len(bounds) - 1})")
    except ValueError:
        for i in range(len(bounds) - 1):
            codec.encode(values[bounds[i] : bounds[i + 1]], dtype, f"{what}, sentence {start + i}")
        raise


def differing_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """List the top-level (and ``manifest.*``) fields whose values differ between two records.

    Parameters
    ----------
    old, new : dict
        Two manifest.json records.

    Returns
    -------
    list of str
        The differing fields' names, sorted.
    """
    fields = []
    for name in sorted(set(old) | set(new)):
        if name == "manifest" and isinstance(old.get(name), dict) and isinstance(new.get(name), dict):
            fields += [f"manifest.{f}" for f in differing_fields(old[name], new[name])]
        elif old.get(name) != new.get(name):
            fields.append(name)
    return fields


class EntryWriter:
    """Write one entry sentence range by sentence range, resumably; create it through ActivationStore.writer.

    Parameters
    ----------
    entry_dir : pathlib.Path
        The entry's folder.
    record : dict
        Its manifest.json record (see build_record).
    overwrite : bool, default False
        Discard an existing entry, complete or not, and start over.
    durable : bool, default True
        Flush every file to disk before a commit declares it done (False: safe against a killed process,
        not against a power cut).

    Raises
    ------
    ValueError
        When the entry is complete, or half-written with a different manifest (and overwrite is False).
    EntryFormatError
        When a half-written entry of another store format version is in the way (and overwrite is False).
    CorruptEntryError
        When a half-written entry's progress record is unreadable.
    """

    def __init__(self, entry_dir: Path, record: dict[str, Any], overwrite: bool = False, durable: bool = True) -> None:
        self.path = entry_dir
        self.durable = durable
        self.key = str(record["key"])
        self._record = record
        self._lengths: list[int] = record["sentence_lengths"]
        self._rows = layout.word_offsets(self._lengths)
        self._done = self._open_or_start(overwrite)
        self._appenders: dict[str, ArrayAppender] = {}
        self._offsets_by_heads: dict[int, np.ndarray] = {}

    # --- setup ---------------------------------------------------------------------------------------
    def _open_or_start(self, overwrite: bool) -> int:
        """Resume a matching incomplete entry, or lay out a fresh one; return the durable sentence count."""
        manifest_path = self.path / layout.MANIFEST
        if self.path.exists() and not overwrite:
            if (self.path / layout.COMPLETE).exists():
                raise ValueError(
                    f"store entry {self.key!r} is already complete; open it with store.get, "
                    f"or pass overwrite=True to write it again"
                )
            if manifest_path.is_file():
                old = read_json(manifest_path)
                check_format_version(self.key, old)
                if old != self._record:
                    raise ValueError(
                        f"store entry {self.key!r} is a half-written entry with a different manifest "
                        f"(fields differ: {', '.join(differing_fields(old, self._record))}); "
                        f"discard it with store.remove({self.key!r}) or `reprsim store remove STORE {self.key}` "
                        "(or writer(..., overwrite=True)) and start over"
                    )
                remove_leftovers(self.path)
                try:
                    return int(read_json(self.path / layout.PROGRESS)["done_sentences"])
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise CorruptEntryError(
                        self.key,
                        f"{layout.PROGRESS} is unreadable ({exc}); pass overwrite=True to start over",
                    ) from exc
            # No manifest and no marker: a writer was killed while laying the entry out. Start over.
        if self.path.exists():
            remove_tree(self.path)
        self._lay_out()
        return 0

    def _lay_out(self) -> None:
        """Create the arrays and the progress record, then the manifest (its presence means "resumable")."""
        self.path.mkdir(parents=True)
        storage = codec.STORAGE_DTYPE[self._record["dtype"]]
        for name, shape, chunks in self._array_specs():
            zarr.create_array(
                store=str(self.path / name),
                shape=shape,
                chunks=chunks,
                dtype=storage,
                fill_value=0,
                config={"write_empty_chunks": True},  # every chunk has a file, so a missing file is damage
                **raw_codecs(),
            )
        self._sync([p for p in self.path.rglob("*") if p.is_file()])
        if self.durable:
            fsync_path(self.path.parent)  # the entry's own folder is a new entry of the store's
        self._commit(layout.PROGRESS, {"done_sentences": 0})
        self._commit(layout.MANIFEST, self._record)

    def _sync(self, files: list[Path]) -> None:
        """Flush written files and their folders to disk before anything declares them done (if durable)."""
        if self.durable:
            fsync_paths(files, self.path)

    def _commit(self, name: str, content: dict[str, Any]) -> None:
        """Atomically replace one of the entry's JSON records."""
        atomic_write_text(self.path / name, canonical_json(content), durable=self.durable)

    def _array_specs(self) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
        """(relative path, shape, chunk shape) of every array of the entry."""
        rec = self._record
        specs: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = [
            (layout.hidden_name(layer), (rec["n_words"], width), (rows, width))
            for layer, width, rows in zip(rec["layer_ids"], rec["layer_widths"], rec["chunk_rows"], strict=True)
        ]
        if rec["heads"] is not None:
            for layer, heads in zip(rec["layer_ids"], rec["heads"], strict=True):
                if heads > 0:
                    total = int(layout.attention_offsets(self._lengths, heads)[-1])
                    specs.append((layout.attention_name(layer), (total,), (rec["attention_chunk"],)))
        return specs

    # --- writing -------------------------------------------------------------------------------------
    @property
    def done_sentences(self) -> int:
        """Sentences already durable on disk (a prefix of the corpus); resume writing here."""
        return self._done

    @property
    def n_sentences(self) -> int:
        """Sentences of the entry (all of them, written or not)."""
        return len(self._lengths)

    def write_sentences(
        self,
        start: int,
        stop: int,
        hidden: list[np.ndarray],
        attention: Sequence[Sequence[np.ndarray] | np.ndarray | None] | None = None,
    ) -> None:
        """Write sentences [start, stop), flush them to disk, then commit them to the durable prefix.

        Parameters
        ----------
        start, stop : int
            The sentences; ranges come in order: ``start == done_sentences`` (numpy integers accepted).
        hidden : list of numpy.ndarray
            hidden[k]: (words of these sentences) x width of layer_ids[k], float.
        attention : sequence, optional
            With attention, one entry per layer: a sequence of each sentence's (heads, T, T) maps, or one
            flat array of the sentences' maps back to back (each in C order), as they are stored; None for
            layers with 0 heads. None for an entry without attention.

        Raises
        ------
        ValueError
            When the range is out of order or bounds, a shape does not match the sentence lengths, widths or
            heads, or a value is NaN, infinite or overflows the storage dtype; the message names the layer
            and the sentence.
        """
        start, stop = as_index(start, "start"), as_index(stop, "stop")
        if start != self._done:
            raise ValueError(
                f"store entry {self.key!r}: write_sentences must continue at sentence {self._done}, got start={start}"
            )
        if not start < stop <= self.n_sentences:
            raise ValueError(
                f"store entry {self.key!r}: invalid sentence range [{start}, {stop}) of {self.n_sentences} sentences"
            )
        encoded_hidden = self._encode_hidden(start, stop, hidden)
        encoded_attention = self._encode_attention(start, stop, attention)
        touched: list[Path] = []
        row_start = int(self._rows[start])
        for layer, values in zip(self._record["layer_ids"], encoded_hidden, strict=True):
            touched += self._appender(layout.hidden_name(layer)).append(row_start, values)
        for layer, heads, flat in encoded_attention:
            offset = int(self._attention_offsets(heads)[start])
            touched += self._appender(layout.attention_name(layer)).append(offset, flat)
        self._sync(touched)
        self._commit(layout.PROGRESS, {"done_sentences": stop})
        self._done = stop

    def _attention_offsets(self, heads: int) -> np.ndarray:
        """Where each sentence's maps start in an attention array of `heads` heads (memoised: O(sentences))."""
        if heads not in self._offsets_by_heads:
            self._offsets_by_heads[heads] = layout.attention_offsets(self._lengths, heads)
        return self._offsets_by_heads[heads]

    def _appender(self, name: str) -> ArrayAppender:
        """Return the appender of one array (kept for the writer's life: it holds the partly filled chunk)."""
        if name not in self._appenders:
            self._appenders[name] = ArrayAppender(self.path / name, durable=self.durable)
        return self._appenders[name]

    def _encode_hidden(self, start: int, stop: int, hidden: list[np.ndarray]) -> list[np.ndarray]:
        """Check shapes against sentence lengths and layer widths, and convert to the stored type."""
        rec = self._record
        if len(hidden) != len(rec["layer_ids"]):
            raise ValueError(
                f"store entry {self.key!r}: got {len(hidden)} hidden arrays for "
                f"{len(rec['layer_ids'])} layers {rec['layer_ids']}"
            )
        rows = int(self._rows[stop] - self._rows[start])
        encoded = []
        for layer, width, values in zip(rec["layer_ids"], rec["layer_widths"], hidden, strict=True):
            what = f"store entry {self.key!r}, layer {layer}"
            shape = np.shape(values)
            if shape != (rows, width):
                raise ValueError(
                    f"{what}, sentences [{start}, {stop}): expected shape ({rows}, {width}) (words x width), "
                    f"got {shape}"
                )
            bounds = self._rows[start : stop + 1] - self._rows[start]
            encoded.append(_encode_naming_sentence(np.asarray(values), bounds, start, rec["dtype"], what))
        return encoded

    def _encode_attention(
        self, start: int, stop: int, attention: Sequence[Sequence[np.ndarray] | np.ndarray | None] | None
    ) -> list[tuple[int, int, np.ndarray]]:
        """Check the maps of each stored layer and encode them flat: (layer, heads, values) per layer."""
        rec = self._record
        if rec["heads"] is None:
            if attention is not None:
                raise ValueError(f"store entry {self.key!r} was created without attention, but attention was given")
            return []
        if attention is None or len(attention) != len(rec["layer_ids"]):
            got = "none" if attention is None else str(len(attention))
            raise ValueError(
                f"store entry {self.key!r}: expected attention for {len(rec['layer_ids'])} layers, got {got}"
            )
        result = []
        for layer, heads, maps in zip(rec["layer_ids"], rec["heads"], attention, strict=True):
            if heads == 0:
                continue
            what = f"store entry {self.key!r}, attention layer {layer}"
            absolute = self._attention_offsets(heads)[start : stop + 1]
            offsets = absolute - absolute[0]  # where each sentence's maps start in the window's flat array
            flat = self._flat_maps(maps, start, stop, heads, int(offsets[-1]), what)
            result.append((layer, heads, _encode_naming_sentence(flat, offsets, start, rec["dtype"], what)))
        return result

    def _flat_maps(
        self, maps: Sequence[np.ndarray] | np.ndarray | None, start: int, stop: int, heads: int, size: int, what: str
    ) -> np.ndarray:
        """Check the window's maps of one layer against the sentence lengths; return them as one flat array."""
        if isinstance(maps, np.ndarray):
            if maps.shape != (size,):
                raise ValueError(
                    f"{what}: a flat array for sentences [{start}, {stop}) must hold {size} values "
                    f"(heads x T x T per sentence), got shape {maps.shape}"
                )
            if maps.dtype.kind != "f":
                raise ValueError(f"{what}: expected a float array, got dtype {maps.dtype}")
            return maps
        if maps is None or len(maps) != stop - start:
            raise ValueError(
                f"{what}: expected {stop - start} sentence maps, got {'none' if maps is None else len(maps)}"
            )
        for s, block in enumerate(maps, start=start):
            t = self._lengths[s]
            if np.shape(block) != (heads, t, t):
                raise ValueError(f"{what}, sentence {s}: expected shape ({heads}, {t}, {t}), got {np.shape(block)}")
            kind = np.asarray(block).dtype
            if kind.kind != "f":
                raise ValueError(f"{what}, sentence {s}: expected a float array, got dtype {kind}")
        return np.concatenate([np.asarray(block).reshape(-1) for block in maps])

    # --- completion ----------------------------------------------------------------------------------
    def finalize(self) -> StoreEntry:
        """Checksum every array and write the completion marker.

        Returns
        -------
        StoreEntry
            The finished entry.

        Raises
        ------
        ValueError
            When sentences are still missing.
        CorruptEntryError
            When a chunk is missing or damaged (written before a resume and altered on disk meanwhile).
        """
        if self._done != self.n_sentences:
            raise ValueError(
                f"store entry {self.key!r}: cannot finalize after {self._done} of {self.n_sentences} sentences"
            )
        remove_leftovers(self.path)
        try:
            arrays = checksum_arrays(self.path, array_names(self._record), self._known_digests())
        except ValueError as exc:  # a chunk written before a resume was damaged on disk meanwhile
            raise CorruptEntryError(self.key, str(exc)) from None
        marker = {
            "complete": True,
            "manifest_sha256": file_sha256(self.path / layout.MANIFEST),
            "arrays": arrays,
        }
        self._commit(layout.COMPLETE, marker)
        return StoreEntry(self.path, self._record, marker)

    def _known_digests(self) -> dict[Path, tuple[int, str]]:
        """Collect the data crc32c of chunk files taken as they were written (finalize need not read them)."""
        known: dict[Path, tuple[int, str]] = {}
        for appender in self._appenders.values():
            known.update(appender.finished_digests())
        return known

    def __repr__(self) -> str:
        return f"EntryWriter({self.key!r}, {self._done}/{self.n_sentences} sentences done)"
