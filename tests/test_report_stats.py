"""The report of a table with statistics: intervals in the tables, marks on the heatmaps, the note, the options."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from scipy import stats as scipy_stats

from reprsim.analysis.model_stats import ModelStat, mean_best, model_stats, paired_difference
from reprsim.inference import jackknife_summary, normal_interval, percentile_interval
from reprsim.report import write_report
from reprsim.report.curves import plot_finetune
from reprsim.report.figures import plot_block_heatmap
from reprsim.report.interval_plots import plot_model_intervals
from reprsim.report.significance import AT_CHANCE, NOT_SIGNIFICANT, CellStats, not_above_null, verdict
from reprsim.results import LayerId, ResultTable

MODELS = ["a", "b", "c"]
LAYERS = [0, 1, 2]
ALPHA = 0.05
B, K = 40, 39  # K + 1 = 40: the smallest p-value, 0.025, is below alpha
SHIFT = np.linspace(-0.02, 0.02, B)  # every pair's bootstrap replicate r is its value + SHIFT[r]
NULL_SHIFT = np.linspace(-0.3, 0.1, K)  # the at-null pairs' permutation k: value + NULL_SHIFT[k]
INFERENCE = {"options": {"ci": "bootstrap", "null": "permutation", "blocks": 10, "resamples": B, "permutations": K,
                         "alpha": ALPHA, "seed": 0},
             "methods": {"linear_cka": {"ci": "bootstrap (exact)", "null": "permutation"},
                         "maxsim": {"ci": "jackknife", "null": "analytic"}}}
AT_NULL_CKA = {("a", "c"), ("c", "a")}
AT_NULL_MAXSIM = {("b", "c"), ("c", "b")}


def value(a, b, measure):
    same = 1.0 if a[0] == b[0] else 0.6
    return round(same * np.exp(-abs(a[1] - b[1]) / 3) * (0.9 if measure == "maxsim" and a[0] < b[0] else 1.0), 6)


def rows(with_stats: bool) -> list[dict]:
    ids = [(m, layer) for m in MODELS for layer in LAYERS]
    out = []
    for measure, direction in (("linear_cka", "sym"), ("maxsim", "a->b")):
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if direction == "sym" and j < i:
                    continue
                v = value(a, b, measure)
                row = {"model_a": a[0], "layer_a": a[1], "model_b": b[0], "layer_b": b[1], "measure": measure,
                       "direction": direction, "value": v, "level": "representation", "n_rows": 500,
                       "subsample": False}
                if with_stats and measure == "linear_cka":
                    at_null = (a[0], b[0]) in AT_NULL_CKA
                    row.update(se=0.01, ci_low=v - 0.05, ci_high=v + 0.05, null_mean=0.1,
                               p_value=0.5 if at_null else 0.01, calibrated=0.0 if at_null else 0.4,
                               replicates=v + SHIFT, replicate_kind="bootstrap",
                               null_values=v + NULL_SHIFT if at_null else v - 0.5 + 0.01 * np.arange(K))
                elif with_stats:
                    reaches = (a[0], b[0]) in AT_NULL_MAXSIM
                    row.update(se=0.01, ci_low=v - 0.02, ci_high=v + 0.02, null_mean=v - 0.01 if reaches else 0.0)
                out.append(row)
    return out


@pytest.fixture(scope="module")
def stats_table() -> ResultTable:
    return ResultTable.from_records(rows(True), {"inference": INFERENCE, "corpus_hash": "feed"})


@pytest.fixture(scope="module")
def plain_table() -> ResultTable:
    return ResultTable.from_records(rows(False), {"corpus_hash": "feed"})


@pytest.fixture(scope="module")
def stats_page(stats_table, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("stats-report")
    index = write_report(stats_table, out, finetuned={"a": ["b"]}, progress=False)
    return index.read_text(encoding="utf-8"), out


@pytest.fixture(scope="module")
def plain_page(plain_table, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("plain-report")
    return write_report(plain_table, out, finetuned={"a": ["b"]}, progress=False).read_text(encoding="utf-8")


def payload(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="rs-data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1).replace("<\\/", "</"))


def section(page: str, anchor: str) -> str:
    found = re.search(rf'<section id="{anchor}".*?</section>', page, re.S)
    assert found is not None
    return found.group(0)


def expected_marks(labels: list, at_null: set) -> set:
    return {(i, j) for i, a in enumerate(labels) for j, b in enumerate(labels) if (a[0], b[0]) in at_null}


def test_heatmap_marks_are_exactly_the_cells_at_their_null(stats_page):
    data = payload(stats_page[0])["measures"]
    for measure, at_null in (("linear_cka", AT_NULL_CKA), ("maxsim", AT_NULL_MAXSIM)):
        labels = data[measure]["labels"]
        marks = {tuple(c) for c in data[measure]["stats"]["marks"]}
        assert marks == expected_marks(labels, at_null), measure
    cka = data["linear_cka"]["stats"]
    i, j = 0, 4  # (a, 0) against (b, 1)
    assert cka["lo"][i][j] == pytest.approx(value(("a", 0), ("b", 1), "linear_cka") - 0.05)
    assert cka["p"][i][j] == pytest.approx(0.01) and cka["level"] == "95%"


def test_static_heatmap_draws_one_mark_per_marked_cell():
    labels = [LayerId(m, layer) for m in "xy" for layer in range(3)]
    values = np.linspace(0, 1, 36).reshape(6, 6)
    marks = np.zeros((6, 6), dtype=bool)
    marks[[0, 2, 5], [3, 1, 4]] = True
    ax = plot_block_heatmap(values, labels, "m", True, True, marks=marks).axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert scatters and all(len(c.get_offsets()) == 3 for c in scatters)
    assert {tuple(map(int, xy)) for xy in scatters[0].get_offsets()} == {(3, 0), (1, 2), (4, 5)}  # (column, row)
    assert ax.get_xlim() == pytest.approx((-0.5, 5.5))
    plain = plot_block_heatmap(values, labels, "m", True, True).axes[0]
    assert not [c for c in plain.collections if isinstance(c, PathCollection)]


def expected_model_interval(a: str, b: str) -> tuple[float, float, float]:
    """Replicates are value + SHIFT for every pair, so the aggregate's are its value + SHIFT too."""
    ab = mean_best(np.array([[[value((a, i), (b, j), "linear_cka") for j in LAYERS] for i in LAYERS]]), True)[0]
    ba = mean_best(np.array([[[value((b, i), (a, j), "linear_cka") for j in LAYERS] for i in LAYERS]]), True)[0]
    centre = (ab + ba) / 2
    low, high = percentile_interval(centre + SHIFT, ALPHA)
    return float(centre), low, high


