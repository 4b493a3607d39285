"""Tests for reprsim.store: round trips, dtypes, validation, resume, crash safety and corruption detection."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
import zarr

from reprsim.store import ActivationStore, CorruptEntryError, EntryFormatError, codec, make_key
from reprsim.store import _files as files_module
from reprsim.store import append as append_module
from reprsim.store import checksums as checksums_module
from reprsim.store import entry as entry_module
from reprsim.store import writer as writer_module

LENGTHS = [3, 5, 2, 7, 4, 1, 6, 3, 8, 2]
LAYERS = [0, 2, 5]
WIDTHS = [4, 3, 6]
HEADS = [0, 2, 3]  # layer 0 (embeddings) has no attention
MANIFEST = {
    "name": "tiny",
    "model_id": "tiny/model",
    "revision": "abc",
    "corpus_hash": "f00d",
    "alignment": "mean",
}


def hidden_for(start: int, stop: int, lengths=LENGTHS, widths=WIDTHS) -> list[np.ndarray]:
    """Deterministic activations of sentences [start, stop): each sentence's rows come from its own seed."""
    return [
        np.concatenate(
            [
                np.random.default_rng([s, k]).standard_normal((lengths[s], w)).astype(np.float32)
                for s in range(start, stop)
            ]
        )
        for k, w in enumerate(widths)
    ]


def attention_for(start: int, stop: int, lengths=LENGTHS, heads=HEADS) -> list[list]:
    """Deterministic (heads, T, T) maps per layer and sentence (None for layers without heads)."""
    return [
        [
            None if h == 0 else np.random.default_rng([s, k, 99]).random((h, lengths[s], lengths[s])).astype(np.float32)
            for s in range(start, stop)
        ]
        for k, h in enumerate(heads)
    ]


def write_entry(store, key, batches, dtype="float32", heads=HEADS, **kwargs):
    """Write an entry in the given sentence batches (a list of stops) and finalize it."""
    writer = store.writer(key, MANIFEST, LAYERS, WIDTHS, LENGTHS, heads, dtype, **kwargs)
    start = writer.done_sentences
    for stop in batches:
        if stop <= start:
            continue
        writer.write_sentences(start, stop, hidden_for(start, stop), attention_for(start, stop) if heads else None)
        start = stop
    return writer.finalize()


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under a folder, by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path):
    # durable=False skips fsync, which only matters for power cuts; the crash tests below keep it on.
    return ActivationStore(tmp_path / "store", chunk_rows=8, attention_chunk=50, durable=False)


# --- keys -----------------------------------------------------------------------------------------------
def test_make_key_is_deterministic_order_free_and_safe():
    a = make_key("bert base/uncased", {"model": "bert", "layers": [0, 1], "dtype": "float32"})
    b = make_key("bert base/uncased", {"dtype": "float32", "layers": [0, 1], "model": "bert"})
    assert a == b
    assert a.startswith("bert-base-uncased-")
    assert "/" not in a and " " not in a
    assert a != make_key("bert base/uncased", {"model": "bert", "layers": [0, 1], "dtype": "float16"})
    assert a != make_key("other", {"model": "bert", "layers": [0, 1], "dtype": "float32"})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        make_key("m", {"x": object()})


def test_invalid_keys_and_missing_store(tmp_path, store):
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="invalid store key"):
            store.get(bad)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ActivationStore(tmp_path / "nowhere", create=False)


# --- round trips ----------------------------------------------------------------------------------------
def test_round_trip_float32_rows_and_attention(store):
    entry = write_entry(store, "k", [1, 4, 5, 9, 10])
    reference_hidden = hidden_for(0, len(LENGTHS))
    reference_attention = attention_for(0, len(LENGTHS))
    entry = store.get("k")
    assert entry.n_words == sum(LENGTHS) and entry.n_sentences == len(LENGTHS)
    assert entry.sentence_lengths == LENGTHS and entry.layer_ids == LAYERS
    assert [entry.layer_width(layer) for layer in LAYERS] == WIDTHS
    assert entry.name == "tiny" and entry.corpus_hash == "f00d" and entry.manifest == MANIFEST
    assert entry.has_attention and [entry.heads(layer) for layer in LAYERS] == HEADS
    for k, layer in enumerate(LAYERS):
        chunks = list(entry.iter_rows(layer, chunk_rows=7))
        assert [len(c) for c in chunks] == [7] * 5 + [6]  # 41 rows
        assert all(c.dtype == np.float32 for c in chunks)
        np.testing.assert_array_equal(np.concatenate(chunks), reference_hidden[k])
        np.testing.assert_array_equal(entry.read_rows(layer, 5, 23), reference_hidden[k][5:23])
    for k, layer in enumerate(LAYERS[1:], start=1):
        maps = list(entry.iter_attention(layer, buffer_elements=60))
        assert len(maps) == len(LENGTHS)
        for got, want in zip(maps, reference_attention[k], strict=True):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="no attention for layer 0"):
        next(entry.iter_attention(0))
    with pytest.raises(KeyError, match=r"no layer 3; stored layers: \[0, 2, 5\]"):
        entry.read_rows(3, 0, 1)
    with pytest.raises(ValueError, match="out of range"):
        entry.read_rows(0, 50, 60)


