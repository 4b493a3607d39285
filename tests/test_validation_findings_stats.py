"""Section 3's findings with intervals and p-values, checked against loops over the layer pairs' replicates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from reprsim.results import ResultTable
from reprsim.validation import StudyDesign, study_findings
from reprsim.validation.findings_report import findings_markdown
from reprsim.validation.findings_stats import oriented_statistics, slope

MODELS = ["enc1", "enc2", "dec", "enc1-random", "enc1-ft"]
LAYERS = [0, 1, 2, 3]
DESIGN = StudyDesign(families={"enc1": "encoder", "enc2": "encoder", "dec": "decoder"},
                     random_controls={"enc1-random": "enc1"}, finetuned={"enc1-ft": "enc1"})
ALPHA = 0.05
LEVEL = {("enc1", "enc2"): 0.8, ("enc1", "dec"): 0.5, ("enc2", "dec"): 0.45, ("enc1-random", "enc1"): 0.2,
         ("enc1-random", "enc2"): 0.15, ("enc1-random", "dec"): 0.12, ("enc1-ft", "enc1"): 0.9,
         ("enc1-ft", "enc2"): 0.7, ("enc1-ft", "dec"): 0.4, ("enc1-ft", "enc1-random"): 0.2}


def pair_level(a: str, b: str) -> float:
    return 1.0 if a == b else LEVEL.get((a, b), LEVEL.get((b, a), 0.3))


def build(kind: str, seed: int = 0) -> tuple[ResultTable, dict]:
    """Symmetric linear_cka and a procrustes_distance, every row with its own noisy replicates.

    The fine-tuned model's same-layer similarity to its base falls with depth (0.95 - 0.05 l).
    """
    rng = np.random.default_rng(seed)
    r = 12 if kind == "jackknife" else 60
    ids = [(m, layer) for m in MODELS for layer in LAYERS]
    rows, reps = [], {}
    for i, a in enumerate(ids):
        for b in ids[i:]:
            base = pair_level(a[0], b[0]) - 0.03 * abs(a[1] - b[1])
            if {a[0], b[0]} == {"enc1-ft", "enc1"} and a[1] == b[1]:
                base = 0.95 - 0.05 * a[1]
            for measure, v in (("linear_cka", base), ("procrustes_distance", 2 - 2 * base)):
                rep = v + rng.normal(0, 0.01, r) if a != b else np.full(r, v)
                reps[(measure, a, b)] = reps[(measure, b, a)] = rep
                rows.append({"model_a": a[0], "layer_a": a[1], "model_b": b[0], "layer_b": b[1], "measure": measure,
                             "direction": "sym", "value": v, "level": "representation", "n_rows": 400,
                             "subsample": False, "se": float(rep.std()), "ci_low": v - 0.1, "ci_high": v + 0.1,
                             "replicates": rep, "replicate_kind": kind})
    options = {"ci": kind, "null": "none", "blocks": 12, "resamples": r, "permutations": 0, "alpha": ALPHA}
    return ResultTable.from_records(rows, {"inference": {"options": options}}), reps


def brute_model_value(reps: dict, measure: str, a: str, b: str, larger: bool) -> np.ndarray:
    """(R,) replicates of the symmetric model-to-model value by loops: mean over layers of the best match."""
    best = max if larger else min

    def directed(x, y):
        return np.array([[best(reps[(measure, (x, i), (y, j))][k] for j in LAYERS) for i in LAYERS]
                         for k in range(len(reps[(measure, (x, 0), (y, 0))]))]).mean(axis=1)

    return (directed(a, b) + directed(b, a)) / 2


def brute_p_and_interval(value: float, replicates: np.ndarray, kind: str) -> tuple[float, float, float]:
    if kind == "jackknife":
        g = replicates.size
        se = math.sqrt((g - 1) / g * ((replicates - replicates.mean()) ** 2).sum())
        half = stats.t.ppf(1 - ALPHA / 2, g - 1) * se
        return 2 * stats.t.sf(abs(value) / se, g - 1), value - half, value + half
    b = replicates.size
    p = min(1.0, 2 * min((1 + (replicates <= 0).sum()) / (b + 1), (1 + (replicates >= 0).sum()) / (b + 1)))
    low, high = np.quantile(replicates, [ALPHA / 2, 1 - ALPHA / 2])
    return p, low, high


@pytest.mark.parametrize("kind", ["jackknife", "bootstrap"])
def test_family_and_control_statistics_follow_the_replicates(kind):
    table, reps = build(kind)
    findings = study_findings(table, DESIGN)
    for measure, larger in (("linear_cka", True), ("procrustes_distance", False)):
        sign = 1.0 if larger else -1.0
        family = findings.families.set_index("measure").loc[measure]
        within = [("enc1", "enc2")]
        across = [("enc1", "dec"), ("enc2", "dec")]
        value = sign * (family["within_mean"] - family["across_mean"])
        replicates = sign * (np.mean([brute_model_value(reps, measure, *p, larger) for p in within], axis=0)
                             - np.mean([brute_model_value(reps, measure, *p, larger) for p in across], axis=0))
        p, low, high = brute_p_and_interval(value, replicates, kind)
        assert family["difference"] == pytest.approx(value)
        assert family["p_value"] == pytest.approx(p, rel=1e-9)
        assert (family["ci_low"], family["ci_high"]) == pytest.approx((low, high), rel=1e-9)
        assert family["significant"] == (value > 0 and p <= ALPHA)

        controls = findings.controls[findings.controls["measure"] == measure].set_index("other")
        for other in ("enc2", "dec"):
            row = controls.loc[other]
            reps_diff = sign * (brute_model_value(reps, measure, "enc1", other, larger)
                                - brute_model_value(reps, measure, "enc1-random", other, larger))
            value = sign * (row["real_value"] - row["control_value"])
            p, low, high = brute_p_and_interval(value, reps_diff, kind)
            assert row["difference"] == pytest.approx(value)
            assert row["p_value"] == pytest.approx(p, rel=1e-9)
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)
            assert row["significant"]  # 0.8 vs 0.15: far beyond the 0.01 noise


@pytest.mark.parametrize("kind", ["jackknife", "bootstrap"])
def test_finetuning_trend_slope_and_its_replicates(kind):
    table, reps = build(kind)
    trend = study_findings(table, DESIGN).finetuning_trend.set_index(["model", "measure"])
    x = np.array(LAYERS, dtype=float)
    for measure, sign in (("linear_cka", 1.0), ("procrustes_distance", -1.0)):
        row = trend.loc[("enc1-ft", measure)]
        values = np.array([table.value(measure, ("enc1-ft", layer), ("enc1", layer)) for layer in LAYERS])
        expected = -np.polyfit(x, sign * values, 1)[0]
        per_layer = np.array([reps[(measure, ("enc1-ft", layer), ("enc1", layer))] for layer in LAYERS])
        replicates = np.array([-np.polyfit(x, sign * per_layer[:, k], 1)[0] for k in range(per_layer.shape[1])])
        p, low, high = brute_p_and_interval(expected, replicates, kind)
        assert row["slope"] == pytest.approx(expected)
        assert expected == pytest.approx(0.05 * (1 if sign > 0 else 2))  # built to fall by 0.05 a layer
        assert row["p_value"] == pytest.approx(p, rel=1e-9)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)
        assert row["significant"] and row["higher_layers_change_more"]


def test_a_null_finding_is_not_significant_at_about_alpha():
    """Differences of pure noise: the jackknife t-test rejects at about its level (binomial bound)."""
    rng = np.random.default_rng(5)
    g, trials = 20, 2000
    rejected = 0
    for _ in range(trials):
        # A mean of G independent block contributions: its exact leave-one-out values.
        blocks = rng.normal(0, 1, g)
        value = blocks.mean()
        loo = (blocks.sum() - blocks) / (g - 1)
        found = oriented_statistics(value, loo, "jackknife", ALPHA)
        rejected += found["p_value"] <= ALPHA
    rate = rejected / trials
    assert abs(rate - ALPHA) < 4 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


def test_without_replicates_every_statistic_is_missing_and_nothing_is_significant():
    table, _ = build("jackknife")
    plain = table.frame[["model_a", "layer_a", "model_b", "layer_b", "measure", "direction", "value"]]
    findings = study_findings(plain, DESIGN)
    for frame in (findings.families, findings.controls, findings.finetuning_trend):
        assert frame["p_value"].isna().all() and not frame["significant"].any()
    assert findings.families["difference"].notna().all()  # the point contrast is still there
    text = findings_markdown(findings)
    assert "not significant" not in text and "| yes |" in text


def test_markdown_states_interval_and_p_or_not_significant():
    table, _ = build("jackknife")
    findings = study_findings(table, DESIGN)
    text = findings_markdown(findings)
    family = findings.families.set_index("measure").loc["linear_cka"]
    assert f"yes ({family['difference']:.3f} [{family['ci_low']:.3f}, {family['ci_high']:.3f}], p = " in text
    weak = findings.families.copy()
    weak["significant"] = False
    weak["p_value"] = 0.4
    shown = findings_markdown(type(findings)(**{**findings.__dict__, "families": weak}))
    assert "yes, not significant (p = 0.4)" in shown


def test_slope_matches_polyfit():
    rng = np.random.default_rng(1)
    x = np.array([0.0, 2.0, 5.0, 6.0])
    y = rng.normal(size=(7, 4))
    assert slope(x, y) == pytest.approx([np.polyfit(x, row, 1)[0] for row in y])


def test_controls_pair_every_other_family_model():
    table, _ = build("jackknife")
    controls = study_findings(table, DESIGN).controls
    assert set(itertools.product(["linear_cka", "procrustes_distance"], ["enc2", "dec"])) == set(
        zip(controls["measure"], controls["other"], strict=True))
