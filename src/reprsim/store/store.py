"""ActivationStore: a directory of entries, one per (model, options, corpus), keyed by make_key."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reprsim.store import layout
from reprsim.store._files import canonical_json, remove_tree
from reprsim.store.entry import StoreEntry, open_entry
from reprsim.store.entry_lock import entry_lock
from reprsim.store.writer import EntryWriter, build_record

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
DEFAULT_ATTENTION_CHUNK = 1 << 20  # values: 4 MiB chunks of float32 (see layout.CHUNK_BYTES)
KEY_HASH_CHARS = 20


def make_key(model_name: str, fingerprint: dict[str, Any]) -> str:
    """Build a deterministic, filesystem-safe entry key: "<slug of model_name>-<sha256 of fingerprint>".

    The fingerprint is serialised as canonical JSON (sorted keys), so dict order does not matter; any change
    in it gives a new key. The label only makes keys readable.

    Parameters
    ----------
    model_name : str
        A label (its letters, digits, ".", "_" and "-" start the key).
    fingerprint : dict
        JSON-serialisable identity of what the entry holds: model id, revision or weights hash, corpus hash,
        alignment rule, dtype, layers, attention flag, ...

    Returns
    -------
    str
        The key.

    Raises
    ------
    ValueError
        When the fingerprint is not a dict or not JSON-serialisable.
    """
    if not isinstance(fingerprint, dict):
        raise ValueError(f"fingerprint must be a dict, got {type(fingerprint).__name__}")
    try:
        text = canonical_json(fingerprint)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fingerprint for {model_name!r} is not JSON-serialisable: {exc}") from exc
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-._")[:60] or "model"
    return f"{slug}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:KEY_HASH_CHARS]}"


def check_key(key: str) -> str:
    """Refuse keys that are not plain folder names (no "/", "..", leading dot or odd characters).

    Parameters
    ----------
    key : str
        A store key.

    Returns
    -------
    str
        The key, unchanged.

    Raises
    ------
    ValueError
        When it is not a valid key.
    """
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ValueError(f"invalid store key {key!r}: use make_key, or letters, digits, '.', '_' and '-'")
    return key


class ActivationStore:
    """A folder of activation entries (zarr v3 arrays + JSON manifests); see the README's "Activation store".

    Parameters
    ----------
    path : str or pathlib.Path
        The store's folder.
    create : bool, default True
        Create the folder when it does not exist (else FileNotFoundError).
    chunk_rows : int, optional
        Rows per chunk of every hidden-state array; by default chosen per layer (2-4 MiB chunks).
    attention_chunk : int, default 1048576
        Values per chunk of the attention arrays.
    durable : bool, default True
        Flush every write to disk before committing it. False still resumes correctly after a killed
        process, but not after a power cut (for scratch stores and tests on slow disks).

    Raises
    ------
    ValueError
        When the path is empty or not a folder, or a chunk size is not positive.
    FileNotFoundError
        When the folder does not exist and create is False.
    """

    def __init__(
        self,
        path: str | Path,
        create: bool = True,
        *,
        chunk_rows: int | None = None,
        attention_chunk: int = DEFAULT_ATTENTION_CHUNK,
        durable: bool = True,
    ) -> None:
        if not str(path).strip():
            raise ValueError("activation store path is empty; give a folder name")
        self.path = Path(path)
        if (chunk_rows is not None and chunk_rows < 1) or attention_chunk < 1:
            raise ValueError(
                f"chunk_rows and attention_chunk must be positive, got {chunk_rows}, {attention_chunk}"
            )
        self.chunk_rows = chunk_rows
        self.attention_chunk = attention_chunk
        self.durable = durable
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"activation store path is not a directory: {self.path}")
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(f"activation store not found: {self.path}")
            self.path.mkdir(parents=True, exist_ok=True)  # another process may create it at the same moment

    def _entry_dir(self, key: str) -> Path:
        """Return the folder of an entry (its key checked first)."""
        return self.path / check_key(key)

    def keys(self) -> list[str]:
        """List the keys of all entries, complete or not.

        Returns
        -------
        list of str
            The keys, sorted.
        """
        return sorted(
            child.name
            for child in self.path.iterdir()
            if child.is_dir() and not child.name.startswith(".") and KEY_PATTERN.match(child.name)
        )

    def writing(self, key: str, on_wait: Callable[[], None] | None = None) -> AbstractContextManager[None]:
        """The entry's write lock: hold it from checking the entry to finishing it (`reprsim.store.entry_lock`).

        Parameters
        ----------
        key : str
            The entry's key.
        on_wait : callable, optional
            Called once if another process holds the lock, before waiting for it.

        Returns
        -------
        context manager
            Holds the lock inside its block.
        """
        return entry_lock(self.path, check_key(key), on_wait)

    def has_complete(self, key: str) -> bool:
        """Tell whether an entry has its completion marker (cheap: damage is reported by get).

        Parameters
        ----------
        key : str
            The entry's key.

        Returns
        -------
        bool
            True when the entry is complete.

        Raises
        ------
        ValueError
            When the key is invalid.
        """
        return (self._entry_dir(key) / layout.COMPLETE).is_file()

    def incomplete(self) -> list[str]:
        """List the keys of half-written entries (resumable with writer, or removable with remove).

        Returns
        -------
        list of str
            The keys, sorted.
        """
        return [key for key in self.keys() if not self.has_complete(key)]

    def get(self, key: str, verify: bool | None = None) -> StoreEntry:
        """Open a complete entry after checking it.

        Parameters
        ----------
        key : str
            The entry's key.
        verify : bool or None, default None
            Check every file's checksum: None only for entries up to 64 MiB; True always; False never.
            Structure and file sizes are always checked.

        Returns
        -------
        StoreEntry
            The entry.

        Raises
        ------
        KeyError
            When there is no such entry (the message lists the available ones).
        EntryFormatError
            When the entry was written in another store format version (extract it again).
        CorruptEntryError
            When it is damaged or half-written.
        """
        entry_dir = self._entry_dir(key)
        if not entry_dir.is_dir():
            raise KeyError(f"no store entry {key!r} in {self.path}; available: {self.keys() or 'none'}")
        return open_entry(entry_dir, verify=verify)

    def entries(self, verify: bool | None = None) -> list[StoreEntry]:
        """Open all complete entries, each checked as by get.

        Parameters
        ----------
        verify : bool or None, default None
            As for get.

        Returns
        -------
        list of StoreEntry
            The entries, in key order.

        Raises
        ------
        CorruptEntryError
            When one is damaged (reported, not skipped), or of another format version (EntryFormatError).
        """
        return [self.get(key, verify=verify) for key in self.keys() if self.has_complete(key)]

    def writer(
        self,
        key: str,
        manifest: dict[str, Any],
        layer_ids: Sequence[int],
        layer_widths: Sequence[int],
        sentence_lengths: Sequence[int],
        heads: Sequence[int] | None,
        dtype: str = "float32",
        *,
        overwrite: bool = False,
    ) -> EntryWriter:
        """Start an entry, or resume a half-written one whose manifest matches.

        Parameters
        ----------
        key : str
            The entry's key (see make_key).
        manifest : dict
            The caller's manifest, JSON-serialisable ("name" and "corpus_hash" are shown by StoreEntry).
        layer_ids : sequence of int
            Distinct layer ids.
        layer_widths : sequence of int
            Width of each layer.
        sentence_lengths : sequence of int
            Words per sentence of the corpus.
        heads : sequence of int or None
            Attention heads per layer (0 where a layer has none), or None to store no attention.
        dtype : str, default "float32"
            Storage type: "float32", "float16" or "bfloat16".
        overwrite : bool, default False
            Discard an existing entry, complete or not, and start over.

        Returns
        -------
        EntryWriter
            The writer; continue at its done_sentences.

        Raises
        ------
        ValueError
            When an argument is invalid, the entry is complete, or it is half-written with a different
            manifest (the message names the differing fields); overwrite=True discards either.
        EntryFormatError
            When a half-written entry of another store format version is in the way.
        """
        record = build_record(
            check_key(key),
            manifest,
            layer_ids,
            layer_widths,
            sentence_lengths,
            heads,
            dtype,
            self.chunk_rows,
            self.attention_chunk,
        )
        return EntryWriter(self._entry_dir(key), record, overwrite=overwrite, durable=self.durable)

    def remove(self, key: str) -> None:
        """Delete an entry, complete or not (crash-safely: no half-deleted entry is ever left).

        Parameters
        ----------
        key : str
            The entry's key.

        Raises
        ------
        KeyError
            When there is no such entry.
        """
        entry_dir = self._entry_dir(key)
        if not entry_dir.is_dir():
            raise KeyError(f"no store entry {key!r} in {self.path}; available: {self.keys() or 'none'}")
        remove_tree(entry_dir)

    def clean(self) -> None:
        """Delete leftovers of interrupted removals (hidden ".<key>.deleting" folders)."""
        for child in self.path.glob(".*.deleting"):
            shutil.rmtree(child)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and KEY_PATTERN.match(key) is not None and (self.path / key).is_dir()

    def __repr__(self) -> str:
        keys = self.keys()
        unfinished = len(self.incomplete())
        return (
            f"ActivationStore({str(self.path)!r}, {len(keys) - unfinished} complete, {unfinished} incomplete)"
        )
