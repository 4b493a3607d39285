"""A finished activation-store entry: metadata, structure checks, checksums and chunked reads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from reprsim.store import codec, layout
from reprsim.store._files import chunk_crc32c, file_sha256, read_json

# Entries up to this many bytes get full checksums on open; larger ones only structure and sizes (a full
# check reads every byte, about 1 s per GB here), and full checksums on entry.verify().
VERIFY_ON_OPEN_BYTES = 64 * 1024 * 1024


class CorruptEntryError(ValueError):
    """A store entry is damaged or half-written; the message names the entry and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(
            f"store entry {key!r} is corrupt or incomplete: {problem} "
            f"(remove it with store.remove({key!r}) or `reprsim store remove STORE {key}`, and extract again)"
        )
        self.key = key
        self.problem = problem


def array_files(entry_dir: Path, name: str) -> list[Path]:
    """All files of one zarr array (metadata and chunks), in a fixed order."""
    return sorted(path for path in (entry_dir / name).rglob("*") if path.is_file())


def as_index(value: Any, what: str) -> int:
    """A row or sentence bound as a Python int (numpy integers accepted; bools, floats and the rest refused,
    before anything is read or written)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def missing_chunks(entry_dir: Path, name: str) -> list[Path]:
    """Chunk files the array's shape calls for that do not exist. zarr reads a missing chunk as its fill
    value (zeros), and every chunk of an entry is written (write_empty_chunks), so a missing one is damage."""
    array_dir = entry_dir / name
    meta = read_json(array_dir / layout.ZARR_METADATA)
    total, chunk, separator = layout.row_chunking(meta)
    if total == 0:
        return []
    expected = layout.chunk_files(array_dir, 0, total, chunk, len(meta["shape"]), separator)
    return [path for path in expected if not path.is_file()]


def file_checksum(meta: dict[str, Any]) -> str:
    """The recorded checksum of one file: its data crc32c (chunk files), or its sha256 (metadata files, and
    every file of entries written before November 2026)."""
    return str(meta["data_crc32c"] if "data_crc32c" in meta else meta["sha256"])


def file_checksum_matches(path: Path, meta: dict[str, Any]) -> bool:
    """Recompute a file's checksum the way its marker recorded it, and compare."""
    if "data_crc32c" in meta:
        crc = chunk_crc32c(path)
        return crc is not None and crc == meta["data_crc32c"]
    return file_sha256(path) == meta["sha256"]


def array_digest(files: dict[str, dict[str, Any]]) -> str:
    """One sha256 for an array: over its files' relative paths, sizes and checksums, in sorted order."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel]['size']}\0{file_checksum(files[rel])}\n".encode())
    return digest.hexdigest()


def array_names(record: dict[str, Any]) -> list[str]:
    """Relative paths of every array an entry's manifest record declares."""
    names = [layout.hidden_name(layer) for layer in record["layer_ids"]]
    if record["heads"] is not None:
        names += [
            layout.attention_name(layer)
            for layer, heads in zip(record["layer_ids"], record["heads"], strict=True)
            if heads > 0
        ]
    return names


