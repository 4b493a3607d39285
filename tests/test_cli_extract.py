"""`reprsim extract`: the command line, re-runs as no-ops, bad input, and kill-and-resume (SIGKILL)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tr

from reprsim.cli import main
from reprsim.corpus import Corpus
from reprsim.extraction import extract
from reprsim.store import ActivationStore

# The module, not the function that reprsim.extraction re-exports under the same name.
extract_module = importlib.import_module("reprsim.extraction.one_model")
VOCAB = [
    "the",
    "a",
    "cat",
    "dog",
    "bird",
    "sat",
    "ran",
    "flew",
    "on",
    "under",
    "mat",
    "tree",
    "house",
    "quickly",
]


def write_corpus(path: Path, n: int) -> Path:
    """n deterministic sentences of 3-12 words, one per line."""
    rng = np.random.default_rng(7)
    lines = [" ".join(rng.choice(VOCAB, size=int(rng.integers(3, 13)))) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_bert_folder(folder: Path) -> Path:
    """A tiny random BERT with a word-level vocabulary, saved as a local model folder."""
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *VOCAB]) + "\n"
    )
    tok = tr.BertTokenizer(vocab=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = tr.BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    tr.BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- the command ---------------------------------------------------------------------------------------
def test_cli_extract_minilm_then_rerun_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus_path = write_corpus(tmp_path / "corpus.txt", 6)
    store_dir = tmp_path / "store"
    args = ["extract", "minilm", "--corpus", str(corpus_path), "--store", str(store_dir)]
    args += [
        "--layers",
        "0,3",
        "--no-attention",
        "--max-sentences",
        "4",
        "--batch-size",
        "3",
        "--name",
        "mini",
    ]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "mini: 4 sentences" in out.out and "layers 0,3, no attention" in out.out
    assert "word/s" in out.err and "extract mini" in out.err  # the progress bar with its rate
    (entry,) = ActivationStore(store_dir, create=False).entries()
    assert entry.name == "mini" and entry.layer_ids == [0, 3] and not entry.has_attention
    assert entry.n_sentences == 4
    assert entry.sentence_lengths == [len(line.split()) for line in corpus_path.read_text().splitlines()[:4]]
    before = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*")}

    def no_loading(*_: object, **__: object) -> None:
        raise AssertionError("a complete entry must be reused without loading the model")

    monkeypatch.setattr(extract_module, "load_transformer", no_loading)
    assert main([*args, "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in store_dir.rglob("*")} == before


def test_cli_max_words_and_causal_attention(tmp_path: Path) -> None:
    corpus_path = tmp_path / "c.txt"
    corpus_path.write_text("the cat sat\nthe dog ran under the tree quickly\na bird flew\n")
    store_dir = tmp_path / "store"
    model = tiny_bert_folder(tmp_path / "tiny")
    args = ["extract", str(model), "--corpus", str(corpus_path), "--store", str(store_dir)]
    assert main([*args, "--max-words", "4", "--causal-attention", "--quiet"]) == 0
    (entry,) = ActivationStore(store_dir).entries()
    assert entry.name == "tiny" and entry.sentence_lengths == [3, 3]
    for att in entry.iter_attention(2):
        assert np.allclose(np.triu(att, k=1), 0.0)  # nothing on later words
        np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "0,x"], "layers must be 'all' or integers"),
        (["--layers", "0,9"], "layer 9 does not exist"),
        (["--name", "a", "b"], "--name was given 2 times for 1 models"),
    ],
)
def test_cli_bad_input_exits_1_with_a_message(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus_path = write_corpus(tmp_path / "corpus.txt", 3)
    model = tiny_bert_folder(tmp_path / "tiny")
    args = ["extract", str(model), "--corpus", str(corpus_path), "--store", str(tmp_path / "s"), "--quiet"]
    assert main(args + extra) == 1
    assert message in capsys.readouterr().err


def test_cli_missing_corpus_and_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s")
    assert main(["extract", "minilm", "--corpus", str(tmp_path / "nope.txt"), "--store", store]) == 1
    assert "nope.txt" in capsys.readouterr().err
    corpus_path = write_corpus(tmp_path / "corpus.txt", 3)
    assert main(["extract", "./no/such/model", "--corpus", str(corpus_path), "--store", store]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_python_rerun_returns_the_same_entries(tmp_path: Path) -> None:
    corpus = Corpus.from_text(write_corpus(tmp_path / "corpus.txt", 5))
    model = str(tiny_bert_folder(tmp_path / "tiny"))
    first = extract(model, corpus, tmp_path / "store", progress=False)
    second = extract(model, corpus, tmp_path / "store", progress=False)
    assert [e.key for e in first] == [e.key for e in second]
    other = extract(model, corpus, tmp_path / "store", subword="first", progress=False)
    assert other[0].key != first[0].key  # a different option is a different entry


# ---- kill and resume -----------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import glob, json, sys, time
    from reprsim.extraction.transformer import TransformerAdapter

    block_at = int(sys.argv[1])
    store = sys.argv[sys.argv.index("--store") + 1]
    calls = 0
    original = TransformerAdapter.encode

    def committed():
        files = glob.glob(f"{store}/*/progress.json")
        return json.load(open(files[0]))["done_sentences"] if files else 0

    def encode(self, *args, **kwargs):
        global calls
        calls += 1
        if calls == block_at:
            # The previous window is written on a background thread: block once it is committed.
            deadline = time.time() + 60
            while committed() < 256 and time.time() < deadline:
                time.sleep(0.05)
            print("BLOCKED", committed(), flush=True)
            time.sleep(600)
        return original(self, *args, **kwargs)

    TransformerAdapter.encode = encode
    from reprsim.cli import main
    code = main(sys.argv[2:])
    print("CALLS", calls, flush=True)
    sys.exit(code)
    """
)


