"""Small file-system helpers for crash-safe writes: atomic replace, fsync, checksums, leftover clean-up."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

from reprsim._memory import anonymous_array

# Suffixes of temporary files: ours (TMP_SUFFIX) and zarr's LocalStore atomic writes (".partial").
TMP_SUFFIX = ".tmp"
PARTIAL_SUFFIXES = (TMP_SUFFIX, ".partial")
HASH_BLOCK = 1 << 20


def canonical_json(value: Any) -> str:
    """Deterministic JSON text (sorted keys, fixed indentation) so equal content gives equal bytes."""
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a directory's entries (new or renamed files), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2) where it reports write-back errors (Linux 5.8 and later), else None."""
    if not sys.platform.startswith("linux"):
        return None
    version = tuple(int(n) for n in re.findall(r"\d+", platform.release())[:2])
    if version < (5, 8):  # earlier kernels return 0 even when writing back failed
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNCFS = _load_syncfs()


def sync_file_system(path: Path) -> bool:
    """Flush every written file and directory entry of the file system holding `path` (syncfs): one call per
    commit instead of an fsync per chunk file, which is what made durable writes slow (README, "Performance").
    Returns False where syncfs is not available (not Linux, or a kernel before 5.8); the caller then flushes
    file by file."""
    if _SYNCFS is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"flushing the file system of {path} to disk failed: {os.strerror(error)}")
    finally:
        os.close(fd)
    return True


def drop_from_page_cache(files: list[Path]) -> None:
    """Ask the kernel to drop the cached pages of files already flushed to disk (where posix_fadvise
    exists; a no-op elsewhere).

    An extraction writes gigabytes it will not read back soon; left in the page cache they push out what
    the user does read (model weights, other entries), and on a VM whose memory is lent lazily, growing
    the cache costs far more than reusing it: writing the same 252 MB five times into kept files took
    0.35 s, then 0.82-1.11 s; dropping each window's chunks after its flush, 0.37-0.43 s every time."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            return  # advice only: a file system that refuses it (some FUSE mounts) keeps its cache
        finally:
            os.close(fd)


# Direct I/O needs the memory address, file offset and length of a write to be multiples of the device's block
# size; 4096 covers the usual 512-byte and 4 KiB devices.
DIRECT_ALIGNMENT = 4096
# What a file system without direct I/O answers: EINVAL on Linux; EOPNOTSUPP/ENOTSUP from some FUSE mounts.
_NO_DIRECT_IO = {errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


class DirectWriter:
    """Writes files of bulk data followed by a short trailer (a chunk and its crc32c), bypassing the page cache
    (O_DIRECT) where the platform and file system allow it, else through it as usual.

    An extraction writes gigabytes it will not read back soon. Through the page cache every byte is copied
    once more and its pages are allocated, dirtied, written back and dropped again; measured on a 2-core VM
    writing 842 MB as 4 MB files, that cost 0.75-1.3 s of system CPU, direct writes 0.10-0.35 s (README,
    "Performance"), and the system CPU is taken from the model running beside the writer. Durability is
    unchanged: a direct write reaches the device, and the caller's fsync/syncfs still flushes the file's
    metadata and the device's cache before anything is declared done.

    The data part goes directly when its length is a multiple of DIRECT_ALIGNMENT (from its own memory when
    aligned, else through one reusable aligned buffer); the trailer, and any data that cannot go directly,
    is written normally. A file system that refuses direct I/O (EINVAL: tmpfs before Linux 6.6, some network
    mounts; EOPNOTSUPP: some FUSE mounts) turns it off for the rest of this writer's life.
    """

    def __init__(self, direct: bool = True) -> None:
        self.direct = direct and hasattr(os, "O_DIRECT")
        self._scratch: np.ndarray | None = None  # aligned, reused: grows to the largest chunk written

    def aligned(self, nbytes: int) -> np.ndarray:
        """A uint8 buffer of nbytes whose address is a multiple of DIRECT_ALIGNMENT (reused: its content
        lasts until the next call)."""
        if self._scratch is None or len(self._scratch) < nbytes:
            self._scratch = anonymous_array(nbytes, np.uint8)  # page aligned
        return self._scratch[:nbytes]

    def write(self, path: Path, data: np.ndarray, trailer: bytes, flush: bool = False) -> None:
        """Create or replace `path` with data's bytes (C-contiguous) followed by `trailer`; flush: fsync it
        before returning."""
        raw = data.reshape(-1).view(np.uint8)
        if self.direct and raw.nbytes and raw.nbytes % DIRECT_ALIGNMENT == 0:
            try:
                self._write_direct(path, raw)
            except OSError as exc:
                if exc.errno not in _NO_DIRECT_IO:
                    raise
                self.direct = False  # refused by this file system: write normally from now on
            else:
                _write_normally(path, "ab", [trailer], flush)
                return
        _write_normally(path, "wb", [raw.data, trailer], flush)

    def _write_direct(self, path: Path, raw: np.ndarray) -> None:
        if raw.ctypes.data % DIRECT_ALIGNMENT:
            staged = self.aligned(raw.nbytes)
            staged[:] = raw
            raw = staged
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
        try:
            written = os.write(fd, raw.data)
        finally:
            os.close(fd)
        if written < raw.nbytes:  # a short write (a nearly full disk): the rest normally, or its error
            with open(path, "r+b") as handle:
                handle.seek(written)
                handle.write(raw.data[written:])


def _write_normally(path: Path, mode: str, parts: list[Any], flush: bool) -> None:
    """Write `parts` one after another through the page cache (mode "wb" or "ab"); flush: fsync the file."""
    with open(path, mode) as handle:
        for part in parts:
            handle.write(part)
        handle.flush()
        if flush:
            os.fsync(handle.fileno())


def fsync_paths(files: list[Path], root: Path) -> None:
    """Flush files, and every directory between them and `root` (new files and folders are directory
    entries)."""
    folders: set[Path] = set()
    for path in files:
        fsync_path(path)
        folder = path.parent
        while folder != root and root in folder.parents:
            folders.add(folder)
            folder = folder.parent
    folders.add(root)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_path(folder)


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write `text` so that `path` holds either its old content or the whole new one, even after a crash.

    Write a temporary file, fsync it, os.replace it over `path`, then fsync the directory. durable=False
    skips the fsyncs: still atomic for a killed process, not for a power cut.
    """
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_path(path.parent)


