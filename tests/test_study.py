"""Study config validation: every error names the key and what is allowed."""

from pathlib import Path

import pytest

from reprsim.study import StudyConfigError, load_study, parse_study

BASE = Path("/tmp/study-base")


def test_minimal_config_fills_defaults():
    study = parse_study({"models": ["minilm", {"name": "ctrl", "model": "minilm-random"}]}, BASE)
    assert [m.name for m in study.models] == ["minilm", "ctrl"]
    assert study.models[1].model == "minilm-random"
    assert study.corpus.source == "builtin"
    assert study.extraction.subword == "last"
    assert study.compare.measures == ["all"]
    assert study.store == BASE / "reprsim-out" / "store"
    assert study.results == BASE / "reprsim-out" / "results.parquet"
    assert study.report == BASE / "reprsim-out" / "report"


def test_full_config_round_trip(tmp_path):
    text = """
name: demo
corpus: {source: builtin, max_sentences: 100, max_words: 30}
models:
  - {name: A, model: minilm, layers: [0, 2, 4]}
  - {name: B, model: minilm-random}
extraction: {subword: mean, attention: false, batch_size: 8, dtype: float16}
compare: {measures: [linear_cka, maxsim], subsample_rows: 500}
finetuning: {base: A, finetuned: B}
output: {dir: out, report: false}
"""
    (tmp_path / "study.yaml").write_text(text)
    study = load_study(tmp_path / "study.yaml")
    assert study.corpus.max_sentences == 100 and study.corpus.max_words == 30
    assert study.models[0].layers == [0, 2, 4] and study.models[1].layers is None
    assert study.extraction.subword == "mean" and study.extraction.attention is False
    assert study.compare.measures == ["linear_cka", "maxsim"]
    assert study.finetuning[0].base == "A" and study.finetuning[0].finetuned == ["B"]
    assert study.store == tmp_path / "out" / "store"
    assert study.report is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"models": ["a"], "colour": 1}, "`colour`: unknown key; allowed: compare, corpus"),
        ({}, "`models`: is required"),
        ({"models": []}, "`models`: must be a non-empty list"),
        ({"models": [{"name": "x"}]}, "`models[0].model`: is required"),
        ({"models": ["a", "a"]}, "two models are named 'a'"),
        ({"models": ["a"], "extraction": {"subword": "middle"}}, "`extraction.subword`: 'middle' is not allowed; "
         "choose one of first, last, mean"),
        ({"models": ["a"], "extraction": {"batch_size": 0}}, "`extraction.batch_size`: must be at least 1"),
        ({"models": ["a"], "extraction": {"batch_size": True}}, "`extraction.batch_size`: must be int"),
        ({"models": ["a"], "extraction": {"layers": [-1]}}, "`extraction.layers`: must be 'all' or a list"),
        ({"models": ["a"], "extraction": {"atention": True}}, "`extraction.atention`: unknown key"),
        ({"models": ["a"], "corpus": {"max_sentences": "many"}}, "`corpus.max_sentences`: must be int"),
        ({"models": ["a"], "finetuning": {"base": "a", "finetuned": ["zz"]}}, "'zz' is not one of the study's"),
        ({"models": ["a"], "compare": {"jackknife": "fast"}}, "`compare.jackknife`: 'fast' is not allowed; "
         "choose one of exact, linearised"),
        ({"models": ["a"], "compare": {"space": "sample"}}, "`compare.space`: 'sample' is not allowed; "
         "choose one of auto, feature, gram"),
        ({"models": ["a"], "compare": {"precision": "half"}}, "`compare.precision`: 'half' is not allowed; "
         "choose one of auto, float32, float64"),
    ],
)
def test_errors_name_the_key(raw, fragment):
    with pytest.raises(StudyConfigError) as info:
        parse_study(raw, BASE)
    assert fragment in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="study config not found"):
        load_study(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("models: [a\n")
    with pytest.raises(StudyConfigError, match="not valid YAML"):
        load_study(tmp_path / "bad.yaml")


def test_a_relative_corpus_path_is_found_beside_the_study_file(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "sentences.txt").write_text("a b\n", encoding="utf-8")
    (folder / "s.yaml").write_text("models: [{name: m, model: minilm}]\ncorpus: {source: sentences.txt}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    study = load_study(folder / "s.yaml")
    assert Path(study.corpus.source) == folder / "sentences.txt"
    assert study.results.parent == folder / "reprsim-out"  # outputs too
    (elsewhere / "here.txt").write_text("c d\n", encoding="utf-8")  # found only from the current folder
    (folder / "t.yaml").write_text("models: [{name: m, model: minilm}]\ncorpus: {source: here.txt}\n")
    assert load_study(folder / "t.yaml").corpus.source == "here.txt"


def test_study_measures_take_specs_with_options() -> None:
    from reprsim.study import _compare

    assert _compare({"measures": ["rbf_cka(t=0.4)", "svcca(convention=wu, keep=0.9)", "all"]}).measures == [
        "rbf_cka(t=0.4)", "svcca(convention=wu, keep=0.9)", "all"]
    with pytest.raises(ValueError, match=r"compare.measures.*has no option 'q'"):
        _compare({"measures": ["rbf_cka(q=1)"]})
    with pytest.raises(ValueError, match=r"compare.measures.*unknown measure 'cka_linear'"):
        _compare({"measures": ["cka_linear"]})


def test_cli_measure_lists_keep_commas_inside_a_spec() -> None:
    from reprsim.cli.compare import split_names

    assert split_names("svcca(keep=0.9, convention=wu),linear_cka, rsa,") == [
        "svcca(keep=0.9, convention=wu)", "linear_cka", "rsa"]


def test_the_null_key_reads_as_written_though_yaml_reads_it_as_none(tmp_path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text("name: s\ncorpus: builtin\nmodels: [{name: m, model: minilm}]\n"
                     "compare: {ci: jackknife, null: analytic, blocks: 6, precision: float64}\n")
    spec = load_study(study).compare
    assert (spec.ci, spec.null, spec.blocks, spec.space, spec.precision) == ("jackknife", "analytic", 6, "auto",
                                                                             "float64")
    study.write_text("name: s\ncorpus: builtin\nmodels: [{name: m, model: minilm}]\nextraction: {null: x}\n")
    with pytest.raises(StudyConfigError, match=r"`extraction\.null`: unknown key"):
        load_study(study)


@pytest.mark.parametrize("section, key", [("compare", "shards: 4"), ("compare", "address: auto"),
                                          ("extraction", "gpus_per_model: 1"), ("extraction", "corpus_shards: 2")])
def test_ray_options_without_the_ray_backend_are_refused(tmp_path, section, key) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(f"name: s\ncorpus: builtin\nmodels: [minilm]\n{section}: {{{key}}}\n")
    name = key.split(":")[0]
    with pytest.raises(StudyConfigError, match=rf"`{section}\.{name}`: applies to the Ray backend only"):
        load_study(study)
    study.write_text(f"name: s\ncorpus: builtin\nmodels: [minilm]\n{section}: {{backend: ray, {key}}}\n")
    load_study(study)
