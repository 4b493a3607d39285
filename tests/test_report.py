"""Figures, the HTML report and the `reprsim report` command."""

from __future__ import annotations

import base64
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprsim.cli import main
from reprsim.report import parse_finetuned, write_report
from reprsim.report.figures import PairPanel, plot_block_heatmap, plot_pair_grid
from reprsim.results import LayerId, ResultTable

MODELS = ["base", "ft", "other"]
LAYERS = [0, 1, 2]
FAMILY = {"base": 0, "ft": 0, "other": 1, "m1": 0, "m2": 1}
PROVENANCE = {"store": "/tmp/store-xyz", "corpus_hash": "c0ffee" * 4, "options": {"keep": 0.99}}


def similarity(a, b, measure):
    """Synthetic values: close layers and same-family models are more similar; directed ones asymmetric."""
    base = math.exp(-abs(a[1] - b[1]) / 2) * (0.9 if FAMILY[a[0]] == FAMILY[b[0]] else 0.4)
    if a == b:
        return 1.0
    if measure == "svcca":
        return 0.8 * base + 0.05 * (a[1] + b[1]) / 4
    if measure in ("maxsim", "attention_js"):
        return base * (0.95 if a[0] < b[0] else 0.85) + 0.01 * a[1]
    return base


def build_rows(models, layers, measures, cross_model_only=False):
    ids = [(m, layer) for m in models for layer in layers]
    rows = []
    for measure, direction, level in measures:
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                if (direction == "sym" and j < i) or (cross_model_only and a[0] == b[0]):
                    continue
                rows.append(
                    {
                        "model_a": a[0],
                        "layer_a": a[1],
                        "model_b": b[0],
                        "layer_b": b[1],
                        "measure": measure,
                        "direction": direction,
                        "value": similarity(a, b, measure),
                        "level": level,
                        "n_rows": 1000,
                        "subsample": False,
                    }
                )
    return rows


MEASURES = [
    ("linear_cka", "sym", "representation"),
    ("svcca", "sym", "representation"),
    ("maxsim", "a->b", "representation"),
    ("attention_js", "a->b", "attention"),
]


@pytest.fixture(scope="module")
def table() -> ResultTable:
    return ResultTable.from_records(build_rows(MODELS, LAYERS, MEASURES), PROVENANCE)