def read_json(path: Path) -> Any:
    """Parse a JSON file (exceptions propagate: callers turn them into messages naming the entry)."""
    return json.loads(path.read_text(encoding="utf-8"))


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def crc32c_hex(value: int) -> str:
    """A crc32c value as the 8 hex digits stored in completion markers."""
    return f"{value:08x}"


def chunk_crc32c(path: Path) -> str | None:
    """crc32c (hex) of a chunk file's data: every byte but the 4-byte crc32c trailer the chunk carries; None
    when the trailer does not match the data (the chunk is damaged).

    Not the crc32c of the whole file: a message followed by its own CRC always has the same CRC (the
    "residue", 0x48674bc7 for crc32c), which would make every chunk look alike.
    """
    return data_crc32c(path.read_bytes())


def data_crc32c(data: bytes) -> str | None:
    """chunk_crc32c of a chunk file's bytes already read."""
    crc = google_crc32c.value(data[:-4])
    return crc32c_hex(crc) if len(data) >= 4 and data[-4:] == crc.to_bytes(4, "little") else None


def remove_leftovers(root: Path) -> list[Path]:
    """Delete temporary files left by a killed writer (ours and zarr's); return what was removed."""
    removed = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name.endswith(PARTIAL_SUFFIXES):
            path.unlink()
            removed.append(path)
    return removed


def remove_tree(path: Path) -> None:
    """Delete a directory tree crash-safely: rename it aside first (atomic), then delete the renamed copy.

    A kill during deletion leaves a hidden ".<name>.deleting" folder, never a half-deleted entry.
    """
    doomed = path.with_name(f".{path.name}.deleting")
    _delete(doomed)  # left by an earlier interrupted removal
    os.replace(path, doomed)
    fsync_path(path.parent)
    _delete(doomed)


def _delete(path: Path) -> None:
    """Delete a folder tree, or a file (a stray file where an entry belongs); nothing if absent."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
