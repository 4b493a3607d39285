"""Tests of the validation suite: seeded training, layer identification, component deletion, study findings.

References are written here independently: a numpy linear CKA from its textbook formula, plain loops over
layer pairs, eigenvalues of covariance matrices, scipy's Spearman correlation.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from reprsim.cli import main
from reprsim.results import ResultTable
from reprsim.validation import (
    LMConfig,
    MLPConfig,
    MLPSetting,
    StudyDesign,
    ValidationConfig,
    cross_seed_table,
    delete_components,
    deletion_curves,
    deterministic_torch,
    identification_accuracy,
    identification_hits,
    load_digits_split,
    representation_measures,
    run_validation,
    same_layer_similarity,
    split_lm_sentences,
    study_findings,
    train_digits_mlp,
    train_word_lm,
    write_outputs,
)
from reprsim.validation.findings import finetuning_trend
from reprsim.validation.seeds import best_match_is_same_depth
from reprsim.validation.sensitivity import (
    deletion_counts,
    principal_components,
    spearman_with_k,
    variance_removed,
)

SMALL_MLP = MLPConfig(hidden_layers=3, width=32, epochs=15)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def numpy_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook linear CKA: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    xc = x.astype(np.float64) - x.mean(0)
    yc = y.astype(np.float64) - y.mean(0)
    return float(np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(SMALL_MLP.test_fraction, SMALL_MLP.split_seed)


@pytest.fixture(scope="module")
def mlp_networks(digits):
    return [train_digits_mlp(digits, SMALL_MLP, seed, threads=1, progress=False) for seed in (0, 1, 2)]


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_weights_and_another_seed_does_not(digits, mlp_networks):
    again = train_digits_mlp(digits, SMALL_MLP, 0, threads=1, progress=False)
    first = mlp_networks[0]
    assert first.state.keys() == again.state.keys()
    for name, tensor in first.state.items():
        assert torch.equal(tensor, again.state[name]), name
    for layer, layer_again in zip(first.layers, again.layers, strict=True):
        np.testing.assert_array_equal(layer, layer_again)
    other = mlp_networks[1]
    assert not torch.equal(first.state["hidden.0.0.weight"], other.state["hidden.0.0.weight"])


def test_language_model_training_is_deterministic():
    words = "the cat sat on the mat and the dog sat on the log".split()
    sentences = [words[i % 5 :] + words[: i % 5] for i in range(40)]
    config = LMConfig(n_layers=2, d_model=16, n_heads=2, epochs=1, batch_size=8, heldout_sentences=5)
    data = split_lm_sentences(sentences, config)
    a = train_word_lm(data, config, 3, threads=1, progress=False)
    b = train_word_lm(data, config, 3, threads=1, progress=False)
    for name, tensor in a.state.items():
        assert torch.equal(tensor, b.state[name]), name
    # Layers 0..L, one row per held-out word.
    assert a.layer_ids == [0, 1, 2]
    assert a.layers[0].shape == (sum(len(s) for s in data.heldout), 16)
    assert math.isfinite(a.metric) and a.metric > 1.0


def test_deterministic_context_restores_caller_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    with deterministic_torch(seed=7, threads=threads + 1):
        torch.rand(5)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.get_num_threads() == threads + 1
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)


def test_heldout_split_is_disjoint_and_vocabulary_is_from_training_only():
    sentences = [[f"w{i}", "shared", f"w{i}"] for i in range(30)]
    config = LMConfig(heldout_sentences=10, min_count=1)
    data = split_lm_sentences(sentences, config)
    assert len(data.train) == 20 and len(data.heldout) == 10
    heldout_words = {w for ids in data.heldout for w in ids}
    # Words unique to held-out sentences are unknown (id 1); only "shared" is known in them.
    assert heldout_words == {1, data.vocab.index["shared"]}


# ---------------------------------------------------------------------------------------------------------
# Section 1: layer identification
# ---------------------------------------------------------------------------------------------------------


def test_linear_cka_identifies_corresponding_layers_far_above_chance(mlp_networks):
    specs = representation_measures(names=["linear_cka", "r2_lr"])
    table = cross_seed_table(mlp_networks, specs, progress=False)
    hits = identification_hits(table, {s.label: s.larger_is_similar for s in specs}, "digits")
    accuracy = identification_accuracy(hits, [s.label for s in specs]).set_index("measure")

    # Independent reference: plain loops over ordered network pairs with a numpy CKA.
    reference_hits = []
    for a, b in itertools.permutations(mlp_networks, 2):
        for i, x in enumerate(a.layers):
            scores = [numpy_linear_cka(x, y) for y in b.layers]
            others = [s for j, s in enumerate(scores) if j != i]
            reference_hits.append(scores[i] > max(others))
    reference = 100.0 * np.mean(reference_hits)

    n_layers = SMALL_MLP.hidden_layers
    assert accuracy.loc["linear_cka", "chance"] == pytest.approx(100.0 / n_layers)
    assert accuracy.loc["linear_cka", "n_trials"] == 3 * 2 * n_layers
    assert accuracy.loc["linear_cka", "accuracy"] == pytest.approx(reference)
    assert accuracy.loc["linear_cka", "accuracy"] >= 80.0
    assert accuracy.loc["linear_cka", "paper_accuracy"] == 99.3
    assert accuracy.loc["r2_lr", "paper_accuracy"] == 45.4


def test_directed_measures_are_symmetrised_and_ties_are_misses():
    # Two models, two layers, one directed measure: sim(a0 -> b1) is large, but the reverse direction
    # favours the diagonal strongly, so S + S^T picks the diagonal.
    forward = {(0, 0): 0.5, (0, 1): 0.6, (1, 0): 0.1, (1, 1): 0.9}
    backward = {(0, 0): 0.9, (0, 1): 0.1, (1, 0): 0.2, (1, 1): 0.9}  # keys: (layer of b, layer of a)
    rows = [("a", i, "b", j, "m", "a->b", v) for (i, j), v in forward.items()] + [
        ("b", j, "a", i, "m", "a->b", v) for (j, i), v in backward.items()
    ]
    rows += [("a", i, "b", j, "flat", "sym", 1.0) for i in (0, 1) for j in (0, 1)]
    frame = pd.DataFrame(rows, columns=["model_a", "layer_a", "model_b", "layer_b", "measure", "direction", "value"])
    table = ResultTable(frame.assign(level="representation", n_rows=10, subsample=False))
    hits = identification_hits(table, {"m": True, "flat": True}, "toy")
    m = hits[hits["measure"] == "m"].set_index(["model", "layer"])
    # a0: S+S^T row = [0.5+0.9, 0.6+0.2] -> layer 0 (hit); plain forward argmax would have said layer 1.
    assert m.loc[("a", 0), "best_layer"] == 0 and m.loc[("a", 0), "hit"]
    assert m.loc[("a", 1), "hit"]
    # A measure that scores every pair the same identifies nothing.
    assert not hits[hits["measure"] == "flat"]["hit"].any()


def test_best_match_orients_distances():
    scores = np.array([[0.1, 0.5], [0.4, 0.2]])
    best, hit = best_match_is_same_depth(scores, larger_is_similar=False)
    assert best.tolist() == [0, 1] and hit.tolist() == [True, True]
    best, hit = best_match_is_same_depth(scores, larger_is_similar=True)
    assert best.tolist() == [1, 0] and hit.tolist() == [False, False]


def test_noise_floor_is_the_mean_same_layer_value_over_network_pairs(mlp_networks):
    specs = representation_measures(names=["linear_cka"])
    table = cross_seed_table(mlp_networks, specs, progress=False)
    floor = same_layer_similarity(table, "digits").set_index("layer")
    for layer in range(SMALL_MLP.hidden_layers):
        values = [
            numpy_linear_cka(a.layers[layer], b.layers[layer]) for a, b in itertools.combinations(mlp_networks, 2)
        ]
        assert floor.loc[layer + 1, "mean"] == pytest.approx(np.mean(values), rel=1e-6)
        assert floor.loc[layer + 1, "n"] == 3


# ---------------------------------------------------------------------------------------------------------
# Section 2: deleting principal components
# ---------------------------------------------------------------------------------------------------------


def test_deleting_components_removes_exactly_those_variances():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6)) @ np.diag([5.0, 4.0, 3.0, 2.0, 1.0, 0.5]) + 3.0
    eig = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    pcs = principal_components(x)
    top = delete_components(x, pcs, 2, "top")
    bottom = delete_components(x, pcs, 2, "bottom")
    left_top = np.sort(np.linalg.eigvalsh(np.cov(top, rowvar=False)))[::-1]
    left_bottom = np.sort(np.linalg.eigvalsh(np.cov(bottom, rowvar=False)))[::-1]
    np.testing.assert_allclose(left_top[:4], eig[2:], rtol=1e-8)
    np.testing.assert_allclose(left_bottom[:4], eig[:4], rtol=1e-8)
    np.testing.assert_allclose(top.mean(0), x.mean(0), atol=1e-10)  # the means stay
    np.testing.assert_array_equal(delete_components(x, pcs, 0, "top"), x)
    assert variance_removed(pcs, 2, "top") == pytest.approx(eig[:2].sum() / eig.sum())
    with pytest.raises(ValueError, match="k must be in"):
        delete_components(x, pcs, 6, "top")


def test_deletion_grid_spans_both_ends():
    grid = deletion_counts(64, 8)
    assert grid == sorted(set(grid))
    assert grid[:2] == [0, 1] and grid[-1] == 63  # intact, one component gone, all but one gone
    assert grid[-2] >= 57  # dense near the end, where deleting bottom components starts to matter


def test_linear_cka_falls_monotonically_as_top_components_are_deleted(mlp_networks):
    specs = representation_measures(names=["linear_cka", "cca_rho", "r2_lr"])
    curves = deletion_curves(mlp_networks[0], specs, ("top", "bottom"), n_points=8, progress=False)
    cka = curves[(curves["measure"] == "linear_cka") & (curves["order"] == "top")]
    for layer, curve in cka.groupby("layer"):
        curve = curve.sort_values("k")
        assert spearman_with_k(curve["k"], curve["value"]) <= -0.9
        # Closed form for top deletion: CKA = sqrt(sum_{i>k} lambda_i^2 / sum_i lambda_i^2).
        lam = np.sort(np.linalg.eigvalsh(np.cov(mlp_networks[0].layers[layer - 1].astype(np.float64), rowvar=False)))
        lam = lam[::-1][lam[::-1] > 1e-12 * lam.max()]  # the code keeps singular values > 1e-6 s_max
        expected = [math.sqrt((lam[k:] ** 2).sum() / (lam**2).sum()) for k in curve["k"]]
        np.testing.assert_allclose(curve["value"], expected, rtol=1e-5, atol=1e-9)
    # The damaged layer lies inside the intact one's span, so every canonical correlation stays 1: CCA
    # cannot see the deletion (checked away from the last components, where rank decisions get numerical).
    # Directed measures are reported as sim(intact -> damaged): R2_LR is then the variance left.
    r2 = curves[curves["measure"] == "r2_lr"]
    np.testing.assert_allclose(r2["value"], 1.0 - r2["variance_removed"], atol=1e-6)
    cca = curves[(curves["measure"] == "cca_rho") & (curves["order"] == "top")]
    rank = cca.groupby("layer")["k"].transform("max") + 1
    early = cca[cca["k"] <= rank / 2]
    assert len(early) > len(cca) / 2
    np.testing.assert_allclose(early["value"], 1.0, atol=1e-6)


def test_spearman_with_k_matches_scipy_and_ignores_rounding_jitter():
    k = [0, 1, 2, 3, 4]
    values = [1.0, 0.8, 0.85, 0.3, 0.1]
    assert spearman_with_k(k, values) == pytest.approx(spearmanr(k, values).statistic)
    assert math.isnan(spearman_with_k(k, [1.0, 1.0 - 1e-15, 1.0, 1.0 + 1e-15, 1.0]))


# ---------------------------------------------------------------------------------------------------------
# End to end and CLI
# ---------------------------------------------------------------------------------------------------------


def test_run_and_write_outputs(tmp_path):
    config = ValidationConfig(
        preset="test",
        seeds=(0, 1),
        settings=(MLPSetting("tiny-mlp", MLPConfig(hidden_layers=2, width=16, epochs=3)),),
        measures=("linear_cka", "maxsim", "rbf_cka"),
        max_rows=200,
        deletion_points=4,
        threads=1,
    )
    result = run_validation(config, progress=False, log=lambda _: None)
    labels = ["linear_cka", "maxsim", "rbf_cka (t=0.4)", "rbf_cka (t=0.8)"]
    assert result.accuracy["measure"].tolist() == labels
    # 2 networks x 2 layers matched in each other, per measure.
    assert (result.accuracy["n_trials"] == 4).all()
    assert set(result.sensitivity["order"]) == {"top", "bottom"}
    paths = write_outputs(result, tmp_path)
    names = {p.name for p in paths}
    assert {"identification_accuracy.csv", "validation.md", "identification_accuracy.png"} <= names
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    text = (tmp_path / "validation.md").read_text()
    assert "| rbf_cka (t=0.8) |" in text and "99.3" in text
    reread = pd.read_csv(tmp_path / "identification_accuracy.csv")
    assert reread["accuracy"].tolist() == pytest.approx(result.accuracy["accuracy"].tolist())


def test_cli_rejects_a_missing_study_file(tmp_path, capsys):
    code = main(["validate", "--preset", "smoke", "--out", str(tmp_path), "--study", str(tmp_path / "nope.csv")])
    assert code == 1
    assert "nope.csv" in capsys.readouterr().err


def test_presets_are_within_their_budgets():
    quick = ValidationConfig.preset_named("quick")
    full = ValidationConfig.preset_named("full")
    assert len(full.seeds) >= 5 and len(quick.seeds) < len(full.seeds)
    with pytest.raises(ValueError, match="unknown preset"):
        ValidationConfig.preset_named("huge")


# ---------------------------------------------------------------------------------------------------------
# Section 3: findings on a synthetic study table
# ---------------------------------------------------------------------------------------------------------


def synthetic_study() -> tuple[pd.DataFrame, dict[tuple[str, str], float]]:
    """Five models with two layers each; layer pair values are a per-model-pair constant (plus a layer
    bonus on the diagonal), so model-to-model values are known in closed form."""
    base = {
        ("bert", "roberta"): 0.8,
        ("bert", "gpt2"): 0.5,
        ("roberta", "gpt2"): 0.4,
        ("bert-random", "bert"): 0.2,
        ("bert-random", "roberta"): 0.15,
        ("bert-random", "gpt2"): 0.1,
        ("bert-sst2", "bert"): 0.9,
        ("bert-sst2", "roberta"): 0.7,
        ("bert-sst2", "gpt2"): 0.45,
        ("bert-sst2", "bert-random"): 0.2,
    }
    rows = []
    for (a, b), v in base.items():
        for la, lb in itertools.product((0, 1), (0, 1)):
            bonus = 0.05 if la == lb else 0.0
            # cka: symmetric; maxsim: directed with an a/b asymmetry that cancels in the symmetrised mean;
            # dist: a distance ranking pairs in reverse.
            rows.append((a, la, b, lb, "linear_cka", "sym", v + bonus))
            rows.append((a, la, b, lb, "maxsim", "a->b", v + bonus + 0.01))
            rows.append((b, lb, a, la, "maxsim", "a->b", v + bonus - 0.01))
            rows.append((a, la, b, lb, "procrustes_distance", "sym", 2.0 - 2.0 * (v + bonus)))
    frame = pd.DataFrame(rows, columns=["model_a", "layer_a", "model_b", "layer_b", "measure", "direction", "value"])
    return frame, base


def test_study_findings_on_a_synthetic_table():
    frame, base = synthetic_study()
    design = StudyDesign(
        families={"bert": "encoder", "roberta": "encoder", "gpt2": "decoder", "bert-sst2": "encoder"},
        random_controls={"bert-random": "bert"},
        finetuned={"bert-sst2": "bert"},
    )
    findings = study_findings(frame, design)

    def pair(a: str, b: str) -> float:
        return base.get((a, b), base.get((b, a), float("nan")))

    # Model-to-model: every layer's best match carries the diagonal bonus.
    cka = findings.model_similarity[findings.model_similarity["measure"] == "linear_cka"]
    got = {(a, b): v for a, b, v in zip(cka["model_a"], cka["model_b"], cka["symmetric"], strict=True)}
    assert got[("bert", "gpt2")] == pytest.approx(0.55)

    fam = findings.families.set_index("measure")
    real = ["bert", "roberta", "gpt2"]  # the fine-tuned copy of bert is no family member of its own
    within = [pair(a, b) + 0.05 for a, b in itertools.combinations(real, 2) if "gpt2" not in (a, b)]
    across = [pair(a, b) + 0.05 for a, b in itertools.combinations(real, 2) if "gpt2" in (a, b)]
    assert fam.loc["linear_cka", "within_mean"] == pytest.approx(np.mean(within))
    assert fam.loc["linear_cka", "across_mean"] == pytest.approx(np.mean(across))
    assert fam["within_more_similar"].all()  # the distance too, once oriented

    controls = findings.controls[findings.controls["measure"] == "linear_cka"].set_index("other")
    assert set(controls.index) == {"roberta", "gpt2"}  # not bert itself, not its fine-tuned copy
    assert controls.loc["gpt2", "control_value"] == pytest.approx(0.15)
    assert controls.loc["gpt2", "real_value"] == pytest.approx(0.55)
    assert findings.controls["control_less_similar"].all()

    # Divergence: Spearman over the 3 pairs of bert, roberta, gpt2; all three measures rank pairs identically.
    div = findings.divergence.set_index(["measure_a", "measure_b"])
    assert div.loc[("linear_cka", "procrustes_distance"), "n_pairs"] == 3
    assert div["spearman"].to_numpy() == pytest.approx(1.0)

    tuned = findings.finetuning[findings.finetuning["measure"] == "linear_cka"]
    assert tuned["layer"].tolist() == [0, 1]
    assert tuned["value"].to_numpy() == pytest.approx([0.95, 0.95])
    maxsim = findings.finetuning[findings.finetuning["measure"] == "maxsim"]
    assert maxsim["value"].to_numpy() == pytest.approx([0.96, 0.96])  # sim(fine-tuned -> base)


def test_finetuning_trend_reads_depth_from_similarity_or_distance():
    layers = [0, 1, 2, 3]
    rows = []
    for layer in layers:
        rows.append(("bert-sst2", "bert", layer, "linear_cka", "representation", 1.0 - 0.1 * layer))
        rows.append(("bert-sst2", "bert", layer, "procrustes_distance", "representation", 0.1 * layer))
        rows.append(("bert-sst2", "bert", layer, "maxsim", "representation", [0.5, 0.9, 0.7, 0.95][layer]))
    frame = pd.DataFrame(rows, columns=["model", "base", "layer", "measure", "level", "value"])
    trend = finetuning_trend(frame, {"linear_cka": True, "procrustes_distance": False, "maxsim": True}).set_index(
        "measure"
    )
    # Similarity falling and distance rising with depth both mean "higher layers changed more".
    assert trend.loc["linear_cka", "spearman"] == pytest.approx(-1.0)
    assert trend.loc["procrustes_distance", "spearman"] == pytest.approx(-1.0)
    assert trend.loc[["linear_cka", "procrustes_distance"], "higher_layers_change_more"].all()
    # maxsim ranks 0.5 < 0.7 < 0.9 < 0.95 at layers 0, 2, 1, 3: Spearman 0.8 by the textbook formula.
    d = np.array([1, 3, 2, 4]) - np.array([1, 2, 3, 4])
    assert trend.loc["maxsim", "spearman"] == pytest.approx(1 - 6 * (d**2).sum() / (4 * (16 - 1)))
    assert not trend.loc["maxsim", "higher_layers_change_more"]
    assert trend.loc["linear_cka", "first_layer"] == 1.0 and trend.loc["linear_cka", "last_layer"] == pytest.approx(0.7)


def test_fine_tuned_models_need_no_family():
    frame, _ = synthetic_study()
    design = StudyDesign(
        families={"bert": "encoder", "roberta": "encoder", "gpt2": "decoder"},
        random_controls={"bert-random": "bert"},
        finetuned={"bert-sst2": "bert"},
    )
    findings = study_findings(frame, design)
    assert (findings.families["within_pairs"] == 1).all() and (findings.families["across_pairs"] == 2).all()


def test_study_design_errors_name_the_problem(tmp_path):
    frame, _ = synthetic_study()
    with pytest.raises(KeyError, match="xlnet"):
        study_findings(frame, StudyDesign(finetuned={"xlnet": "bert"}))
    with pytest.raises(ValueError, match="no family given"):
        study_findings(frame, StudyDesign(families={"bert": "encoder"}))
    path = tmp_path / "design.yaml"
    path.write_text("families: {bert: encoder}\nextra: 1\n")
    with pytest.raises(ValueError, match="extra"):
        StudyDesign.from_yaml(path)