def test_batching_does_not_change_the_bytes(tmp_path):
    one = ActivationStore(tmp_path / "one", chunk_rows=8, attention_chunk=50, durable=False)
    many = ActivationStore(tmp_path / "many", chunk_rows=8, attention_chunk=50, durable=False)
    write_entry(one, "k", [10])
    write_entry(many, "k", list(range(1, 11)))
    assert files_of(one.path / "k") == files_of(many.path / "k")


class RecordingArray:
    """Wraps a zarr array and records the number of rows of every read."""

    def __init__(self, array, reads):
        self.array, self.reads = array, reads

    def __getitem__(self, index):
        self.reads.append(index.stop - index.start)
        return self.array[index]


def test_reads_never_load_a_whole_layer(store, monkeypatch):
    entry = write_entry(store, "k", [10])
    reads: list[int] = []
    original = entry_module.StoreEntry._open
    monkeypatch.setattr(
        entry_module.StoreEntry, "_open", lambda self, name: RecordingArray(original(self, name), reads)
    )
    total = sum(len(c) for c in entry.iter_rows(2, chunk_rows=10))
    assert total == entry.n_words
    assert reads == [10, 10, 10, 10, 1]
    reads.clear()
    entry.read_rows(2, 3, 9)
    assert reads == [6]


def test_entry_without_attention(store):
    entry = write_entry(store, "k", [10], heads=None)
    assert not entry.has_attention
    with pytest.raises(ValueError, match="without attention"):
        entry.heads(2)
    writer = store.writer("k2", MANIFEST, LAYERS, WIDTHS, LENGTHS, None, "float32")
    with pytest.raises(ValueError, match="created without attention"):
        writer.write_sentences(0, 1, hidden_for(0, 1), attention_for(0, 1))


def test_automatic_chunk_rows_follow_width(tmp_path):
    store = ActivationStore(tmp_path / "s")
    writer = store.writer("k", MANIFEST, [0, 1], [384, 4096], [2, 3], None, "float32")
    # at most 4 MiB per chunk, a power of two of rows: 4 MiB / (384 * 4 B) = 2730 -> 2048 rows (3 MiB);
    # 4 MiB / (4096 * 4 B) = 256 rows
    assert writer._record["chunk_rows"] == [2048, 256]


# --- dtypes ---------------------------------------------------------------------------------------------
def test_float16_storage_rounds_like_numpy(store):
    entry = write_entry(store, "k", [10], dtype="float16")
    for k, layer in enumerate(LAYERS):
        got = np.concatenate(list(entry.iter_rows(layer)))
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, hidden_for(0, 10)[k].astype(np.float16))


def test_bfloat16_storage_matches_torch_rounding(store):
    import torch  # imported here: the crash test's child processes import this module and must start fast

    entry = write_entry(store, "k", [3, 10], dtype="bfloat16")
    for k, layer in enumerate(LAYERS):
        got = np.concatenate(list(entry.iter_rows(layer)))
        want = torch.from_numpy(hidden_for(0, 10)[k]).to(torch.bfloat16).to(torch.float32).numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    # the files hold 2 bytes per value
    assert json.loads((store.path / "k" / "hidden" / "0" / "zarr.json").read_text())["data_type"] == "uint16"


@pytest.mark.parametrize(("dtype", "bad_value"), [("float16", 70000.0), ("bfloat16", 3.4e38), ("float32", 1e39)])
def test_overflow_raises_naming_the_layer(store, dtype, bad_value):
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, None, dtype)
    hidden = [h.astype(np.float64) for h in hidden_for(0, 2)]
    hidden[1][3, 1] = -bad_value
    # row 3 is the first row of sentence 1 (sentence 0 has 3 words)
    with pytest.raises(ValueError, match=rf"layer 2, sentence 1: values up to .* overflow {dtype}"):
        writer.write_sentences(0, 2, hidden, None)
    assert writer.done_sentences == 0


def test_float16_accepts_its_largest_value_and_rejects_nan(store):
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, None, "float16")
    hidden = hidden_for(0, 1)
    hidden[0][0, 0] = 65504.0
    writer.write_sentences(0, 1, hidden, None)
    hidden = hidden_for(1, 4)  # sentences 1, 2, 3 of 5, 2 and 7 words
    hidden[2][5 + 1, 0] = np.nan  # the second word of sentence 2
    with pytest.raises(ValueError, match="layer 5, sentence 2: contains NaN"):
        writer.write_sentences(1, 4, hidden, None)


def test_unknown_dtype(store):
    with pytest.raises(ValueError, match="dtype must be one of"):
        store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, None, "int8")


