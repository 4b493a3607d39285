"""Appending rows to a chunked zarr array with whole-chunk writes only.

Writing a range that starts or ends inside a chunk makes zarr read, decode, merge and re-encode that chunk.
The writer appends in order, so it can avoid the read: it keeps the rows of the last, partly filled chunk in
memory and always writes whole chunks, padding the unfilled end of the last one with zeros (rows not yet
written; the next append overwrites them). The final bytes of every chunk depend only on the final data.

Crash safety comes from what a chunk holds when it is written. A chunk whose rows all belong to this append
holds nothing any earlier commit declared done, so it is written straight to its file (a crash leaves a
damaged chunk past the durable prefix, which a resumed writer writes again). A chunk that also holds rows of
earlier appends (the partly filled last chunk, written again) replaces its file atomically: a temporary
file, flushed to disk first when durable, then renamed over it, so a crash or power cut leaves the old chunk
or the new one, and the rows already declared done survive either way. Flushing the other chunks before a
commit is the caller's job (EntryWriter flushes the whole file system once per commit).

Every array of an entry is stored as plain little-endian bytes plus a crc32c per chunk (zarr's `bytes` and
`crc32c` codecs), and the appender writes those chunk files itself, straight from the rows' memory, keeping
each finished file's crc32c for the completion marker. zarr's own write path costs several times the bytes
written (buffer copies, per-chunk tasks holding the GIL), and activations and attention maps do not compress
(zstd saved 7-8% on MiniLM's), so this is the path that decides the store's share of extraction time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
from zarr.codecs import BytesCodec, Crc32cCodec

from reprsim.store import layout
from reprsim.store._files import TMP_SUFFIX, DirectWriter, crc32c_hex, data_crc32c, read_json

# Chunk files named "c.<i>.0" side by side in the array's folder, instead of zarr's default "c/<i>/0" (a
# folder per row chunk): creating a folder costs as much as creating the file on some file systems.
CHUNK_KEY_SEPARATOR = "."


def raw_codecs() -> dict[str, Any]:
    """zarr.create_array arguments for the arrays ArrayAppender writes: little-endian bytes + crc32c, flat
    chunk keys."""
    return {
        "serializer": BytesCodec(endian="little"),
        "compressors": Crc32cCodec(),
        "chunk_key_encoding": {"name": "default", "separator": CHUNK_KEY_SEPARATOR},
    }


def _array_metadata(path: Path) -> dict[str, Any]:
    """The zarr v3 metadata of an array ArrayAppender can write, checked (read directly: opening the array
    through zarr costs milliseconds, per array and writer)."""
    try:
        meta = read_json(path / layout.ZARR_METADATA)
        codecs = [(c["name"], c.get("configuration", {}).get("endian")) for c in meta["codecs"]]
        encoding = meta["chunk_key_encoding"]
        shape = [int(n) for n in meta["shape"]]
        chunks = [int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable zarr v3 array ({exc})") from exc
    if codecs != [("bytes", "little"), ("crc32c", None)]:
        raise ValueError(f"{path}: ArrayAppender needs codecs [bytes(little), crc32c], found {meta['codecs']}")
    if encoding.get("name") != "default" or chunks[1:] != shape[1:]:
        raise ValueError(f"{path}: ArrayAppender needs default chunk keys and chunks of whole rows")
    return dict(meta)


class ArrayAppender:
    """Appends consecutive row ranges [start, stop) (rows = first axis) to a zarr v3 array created with
    raw_codecs() (or zarr's default "/" chunk keys, as entries written before 22 November 2026 have), writing
    its chunk files directly. durable: a chunk that replaces one holding earlier rows is flushed to disk
    before the rename; the caller flushes everything else before declaring the rows done.

    A chunk file is the chunk's rows in C order (edge chunks padded to the full chunk shape, as zarr stores
    them) followed by the crc32c of those bytes, 4 bytes little-endian: what zarr writes and checks on read.
    """

    def __init__(self, path: Path, durable: bool = True, files: DirectWriter | None = None) -> None:
        self.path = path
        self.durable = durable
        self._files = files or DirectWriter()  # shared by the appenders of one writer (one aligned buffer)
        meta = _array_metadata(path)
        self.total, self.chunk, self._separator = layout.row_chunking(meta)
        self.row_shape = tuple(int(n) for n in meta["shape"][1:])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self._chunk_bytes = self.chunk * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._tail_start = 0  # first row of the partly filled chunk held in memory
        self._tail: np.ndarray | None = None  # its rows [tail_start, next expected start), None if unknown
        self._digests: dict[Path, tuple[int, str]] = {}
        self._folders: set[Path] = set()  # chunk folders known to exist ("/" keys only)

    def chunk_path(self, index: int) -> Path:
        """The file of chunk `index` (rows index*chunk onwards)."""
        start = index * self.chunk
        return layout.chunk_files(self.path, start, start + 1, self.chunk, 1 + len(self.row_shape), self._separator)[0]

    def _prefix(self, chunk_start: int, start: int) -> np.ndarray:
        """Rows [chunk_start, start) already written: from memory, or read once from their chunk (a resume)."""
        tail = self._tail
        if tail is not None and self._tail_start == chunk_start and chunk_start + len(tail) == start:
            return tail
        if start == chunk_start:
            return np.zeros((0, *self.row_shape), dtype=self.dtype)
        path = self.chunk_path(chunk_start // self.chunk)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the chunk holding rows already written ({exc})") from exc
        if len(data) != self._chunk_bytes + 4 or data_crc32c(data) is None:
            raise ValueError(f"{path}: the chunk holding rows already written is damaged (size or crc32c)")
        rows = np.frombuffer(data, dtype=self.dtype, count=self._chunk_bytes // self.dtype.itemsize)
        return rows.reshape(self.chunk, *self.row_shape)[: start - chunk_start]

    def append(self, start: int, values: np.ndarray) -> list[Path]:
        """Write rows [start, start + len(values)); return the chunk files written."""
        stop = start + len(values)
        values = np.ascontiguousarray(values, dtype=self.dtype)
        written = []
        for chunk_start in range(start // self.chunk * self.chunk, stop, self.chunk):
            chunk_stop = chunk_start + self.chunk
            first, last = max(start, chunk_start), min(stop, chunk_stop)
            if first == chunk_start and last == chunk_stop:
                block = values[first - start : last - start]  # a whole chunk: written from the caller's rows
            else:  # assembled in the writer's aligned buffer, which a direct write can send as it is
                block = self._files.aligned(self._chunk_bytes).view(self.dtype).reshape(self.chunk, *self.row_shape)
                block[last - chunk_start :] = 0  # rows not written yet
                block[: first - chunk_start] = self._prefix(chunk_start, first)
                block[first - chunk_start : last - chunk_start] = values[first - start : last - start]
                if last < min(chunk_stop, self.total):
                    self._tail_start, self._tail = chunk_start, block[: last - chunk_start].copy()
            final = last == min(chunk_stop, self.total)
            written.append(self._write_chunk(chunk_start // self.chunk, block, final, first > chunk_start))
        return written

    def _write_chunk(self, index: int, block: np.ndarray, final: bool, replaces_rows: bool) -> Path:
        """Write one chunk file (atomically when it replaces rows already written, see the module's
        docstring); remember its crc32c when no later append will rewrite it."""
        path = self.chunk_path(index)
        if self._separator == "/" and path.parent not in self._folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(path.parent)
        crc = google_crc32c.value(block)
        trailer = crc.to_bytes(4, "little")
        target = path.with_name(path.name + TMP_SUFFIX) if replaces_rows else path
        # on disk before the rename when durable: the old chunk or the new one, never neither
        self._files.write(target, block, trailer, flush=replaces_rows and self.durable)
        if replaces_rows:
            os.replace(target, path)
        if final:
            self._digests[path] = (block.nbytes + len(trailer), crc32c_hex(crc))
        else:
            self._digests.pop(path, None)
        return path

    def finished_digests(self) -> dict[Path, tuple[int, str]]:
        """Size and data crc32c (see _files.chunk_crc32c) of every chunk file this appender wrote for the last
        time."""
        return dict(self._digests)
