"""On-disk activation store: per (model, options, corpus) entry, row-chunked zarr arrays + JSON manifests."""

from reprsim.store.entry import CorruptEntryError, EntryFormatError, StoreEntry
from reprsim.store.store import ActivationStore, make_key
from reprsim.store.writer import EntryWriter

__all__ = ["ActivationStore", "CorruptEntryError", "EntryFormatError", "EntryWriter", "StoreEntry", "make_key"]