def test_finite_check_agrees_with_elementwise_isfinite():
    """The one-pass check (a sum) must flag exactly the arrays numpy's elementwise test flags, including
    finite values large enough to overflow the sum, and must not warn."""
    rng = np.random.default_rng(0)
    big = np.finfo(np.float32).max
    cases = [
        np.zeros((0, 3), np.float32),
        rng.standard_normal((50, 7)).astype(np.float32),
        np.full((4, 4), big, np.float32),  # finite, but the float32 sum overflows
        np.full((3, 3), 60000.0, np.float16),
        np.array([[1.0, np.inf, -np.inf]], np.float32),  # inf - inf: the sum is NaN
        np.array([1e308, 1e308], np.float64),
    ]
    for special in (np.nan, np.inf, -np.inf):
        for dtype in (np.float16, np.float32, np.float64):
            array = rng.standard_normal((20, 5)).astype(dtype)
            array[rng.integers(20), rng.integers(5)] = special
            cases.append(array)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for array in cases:
            assert codec.all_finite(array) == bool(np.isfinite(array).all()), array


@pytest.mark.parametrize(
    ("shape", "chunk"),
    [((37, 5), 8), ((64, 3), 16), ((5, 2), 8), ((101,), 16), ((70, 256), 16), ((3000,), 1024)],
)
def test_chunk_files_are_what_zarr_writes(tmp_path, shape, chunk):
    """The appender writes chunk files itself; zarr writing the same array (2-D rows, or 1-D as attention
    is stored) with the same codecs is the reference: identical bytes (edge chunk padded, crc32c appended)
    under the same file names (flat "c.i.0" keys), and zarr reads them back."""
    rows = shape[0]
    data = np.random.default_rng(rows).standard_normal(shape).astype(np.float32)

    def create(name):
        return zarr.create_array(
            store=str(tmp_path / name),
            shape=shape,
            chunks=(chunk, *shape[1:]),
            dtype="float32",
            fill_value=0,
            config={"write_empty_chunks": True},
            **append_module.raw_codecs(),
        )

    create("zarr")[:] = data
    create("ours")
    cuts = sorted({0, rows, *np.random.default_rng(1).integers(1, rows, 4).tolist()})
    appender = append_module.ArrayAppender(tmp_path / "ours")
    for i, (start, stop) in enumerate(itertools.pairwise(cuts)):
        if i == 2:  # a resumed writer reads the partly filled chunk back instead of holding it
            appender = append_module.ArrayAppender(tmp_path / "ours")
        appender.append(start, data[start:stop])
    assert files_of(tmp_path / "ours") == files_of(tmp_path / "zarr")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "ours"), mode="r")[:], data)
    # the checksums it took while writing are those of the final files' data (google_crc32c's own value of
    # all but the 4-byte trailer, which holds the same value)
    finished = appender.finished_digests()
    assert finished
    for path, (size, crc) in finished.items():
        data = path.read_bytes()
        assert (size, crc) == (len(data), f"{google_crc32c.value(data[:-4]):08x}")
        assert data[-4:] == google_crc32c.value(data[:-4]).to_bytes(4, "little")


def test_appender_refuses_other_codecs(tmp_path):
    zarr.create_array(store=str(tmp_path / "a"), shape=(4, 2), chunks=(2, 2), dtype="float32")
    with pytest.raises(ValueError, match=r"needs codecs \[bytes\(little\), crc32c\]"):
        append_module.ArrayAppender(tmp_path / "a")


def test_completion_marker_checksums_match_the_files(tmp_path):
    """finalize reuses digests taken while writing; they must equal a fresh hash of every file, also for an
    entry whose writer was resumed (its earlier chunks were written by another writer and are read back)."""
    store = ActivationStore(tmp_path / "s", chunk_rows=8, attention_chunk=50, durable=False)
    first = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    first.write_sentences(0, 4, hidden_for(0, 4), attention_for(0, 4))
    entry = write_entry(store, "k", [6, 10])
    fresh = checksums_module.checksum_arrays(entry.path, entry_module.array_names(entry.metadata))
    assert json.loads((entry.path / "complete.json").read_text())["arrays"] == fresh


