"""Small file-system helpers for crash-safe writes: atomic replace, fsync, checksums, leftover clean-up."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

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


def fsync_paths(files: list[Path], root: Path) -> None:
    """Flush files, then every directory between them and `root` (new files and folders are directory entries)."""
    folders: set[Path] = {root}
    for path in files:
        fsync_path(path)
        folder = path.parent
        while folder != root and root in folder.parents:
            folders.add(folder)
            folder = folder.parent
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_path(folder)


def write_chunk_file(path: Path, data: np.ndarray, trailer: bytes, flush: bool) -> None:
    """Create or replace `path` with data's bytes (C-contiguous) then `trailer`; flush: fsync it before returning."""
    with open(path, "wb") as handle:
        handle.write(data.reshape(-1).view(np.uint8).data)
        handle.write(trailer)
        if flush:
            handle.flush()
            os.fsync(handle.fileno())


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
    """Compute the sha256 hex digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def crc32c_hex(value: int) -> str:
    """Format a crc32c value as the 8 hex digits stored in completion markers."""
    return f"{value:08x}"


def chunk_crc32c(path: Path) -> str | None:
    """Read a chunk file and return data_crc32c of its bytes."""
    return data_crc32c(path.read_bytes())


def data_crc32c(data: bytes) -> str | None:
    """Return the crc32c (hex) of a chunk's data: all but its 4-byte crc32c trailer; None when they disagree.

    Not the crc32c of the whole file: a message followed by its own CRC always has the same CRC (the
    "residue", 0x48674bc7 for crc32c), which would make every chunk look alike.
    """
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
