"""The report's computed parts: symmetric model pairs, relative depth, the cross-measure table and findings,
measure explanations and baselines, warnings and provenance on the page, and the notebook API."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from reprsim.analysis.aggregate import model_pairs, model_to_model, relative_depth
from reprsim.report import dendrogram, heatmap, pair_heatmap, write_report
from reprsim.report.explain import JS_FLOOR, analytic_baselines, explain, random_controls
from reprsim.report.findings import cross_measure, findings, ranking_agreement
from reprsim.report.provenance import model_sources
from reprsim.report.warning_log import recorded_warnings
from reprsim.results import ResultTable

MODELS = {"bert": 0, "bert-random": 1, "gpt": 0, "gpt-random": 1}
DEPTHS = {"bert": [0, 1, 2], "bert-random": [0, 1, 2], "gpt": [0, 5, 10, 15], "gpt-random": [0, 5, 10, 15]}


def value(a, b, measure):
    """Trained models alike, random controls less alike to each other, unlike trained ones; distances flip."""
    if a == b:
        return 0.0 if measure == "procrustes_distance" else 1.0
    da, db = a[1] / max(DEPTHS[a[0]]), b[1] / max(DEPTHS[b[0]])
    family = {(0, 0): 0.8, (1, 1): 0.7}.get((MODELS[a[0]], MODELS[b[0]]), 0.3)
    sim = family * math.exp(-abs(da - db)) + 0.01 * (a[0] < b[0])
    if measure == "maxsim":
        sim += 0.02 * da  # directed
    return 2 - 2 * sim if measure == "procrustes_distance" else sim


def rows_for(measures, models=DEPTHS):
    ids = [(m, layer) for m in models for layer in models[m]]
    rows = []
    for measure, direction in measures:
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if direction == "sym" and j < i:
                    continue
                rows.append({"model_a": a[0], "layer_a": a[1], "model_b": b[0], "layer_b": b[1], "measure": measure,
                             "direction": direction, "value": value(a, b, measure), "level": "representation",
                             "n_rows": 500, "subsample": False})
    return rows


MEASURES = [("linear_cka", "sym"), ("maxsim", "a->b"), ("procrustes_distance", "sym"), ("mutual_knn", "sym")]


@pytest.fixture(scope="module")
def table():
    return ResultTable.from_records(rows_for(MEASURES), {"corpus_hash": "abc"})


def orientation(table):
    return {m: m != "procrustes_distance" for m in table.measures()}


def test_model_pairs_is_the_mean_of_both_directions_once_per_pair(table):
    pairs = model_pairs(table, "maxsim")
    directed = model_to_model(table, "maxsim")
    assert len(pairs) == 6 and list(pairs[["model_a", "model_b"]].iloc[0]) == ["bert", "bert-random"]
    for row in pairs.itertuples():
        ab = directed[(directed.model_a == row.model_a) & (directed.model_b == row.model_b)]["value"].item()
        ba = directed[(directed.model_a == row.model_b) & (directed.model_b == row.model_a)]["value"].item()
        assert (row.a_to_b, row.b_to_a) == (ab, ba)
        assert row.value == pytest.approx((ab + ba) / 2)
    # A plain loop for one pair: mean over bert's layers of the best gpt layer, and back.
    block = table.pair_matrix("maxsim", "bert", "gpt")
    back = table.pair_matrix("maxsim", "gpt", "bert")
    expected = (block.max(axis=1).mean() + back.max(axis=1).mean()) / 2
    got = pairs[(pairs.model_a == "bert") & (pairs.model_b == "gpt")]["value"].item()
    assert got == pytest.approx(expected)


def test_relative_depth():
    assert relative_depth([0, 5, 10, 30]).tolist() == [0.0, 1 / 6, 1 / 3, 1.0]
    assert relative_depth([0]).tolist() == [0.0]
    with pytest.raises(ValueError, match="at least one"):
        relative_depth([])
    with pytest.raises(ValueError, match="non-negative"):
        relative_depth([-1, 2])


def test_cross_measure_table_and_findings(table):
    cross = cross_measure(table, orientation(table))
    assert list(cross.values.index) == table.measures()
    assert cross.values.shape == (4, 6)
    pairs = model_pairs(table, "linear_cka")
    first = pairs.iloc[0]
    assert cross.values.at["linear_cka", (first.model_a, first.model_b)] == pytest.approx(first.value)
    lines = findings(cross, random_controls(table.models()), {"mutual_knn": ["FewRowsWarning"]})
    text = "\n".join(lines)
    # The trained pair is the closest under all four measures, the distance included (its smallest value),
    # and closer than any pair with a random control.
    assert "bert – gpt is the most similar pair under 4 of 4 measures (neuron 1, distributed 3)" in text
    assert ("Under 4 of 4 measures every pair of trained models is more similar than every pair involving a "
            "random-weight control.") in text
    assert "mutual_knn" in lines[-1] and "FewRowsWarning" in lines[-1]
    mean, per_measure = ranking_agreement(cross)
    assert mean > 0.9 and set(per_measure) == set(table.measures())


def test_explanation_comes_from_the_registry():
    about = explain("svcca(keep=0.9)", True, True)
    text = " ".join(about.sentences)
    assert about.summary.startswith("mean canonical correlation of the top singular directions")
    assert "keep=0.9" in text and "Raghu et al. 2017" in text and "Cost:" in text
    assert "Unchanged by" in text and "rotations and reflections" in text
    distance = " ".join(explain("procrustes_distance", False, True).sentences)
    assert "This is a distance: smaller values mean more similar" in distance
    assert "Directed" in " ".join(explain("maxsim", True, False).sentences)
    assert "not in reprsim's measure registry" in explain("my_measure", True, True).sentences[0]


def test_baselines():
    assert random_controls(["MiniLM", "MiniLM-random", "SmolLM2", "random-net", "randomized"]) == {
        "MiniLM-random": "MiniLM", "random-net": None}
    frame = pd.DataFrame({"n_rows": [501, 501]})
    (knn,) = analytic_baselines("mutual_knn(k=5)", frame)
    assert knn.value == pytest.approx(5 / 500)
    (js,) = analytic_baselines("attention_js", frame)
    assert js.value == pytest.approx(1 - math.log(2)) == JS_FLOOR
    assert analytic_baselines("linear_cka", frame) == []


def section_of(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}"')
    return page[start : page.index("</section>", start)]


def test_page_shows_warnings_per_measure_baselines_and_summary_first(table, tmp_path):
    provenance = {"corpus_hash": "abc", "warnings": [
        {"category": "FewRowsWarning", "message": "n=500 rows is fewer than 10 x 768", "measure": "mutual_knn"},
        {"category": "SubsampleWarning", "message": "a warning of no measure <b>", "measure": None},
        {"bad": "record"},
    ]}
    page = write_report(ResultTable(table.frame, provenance), tmp_path, progress=False).read_text(encoding="utf-8")
    knn = section_of(page, "m-mutual_knn")
    assert "FewRowsWarning" in knn and "n=500 rows is fewer than 10 x 768" in knn
    assert "FewRowsWarning" not in section_of(page, "m-linear_cka")
    summary = section_of(page, "summary")
    assert "a warning of no measure &lt;b&gt;" in summary and "mutual_knn" in summary
    assert "chance level k / (n - 1)" in knn and f"{10 / 499:.3f}" in knn
    cka = section_of(page, "m-linear_cka")
    assert "bert vs its random control bert-random" in cka and "Reference: Kornblith et al. 2019" in cka
    assert "This is a distance" in section_of(page, "m-procrustes_distance")
    # The cross-measure table: one row per measure, one shaded cell per pair, the best pair bold.
    cross = summary[summary.index('<table class="cross"'):]
    assert cross.count("<tr>") == 1 + 4 and cross.count("data-pair=") == 6 + 4 * 6
    assert cross.count("<b>") == 4 and "background:#" in cross
    # Both model-to-model CSVs hold the symmetric value.
    tidy = pd.read_csv(tmp_path / "model_to_model.csv")
    assert set(tidy.measure) == set(table.measures()) and len(tidy) == 4 * 12
    assert (tmp_path / "data" / "linear_cka.csv").is_file()


def test_recorded_warnings_reads_parts_and_skips_malformed_records():
    record = {"category": "FewRowsWarning", "message": "m", "measure": "svcca"}
    provenance = {"parts": [{"warnings": [record]}, {"warnings": [record, {"category": 3}]}], "warnings": "x"}
    assert recorded_warnings(provenance) == [record]


def test_model_sources_read_store_manifests(tmp_path, table):
    key = "bert-0123"
    (tmp_path / key).mkdir()
    manifest = {"layer_ids": [0, 1, 2], "dtype": "float32", "manifest": {
        "model": "bert-base-uncased", "versions": {"torch": "2.0"},
        "fingerprint": {"model": {"source": {"hub_id": "bert-base-uncased", "revision": "abc123"}}}}}
    (tmp_path / key / "manifest.json").write_text(json.dumps(manifest))
    provenance = {"store": str(tmp_path), "entries": {"bert": key, "gpt": "gpt-404"}}
    sources = model_sources(ResultTable(table.frame, provenance))
    assert sources.loc["bert", "source"] == "hub bert-base-uncased"
    assert sources.loc["bert", "pinned as"] == "revision=abc123"
    assert sources.loc["bert", "versions"] == "torch 2.0" and sources.loc["bert", "layers"] == "0, 1, 2"
    assert sources.loc["gpt", "source"].startswith("not found")
    assert sources.loc["bert-random", "entry"] == "not recorded"


def test_notebook_api_draws_into_an_axes(table):
    fig = Figure(figsize=(12, 4))
    left, middle, right = fig.subplots(1, 3)
    assert heatmap(table, "linear_cka", ax=left, models=["bert", "gpt"], annotate=True) is left
    matrix = table.matrix("linear_cka", ["bert", "gpt"])
    texts = [t.get_text() for t in left.texts]
    assert len(texts) == matrix.values.size and texts[1] == f"{matrix.values[0, 1]:.2f}"
    pair_heatmap(table, "maxsim", "bert", "gpt", ax=middle)
    everything = table.frame.loc[table.frame.measure == "maxsim", "value"]
    assert middle.images[0].get_clim() == (everything.min(), everything.max())  # the measure's own scale
    assert middle.images[0].get_array().shape == (3, 4) and not middle.texts
    assert "layer of gpt" in middle.get_xlabel()
    dendrogram(table, "procrustes_distance", ax=right)
    assert sorted(t.get_text() for t in right.get_yticklabels()) == sorted(table.models())
    assert "symmetric procrustes_distance" in right.get_xlabel()
    with pytest.raises(ValueError, match="'models' or 'layers'"):
        dendrogram(table, "linear_cka", ax=right, of="neurons")
    colour_bar = [ax for ax in fig.axes if ax not in (left, middle, right)]
    assert any("distance" not in ax.get_ylabel() and "linear_cka" in ax.get_ylabel() for ax in colour_bar)


def test_localisation_uses_relative_depth(tmp_path):
    rows = rows_for([("maxsim", "a->b"), ("svcca", "sym")], {"bert": [0, 1, 2], "gpt": [0, 5, 10, 15]})
    page = write_report(ResultTable.from_records(rows), tmp_path, progress=False).read_text(encoding="utf-8")
    assert "relative depth" in section_of(page, "localisation")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = pd.read_csv(tmp_path / "localisation.csv")
    assert np.isfinite(scores["score"]).all()
    data = json.loads(re.search(r'id="rs-data">(.*?)</script>', page, re.S).group(1))
    depths = {(m, layer): d for m, layer, d in data["measures"]["svcca"]["labels"]}
    assert depths[("gpt", 15)] == depths[("bert", 2)] == 1.0 and depths[("gpt", 5)] == pytest.approx(0.333)