# --- validation on write --------------------------------------------------------------------------------
def test_row_counts_and_shapes_are_validated(store):
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    hidden = hidden_for(0, 2)  # 8 rows
    with pytest.raises(ValueError, match=r"layer 0, sentences \[0, 3\): expected shape \(10, 4\)"):
        writer.write_sentences(0, 3, hidden, attention_for(0, 3))
    wrong_width = [hidden[0], hidden[1][:, :2], hidden[2]]
    with pytest.raises(ValueError, match=r"layer 2.*expected shape \(8, 3\).*\(8, 2\)"):
        writer.write_sentences(0, 2, wrong_width, attention_for(0, 2))
    attention = attention_for(0, 2)
    attention[2][1] = attention[2][1][:, :4, :4]
    with pytest.raises(ValueError, match=r"attention layer 5, sentence 1: expected shape \(3, 5, 5\)"):
        writer.write_sentences(0, 2, hidden, attention)
    attention = attention_for(0, 3)
    attention[1][2][0, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"attention layer 2, sentence 2: contains NaN"):
        writer.write_sentences(0, 3, hidden_for(0, 3), attention)
    with pytest.raises(ValueError, match="expected attention for 3 layers"):
        writer.write_sentences(0, 2, hidden, None)
    with pytest.raises(ValueError, match="must continue at sentence 0, got start=1"):
        writer.write_sentences(1, 2, hidden_for(1, 2), attention_for(1, 2))
    with pytest.raises(ValueError, match="invalid sentence range"):
        writer.write_sentences(0, 11, hidden_for(0, 10), attention_for(0, 10))
    with pytest.raises(ValueError, match="cannot finalize after 0 of 10"):
        writer.finalize()
    with pytest.raises(ValueError, match="layer_widths has 2 values for 3 layer_ids"):
        store.writer("k3", MANIFEST, LAYERS, [4, 3], LENGTHS, None, "float32")
    with pytest.raises(ValueError, match=r"sentence_lengths\[1\] must be an integer >= 1"):
        store.writer("k3", MANIFEST, LAYERS, WIDTHS, [3, 0], None, "float32")


# --- store listing, resume, overwrite ------------------------------------------------------------------
def test_listing_remove_and_repr(store):
    write_entry(store, "done", [10])
    writer = store.writer("half", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 4, hidden_for(0, 4), attention_for(0, 4))
    assert store.keys() == ["done", "half"]
    assert store.incomplete() == ["half"]
    assert [e.key for e in store.entries()] == ["done"]
    assert store.has_complete("done") and not store.has_complete("half")
    assert repr(store) == f"ActivationStore({str(store.path)!r}, 1 complete, 1 incomplete)"
    with pytest.raises(KeyError, match=r"no store entry 'nope'.*available: \['done', 'half'\]"):
        store.get("nope")
    store.remove("half")
    assert store.keys() == ["done"] and not (store.path / "half").exists()
    with pytest.raises(KeyError):
        store.remove("half")
    with pytest.raises(ValueError, match="already complete"):
        store.writer("done", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")


def test_resume_continues_at_done_sentences_and_matches_uninterrupted(tmp_path):
    reference = ActivationStore(tmp_path / "ref", chunk_rows=8, attention_chunk=50)
    write_entry(reference, "k", [10])
    store = ActivationStore(tmp_path / "s", chunk_rows=8, attention_chunk=50)
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 3, hidden_for(0, 3), attention_for(0, 3))
    writer.write_sentences(3, 6, hidden_for(3, 6), attention_for(3, 6))
    del writer  # abandoned without finalize
    resumed = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    assert resumed.done_sentences == 6
    resumed.write_sentences(6, 10, hidden_for(6, 10), attention_for(6, 10))
    resumed.finalize()
    assert files_of(store.path / "k") == files_of(reference.path / "k")


def test_resume_with_different_manifest_refuses_or_starts_over(store):
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 3, hidden_for(0, 3), attention_for(0, 3))
    changed = {**MANIFEST, "revision": "def"}
    with pytest.raises(ValueError, match=r"different manifest \(fields differ: manifest\.revision\)"):
        store.writer("k", changed, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    with pytest.raises(ValueError, match="fields differ: dtype"):
        store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float16")
    fresh = store.writer("k", changed, LAYERS, WIDTHS, LENGTHS, HEADS, "float32", overwrite=True)
    assert fresh.done_sentences == 0
    assert store.writer("k", changed, LAYERS, WIDTHS, LENGTHS, HEADS, "float32").done_sentences == 0


def test_chunk_lost_before_a_resume_is_caught_by_finalize(tmp_path):
    """zarr reads a missing chunk as zeros: a chunk of the durable prefix deleted while the writer was down
    must fail finalize, not become a complete entry of zeros."""
    store = ActivationStore(tmp_path / "s", chunk_rows=8, attention_chunk=50)
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 6, hidden_for(0, 6), attention_for(0, 6))  # 22 rows: chunks 0-2 of each layer
    first_chunk = store.path / "k" / "hidden" / "2" / "c.0.0"
    first_chunk.unlink()
    resumed = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    resumed.write_sentences(6, 10, hidden_for(6, 10), attention_for(6, 10))
    with pytest.raises(CorruptEntryError, match=r"hidden/2 is missing"):
        resumed.finalize()
    assert not store.has_complete("k")


def test_numpy_integer_bounds_are_accepted_and_floats_refused_before_any_write(store):
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    bounds = np.array([0, 3, 10])
    writer.write_sentences(bounds[0], bounds[1], hidden_for(0, 3), attention_for(0, 3))
    assert writer.done_sentences == 3 and type(writer.done_sentences) is int
    with pytest.raises(ValueError, match=r"stop must be an integer, got 4\.0"):
        writer.write_sentences(3, 4.0, hidden_for(3, 4), attention_for(3, 4))
    writer.write_sentences(3, bounds[2], hidden_for(3, 10), attention_for(3, 10))
    entry = writer.finalize()
    np.testing.assert_array_equal(entry.read_rows(2, np.int64(0), np.int64(3)), hidden_for(0, 1)[1])
    with pytest.raises(ValueError, match=r"stop must be an integer, got 2\.5"):  # not "corrupt: remove it"
        entry.read_rows(2, 0, 2.5)