def run_child(script: Path, block_at: int, args: list[str], log: Path) -> subprocess.Popen[str]:
    """The child with stdout piped (one short line at a time) and stderr to a file (no pipe to fill up)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, str(script), str(block_at), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )


def test_killed_extraction_resumes_to_byte_identical_store(tmp_path: Path) -> None:
    # 300 sentences = windows [0, 256) and [256, 300); batch 32 = 8 + 2 forward passes.
    corpus_path = write_corpus(tmp_path / "corpus.txt", 300)
    model = tiny_bert_folder(tmp_path / "tiny")
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def args(store: Path) -> list[str]:
        return ["extract", str(model), "--corpus", str(corpus_path), "--store", str(store), "--quiet"]

    log = tmp_path / "stderr.txt"
    killed = run_child(script, 10, args(tmp_path / "resumed"), log)  # blocks inside the second window
    assert killed.stdout is not None
    line = killed.stdout.readline()
    if line.strip() != "BLOCKED 256":
        killed.kill()
        pytest.fail(f"the child never reached the second window: {line!r}\n{log.read_text()}")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    store = ActivationStore(tmp_path / "resumed", create=False)
    assert store.entries() == [] and len(store.incomplete()) == 1

    resumed = run_child(script, -1, args(tmp_path / "resumed"), log)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log.read_text()
    assert "CALLS 2" in out  # only the unfinished window was recomputed

    reference = run_child(script, -1, args(tmp_path / "reference"), log)
    out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, log.read_text()
    assert "CALLS 10" in out

    resumed_files = files_of(tmp_path / "resumed")
    assert resumed_files == files_of(tmp_path / "reference")
    assert any(name.endswith("manifest.json") for name in resumed_files)
    (entry,) = ActivationStore(tmp_path / "resumed").entries(verify=True)
    assert entry.n_sentences == 300


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quick", "--rows", "1"], "argument --rows: must be at least 2, got 1"),
        (["quick", "--width", "-5"], "argument --width: must be at least 2, got -5"),
        (["quick", "--rows", "many"], "argument --rows: must be an integer, got 'many'"),
        (["extract", "m", "--corpus", "c.txt", "--store", "s", "--batch-size", "0"],
         "argument --batch-size: must be a positive integer, got 0"),
        (["extract", "m", "--corpus", "c.txt", "--store", "s", "--max-sentences", "2.5"],
         "argument --max-sentences: must be an integer, got '2.5'"),
    ],
)
def test_integer_options_are_checked_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_join_of_corpus_shards_interrupted_midway_resumes_to_the_same_entry(tmp_path, monkeypatch) -> None:
    """The corpus-shard path without Ray: parts extracted, a join killed after one window, then rerun."""
    from reprsim.corpus import Corpus
    from reprsim.extraction import extract
    from reprsim.extraction.corpus_shards import PARTS, corpus_parts, join_parts, part_task
    from reprsim.extraction.extract import task_arguments
    from reprsim.store import ActivationStore
    from reprsim.store.writer import EntryWriter

    corpus = Corpus.load(str(write_corpus(tmp_path / "corpus.txt", 600)))
    model = str(tiny_bert_folder(tmp_path / "tiny"))
    arguments = task_arguments(layers=[0, 2])
    parts = corpus_parts(len(corpus), 3)
    keys = [part_task(model, "tiny", corpus, str(tmp_path / "joined"), arguments, part) for part in parts]
    original, writes = EntryWriter.write_sentences, []

    def write_once_then_fail(self, start, stop, *rest, **kwargs):
        if writes:
            raise OSError("the node went away")
        writes.append((start, stop))
        original(self, start, stop, *rest, **kwargs)

    monkeypatch.setattr(EntryWriter, "write_sentences", write_once_then_fail)
    with pytest.raises(OSError, match="the node went away"):
        join_parts(model, "tiny", corpus, str(tmp_path / "joined"), arguments, parts, *keys)
    monkeypatch.setattr(EntryWriter, "write_sentences", original)
    assert writes == [(0, 256)] and sorted(ActivationStore(tmp_path / "joined" / PARTS).keys()) == sorted(keys)
    key = join_parts(model, "tiny", corpus, str(tmp_path / "joined"), arguments, parts, *keys)
    (local,) = extract([model], corpus, tmp_path / "local", names=["tiny"], layers=[0, 2], progress=False)
    assert key == local.key and not ActivationStore(tmp_path / "joined" / PARTS).keys()
    ours = {k: v for k, v in files_of(tmp_path / "joined").items() if not k.startswith(PARTS)}
    assert ours == files_of(tmp_path / "local")
    # Joining again (another driver's rerun) finds the entry complete and the parts gone: nothing happens.
    assert join_parts(model, "tiny", corpus, str(tmp_path / "joined"), arguments, parts, *keys) == key
