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
commit is the caller's job (EntryWriter fsyncs every file it wrote, then their folders).

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
from reprsim.store._files import TMP_SUFFIX, crc32c_hex, data_crc32c, read_json, write_chunk_file


def raw_codecs() -> dict[str, Any]:
    """Return the zarr.create_array arguments of the arrays ArrayAppender writes.

    Returns
    -------
    dict
        ``serializer``, ``compressors`` and ``chunk_key_encoding``: little-endian bytes, a crc32c per chunk,
        and chunk files named ``c.<i>.0`` side by side.
    """
    return {
        "serializer": BytesCodec(endian="little"),
        "compressors": Crc32cCodec(),
        "chunk_key_encoding": {"name": "default", "separator": layout.CHUNK_KEY_SEPARATOR},
    }


def _array_metadata(path: Path) -> dict[str, Any]:
    """Read and check the zarr.json of an array ArrayAppender can write (not through zarr: milliseconds)."""
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
    separator = encoding.get("configuration", {}).get("separator", "/")
    if encoding.get("name") != "default" or separator != layout.CHUNK_KEY_SEPARATOR or chunks[1:] != shape[1:]:
        raise ValueError(
            f"{path}: ArrayAppender needs default chunk keys with separator {layout.CHUNK_KEY_SEPARATOR!r} "
            "and chunks of whole rows"
        )
    return dict(meta)


class ArrayAppender:
    """Append consecutive row ranges to a zarr v3 array created with raw_codecs(), writing its chunk files.

    Rows are the first axis; ranges [start, stop) must follow each other. A chunk file is the chunk's rows
    in C order (edge chunks padded to the full chunk shape, as zarr stores them) followed by the crc32c of
    those bytes, 4 bytes little-endian: what zarr writes and checks on read.

    Parameters
    ----------
    path : pathlib.Path
        The array's folder (holding its zarr.json).
    durable : bool, default True
        Flush a chunk that replaces one holding earlier rows to disk before renaming it into place. The
        caller flushes every other chunk before declaring its rows done.

    Raises
    ------
    ValueError
        When the array is unreadable or not stored the way raw_codecs() describes.
    """

    def __init__(self, path: Path, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        meta = _array_metadata(path)
        self.total, self.chunk = layout.row_chunking(meta)
        self.row_shape = tuple(int(n) for n in meta["shape"][1:])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self._chunk_bytes = self.chunk * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._tail_start = 0  # first row of the partly filled chunk held in memory
        self._tail: np.ndarray | None = None  # its rows [tail_start, next expected start), None if unknown
        self._digests: dict[Path, tuple[int, str]] = {}
        self._scratch: np.ndarray | None = None  # where partial chunks are assembled (the tail lives in it)

    def chunk_path(self, index: int) -> Path:
        """Return the file of one chunk.

        Parameters
        ----------
        index : int
            The chunk's index (it holds rows index * chunk onwards).

        Returns
        -------
        pathlib.Path
            The chunk file (which may not exist yet).
        """
        start = index * self.chunk
        return layout.chunk_files(self.path, start, start + 1, self.chunk, 1 + len(self.row_shape))[0]

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
        """Write rows [start, start + len(values)).

        Parameters
        ----------
        start : int
            The first row; it continues the previous append (or the rows already on disk, on a resume).
        values : numpy.ndarray
            The rows, of the array's row shape and stored type.

        Returns
        -------
        list of pathlib.Path
            The chunk files written.

        Raises
        ------
        ValueError
            When the chunk holding rows already written must be read back and is missing or damaged.
        """
        stop = start + len(values)
        values = np.ascontiguousarray(values, dtype=self.dtype)
        written = []
        for chunk_start in range(start // self.chunk * self.chunk, stop, self.chunk):
            chunk_stop = chunk_start + self.chunk
            first, last = max(start, chunk_start), min(stop, chunk_stop)
            if first == chunk_start and last == chunk_stop:
                block = values[first - start : last - start]  # a whole chunk: written from the caller's rows
            else:  # a partial chunk: earlier rows, these rows, zeros for the rows not written yet
                block = self._chunk_scratch()
                block[last - chunk_start :] = 0
                block[: first - chunk_start] = self._prefix(chunk_start, first)
                block[first - chunk_start : last - chunk_start] = values[first - start : last - start]
                if last < min(chunk_stop, self.total):
                    self._tail_start, self._tail = chunk_start, block[: last - chunk_start]
            final = last == min(chunk_stop, self.total)
            written.append(self._write_chunk(chunk_start // self.chunk, block, final, first > chunk_start))
        return written

    def _chunk_scratch(self) -> np.ndarray:
        """One chunk's worth of rows, reused for every partial chunk (written before it is reused)."""
        if self._scratch is None:
            self._scratch = np.empty((self.chunk, *self.row_shape), dtype=self.dtype)
        return self._scratch

    def _write_chunk(self, index: int, block: np.ndarray, final: bool, replaces_rows: bool) -> Path:
        """Write one chunk file (atomically when it replaces rows already written); keep its crc32c if final."""
        path = self.chunk_path(index)
        crc = google_crc32c.value(block)
        trailer = crc.to_bytes(4, "little")
        target = path.with_name(path.name + TMP_SUFFIX) if replaces_rows else path
        # on disk before the rename when durable: the old chunk or the new one, never neither
        write_chunk_file(target, block, trailer, flush=replaces_rows and self.durable)
        if replaces_rows:
            os.replace(target, path)
        if final:
            self._digests[path] = (block.nbytes + len(trailer), crc32c_hex(crc))
        else:
            self._digests.pop(path, None)
        return path

    def finished_digests(self) -> dict[Path, tuple[int, str]]:
        """Return the size and data crc32c of every chunk file this appender wrote for the last time.

        Returns
        -------
        dict
            ``{chunk file: (size in bytes, data crc32c as 8 hex digits)}``; the crc32c is that of the data
            without its trailer, as completion markers record it.
        """
        return dict(self._digests)