def test_two_processes_may_create_the_same_new_store(tmp_path):
    """Two extractions of different models into one new store, started together, both open it."""
    root = tmp_path / "new" / "store"
    script = textwrap.dedent(
        f"""
        import sys, time
        from reprsim.store import ActivationStore
        time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
        ActivationStore({str(root)!r})
        """
    )
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", script, str(start)]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]


def test_a_stray_file_where_an_entry_belongs_is_replaced(store):
    (store.path / "k").write_text("not an entry")
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 10, hidden_for(0, 10), attention_for(0, 10))
    assert writer.finalize().n_sentences == 10


def test_crash_between_data_and_progress_commit_resumes_identically(tmp_path, monkeypatch):
    """A failure after the chunks are written but before progress.json is replaced loses only that batch."""
    reference = ActivationStore(tmp_path / "ref", chunk_rows=8, attention_chunk=50)
    write_entry(reference, "k", [10])
    store = ActivationStore(tmp_path / "s", chunk_rows=8, attention_chunk=50)
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 4, hidden_for(0, 4), attention_for(0, 4))
    original = writer_module.atomic_write_text

    def fail_on_progress(path, text, durable=True):
        if path.name == "progress.json":
            raise OSError("simulated crash")
        original(path, text, durable)

    monkeypatch.setattr(writer_module, "atomic_write_text", fail_on_progress)
    with pytest.raises(OSError, match="simulated crash"):
        writer.write_sentences(4, 7, hidden_for(4, 7), attention_for(4, 7))
    monkeypatch.setattr(writer_module, "atomic_write_text", original)
    # a temporary file such as zarr leaves when killed mid-write must not survive into the entry
    (store.path / "k" / "hidden" / "2" / "c.0.0.deadbeef.partial").write_bytes(b"junk")
    resumed = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    assert resumed.done_sentences == 4
    resumed.write_sentences(4, 10, hidden_for(4, 10), attention_for(4, 10))
    resumed.finalize()
    assert files_of(store.path / "k") == files_of(reference.path / "k")


class DiskEvents:
    """Records, in order, what the writer asks of the disk: files opened for writing, fsyncs, renames and JSON
    commits, to check what makes a power cut safe (nothing about how many calls it takes)."""

    def __init__(self, monkeypatch) -> None:
        self.log: list[tuple[str, str]] = []
        self.overwritten: list[str] = []  # existing chunk files opened for writing in place
        real_open, real_fsync, real_replace = open, os.fsync, os.replace
        real_commit = writer_module.atomic_write_text

        def recording_open(path, mode="r", *args, **kwargs):
            if "w" in mode or "a" in mode:
                if Path(path).exists():
                    self.overwritten.append(str(path))
                self.log.append(("write", str(path)))
            return real_open(path, mode, *args, **kwargs)

        def recording_fsync(fd):
            self.log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def recording_replace(src, dst):
            self.log.append(("replace", f"{src} -> {dst}"))
            real_replace(src, dst)

        def recording_commit(path, text, durable=True):
            self.log.append(("commit", Path(path).name))
            real_commit(path, text, durable)

        monkeypatch.setattr(files_module, "open", recording_open, raising=False)
        monkeypatch.setattr(os, "fsync", recording_fsync)
        monkeypatch.setattr(os, "replace", recording_replace)
        monkeypatch.setattr(writer_module, "atomic_write_text", recording_commit)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fsynced files through /proc (Linux)")
def test_durable_writes_are_on_disk_before_every_commit(tmp_path, monkeypatch):
    """What makes a power cut safe: a chunk file holding rows of an earlier commit is never written in
    place, only replaced by a temporary file that is on disk before its rename; and every chunk file a call
    wrote, and every folder holding one, is on disk (fsynced after its last write) before progress.json
    declares the sentences done."""
    store = ActivationStore(tmp_path / "s", chunk_rows=8, attention_chunk=50)
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    events = DiskEvents(monkeypatch)
    for start, stop in [(0, 3), (3, 4), (4, 9), (9, 10)]:
        events.log.clear()
        writer.write_sentences(start, stop, hidden_for(start, stop), attention_for(start, stop))
        assert [event for event in events.log if event[0] == "commit"] == [("commit", "progress.json")]
        log = events.log[: events.log.index(("commit", "progress.json"))]
        written = [path for kind, path in log if kind == "write"]
        temporary = [path for path in written if path.endswith(".tmp")]
        assert written and len(temporary) < len(written)  # most chunks are fresh: written straight to their file
        for tmp in temporary:
            rename = log.index(("replace", f"{tmp} -> {tmp[: -len('.tmp')]}"))
            assert ("fsync", tmp) in log[log.index(("write", tmp)) : rename]
        final = {path[: -len(".tmp")] if path.endswith(".tmp") else path for path in written}
        for path in final:
            last_change = max(
                i for i, (kind, what) in enumerate(log)
                if (kind == "write" and what == path) or (kind == "replace" and what.endswith(f"-> {path}"))
            )
            assert ("fsync", path) in log[last_change:], path
            assert ("fsync", str(Path(path).parent)) in log[last_change:], path
    assert events.overwritten == []
    monkeypatch.undo()
    entry = writer.finalize()
    reference = write_entry(ActivationStore(tmp_path / "ref", chunk_rows=8, attention_chunk=50), "k", [10])
    assert files_of(entry.path) == files_of(reference.path)


