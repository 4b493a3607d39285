"""A finished activation-store entry: metadata, structure checks, checksums and chunked reads.

The entry's errors and the checks shared with the writer are in `reprsim.store.entry_checks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from reprsim.store import codec, layout
from reprsim.store._zarr_tasks import settle_pending_reads
from reprsim.store.checksums import file_checksum_matches
from reprsim.store.entry_checks import (
    CorruptEntryError,
    EntryFormatError,
    array_names,
    as_index,
    check_format_version,
    read_finished_records,
)

__all__ = [
    "VERIFY_ON_OPEN_BYTES",
    "CorruptEntryError",
    "EntryFormatError",
    "StoreEntry",
    "array_names",
    "as_index",
    "check_format_version",
    "open_entry",
    "read_finished_records",
]

# Entries up to this many bytes get full checksums on open; larger ones only structure and sizes (a full
# check reads every byte, about 1 s per GB here), and full checksums on entry.verify().
VERIFY_ON_OPEN_BYTES = 64 * 1024 * 1024


class StoreEntry:
    """Read access to one complete entry; open it through ActivationStore.get, which checks it first.

    Parameters
    ----------
    entry_dir : pathlib.Path
        The entry's folder.
    record : dict
        Its manifest.json record.
    marker : dict
        Its completion marker (complete.json).
    """

    def __init__(self, entry_dir: Path, record: dict[str, Any], marker: dict[str, Any]) -> None:
        self.path = entry_dir
        self._record = record
        self._marker = marker

    # --- metadata ------------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """The entry's key (its folder name)."""
        return str(self._record["key"])

    @property
    def manifest(self) -> dict[str, Any]:
        """The caller's manifest (model id, revision, corpus hash, alignment rule, name, ...), a copy."""
        return dict(self._record["manifest"])

    @property
    def metadata(self) -> dict[str, Any]:
        """Everything in manifest.json: the caller's manifest plus the store's own fields."""
        return dict(self._record)

    @property
    def name(self) -> str:
        """Display label: manifest["name"] when given, else the key."""
        return str(self._record["manifest"].get("name", self.key))

    @property
    def corpus_hash(self) -> str | None:
        """manifest["corpus_hash"] when given."""
        value = self._record["manifest"].get("corpus_hash")
        return None if value is None else str(value)

    @property
    def rows(self) -> str:
        """What one row is: manifest["rows"] ("last-token", "mean", "first-token": one per sentence), else "word"."""
        return str(self._record["manifest"].get("rows", "word"))

    @property
    def dtype(self) -> str:
        """The storage dtype name: "float32", "float16" or "bfloat16"."""
        return str(self._record["dtype"])

    @property
    def layer_ids(self) -> list[int]:
        """The stored layers, in order (0 = embeddings)."""
        return list(self._record["layer_ids"])

    @property
    def sentence_lengths(self) -> list[int]:
        """Rows per sentence, in corpus order: its words, or 1 for text-level rows (see `rows`)."""
        return list(self._record["sentence_lengths"])

    @property
    def n_words(self) -> int:
        """Rows of every hidden-state layer: the corpus's words (its sentences, for text-level rows)."""
        return int(self._record["n_words"])

    @property
    def n_sentences(self) -> int:
        """Sentences of the corpus."""
        return len(self._record["sentence_lengths"])

    @property
    def has_attention(self) -> bool:
        """True when some layer stores attention maps."""
        return self._record["heads"] is not None and any(h > 0 for h in self._record["heads"])

    def _index(self, layer: int) -> int:
        """Position of a layer id in layer_ids (KeyError naming the stored layers)."""
        try:
            return self._record["layer_ids"].index(layer)
        except ValueError:
            raise KeyError(f"entry {self.key!r} has no layer {layer!r}; stored layers: {self.layer_ids}") from None

    def layer_width(self, layer: int) -> int:
        """Return the number of columns (neurons) of a stored layer.

        Parameters
        ----------
        layer : int
            A stored layer id.

        Returns
        -------
        int
            The layer's width.

        Raises
        ------
        KeyError
            When the layer is not stored (the message lists the stored ones).
        """
        return int(self._record["layer_widths"][self._index(layer)])

    def heads(self, layer: int) -> int:
        """Return the attention heads stored for a layer.

        Parameters
        ----------
        layer : int
            A stored layer id.

        Returns
        -------
        int
            Heads of its stored maps (0 when the layer has no attention).

        Raises
        ------
        KeyError
            When the layer is not stored.
        ValueError
            When the entry was stored without attention.
        """
        index = self._index(layer)
        if self._record["heads"] is None:
            raise ValueError(f"entry {self.key!r} was stored without attention")
        return int(self._record["heads"][index])

    # --- reads ---------------------------------------------------------------------------------------
    def _open(self, name: str) -> Any:
        """Open one of the entry's arrays through zarr, read-only."""
        return zarr.open_array(str(self.path / name), mode="r")

    def _read(self, array: Any, start: int, stop: int, what: str) -> np.ndarray:
        """Read and decode a slice, turning codec failures (damaged chunks) into CorruptEntryError."""
        try:
            stored = array[start:stop]
        except Exception as exc:
            settle_pending_reads()  # the failed read's other chunk tasks, before the error can end the process
            if isinstance(exc, (PermissionError, MemoryError)):
                raise  # not damage: deleting the entry would not help
            raise CorruptEntryError(self.key, f"cannot read {what} [{start}:{stop}]: {exc}") from exc
        return codec.decode(np.asarray(stored), self.dtype)

    def read_rows(self, layer: int, start: int, stop: int) -> np.ndarray:
        """Read rows [start, stop) of a layer, in the corpus's word order.

        Parameters
        ----------
        layer : int
            A stored layer id.
        start, stop : int
            The rows, ``0 <= start <= stop <= n_words`` (numpy integers accepted).

        Returns
        -------
        numpy.ndarray
            (stop - start, width) values: float32, or float16 for float16 entries (bfloat16 reads as float32).

        Raises
        ------
        KeyError
            When the layer is not stored.
        ValueError
            When a bound is not an integer or the range is out of bounds.
        CorruptEntryError
            When a chunk cannot be read or decoded (damage).
        """
        self._index(layer)
        start, stop = as_index(start, "start"), as_index(stop, "stop")
        if not 0 <= start <= stop <= self.n_words:
            raise ValueError(f"rows [{start}, {stop}) out of range for entry {self.key!r} ({self.n_words} rows)")
        return self._read(self._open(layout.hidden_name(layer)), start, stop, f"layer {layer} rows")

    def iter_rows(self, layer: int, chunk_rows: int = 8192, start: int = 0,
                  stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield a layer's rows in order, never the whole layer at once.

        Parameters
        ----------
        layer : int
            A stored layer id.
        chunk_rows : int, default 8192
            Rows per yielded block (the last may be shorter).
        start, stop : int
            Only the rows [start, stop) (default: every row).

        Yields
        ------
        numpy.ndarray
            Consecutive (rows, width) blocks, as read_rows gives them.

        Raises
        ------
        KeyError
            When the layer is not stored.
        ValueError
            When chunk_rows is not positive, or the range is out of bounds.
        CorruptEntryError
            When a chunk cannot be read or decoded.
        """
        self._index(layer)
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        stop = self.n_words if stop is None else as_index(stop, "stop")
        start = as_index(start, "start")
        if not 0 <= start <= stop <= self.n_words:
            raise ValueError(f"rows [{start}, {stop}) out of range for entry {self.key!r} ({self.n_words} rows)")
        array = self._open(layout.hidden_name(layer))
        for first in range(start, stop, chunk_rows):
            yield self._read(array, first, min(first + chunk_rows, stop), f"layer {layer} rows")

    def iter_attention(self, layer: int, buffer_elements: int = 1 << 22) -> Iterator[np.ndarray]:
        """Yield each sentence's attention maps of a layer, in corpus order.

        Consecutive sentences are read together up to `buffer_elements` values, so each stored chunk is
        decoded about once rather than once per sentence.

        Parameters
        ----------
        layer : int
            A stored layer id with heads.
        buffer_elements : int, default 4194304
            Most values read at once (a longer sentence is read on its own).

        Yields
        ------
        numpy.ndarray
            (heads, T_s, T_s) word-level maps of sentence s, for s = 0, 1, ...

        Raises
        ------
        KeyError
            When the layer is not stored.
        ValueError
            When the entry has no attention, or none for this layer.
        CorruptEntryError
            When a chunk cannot be read or decoded.
        """
        heads = self.heads(layer)
        if heads == 0:
            raise ValueError(f"entry {self.key!r} stores no attention for layer {layer}")
        lengths = self.sentence_lengths
        offsets = layout.attention_offsets(lengths, heads)
        array = self._open(layout.attention_name(layer))
        first = 0
        while first < len(lengths):
            last = first + 1  # read sentences [first, last) together
            while last < len(lengths) and offsets[last + 1] - offsets[first] <= buffer_elements:
                last += 1
            block = self._read(array, int(offsets[first]), int(offsets[last]), f"attention layer {layer}")
            for s in range(first, last):
                t = lengths[s]
                yield block[offsets[s] - offsets[first] : offsets[s + 1] - offsets[first]].reshape(heads, t, t)
            first = last

    # --- integrity -----------------------------------------------------------------------------------
    @property
    def nbytes_on_disk(self) -> int:
        """Total size of the entry's array files, from the completion marker."""
        return sum(f["size"] for a in self._marker["arrays"].values() for f in a["files"].values())

    def check_structure(self) -> None:
        """Check cheaply that every file the marker records exists with its recorded size.

        Raises
        ------
        CorruptEntryError
            When a file is missing or has another size (truncation, deletion).
        """
        for name, info in self._marker["arrays"].items():
            for rel, meta in info["files"].items():
                path = self.path / rel
                if not path.is_file():
                    raise CorruptEntryError(self.key, f"file {rel} of array {name} is missing")
                size = path.stat().st_size
                if size != meta["size"]:
                    raise CorruptEntryError(
                        self.key, f"file {rel} of array {name} has {size} bytes, expected {meta['size']}"
                    )

    def verify(self) -> None:
        """Check the structure, then the checksum of every file against the completion marker.

        Raises
        ------
        CorruptEntryError
            When a file is missing, has another size, or its content differs from what was written.
        """
        self.check_structure()
        files = [(rel, meta) for info in self._marker["arrays"].values() for rel, meta in info["files"].items()]
        with tqdm(
            total=self.nbytes_on_disk,
            unit="B",
            unit_scale=True,
            desc=f"verify {self.key}",
            disable=self.nbytes_on_disk < VERIFY_ON_OPEN_BYTES,
            leave=False,
        ) as bar:
            for rel, meta in files:
                if not file_checksum_matches(self.path / rel, meta):
                    raise CorruptEntryError(self.key, f"checksum mismatch in file {rel} (content altered)")
                bar.update(meta["size"])

    def __repr__(self) -> str:
        return (
            f"StoreEntry({self.key!r}, name={self.name!r}, {self.n_sentences} sentences, "
            f"{self.n_words} words, "
            f"layers={self.layer_ids}, dtype={self.dtype}, attention={self.has_attention})"
        )


def open_entry(entry_dir: Path, verify: bool | None = None) -> StoreEntry:
    """Open and check an entry's folder: format version, marker, manifest, structure, and checksums.

    Parameters
    ----------
    entry_dir : pathlib.Path
        The entry's folder.
    verify : bool or None, default None
        Check every file's checksum: None only for entries up to VERIFY_ON_OPEN_BYTES; True always;
        False never (structure and sizes are always checked).

    Returns
    -------
    StoreEntry
        The checked entry.

    Raises
    ------
    EntryFormatError
        When the entry was written in another store format version.
    CorruptEntryError
        When it is half-written or damaged.
    """
    record, marker = read_finished_records(entry_dir)
    entry = StoreEntry(entry_dir, record, marker)
    if verify or (verify is None and entry.nbytes_on_disk <= VERIFY_ON_OPEN_BYTES):
        entry.verify()
    else:
        entry.check_structure()
    return entry