def test_model_stats_follow_the_replicates_and_nulls(stats_table):
    found = model_stats(stats_table, "linear_cka", MODELS, True, ALPHA)
    centre, low, high = expected_model_interval("a", "b")
    stat = found.get("b", "a")
    assert stat.value == pytest.approx(centre) and stat.low == pytest.approx(low) and stat.high == pytest.approx(high)
    assert stat.p_value == pytest.approx(1 / (K + 1))  # every null aggregate is far below
    at_null = found.get("a", "c")
    # The aggregate under permutation k is the value + NULL_SHIFT[k] (one shift for every layer pair).
    assert at_null.p_value == pytest.approx((1 + (NULL_SHIFT >= 0).sum()) / (K + 1))
    assert at_null.calibrated == 0.0
    assert model_stats(stats_table, "maxsim", MODELS, True, ALPHA).directed == {}  # no arrays: nothing made up


def test_jackknife_model_interval_and_paired_difference():
    rng = np.random.default_rng(3)
    loo = rng.normal(0.5, 0.01, 12)
    stat = ModelStat(0.5, *normal_interval(0.5, jackknife_summary(0.5, loo)[0], ALPHA, dof=11), kind="jackknife",
                     replicates=loo)
    from reprsim.analysis.model_stats import interval

    assert interval(0.5, loo, "jackknife", ALPHA) == pytest.approx((stat.low, stat.high))
    other = ModelStat(0.4, kind="jackknife", replicates=loo - 0.1 + rng.normal(0, 1e-4, 12))
    difference = paired_difference(stat, other, ALPHA)
    assert difference is not None and difference.excludes_zero  # the shared noise cancels in the pairing
    assert difference.value == pytest.approx(0.1)
    se = jackknife_summary(0.1, loo - other.replicates)[0]
    assert difference.p_value == pytest.approx(2 * scipy_stats.t.sf(0.1 / se, 11), rel=1e-9)
    assert paired_difference(stat, ModelStat(0.4, kind="bootstrap", replicates=loo), ALPHA) is None