@pytest.fixture(scope="module")
def report(table, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    return write_report(table, out, finetuned={"base": ["ft"]})


def test_every_figure_is_written_as_png_and_svg(report):
    figures = report.parent / "figures"
    pngs = sorted(figures.glob("*.png"))
    svgs = sorted(figures.glob("*.svg"))
    assert [p.stem for p in pngs] == [s.stem for s in svgs]
    # Per measure: block heatmap, model dendrogram, layer dendrogram, pair grid, depth-normalised aggregate; plus
    # localisation and one fine-tuning figure per level.
    assert len(pngs) == 4 * 5 + 1 + 2
    assert sorted(p.stem for p in pngs if p.stem.startswith("depth-")) == sorted(f"depth-{m}" for m, *_ in MEASURES)
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for svg in svgs:
        assert ET.parse(svg).getroot().tag.endswith("svg")


def script_free(page: str) -> str:
    """The page without the contents of its script elements (plotly.js mentions URLs it never fetches)."""
    return re.sub(r"(<script[^>]*>).*?(</script>)", r"\1\2", page, flags=re.S)


def test_html_is_self_contained_and_embeds_or_links_every_figure(report):
    page = report.read_text(encoding="utf-8")
    figures = report.parent / "figures"
    pngs = {p.name: p.read_bytes() for p in figures.glob("*.png")}
    sources = re.findall(r'<img src="([^"]+)"', page)
    embedded = set()
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        embedded.add(base64.b64decode(src.split(",", 1)[1]))
    assert embedded <= set(pngs.values())
    # Figures without an interactive version are inlined; the heatmaps and pair grids, drawn interactively,
    # link their static PNG and SVG. Every figure file is linked, with its SVG.
    for name, data in pngs.items():
        assert f'href="figures/{name}"' in page and f'href="figures/{name[:-4]}.svg"' in page, name
        if name.startswith(("heatmap-", "pairs-")):
            measure = name.split("-", 1)[1][:-4]
            kind = "layers" if name.startswith("heatmap-") else "pairs"
            assert f'data-measure="{measure}" data-kind="{kind}"' in page
        else:
            assert data in embedded, name
    # One inline copy of plotly.js and of the page's script, the data as JSON, no script fetched, nothing remote.
    assert page.count("<script") == 3 and 'id="rs-data"' in page
    assert re.search(r"<script[^>]*\ssrc=", page) is None
    lowered = script_free(page).lower()
    for remote in ('src="http', 'href="http', "url(", "<link", "@import"):
        assert remote not in lowered


def test_html_shows_provenance_sections_and_tables(report, table):
    page = report.read_text(encoding="utf-8")
    assert PROVENANCE["corpus_hash"] in page and "/tmp/store-xyz" in page
    for heading in ("Summary", "linear_cka", "attention_js", "Localisation", "Fine-tuning: base", "Run details"):
        assert f">{heading}</h2>" in page
    # Findings first, run details last.
    assert page.index(">Summary</h2>") < page.index(">linear_cka</h2>") < page.index(">Run details</h2>")
    # Model-to-model cell base -> other for linear_cka, by a plain loop: mean over base's layers of the
    # best match among other's layers (the directed table), and the symmetric value (the shown table).
    directed = {
        (a, b): np.mean([max(similarity((a, i), (b, j), "linear_cka") for j in LAYERS) for i in LAYERS])
        for a, b in [("base", "other"), ("other", "base")]
    }
    assert re.search(rf"<td[^>]*>{directed['base', 'other']:.3f}</td>", page)
    symmetric = (directed["base", "other"] + directed["other", "base"]) / 2
    assert re.search(rf"<td[^>]*>(<b>)?{symmetric:.3f}(</b>)?</td>", page)


def test_csv_outputs_match_plain_loops(report):
    tidy = pd.read_csv(report.parent / "model_to_model.csv")
    row = tidy[(tidy["measure"] == "maxsim") & (tidy["model_a"] == "ft") & (tidy["model_b"] == "base")]
    expected = np.mean([max(similarity(("ft", i), ("base", j), "maxsim") for j in LAYERS) for i in LAYERS])
    assert row["value"].item() == pytest.approx(expected, abs=1e-12)
    scores = pd.read_csv(report.parent / "localisation.csv")
    assert len(scores) == len(MODELS) * len(LAYERS)
    assert scores["score"].mean() == pytest.approx(0.0, abs=1e-9)  # difference of two z-scores
    finetune = pd.read_csv(report.parent / "finetune-base.csv")
    cka = finetune[(finetune["measure"] == "linear_cka") & (finetune["model"] == "ft")]
    assert cka["value"].tolist() == pytest.approx(
        [similarity(("ft", k), ("base", k), "linear_cka") for k in LAYERS]
    )


def test_block_heatmap_scale_separators_and_labels(table):
    matrix = table.matrix("maxsim")
    fig = plot_block_heatmap(matrix.values, matrix.labels, "maxsim", symmetric=False, larger_is_similar=True)
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.get_clim() == (matrix.values.min(), matrix.values.max())
    assert image.get_cmap().name == "viridis"
    # One separator line between consecutive model blocks, on each axis.
    assert len(ax.lines) == 2 * (len(MODELS) - 1)
    assert [t.get_text() for t in ax.get_xticklabels()] == MODELS
    assert [t.get_text() for t in ax.get_xticklabels(minor=True)] == [str(layer) for layer in LAYERS] * 3
    colorbar_label = fig.axes[1].get_ylabel()
    assert "maxsim" in colorbar_label and f"{matrix.values.min():.3g} to 1" in colorbar_label
    distance = plot_block_heatmap(matrix.values, matrix.labels, "procrustes_distance", True, False)
    assert distance.axes[0].images[0].get_cmap().name == "viridis_r"
    assert "lower = more similar" in distance.axes[1].get_ylabel()


def test_pair_grid_shares_one_colour_scale():
    panels = [
        PairPanel("a", "b", (0, 1), (0, 1, 2), np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]), "a vs b"),
        PairPanel("a", "c", (0, 1), (0,), np.array([[0.9], [0.05]]), "a vs c"),
    ]
    fig = plot_pair_grid(panels, "linear_cka", larger_is_similar=True, directed=False)
    clims = {ax.images[0].get_clim() for ax in fig.axes if ax.images}
    assert clims == {(0.05, 0.9)}
    with pytest.raises(ValueError, match="shape"):
        plot_pair_grid([PairPanel("a", "b", (0,), (0,), np.zeros((2, 2)), "bad")], "x", True, False)


