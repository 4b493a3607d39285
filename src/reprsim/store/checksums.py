"""Checksums of an entry's files, as the completion marker records them, and the check for missing chunks."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reprsim.store import layout
from reprsim.store._files import chunk_crc32c, file_sha256, read_json


def array_files(entry_dir: Path, name: str) -> list[Path]:
    """List every file of one zarr array (metadata and chunks).

    Parameters
    ----------
    entry_dir : pathlib.Path
        The entry's folder.
    name : str
        The array's path inside the entry (``hidden/<layer>`` or ``attention/<layer>``).

    Returns
    -------
    list of pathlib.Path
        The files, sorted.
    """
    return sorted(path for path in (entry_dir / name).rglob("*") if path.is_file())


def missing_chunks(entry_dir: Path, name: str) -> list[Path]:
    """List the chunk files an array's shape calls for that do not exist.

    zarr reads a missing chunk as its fill value (zeros), and every chunk of an entry is written
    (write_empty_chunks), so a missing one is damage.

    Parameters
    ----------
    entry_dir : pathlib.Path
        The entry's folder.
    name : str
        The array's path inside the entry.

    Returns
    -------
    list of pathlib.Path
        The missing files, in row order (empty when none is missing).
    """
    array_dir = entry_dir / name
    meta = read_json(array_dir / layout.ZARR_METADATA)
    total, chunk = layout.row_chunking(meta)
    if total == 0:
        return []
    expected = layout.chunk_files(array_dir, 0, total, chunk, len(meta["shape"]))
    return [path for path in expected if not path.is_file()]


def file_checksum(meta: dict[str, Any]) -> str:
    """Return the checksum a completion marker records for one file.

    Parameters
    ----------
    meta : dict
        The file's record in the marker: ``size`` and ``data_crc32c`` (chunk files) or ``sha256`` (zarr.json).

    Returns
    -------
    str
        The recorded checksum, hex.
    """
    return str(meta["data_crc32c"] if "data_crc32c" in meta else meta["sha256"])


def file_checksum_matches(path: Path, meta: dict[str, Any]) -> bool:
    """Recompute a file's checksum the way its marker records it, and compare.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    meta : dict
        Its record in the completion marker (see file_checksum).

    Returns
    -------
    bool
        True when the file's content matches the record.
    """
    if "data_crc32c" in meta:
        crc = chunk_crc32c(path)
        return crc is not None and crc == meta["data_crc32c"]
    return file_sha256(path) == meta["sha256"]


def array_digest(files: dict[str, dict[str, Any]]) -> str:
    """Compute one sha256 for an array, over its files' relative paths, sizes and checksums in sorted order.

    Parameters
    ----------
    files : dict
        ``{relative path: file record}`` as in the completion marker (see file_checksum).

    Returns
    -------
    str
        The sha256, hex.
    """
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel]['size']}\0{file_checksum(files[rel])}\n".encode())
    return digest.hexdigest()


def checksum_arrays(
    entry_dir: Path, names: list[str], known: dict[Path, tuple[int, str]] | None = None
) -> dict[str, dict[str, Any]]:
    """Checksum every file of some arrays, and each array as a whole, for the completion marker.

    Each chunk file gets its size and data crc32c (the value its trailer holds, so a chunk swapped for
    another or for a stale copy is caught, not only a damaged one), each array's zarr.json its sha256, and
    each array one sha256 over its files (array_digest).

    Parameters
    ----------
    entry_dir : pathlib.Path
        The entry's folder.
    names : list of str
        The arrays' relative paths.
    known : dict, optional
        ``{chunk file: (size, data crc32c)}`` taken by the writer as it wrote them; a file whose size on
        disk differs is read like any other.

    Returns
    -------
    dict
        ``{array name: {"sha256": array digest, "files": {relative path: file record}}}``.

    Raises
    ------
    ValueError
        When a chunk file is missing, or its crc32c trailer does not match its data.
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