def test_tables_show_intervals_and_say_not_significant(stats_page):
    page = stats_page[0]
    summary = section(page, "summary")
    centre, low, high = expected_model_interval("a", "b")
    assert f"{centre:.3f} [{low:.3f}, {high:.3f}]" in summary
    cells = re.findall(r'<td class="ns"[^>]*data-pair="a\x01c"[^>]*>(.*?)</td>', summary)
    assert len(cells) == 1 and NOT_SIGNIFICANT in cells[0]
    assert not re.search(r'<td class="ns"[^>]*data-pair="a\x01b"', summary)
    cka = section(page, "m-linear_cka")
    assert cka.count('class="ns"') == 2 + 2  # a-c and c-a in the symmetric and the directed table
    assert "not significant (p = " in cka


def test_findings_state_significance(stats_page):
    findings = re.search(r'<ul class="findings">(.*?)</ul>', stats_page[0], re.S).group(1)
    assert "not above it at alpha = 0.05" in findings and "linear_cka a – c (not significant)" in findings
    assert "lead over the runner-up" in findings


def test_note_figures_and_run_details(stats_page):
    page, out = stats_page
    note = re.search(r'<div class="howto".*?</div>', page, re.S).group(0)
    for words in ("How to read this", "95% intervals", "bootstrap (exact) for linear_cka", "jackknife for maxsim",
                  "analytic for maxsim", "Gröger", "×"):
        assert words in note, words
    assert page.index('<ul class="findings">') < page.index('<div class="howto"')  # findings first
    assert (out / "figures" / "intervals-linear_cka.png").is_file()
    assert not (out / "figures" / "intervals-maxsim.png").exists()
    details = section(page, "run")
    assert "permutations (K)" in details and f"<td class=\"text\">{K}</td>" in details
    assert "methods: maxsim" in details
    finetune = pd.read_csv(out / "finetune-a.csv")
    cka = finetune[finetune["measure"] == "linear_cka"].iloc[0]
    assert cka["ci_low"] == pytest.approx(value(("b", 0), ("a", 0), "linear_cka") - 0.05)


def test_finetune_and_model_plots_draw_the_intervals():
    frame = pd.DataFrame({"model": "ft", "layer": [0, 1, 2], "measure": "m", "level": "representation",
                          "value": [0.5, 0.6, 0.7], "ci_low": [0.4, np.nan, 0.65], "ci_high": [0.55, np.nan, 0.8]})
    ax = plot_finetune(frame, "base", "representation").axes[0]
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = [s.tolist() for s in bars[0].get_segments()]
    assert segments == [[[0.0, 0.4], [0.0, 0.55]], [[2.0, 0.65], [2.0, 0.8]]]  # the missing interval left out
    stats = {("x", "y"): ModelStat(0.5, 0.45, 0.52, null_mean=0.1), ("x", "z"): ModelStat(0.2, 0.1, 0.3)}
    ax = plot_model_intervals(stats, "m", True, "95%", {("x", "z"): True}).axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    ends = sorted(tuple(s[:, 0]) for c in lines for s in c.get_segments())
    assert ends == [(0.1, 0.3), (0.45, 0.52)]


def test_report_without_stats_is_unchanged(plain_page):
    body = re.sub(r"<script.*?</script>", "", plain_page, flags=re.S)  # the page script is the same for both
    for absent in ("How to read this", 'class="ns"', "×", "Statistics</h3>", "interval", "not significant",
                   "calibrated", "p = "):
        assert absent not in body, absent
    assert all("stats" not in m for m in payload(plain_page)["measures"].values())


