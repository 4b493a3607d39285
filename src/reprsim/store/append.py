"""Appending rows to a chunked zarr array with whole-chunk writes only.

Writing a range that starts or ends inside a chunk makes zarr read, decode, merge and re-encode that chunk.
The writer appends in order, so it can avoid the read: it keeps the rows of the last, partly filled chunk in
memory and always writes whole chunks, padding the unfilled end of the last one with zeros (rows not yet
written; the next append overwrites them). Each write replaces whole chunk files atomically, so a crash
leaves every chunk either old or new, and the final bytes depend only on the final data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

from reprsim.store import layout


class ArrayAppender:
    """Appends consecutive row ranges [start, stop) to one zarr array (rows = first axis)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._array: Any = zarr.open_array(str(path), mode="r+")
        self.chunk = int(self._array.chunks[0])
        self.total = int(self._array.shape[0])
        self._tail_start = 0  # first row of the partly filled chunk held in memory
        self._tail: np.ndarray | None = None  # its rows [tail_start, next expected start), None if unknown

    def _prefix(self, chunk_start: int, start: int) -> np.ndarray:
        """Rows [chunk_start, start) already written: from memory, or read once (after a resume)."""
        tail = self._tail
        if tail is not None and self._tail_start == chunk_start and chunk_start + len(tail) == start:
            return tail
        return np.asarray(self._array[chunk_start:start])

    def append(self, start: int, values: np.ndarray) -> list[Path]:
        """Write rows [start, start + len(values)); return the chunk files written (for fsync)."""
        stop = start + len(values)
        chunk_start = start // self.chunk * self.chunk
        chunk_end = min(-(-stop // self.chunk) * self.chunk, self.total)
        block = np.zeros((chunk_end - chunk_start, *values.shape[1:]), dtype=self._array.dtype)
        block[: start - chunk_start] = self._prefix(chunk_start, start)
        block[start - chunk_start : stop - chunk_start] = values
        self._array[chunk_start:chunk_end] = block
        self._tail_start = stop // self.chunk * self.chunk
        self._tail = block[self._tail_start - chunk_start : stop - chunk_start].copy()
        return layout.chunk_files(self.path, chunk_start, chunk_end, self.chunk, values.ndim)