KILL_LENGTHS = LENGTHS * 3  # 30 sentences, written one per call by the child

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_store import HEADS, KILL_LENGTHS, LAYERS, MANIFEST, WIDTHS, attention_for, hidden_for
    from reprsim.store import ActivationStore

    print("imported", flush=True)
    # fsync guards against power cuts only; a killed process's writes survive in the page cache either way
    store = ActivationStore({root!r}, chunk_rows=8, attention_chunk=50, durable=False)
    if store.has_complete("k"):  # the previous run was killed after finalize, before it could exit
        print("ready", len(KILL_LENGTHS), flush=True)
        print("done", flush=True)
        sys.exit(0)
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, KILL_LENGTHS, HEADS, "float32")
    print("ready", writer.done_sentences, flush=True)
    for s in range(writer.done_sentences, len(KILL_LENGTHS)):
        hidden = hidden_for(s, s + 1, lengths=KILL_LENGTHS)
        writer.write_sentences(s, s + 1, hidden, attention_for(s, s + 1, lengths=KILL_LENGTHS))
        print("wrote", s + 1, flush=True)
    writer.finalize()
    print("done", flush=True)
    """
)


def read_line(child: subprocess.Popen, errors: Path) -> str:
    """The child's next output line; fails the test with its stderr if it ended without one."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line and child.wait() != 0:
        pytest.fail(f"writer child failed: {errors.read_text()}")
    return line


def run_child(script: Path, rng: random.Random | None, early: bool = False) -> tuple[int, int]:
    """Run the writer child; unless rng is None, SIGKILL it at a random point. Returns (returncode, start).

    Kill points are placed relative to the child's own progress lines, so they land mid-write on slow and
    fast disks alike. early: kill within 50 ms of start-up (during writer creation or the first writes);
    otherwise after 0-2 completed writes plus a random fraction of one write's duration.
    """
    errors = script.with_suffix(".err")
    with open(errors, "w") as stderr:
        child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert child.stdout is not None
    start = -1
    read_line(child, errors)  # "imported"
    if rng is not None and early:
        time.sleep(rng.uniform(0.0, 0.05))
    else:
        start = int(read_line(child, errors).split()[1])  # "ready <done>"
        if rng is not None:
            began = time.perf_counter()
            read_line(child, errors)  # the first write of this run
            one_write = time.perf_counter() - began
            for _ in range(rng.randint(0, 2)):
                read_line(child, errors)
            time.sleep(rng.uniform(0.0, one_write))
    if rng is not None and child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    return child.returncode, start


def test_sigkill_at_random_points_then_resume_is_byte_identical(tmp_path):
    reference = ActivationStore(tmp_path / "ref", chunk_rows=8, attention_chunk=50)
    writer = reference.writer("k", MANIFEST, LAYERS, WIDTHS, KILL_LENGTHS, HEADS, "float32")
    n = len(KILL_LENGTHS)
    writer.write_sentences(0, n, hidden_for(0, n, lengths=KILL_LENGTHS), attention_for(0, n, lengths=KILL_LENGTHS))
    writer.finalize()
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), root=str(tmp_path / "s")))
    rng = random.Random(1234)
    kills, starts, codes, finished = 0, [], [], False
    for _attempt in range(12):
        if finished:
            break
        code, start = run_child(script, rng, early=kills == 0)
        codes.append(code)
        if start >= 0:
            starts.append(start)
        if code == 0 and kills < 3:
            # The writes outran the kill points (a fast, idle machine): write the entry again from scratch.
            shutil.rmtree(tmp_path / "s")
            kills, starts = 0, []
            continue
        finished = code == 0
        if not finished:
            assert code == -signal.SIGKILL, (codes, script.with_suffix(".err").read_text())
            kills += 1
            if kills == 5:
                code, start = run_child(script, None)
                assert code == 0
                starts.append(start)
                finished = True
    assert finished and kills >= 3, (
        f"only {kills} kills landed before the writer finished (exit codes {codes}, starts {starts}): "
        f"{script.with_suffix('.err').read_text()}"
    )
    assert starts == sorted(starts) and starts[-1] > 0, starts  # durable progress survived the kills
    assert files_of(tmp_path / "s" / "k") == files_of(reference.path / "k")
    ActivationStore(tmp_path / "s").get("k", verify=True)