@pytest.mark.parametrize(
    ("stats", "larger", "said"),
    [
        ((0.05, None, None, None, None), True, NOT_SIGNIFICANT),  # p at alpha: not significant
        ((0.049, 0.0, None, None, None), True, ""),  # the p-value decides before the calibrated score
        ((None, 0.0, None, None, None), True, AT_CHANCE),
        ((None, 0.2, None, None, None), True, ""),
        ((None, None, 0.1, 0.3, 0.1), True, AT_CHANCE),  # the interval reaches the null mean
        ((None, None, 0.11, 0.3, 0.1), True, ""),
        ((None, None, 0.1, 0.3, 0.3), False, AT_CHANCE),  # a distance: its upper end reaches the null
        ((None, None, 0.1, 0.29, 0.3), False, ""),
        ((None, None, None, None, 0.3), True, ""),  # a null mean without an interval claims nothing
    ],
)
def test_verdict_rule_and_marks_agree(stats, larger, said):
    p, calibrated, low, high, null_mean = stats
    assert verdict(p, calibrated, low, high, null_mean, larger, ALPHA) == said

    def cell(x):
        return np.array([[np.nan if x is None else x]])

    marks = not_above_null(CellStats(cell(low), cell(high), cell(null_mean), cell(p), cell(calibrated)), larger,
                           ALPHA)
    assert bool(marks[0, 0]) == bool(said)


def test_statistics_asked_for_but_missing_are_noted(plain_table, tmp_path):
    table = ResultTable(plain_table.frame, {"inference": INFERENCE})
    page = write_report(table, tmp_path, progress=False).read_text(encoding="utf-8")
    assert "Statistics were asked for (see the run details) but none could be computed" in page
    assert "How to read this" not in page and "permutations (K)" in section(page, "run")


def control_table() -> ResultTable:
    """x, y trained and x-random a control, one layer each: the model-level value is the layer value.

    Under linear_cka the weakest trained pair (x-y) is far above the strongest control pair (x-x-random); under
    rbf_cka the two differ by less than their replicates' spread.
    """
    rng = np.random.default_rng(8)
    values = {"linear_cka": {("x", "y"): 0.7, ("x", "x-random"): 0.3, ("y", "x-random"): 0.2},
              "rbf_cka": {("x", "y"): 0.5, ("x", "x-random"): 0.48, ("y", "x-random"): 0.1}}
    spread = {"linear_cka": 0.01, "rbf_cka": 0.1}
    out = []
    for measure, pairs in values.items():
        for a, b in [("x", "x"), ("y", "y"), ("x-random", "x-random"), *pairs]:
            v = pairs.get((a, b), 1.0)
            reps = v + rng.normal(0, spread[measure], B) if a != b else np.ones(B)
            out.append({"model_a": a, "layer_a": 0, "model_b": b, "layer_b": 0, "measure": measure,
                        "direction": "sym", "value": v, "level": "representation", "n_rows": 500,
                        "subsample": False, "se": float(reps.std()), "ci_low": v - 0.1, "ci_high": v + 0.1,
                        "replicates": reps, "replicate_kind": "bootstrap"})
    return ResultTable.from_records(out, {"inference": INFERENCE, "corpus_hash": "feed"})


def test_trained_beats_random_claim_states_paired_interval_and_p():
    from reprsim.report.explain import random_controls
    from reprsim.report.findings import cross_measure
    from reprsim.report.stats_html import significance_findings

    table = control_table()
    orientation = {"linear_cka": True, "rbf_cka": True}
    cross = cross_measure(table, orientation)
    models = ["x", "y", "x-random"]
    stats = {m: model_stats(table, m, models, True, ALPHA) for m in orientation}
    lines = significance_findings(cross, stats, ALPHA, "95%", random_controls(models))
    claim = next(line for line in lines if line.startswith("Trained beats random"))

    def brute(measure):
        diff = (table.uncertainty(measure, ("x", 0), ("y", 0)).replicates
                - table.uncertainty(measure, ("x", 0), ("x-random", 0)).replicates)
        return min(1.0, 2 * min((1 + (diff <= 0).sum()) / (B + 1), (1 + (diff >= 0).sum()) / (B + 1)))

    p_lin, p_rbf = brute("linear_cka"), brute("rbf_cka")
    assert p_lin <= ALPHA < p_rbf  # the data are built so; the claim must follow
    assert "under 1 of 2 measures: linear_cka 0.400" in claim
    assert f"p = {p_lin:.2g}" in claim and "(x – y vs x – x-random)" in claim
    assert "Not significant under rbf_cka 0.020" in claim and f"p = {p_rbf:.2g} (x – y" in claim
    assert significance_findings(cross, stats, ALPHA, "95%", {}) == [
        line for line in lines if not line.startswith("Trained beats random")]
