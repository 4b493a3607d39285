"""Several processes extracting the same store entry at once: one writes, the others wait and reuse it."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from reprsim import extract
from reprsim.corpus import Corpus
from reprsim.extraction.adapter import AdapterOutput
from reprsim.store import ActivationStore
from test_rows import FixedAdapter

SENTENCES = [["w" * (1 + (i + j) % 4) for j in range(3 + i % 3)] for i in range(12)]


class SlowAdapter(FixedAdapter):
    """`FixedAdapter` taking a while per batch, so concurrent writers overlap."""

    def encode(self, sentences: Sequence[Sequence[str]], layers: Sequence[int], attention: bool) -> AdapterOutput:
        time.sleep(0.02)
        return super().encode(sentences, layers, attention)


def _write(store: str, marker: str) -> None:
    extract(SlowAdapter(), Corpus(SENTENCES), store, names=["slow"], batch_size=1, attention=False, progress=False)
    Path(marker).write_text("done")


def test_concurrent_writers_of_one_entry_leave_one_complete_entry(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    for round_ in range(4):
        store = tmp_path / f"store{round_}"
        markers = [tmp_path / f"done{round_}.{i}" for i in range(3)]
        writers = [context.Process(target=_write, args=(str(store), str(m))) for m in markers]
        for w in writers:
            w.start()
        for w in writers:
            w.join(timeout=120)
        assert [w.exitcode for w in writers] == [0, 0, 0], round_
        assert all(m.exists() for m in markers)
        s = ActivationStore(store, create=False)
        (key,) = s.keys()
        entry = s.get(key)
        entry.verify()
        expected = np.array([[len(w) + 1.0] * 3 for s_ in SENTENCES for w in s_])
        np.testing.assert_array_equal(entry.read_rows(1, 0, entry.n_words), expected)


def test_a_waiting_writer_says_so_then_writes_once_the_lock_is_free(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    key = extract(SlowAdapter(), Corpus(SENTENCES), tmp_path / "first", names=["slow"], attention=False,
                  progress=False)[0].key
    store = ActivationStore(tmp_path / "store")
    done: list[object] = []
    with store.writing(key):  # another writer holds the entry (flock: per open file, so a thread waits too)
        waiter = threading.Thread(target=lambda: done.append(
            extract(SlowAdapter(), Corpus(SENTENCES), store, names=["slow"], attention=False, progress=True)[0]))
        waiter.start()
        deadline, said = time.monotonic() + 30, ""
        while "waiting for it" not in said and time.monotonic() < deadline:
            time.sleep(0.05)
            said += capsys.readouterr().err
        assert f"another process is writing store entry {key}" in said
        assert not done and waiter.is_alive()
    waiter.join(timeout=60)
    assert len(done) == 1 and store.has_complete(key)