def checksum_arrays(
    entry_dir: Path, names: list[str], known: dict[Path, tuple[int, str]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-array checksums, and one sha256 over them: each chunk file's size and data crc32c (the value its
    trailer holds, so a chunk swapped for another or for a stale copy is caught, not only a damaged one), and
    the sha256 of each array's zarr.json.

    known: (size, data crc32c) of chunk files the writer took as it wrote them; a file whose size on disk
    differs is read like any other.
    """
    known = known or {}
    result: dict[str, dict[str, Any]] = {}
    for name in names:
        missing = missing_chunks(entry_dir, name)
        if missing:
            raise ValueError(f"chunk file {missing[0]} of array {name} is missing ({len(missing)} missing)")
        files = {}
        for path in array_files(entry_dir, name):
            size = path.stat().st_size
            meta: dict[str, Any] = {"size": size}
            if path.name == layout.ZARR_METADATA:
                meta["sha256"] = file_sha256(path)
            else:
                size_known, crc = known.get(path, (-1, ""))
                if size_known != size:
                    read = chunk_crc32c(path)
                    if read is None:
                        raise ValueError(f"chunk file {path} is damaged: its crc32c trailer does not match its data")
                    crc = read
                meta["data_crc32c"] = crc
            files[path.relative_to(entry_dir).as_posix()] = meta
        result[name] = {"sha256": array_digest(files), "files": files}
    return result


class StoreEntry:
    """Read access to one complete entry. Open through ActivationStore.get, which checks it first."""

    def __init__(self, entry_dir: Path, record: dict[str, Any], marker: dict[str, Any]) -> None:
        self.path = entry_dir
        self._record = record
        self._marker = marker

    # --- metadata ------------------------------------------------------------------------------------
    @property
    def key(self) -> str:
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
    def dtype(self) -> str:
        return str(self._record["dtype"])

    @property
    def layer_ids(self) -> list[int]:
        return list(self._record["layer_ids"])

    @property
    def sentence_lengths(self) -> list[int]:
        return list(self._record["sentence_lengths"])

    @property
    def n_words(self) -> int:
        return int(self._record["n_words"])

    @property
    def n_sentences(self) -> int:
        return len(self._record["sentence_lengths"])

    @property
    def has_attention(self) -> bool:
        return self._record["heads"] is not None and any(h > 0 for h in self._record["heads"])

    def _index(self, layer: int) -> int:
        """Position of a layer id in layer_ids (KeyError naming the stored layers)."""
        try:
            return self._record["layer_ids"].index(layer)
        except ValueError:
            raise KeyError(f"entry {self.key!r} has no layer {layer!r}; stored layers: {self.layer_ids}") from None

    def layer_width(self, layer: int) -> int:
        """Number of columns (neurons) of a stored layer."""
        return int(self._record["layer_widths"][self._index(layer)])

    def heads(self, layer: int) -> int:
        """Attention heads stored for a layer (ValueError when the entry has no attention)."""
        index = self._index(layer)
        if self._record["heads"] is None:
            raise ValueError(f"entry {self.key!r} was stored without attention")
        return int(self._record["heads"][index])

    # --- reads ---------------------------------------------------------------------------------------
    def _open(self, name: str) -> Any:
        return zarr.open_array(str(self.path / name), mode="r")

    def _read(self, array: Any, start: int, stop: int, what: str) -> np.ndarray:
        """Read and decode a slice, turning codec failures (damaged chunks) into CorruptEntryError."""
        try:
            stored = array[start:stop]
        except (PermissionError, MemoryError):
            raise  # not damage: deleting the entry would not help
        except Exception as exc:
            raise CorruptEntryError(self.key, f"cannot read {what} [{start}:{stop}]: {exc}") from exc
        return codec.decode(np.asarray(stored), self.dtype)

    def read_rows(self, layer: int, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of a layer (word order of the corpus). bfloat16 entries read as float32."""
        self._index(layer)
        start, stop = as_index(start, "start"), as_index(stop, "stop")
        if not 0 <= start <= stop <= self.n_words:
            raise ValueError(f"rows [{start}, {stop}) out of range for entry {self.key!r} ({self.n_words} rows)")
        return self._read(self._open(layout.hidden_name(layer)), start, stop, f"layer {layer} rows")

    def iter_rows(self, layer: int, chunk_rows: int = 8192) -> Iterator[np.ndarray]:
        """Yield a layer's rows in order, at most chunk_rows at a time (never the whole layer at once)."""
        self._index(layer)
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        array = self._open(layout.hidden_name(layer))
        for start in range(0, self.n_words, chunk_rows):
            yield self._read(array, start, min(start + chunk_rows, self.n_words), f"layer {layer} rows")

    def iter_attention(self, layer: int, buffer_elements: int = 1 << 22) -> Iterator[np.ndarray]:
        """Yield each sentence's (heads, T_s, T_s) attention map of a layer, in corpus order.

        Consecutive sentences are read together up to `buffer_elements` values, so each stored chunk is
        decoded about once rather than once per sentence.
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
        """Cheap check: every recorded file exists with its recorded size (catches truncation, deletion)."""
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
        """Full check: structure, then the checksum of every file against the completion marker."""
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
    """Open and check an entry directory: marker, manifest, structure, and checksums when asked or cheap.

    verify=None checks checksums only for entries up to VERIFY_ON_OPEN_BYTES; True always; False never.
    """
    key = entry_dir.name
    manifest_path, marker_path = entry_dir / layout.MANIFEST, entry_dir / layout.COMPLETE
    if not marker_path.is_file():
        progress = entry_dir / layout.PROGRESS
        done = "unknown"
        if progress.is_file():
            try:
                done = str(read_json(progress)["done_sentences"])
            except Exception:  # an unreadable progress record is itself a sign of damage
                done = "unreadable"
        raise CorruptEntryError(key, f"no completion marker: half-written ({done} sentences done)")
    if not manifest_path.is_file():
        raise CorruptEntryError(key, f"{layout.MANIFEST} is missing")
    try:
        marker = read_json(marker_path)
        if not marker.get("complete") or not isinstance(marker.get("arrays"), dict):
            raise ValueError("not a completion marker")
    except Exception as exc:
        raise CorruptEntryError(key, f"{layout.COMPLETE} is unreadable: {exc}") from exc
    if file_sha256(manifest_path) != marker.get("manifest_sha256"):
        raise CorruptEntryError(key, f"{layout.MANIFEST} does not match the checksum in {layout.COMPLETE}")
    record = read_json(manifest_path)
    missing = sorted(set(array_names(record)) - set(marker["arrays"]))
    if missing:
        raise CorruptEntryError(key, f"arrays {missing} are not in {layout.COMPLETE}")
    entry = StoreEntry(entry_dir, record, marker)
    if verify or (verify is None and entry.nbytes_on_disk <= VERIFY_ON_OPEN_BYTES):
        entry.verify()
    else:
        entry.check_structure()
    return entry
