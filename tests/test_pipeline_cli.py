"""End to end through the CLI on tiny offline models: extract -> compare -> report, and `reprsim run`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reprsim.cli import main
from reprsim.results import ResultTable
from reprsim.store import ActivationStore
from test_extraction_models import WORDS, build_family


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folders = {}
    for family in ("bert", "gpt2"):
        model, tok = build_family(family, tmp_path_factory.mktemp(f"{family}-vocab"))
        folder = tmp_path_factory.mktemp("models") / f"tiny-{family}"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[family] = folder
    return folders


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(60)]
    path = tmp_path_factory.mktemp("corpus") / "sentences.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_extract_compare_report_commands(tiny_models, corpus_file, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["extract", str(tiny_models["bert"]), str(tiny_models["gpt2"]), "--corpus", str(corpus_file),
                 "--store", str(store), "--name", "bert", "--name", "gpt2", "--quiet"]) == 0
    results = tmp_path / "results.parquet"
    assert main(["compare", "--store", str(store), "--measures", "linear_cka,maxsim,rsa,attention_js",
                 "--out", str(results), "--quiet"]) == 0
    table = ResultTable.load(results)
    assert set(table.measures()) == {"linear_cka", "maxsim", "rsa", "attention_js"}
    assert table.models() == ["bert", "gpt2"]
    # 3 hidden-state layers per tiny model (embeddings + 2 blocks): 6 representations, 4 attention layers.
    frame = table.frame
    assert (frame.measure == "linear_cka").sum() == 6 * 7 // 2
    assert (frame.measure == "maxsim").sum() == 36
    assert (frame.measure == "attention_js").sum() == 16
    assert (frame.measure == "rsa").sum() == 21
    assert "wrote 94 rows (94 new)" in capsys.readouterr().out
    report = tmp_path / "report"
    assert main(["report", str(results), "--out", str(report)]) == 0
    html = (report / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "linear_cka" in html
    assert "report figures" in capsys.readouterr().err
    assert main(["report", str(results), "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert "report figures" not in capsys.readouterr().err


def test_run_study_and_rerun_skips_finished_work(tiny_models, corpus_file, tmp_path, capsys):
    config = tmp_path / "study.yaml"
    config.write_text(f"""
name: tiny
corpus: {{source: {corpus_file}, max_sentences: 40}}
models:
  - {{name: bert, model: {tiny_models['bert']}}}
  - {{name: gpt2, model: {tiny_models['gpt2']}, layers: [0, 2]}}
compare: {{measures: [linear_cka, pwcca, attention_cka]}}
output: {{dir: out}}
""")
    assert main(["run", str(config), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "results:" in captured.out and "report:" in captured.out
    assert "report figures" not in captured.err  # --quiet covers the report's bar too
    assert "Loading weights" not in captured.err  # and transformers' own, for the extraction's loads only:
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    results = tmp_path / "out" / "results.parquet"
    table = ResultTable.load(results)
    assert table.layers("gpt2") == [0, 2] and table.layers("bert") == [0, 1, 2]
    assert (tmp_path / "out" / "report" / "index.html").is_file()
    store_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "store").rglob("*") if p.is_file()}
    report_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "report").rglob("*") if p.is_file()}
    assert (tmp_path / "out" / "report" / "report-source.json").is_file()
    assert main(["run", str(config), "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "store").rglob("*") if p.is_file()} == store_files
    assert len(ResultTable.load(results)) == len(table)
    out = capsys.readouterr().out
    assert "nothing new to compute" in out and "unchanged" in out
    # Nothing new: the report is not redrawn (every file as it was).
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "report").rglob("*") if p.is_file()} == report_files
    # A new measure changes the table: computed, and the report drawn again.
    config.write_text(config.read_text().replace("attention_cka]", "attention_cka, maxsim]"))
    assert main(["run", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "nothing new" not in out and "unchanged" not in out
    index = tmp_path / "out" / "report" / "index.html"
    assert index.stat().st_mtime_ns > report_files[index] and "maxsim" in ResultTable.load(results).measures()
    # A report folder without its record (drawn by hand, or half-written) is drawn again too.
    (tmp_path / "out" / "report" / "report-source.json").unlink()
    before = index.stat().st_mtime_ns
    assert main(["run", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "nothing new to compute" in out and "unchanged" not in out and index.stat().st_mtime_ns > before


def test_run_checks_every_model_before_extracting_any(tiny_models, corpus_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    good = f"  - {{name: bert, model: {tiny_models['bert']}}}\n"
    config = tmp_path / "study.yaml"
    base = f"name: tiny\ncorpus: {{source: {corpus_file}, max_sentences: 20}}\ncompare: {{measures: [linear_cka]}}\n"
    # First a store that holds the good model: it must stay exactly as it is.
    config.write_text(base + "models:\n" + good)
    assert main(["run", str(config), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "reprsim-out"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny_models["gpt2"] / "config.json").read_text())
    import reprsim.extraction

    def must_not_run(*args, **kwargs):
        raise AssertionError("extracted before every model was checked")

    monkeypatch.setattr(reprsim.extraction, "extract", must_not_run)
    bad_models = [
        ("reprsim-tests/never-downloaded", ["reprsim-tests/never-downloaded", "not in the local cache",
                                            "hf download reprsim-tests/never-downloaded"]),
        (str(no_weights), ["no-weights", "no weights"]),
        (str(tmp_path / "missing-folder"), ["missing-folder", "does not exist"]),
    ]
    for bad, words in bad_models:
        config.write_text(base + "models:\n" + good + f"  - {{name: other, model: {bad}}}\n")
        assert main(["run", str(config), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert "`models[1]` ('other')" in err and "nothing was extracted" in err and "bert" not in err.split(":", 2)[2]
        for word in words:
            assert word in err, (word, err)
        assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == before


def test_run_with_an_unloadable_model_leaves_no_store(tiny_models, corpus_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tmp_path / "study.yaml"
    config.write_text(f"""