def test_report_with_only_cross_model_pairs(tmp_path):
    rows = build_rows(["m1", "m2"], [0, 1], [("linear_cka", "sym", "representation")], cross_model_only=True)
    table = ResultTable.from_records(rows)
    with pytest.raises(KeyError):
        table.matrix("linear_cka")
    index = write_report(table, tmp_path)
    page = index.read_text(encoding="utf-8")
    assert "layer dendrogram skipped" in page
    assert "Localisation scores not computed" in page and "&#x27;maxsim&#x27;" in page
    # Written: block heatmap (grey within-model blocks), model dendrogram, pair grid, depth-normalised aggregate;
    # the dendrogram is inlined in its section and in the summary, the depth aggregate in its section, the
    # heatmap and the pair grid are drawn interactively.
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")) == [
        "dendrogram-models-linear_cka.png", "depth-linear_cka.png", "heatmap-linear_cka.png", "pairs-linear_cka.png"]
    assert len(re.findall(r"<img ", page)) == 3
    assert 'data-measure="linear_cka" data-kind="layers"' in page


def test_cli_report(tmp_path, capsys):
    rows = build_rows(["m1", "m2"], [0, 1], [("linear_cka", "sym", "representation")], cross_model_only=True)
    results = ResultTable.from_records(rows, PROVENANCE).save(tmp_path / "results.csv")
    assert main(["report", str(results), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.html").is_file()
    assert "index.html" in capsys.readouterr().out
    assert main(["report", str(results), "--out", str(tmp_path / "x"), "--finetuned", "m1"]) == 1
    assert "BASE:FT1,FT2" in capsys.readouterr().err
    assert main(["report", str(results), "--out", str(tmp_path / "x"), "--finetuned", "m1:zz"]) == 1
    assert "'zz'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "x")]) == 1
    assert "missing.parquet" in capsys.readouterr().err


def test_parse_finetuned():
    assert parse_finetuned("bert:bert-sst2, bert-mnli") == ("bert", ["bert-sst2", "bert-mnli"])
    for bad in ("bert", ":a", "bert:", "bert: , "):
        with pytest.raises(ValueError, match="BASE:FT1,FT2"):
            parse_finetuned(bad)


def test_report_refuses_empty_table_and_unknown_orientation(tmp_path):
    empty = ResultTable.from_records([])
    with pytest.raises(ValueError, match="empty"):
        write_report(empty, tmp_path)
    rows = build_rows(["m1", "m2"], [0], [("my_measure", "sym", "representation")])
    with pytest.raises(KeyError, match="larger_is_similar"):
        write_report(ResultTable.from_records(rows), tmp_path)


def test_layer_ids_are_tuples_not_strings(table):
    labels = table.matrix("linear_cka").labels
    assert labels[0] == LayerId("base", 0) and labels[0] == ("base", 0)


def test_a_measure_missing_for_one_model_and_a_missing_finetune_pair_do_not_sink_the_report(tmp_path):
    """'other' has no attention (so no attention_js rows), and one fine-tuning pair of linear_cka is missing:
    the report is still written, with notes, and the attention section covers the two other models."""
    rows = build_rows(MODELS, LAYERS, MEASURES[:3]) + build_rows(["base", "ft"], LAYERS, MEASURES[3:])
    rows = [
        r for r in rows
        if not (r["measure"] == "linear_cka" and {(r["model_a"], r["layer_a"]), (r["model_b"], r["layer_b"])}
                == {("ft", 2), ("base", 2)})
    ]
    index = write_report(ResultTable.from_records(rows, PROVENANCE), tmp_path, finetuned={"base": ["ft"]})
    html = index.read_text(encoding="utf-8")
    assert "attention_js was not computed for other" in html
    assert "fine-tuning against base skipped" in html
    assert (tmp_path / "figures" / "pairs-attention_js.png").is_file()


def test_each_measure_shows_its_depth_normalised_aggregate(report, table):
    from reprsim.analysis import depth_aggregate

    page = report.read_text(encoding="utf-8")
    assert page.count("<h3>By relative depth</h3>") == len(MEASURES)
    bins = min(10, *(len(table.layers(m, "linear_cka")) for m in table.models()))
    assert f"in {bins} x {bins} bins" in page
    assert not depth_aggregate(table, "linear_cka", bins=bins).isna().any().any()  # no empty bin is drawn