# --- corruption -----------------------------------------------------------------------------------------
def test_truncated_chunk_is_detected_on_open(store):
    write_entry(store, "k", [10])
    chunk = store.path / "k" / "hidden" / "2" / "c.1.0"
    chunk.write_bytes(chunk.read_bytes()[:-5])
    with pytest.raises(CorruptEntryError, match=r"'k'.*hidden/2/c\.1\.0 of array hidden/2 has \d+ bytes, expected"):
        store.get("k", verify=False)


def test_deleted_chunk_is_detected_on_open(store):
    write_entry(store, "k", [10])
    (store.path / "k" / "attention" / "5" / "c.2").unlink()
    with pytest.raises(CorruptEntryError, match=r"attention/5/c\.2 of array attention/5 is missing"):
        store.get("k", verify=False)


def test_altered_bytes_are_detected_by_checksums(store):
    write_entry(store, "k", [10])
    chunk = store.path / "k" / "hidden" / "0" / "c.2.0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptEntryError, match=r"checksum mismatch in file hidden/0/c\.2\.0"):
        store.get("k")  # small entry: checksums run on open
    entry = store.get("k", verify=False)  # structure and sizes are fine
    with pytest.raises(CorruptEntryError, match="checksum mismatch"):
        entry.verify()
    with pytest.raises(CorruptEntryError, match="cannot read layer 0 rows"):
        list(entry.iter_rows(0))  # the chunk's crc32c catches it on read, too


def test_swapped_or_stale_chunks_are_detected_by_checksums(store):
    """Every chunk file carries its own crc32c, so a chunk replaced by another intact chunk passes zarr's
    check on read; the completion marker pins each chunk's value, so verify catches it."""
    entry = write_entry(store, "k", [10])
    folder = entry.path / "hidden" / "0"
    first, second = folder / "c.0.0", folder / "c.1.0"
    a, b = first.read_bytes(), second.read_bytes()
    assert a != b and len(a) == len(b)
    first.write_bytes(b)
    second.write_bytes(a)
    with pytest.raises(CorruptEntryError, match=r"checksum mismatch in file hidden/0/c\.0\.0"):
        store.get("k", verify=True)
    first.write_bytes(a)
    second.write_bytes(b)
    store.get("k", verify=True)
    # a zarr.json altered (same size) is caught by its sha256
    metadata = entry.path / "hidden" / "0" / "zarr.json"
    text = metadata.read_text()
    assert '"fill_value": 0.0' in text
    metadata.write_text(text.replace('"fill_value": 0.0', '"fill_value": 1.0'))
    with pytest.raises(CorruptEntryError, match=r"checksum mismatch in file hidden/0/zarr.json"):
        store.get("k", verify=True)


def test_chunk_damaged_before_finalize_is_reported_not_recorded(tmp_path):
    """A resumed writer reads back the chunks written before the resume to checksum them; one damaged on disk
    meanwhile must stop finalize, not be recorded as it is."""
    store = ActivationStore(tmp_path / "s", chunk_rows=8, attention_chunk=50, durable=False)
    first = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    first.write_sentences(0, 6, hidden_for(0, 6), attention_for(0, 6))
    chunk = store.path / "k" / "hidden" / "0" / "c.0.0"
    data = bytearray(chunk.read_bytes())
    data[5] ^= 0x01
    chunk.write_bytes(bytes(data))
    resumed = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    resumed.write_sentences(6, 10, hidden_for(6, 10), attention_for(6, 10))
    with pytest.raises(CorruptEntryError, match=r"hidden/0/c\.0\.0 is damaged: its crc32c trailer does not match"):
        resumed.finalize()
    assert not (store.path / "k" / "complete.json").exists()


def as_format_version(entry_dir: Path, version) -> None:
    """Make an entry look written by another store format version, consistently (its marker's manifest
    checksum follows), as an entry of that version would be."""
    manifest_path = entry_dir / "manifest.json"
    record = json.loads(manifest_path.read_text())
    record["format_version"] = version
    manifest_path.write_text(json.dumps(record))
    marker_path = entry_dir / "complete.json"
    if marker_path.exists():
        marker = json.loads(marker_path.read_text())
        marker["manifest_sha256"] = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
        marker_path.write_text(json.dumps(marker))


