"""One writer per store entry: an OS file lock, held from the completeness check to the completion marker.

Two processes extracting the same entry at once would lay it out, write its chunks and commit its records over
each other. Each writer therefore takes an exclusive `flock` on ``<store>/.locks/<key>.lock`` first; a second
writer waits for it, then finds the entry complete (and skips) or half-written (and resumes it). The operating
system drops the lock when its holder dies, so a killed writer never leaves the entry wedged. Lock files are
never deleted: removing one while another process waits on it would let two writers hold "the" lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

LOCKS = ".locks"


@contextmanager
def entry_lock(store: Path, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the entry's exclusive write lock for the block.

    Parameters
    ----------
    store
        The store's folder.
    key
        The entry's key (already checked).
    on_wait
        Called once if another writer holds the lock (before waiting for it).

    Yields
    ------
    None
        With the lock held.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    folder = store / LOCKS
    folder.mkdir(exist_ok=True)
    handle = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the lock
