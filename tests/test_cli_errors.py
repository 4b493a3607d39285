"""An error ends a command in one line: a damaged chunk met by `reprsim compare`, in a process of its own."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reprsim.store import ActivationStore, make_key

# The entry is small, so opening it would check every file's checksum and find the damage before any read;
# the command runs as it does on entries over VERIFY_ON_OPEN_BYTES, where the damage is met by zarr's read.
RUN_CLI_WITHOUT_CHECKSUMS_ON_OPEN = """
import sys
import reprsim.store.entry
reprsim.store.entry.VERIFY_ON_OPEN_BYTES = 0
from reprsim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def store_with_a_damaged_chunk(root: Path) -> Path:
    """Two entries of 2,048 rows in 1,024 chunks each; the first chunk of the first entry has a flipped byte.

    A read of many chunks is what leaves zarr's other chunk tasks running when the first one fails.
    """
    store = ActivationStore(root, chunk_rows=2, durable=False)
    rng = np.random.default_rng(0)
    lengths = [8] * 256
    for name in ("a", "b"):
        manifest = {"name": name, "model": f"model-{name}", "corpus_hash": "c"}
        key = make_key(name, manifest)
        writer = store.writer(key, manifest, [0], [8], lengths, None)
        writer.write_sentences(0, len(lengths), [rng.standard_normal((2048, 8)).astype(np.float32)])
        writer.finalize()
        if name == "a":
            chunk = store.path / key / "hidden" / "0" / "c.0.0"
            data = bytearray(chunk.read_bytes())
            data[0] ^= 0xFF
            chunk.write_bytes(bytes(data))
    return store.path


def test_a_damaged_chunk_met_by_compare_is_one_line_on_stderr(tmp_path):
    store = store_with_a_damaged_chunk(tmp_path / "store")
    command = [sys.executable, "-c", RUN_CLI_WITHOUT_CHECKSUMS_ON_OPEN, "compare", "--store", str(store),
               "--measures", "linear_cka", "--out", str(tmp_path / "results.csv"), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    for _ in range(3):  # the stray tasks are a race: one clean run would prove little
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 1
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr[:2000]
        assert lines[0].startswith("reprsim compare: error: store entry 'a-")
        assert "Stored and computed checksum do not match" in lines[0] and "reprsim store remove" in lines[0]
        assert "Task was destroyed" not in done.stderr
    assert not (tmp_path / "results.csv").exists()


def test_an_error_message_of_several_lines_prints_as_one(monkeypatch, capsys):
    from reprsim.cli import build_parser, main

    def fails(args):
        raise FileNotFoundError("could not find it.\nCheck your internet connection")

    args = build_parser().parse_args(["quick"])
    args.func = fails

    class FixedParser:
        def parse_args(self, argv):
            return args

    monkeypatch.setattr("reprsim.cli.build_parser", FixedParser)
    assert main(["quick"]) == 1
    assert capsys.readouterr().err == "reprsim quick: error: could not find it. Check your internet connection\n"


def test_byte_sizes_parse_with_units_and_refuse_the_rest():
    from reprsim.cli import byte_size

    assert [byte_size(t) for t in ("4GiB", "512 MiB", "1.5GB", "1000", "2kib")] == [
        4 << 30, 512 << 20, 1_500_000_000, 1000, 2048]
    for text in ("0", "-1GiB", "4 GiBs", "GiB", "", "0.1"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a size"):
            byte_size(text)