def test_entries_of_another_format_version_are_refused_naming_the_entry(store):
    entry = write_entry(store, "k", [10])
    assert entry.metadata["format_version"] == 2
    for version in (1, 3, None):
        as_format_version(entry.path, version)
        for verify in (None, True, False):
            with pytest.raises(EntryFormatError, match=rf"entry 'k' was written in store format version {version}"):
                store.get("k", verify=verify)
        advice = r"reads only version 2: remove it .*store remove STORE k.*extract it again"
        with pytest.raises(CorruptEntryError, match=advice):
            store.entries()
    # a half-written entry of another version is not resumed (nor silently started over)
    writer = store.writer("half", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 4, hidden_for(0, 4), attention_for(0, 4))
    as_format_version(store.path / "half", 1)
    with pytest.raises(EntryFormatError, match=r"'half' was written in store format version 1.*extract it again"):
        store.writer("half", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    assert json.loads((store.path / "half" / "progress.json").read_text()) == {"done_sentences": 4}
    fresh = store.writer("half", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32", overwrite=True)
    assert fresh.done_sentences == 0


def test_appender_refuses_folder_chunk_keys(tmp_path):
    """zarr's default "c/i/0" chunk keys are not a layout this store writes or reads."""
    zarr.create_array(
        store=str(tmp_path / "a"), shape=(4, 2), chunks=(2, 2), dtype="float32",
        **{**append_module.raw_codecs(), "chunk_key_encoding": {"name": "default", "separator": "/"}},
    )
    with pytest.raises(ValueError, match=r"needs default chunk keys with separator '\.'"):
        append_module.ArrayAppender(tmp_path / "a")


def test_large_entries_skip_checksums_on_open(store, monkeypatch):
    write_entry(store, "k", [10])
    chunk = store.path / "k" / "hidden" / "0" / "c.0.0"
    data = bytearray(chunk.read_bytes())
    data[-3] ^= 0x01
    chunk.write_bytes(bytes(data))
    monkeypatch.setattr(entry_module, "VERIFY_ON_OPEN_BYTES", 10)
    entry = store.get("k")  # "large": structure only
    with pytest.raises(CorruptEntryError):
        entry.verify()


def test_missing_manifest_and_missing_or_bad_marker(store):
    write_entry(store, "a", [10])
    (store.path / "a" / "manifest.json").unlink()
    with pytest.raises(CorruptEntryError, match=r"'a'.*manifest\.json is missing"):
        store.get("a")
    write_entry(store, "b", [10])
    (store.path / "b" / "complete.json").unlink()
    with pytest.raises(CorruptEntryError, match=r"'b'.*no completion marker: half-written \(10 sentences done\)"):
        store.get("b")
    write_entry(store, "c", [10])
    (store.path / "c" / "complete.json").write_text("{not json")
    with pytest.raises(CorruptEntryError, match=r"'c'.*complete\.json is unreadable"):
        store.get("c")
    write_entry(store, "d", [10])
    manifest = store.path / "d" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"tiny"', '"huge"'))
    with pytest.raises(CorruptEntryError, match=r"manifest\.json does not match"):
        store.get("d")
    writer = store.writer("e", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")
    writer.write_sentences(0, 2, hidden_for(0, 2), attention_for(0, 2))
    with pytest.raises(CorruptEntryError, match=r"'e'.*half-written \(2 sentences done\)"):
        store.get("e")
    with pytest.raises(CorruptEntryError):
        store.entries()  # a damaged complete entry is reported, not skipped
    (store.path / "e" / "progress.json").write_text("garbage")
    with pytest.raises(CorruptEntryError, match=r"progress\.json is unreadable"):
        store.writer("e", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float32")


def flat_attention(attention: list[list]) -> list:
    """The same maps as one flat array per layer, back to back (None for layers without heads)."""
    return [None if maps[0] is None else np.concatenate([m.reshape(-1) for m in maps]) for maps in attention]


def test_flat_attention_per_window_is_stored_exactly_like_per_sentence_maps(tmp_path):
    per_sentence = ActivationStore(tmp_path / "maps")
    write_entry(per_sentence, "k", [4, 10], dtype="float16")
    flat = ActivationStore(tmp_path / "flat")
    writer = flat.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float16")
    for start, stop in [(0, 4), (4, 10)]:
        writer.write_sentences(start, stop, hidden_for(start, stop), flat_attention(attention_for(start, stop)))
    writer.finalize()
    assert files_of(flat.path / "k") == files_of(per_sentence.path / "k")


def test_flat_attention_is_checked_and_a_bad_value_names_its_sentence(store):
    writer = store.writer("k", MANIFEST, LAYERS, WIDTHS, LENGTHS, HEADS, "float16")
    attention = flat_attention(attention_for(0, 3))  # layer 5: 3 heads x (9 + 25 + 4) = 114 values
    short = [attention[0], attention[1], attention[2][:-1]]
    message = r"attention layer 5: a flat array for sentences \[0, 3\) must hold 114 values"
    with pytest.raises(ValueError, match=message):
        writer.write_sentences(0, 3, hidden_for(0, 3), short)
    integers = [attention[0], attention[1], attention[2].astype(np.int32)]
    with pytest.raises(ValueError, match="attention layer 5: expected a float array, got dtype int32"):
        writer.write_sentences(0, 3, hidden_for(0, 3), integers)
    attention[2][3 * 9 + 3 * 25 + 5] = np.inf  # the third sentence's maps start after 3 x 3^2 + 3 x 5^2 values
    with pytest.raises(ValueError, match=r"attention layer 5, sentence 2: contains NaN or Inf"):
        writer.write_sentences(0, 3, hidden_for(0, 3), attention)
    assert writer.done_sentences == 0


def test_an_empty_store_path_is_refused():
    with pytest.raises(ValueError, match="activation store path is empty"):
        ActivationStore("")