corpus: {{source: {corpus_file}, max_sentences: 20}}
models:
  - {{name: bert, model: {tiny_models['bert']}}}
  - {{name: hub, model: reprsim-tests/never-downloaded}}
compare: {{measures: [linear_cka]}}
""")
    assert main(["run", str(config)]) == 1
    assert "reprsim-tests/never-downloaded" in capsys.readouterr().err
    assert not (tmp_path / "reprsim-out").exists()  # no store, no entry, no results, no report


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["compare", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "r.parquet")]) == 1
    assert "activation store not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [a]\ncompare: {measures: [cka]}\n")
    assert main(["run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "`compare.measures`: unknown measure 'cka'" in err


def test_compare_checks_its_output_path_before_any_work(tmp_path, capsys, monkeypatch):
    import reprsim.comparison

    def must_not_run(*args, **kwargs):
        raise AssertionError("compared before checking --out")

    monkeypatch.setattr(reprsim.comparison, "compare", must_not_run)
    store = tmp_path / "store"
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (tmp_path / "r.txt", "use a .parquet or .csv name"),
        (tmp_path / "file.txt" / "r.parquet", "is a file, not a folder"),
        (tmp_path, "use a .parquet or .csv name"),
    ]
    (tmp_path / "dir.parquet").mkdir()
    cases.append((tmp_path / "dir.parquet", "is a folder"))
    for out, message in cases:
        assert main(["compare", "--store", str(store), "--out", str(out)]) == 1
        assert message in capsys.readouterr().err


def test_os_errors_and_interrupts_end_in_one_line(tmp_path, capsys, monkeypatch):
    def denied(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "corpus.txt"))

    def interrupted(args):
        raise KeyboardInterrupt

    parser_args = ["report", str(tmp_path / "r.parquet"), "--out", str(tmp_path / "report.html")]
    from reprsim.cli import build_parser

    args = build_parser().parse_args(parser_args)
    args.func = denied
    monkeypatch.setattr("reprsim.cli.build_parser", lambda: _FixedParser(args))
    assert main(parser_args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "corpus.txt" in err
    args.func = interrupted
    assert main(parser_args) == 130
    assert "interrupted; finished work is kept" in capsys.readouterr().err


class _FixedParser:
    def __init__(self, args):
        self.args = args

    def parse_args(self, argv):
        return self.args


def test_extract_skip_empty_lines_flag(tiny_models, tmp_path, capsys):
    corpus = tmp_path / "gaps.txt"
    corpus.write_text("the cat sat\n\non the mat\n", encoding="utf-8")
    command = ["extract", str(tiny_models["bert"]), "--corpus", str(corpus), "--store", str(tmp_path / "s"), "--quiet"]
    assert main(command) == 1
    assert "line 2 is empty" in capsys.readouterr().err
    assert main([*command, "--skip-empty-lines"]) == 0
    (entry,) = ActivationStore(tmp_path / "s").entries()
    assert entry.n_sentences == 2


def fake_hub_cache(root: Path, repo_id: str, folder: Path, weights: bool = True) -> Path:
    """A Hugging Face hub cache holding `folder`'s files as the one snapshot of `repo_id` (no network)."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        if weights or not file.name.endswith(".safetensors"):
            shutil.copy(file, snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def test_run_takes_a_hub_id_from_the_local_cache_offline(tiny_models, corpus_file, tmp_path):
    import os
    import subprocess
    import sys

    cache = fake_hub_cache(tmp_path / "hub", "reprsim-tests/tiny-bert", tiny_models["bert"])
    fake_hub_cache(cache, "reprsim-tests/config-only", tiny_models["bert"], weights=False)
    config = tmp_path / "study.yaml"
    study = f"corpus: {{source: {corpus_file}, max_sentences: 10}}\ncompare: {{measures: [linear_cka]}}\nmodels:\n"
    config.write_text(study + "  - {name: bert, model: reprsim-tests/tiny-bert}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    command = [sys.executable, "-m", "reprsim", "run", str(config), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ResultTable.load(tmp_path / "reprsim-out" / "results.parquet").models() == ["bert"]
    config.write_text(study + "  - {name: bert, model: reprsim-tests/config-only}\n")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "'reprsim-tests/config-only': the local Hugging Face cache has its config.json but no weights" in done.stderr


def test_the_report_names_the_command_that_made_it(tmp_path, capsys):
    from reprsim.cli import main
    from reprsim.results import ResultTable

    rows = [{"model_a": a, "layer_a": la, "model_b": b, "layer_b": lb, "measure": "linear_cka", "direction": "sym",
             "value": 1.0 if (a, la) == (b, lb) else 0.5, "level": "representation", "n_rows": 10, "subsample": False}
            for a, la, b, lb in [("m1", 0, "m1", 0), ("m1", 0, "m2", 0), ("m2", 0, "m2", 0)]]
    ResultTable.from_records(rows).save(tmp_path / "res.parquet")
    assert main(["report", str(tmp_path / "res.parquet"), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    page = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert f"reprsim report {tmp_path / 'res.parquet'} --out {tmp_path / 'rep'} --quiet" in page
