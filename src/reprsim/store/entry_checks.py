"""What a readable store entry must be: its errors, the format and completeness checks, bounds and arrays.

Shared by `reprsim.store.entry` (reading a finished entry) and `reprsim.store.writer` (writing one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reprsim.store import layout
from reprsim.store._files import file_sha256, read_json


class CorruptEntryError(ValueError):
    """A store entry is damaged or half-written; the message names the entry and the problem.

    Parameters
    ----------
    key : str
        The entry's key.
    problem : str
        What is wrong with it (kept as the attribute ``problem``).
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(
            f"store entry {key!r} is corrupt or incomplete: {problem} "
            f"(remove it with store.remove({key!r}) or `reprsim store remove STORE {key}`, and extract again)"
        )
        self.key = key
        self.problem = problem


class EntryFormatError(CorruptEntryError):
    """A store entry was written in another store format version: it cannot be read, only extracted again.

    Parameters
    ----------
    key : str
        The entry's key.
    found : object
        The format version its manifest.json records (None when it records none).
    """

    def __init__(self, key: str, found: object) -> None:
        ValueError.__init__(
            self,
            f"store entry {key!r} was written in store format version {found}, and this reprsim reads only "
            f"version {layout.FORMAT_VERSION}: remove it with store.remove({key!r}) or "
            f"`reprsim store remove STORE {key}`, and extract it again",
        )
        self.key = key
        self.problem = f"store format version {found}, expected {layout.FORMAT_VERSION}"


def check_format_version(key: str, record: Any) -> None:
    """Refuse an entry whose manifest record is of another store format version.

    Parameters
    ----------
    key : str
        The entry's key, for the message.
    record : object
        The parsed manifest.json of the entry.

    Raises
    ------
    EntryFormatError
        When the record's ``format_version`` is not layout.FORMAT_VERSION.
    """
    found = record.get("format_version") if isinstance(record, dict) else None
    if found != layout.FORMAT_VERSION:
        raise EntryFormatError(key, found)


def as_index(value: Any, what: str) -> int:
    """Convert a row or sentence bound to a Python int, before anything is read or written.

    Parameters
    ----------
    value : object
        The bound: an int or a numpy integer.
    what : str
        Its name, for the message.

    Returns
    -------
    int
        The bound.

    Raises
    ------
    ValueError
        When `value` is a bool, a float or anything else that is not an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def array_names(record: dict[str, Any]) -> list[str]:
    """List the relative paths of every array an entry's manifest record declares.

    Parameters
    ----------
    record : dict
        The entry's manifest.json record.

    Returns
    -------
    list of str
        ``hidden/<layer>`` for every layer, then ``attention/<layer>`` for every layer with heads (when the
        entry has attention).
    """
    names = [layout.hidden_name(layer) for layer in record["layer_ids"]]
    if record["heads"] is not None:
        names += [
            layout.attention_name(layer)
            for layer, heads in zip(record["layer_ids"], record["heads"], strict=True)
            if heads > 0
        ]
    return names


def read_finished_records(entry_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a finished entry's manifest and completion marker, checking that they belong together.

    Parameters
    ----------
    entry_dir : pathlib.Path
        The entry's folder.

    Returns
    -------
    record : dict
        The manifest.json record.
    marker : dict
        The completion marker, whose checksum of the manifest matches and which lists every declared array.

    Raises
    ------
    EntryFormatError
        When the entry was written in another store format version.
    CorruptEntryError
        When it is half-written, its marker is unreadable or does not match the manifest.
    """
    key = entry_dir.name
    manifest_path, marker_path = entry_dir / layout.MANIFEST, entry_dir / layout.COMPLETE
    _check_readable_format(key, manifest_path)
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
    return record, marker


def _check_readable_format(key: str, manifest_path: Path) -> None:
    """Refuse an entry of another format version, when its manifest can be read (else later checks report)."""
    try:
        record = read_json(manifest_path)
    except (OSError, ValueError):
        return
    check_format_version(key, record)
