"""Aggregations, clustering, localisation and fine-tuning analysis against hand-computed cases."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from reprsim.analysis import (
    best_match,
    cluster_layers,
    cluster_models,
    finetune_similarity,
    larger_means_similar,
    layer_to_model,
    localisation_scores,
    model_matrix,
    model_to_model,
    to_dissimilarity,
)
from reprsim.results import LayerId, ResultTable


def row(a, b, measure, direction, value, level="representation"):
    return {
        "model_a": a[0],
        "layer_a": a[1],
        "model_b": b[0],
        "layer_b": b[1],
        "measure": measure,
        "direction": direction,
        "value": value,
        "level": level,
        "n_rows": 100,
        "subsample": False,
    }


def directed_table(measure, blocks, level="representation"):
    """blocks[(M, M')] = matrix of sim(M layer i -> M' layer j)."""
    rows = []
    for (ma, mb), values in blocks.items():
        for i, line in enumerate(values):
            for j, value in enumerate(line):
                rows.append(row((ma, i), (mb, j), measure, "a->b", value, level))
    return rows


# Hand case: two models with three layers each, a directed measure.
A_TO_B = [
    [0.9, 0.2, 0.1],
    [0.3, 0.8, 0.4],
    [0.1, 0.5, 0.6],
]
B_TO_A = [
    [0.7, 0.1, 0.2],
    [0.2, 0.6, 0.3],
    [0.4, 0.5, 0.3],
]


@pytest.fixture
def hand_table() -> ResultTable:
    return ResultTable.from_records(directed_table("maxsim", {("A", "B"): A_TO_B, ("B", "A"): B_TO_A}))


def test_layer_to_model_takes_row_maxima(hand_table):
    out = layer_to_model(hand_table, "maxsim", larger_is_similar=True)
    a = out[out["model"] == "A"]
    # Row maxima of A_TO_B, read off by hand: 0.9 (col 0), 0.8 (col 1), 0.6 (col 2).
    assert a["value"].tolist() == [0.9, 0.8, 0.6]
    assert a["best_layer"].tolist() == [0, 1, 2]
    assert set(a["other_model"]) == {"B"}
    b = out[out["model"] == "B"]
    # Row maxima of B_TO_A: 0.7 (col 0), 0.6 (col 1), 0.5 (col 1).
    assert b["value"].tolist() == [0.7, 0.6, 0.5]
    assert b["best_layer"].tolist() == [0, 1, 1]


def test_layer_to_model_of_a_distance_takes_minima(hand_table):
    out = layer_to_model(hand_table, "maxsim", larger_is_similar=False)
    a = out[out["model"] == "A"]
    assert a["value"].tolist() == [0.1, 0.3, 0.1]
    assert a["best_layer"].tolist() == [2, 0, 0]


def test_model_to_model_means_and_symmetrises(hand_table):
    out = model_to_model(hand_table, "maxsim", larger_is_similar=True).set_index(["model_a", "model_b"])
    ab = (0.9 + 0.8 + 0.6) / 3  # 0.7666...
    ba = (0.7 + 0.6 + 0.5) / 3  # 0.6
    assert out.loc[("A", "B"), "value"] == pytest.approx(ab, abs=1e-15)
    assert out.loc[("B", "A"), "value"] == pytest.approx(ba, abs=1e-15)
    assert out.loc[("A", "B"), "symmetric"] == pytest.approx((ab + ba) / 2, abs=1e-15)
    assert out.loc[("B", "A"), "symmetric"] == pytest.approx((ab + ba) / 2, abs=1e-15)
    wide = model_matrix(hand_table, "maxsim", larger_is_similar=True)
    assert wide.loc["A", "B"] == pytest.approx(ab, abs=1e-15)
    assert math.isnan(wide.loc["A", "A"])


def test_symmetric_measure_uses_the_transpose_for_the_other_direction():
    values = [[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.1, 0.5, 0.6]]
    rows = [row(("A", i), ("B", j), "linear_cka", "sym", values[i][j]) for i in range(3) for j in range(3)]
    table = ResultTable.from_records(rows)
    out = layer_to_model(table, "linear_cka", larger_is_similar=True)
    # B's layer j: max over A's layers i of values[i][j] = column maxima 0.9, 0.8, 0.6.
    assert out[out["model"] == "B"]["value"].tolist() == [0.9, 0.8, 0.6]
    pair = model_to_model(table, "linear_cka", larger_is_similar=True).set_index(["model_a", "model_b"])
    assert pair.loc[("A", "B"), "value"] == pytest.approx((0.9 + 0.8 + 0.6) / 3, abs=1e-15)


def test_three_models_each_pair_once(hand_table):
    blocks = {
        ("A", "B"): A_TO_B,
        ("B", "A"): B_TO_A,
        ("A", "C"): [[0.5], [0.4], [0.3]],
        ("C", "A"): [[0.2, 0.9, 0.1]],
        ("B", "C"): [[0.1], [0.1], [0.1]],
        ("C", "B"): [[0.3, 0.3, 0.3]],
    }
    table = ResultTable.from_records(directed_table("maxsim", blocks))
    out = model_to_model(table, "maxsim", larger_is_similar=True).set_index(["model_a", "model_b"])
    assert len(out) == 6
    assert out.loc[("A", "C"), "value"] == pytest.approx(0.4)  # mean of 0.5, 0.4, 0.3
    assert out.loc[("C", "A"), "value"] == pytest.approx(0.9)  # one layer, best 0.9
    assert out.loc[("C", "B"), "symmetric"] == pytest.approx((0.3 + 0.1) / 2)
    only_ab = model_to_model(table, "maxsim", models=["A", "B"], larger_is_similar=True)
    assert len(only_ab) == 2


def test_orientation_comes_from_the_registry():
    assert larger_means_similar("maxsim") is True
    assert larger_means_similar("procrustes_distance") is False
    assert larger_means_similar("procrustes_distance", override=True) is True
    with pytest.raises(KeyError, match="larger_is_similar"):
        larger_means_similar("made_up_measure")


def test_best_match_rejects_empty():
    assert best_match(np.array([[1.0, 3.0, 2.0]]), True)[1].tolist() == [1]
    with pytest.raises(ValueError, match="at least one column"):
        best_match(np.zeros((2, 0)), True)


def test_aggregation_needs_two_models():
    table = ResultTable.from_records([row(("A", 0), ("A", 1), "maxsim", "a->b", 0.5)])
    with pytest.raises(ValueError, match="at least two models"):
        model_to_model(table, "maxsim", larger_is_similar=True)


def test_to_dissimilarity_by_hand():
    values = np.array([[1.0, 0.8, 0.2], [0.6, 1.0, 0.4], [0.2, 0.4, 1.0]])
    d = to_dissimilarity(values, larger_is_similar=True)
    assert d[0, 1] == pytest.approx(1 - 0.7) and d[1, 0] == pytest.approx(1 - 0.7)
    assert d[0, 2] == pytest.approx(0.8)
    assert np.all(np.diag(d) == 0.0)
    dist = to_dissimilarity(values, larger_is_similar=False)
    assert dist[0, 1] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="square"):
        to_dissimilarity(np.zeros((2, 3)), True)


def test_average_linkage_heights_by_hand():
    # One layer per model; similarities give distances d(A,B) = 0.1, d(A,C) = 0.5, d(B,C) = 0.7.
    sims = {("A", "B"): 0.9, ("A", "C"): 0.5, ("B", "C"): 0.3}
    rows = [row((a, 0), (b, 0), "linear_cka", "sym", s) for (a, b), s in sims.items()]
    rows += [row((m, 0), (m, 0), "linear_cka", "sym", 1.0) for m in "ABC"]
    table = ResultTable.from_records(rows)
    result = cluster_models(table, "linear_cka", larger_is_similar=True)
    assert result.labels == ("A", "B", "C")
    # Average linkage: A and B merge at 0.1; C joins at the mean of d(A,C) and d(B,C) = 0.6.
    heights = sorted(result.linkage[:, 2].tolist())
    assert heights == pytest.approx([0.1, 0.6])
    assert result.groups(2) == [1, 1, 2]
    # The same numbers as a distance measure are used as they are.
    as_distance = cluster_models(table, "linear_cka", larger_is_similar=False)
    assert sorted(as_distance.linkage[:, 2].tolist()) == pytest.approx([0.3, (0.9 + 0.5) / 2])
    with pytest.raises(ValueError, match="unknown linkage"):
        cluster_models(table, "linear_cka", larger_is_similar=True, method="ward")


def reference_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook feature-space linear CKA (Kornblith et al. 2019)."""
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def two_family_table() -> ResultTable:
    """Six synthetic 'models' of three layers: family f0 shares one latent signal, family f1 another."""
    rng = np.random.default_rng(7)
    n = 300
    reps = {}
    for family in range(2):
        latent = rng.standard_normal((n, 6))
        for k in range(3):
            mixing = rng.standard_normal((6, 20))
            for layer in range(3):
                noise = (0.3 + 0.3 * layer) * rng.standard_normal((n, 20))
                reps[(f"f{family}-m{k}", layer)] = np.tanh(latent @ mixing) + noise
    ids = list(reps)
    rows = [
        row(ids[i], ids[j], "linear_cka", "sym", reference_linear_cka(reps[ids[i]], reps[ids[j]]))
        for i in range(len(ids))
        for j in range(i, len(ids))
    ]
    return ResultTable.from_records(rows)


def test_model_dendrogram_recovers_two_families():
    table = two_family_table()
    result = cluster_models(table, "linear_cka")
    groups = dict(zip(result.labels, result.groups(2), strict=True))
    family0 = {groups[f"f0-m{k}"] for k in range(3)}
    family1 = {groups[f"f1-m{k}"] for k in range(3)}
    assert len(family0) == 1 and len(family1) == 1 and family0 != family1
    # The last merge (joining the families) is the highest, well above every within-family merge.
    heights = sorted(result.linkage[:, 2])
    assert heights[-1] > 2 * heights[-2]


def test_layer_dendrogram_recovers_two_families():
    table = two_family_table()
    result = cluster_layers(table, "linear_cka")
    assert len(result.labels) == 18 and isinstance(result.labels[0], LayerId)
    groups = result.groups(2)
    by_family = {0: set(), 1: set()}
    for label, group in zip(result.labels, groups, strict=True):
        by_family[int(label.model[1])].add(group)
    assert len(by_family[0]) == 1 and len(by_family[1]) == 1 and by_family[0] != by_family[1]


def test_localisation_score_by_hand():
    # Two models, two layers each. maxsim (directed) and svcca (symmetric) between the models only,
    # plus within-model pairs that must be ignored (set to extreme values).
    maxsim = {
        (("A", 0), ("B", 0)): 0.9, (("A", 0), ("B", 1)): 0.7,
        (("A", 1), ("B", 0)): 0.4, (("A", 1), ("B", 1)): 0.6,
        (("B", 0), ("A", 0)): 0.8, (("B", 0), ("A", 1)): 0.2,
        (("B", 1), ("A", 0)): 0.5, (("B", 1), ("A", 1)): 0.5,
        (("A", 0), ("A", 1)): 99.0, (("B", 1), ("B", 0)): -99.0,
    }  # fmt: skip
    svcca = {
        (("A", 0), ("B", 0)): 0.6, (("A", 0), ("B", 1)): 0.4,
        (("A", 1), ("B", 0)): 0.5, (("A", 1), ("B", 1)): 0.9,
        (("A", 0), ("A", 1)): 42.0,
    }  # fmt: skip
    rows = [row(a, b, "maxsim", "a->b", v) for (a, b), v in maxsim.items()]
    rows += [row(a, b, "svcca", "sym", v) for (a, b), v in svcca.items()]
    table = ResultTable.from_records(rows)
    out = localisation_scores(table)
    layers = [("A", 0), ("A", 1), ("B", 0), ("B", 1)]
    neuron = [0.8, 0.5, 0.5, 0.5]  # means of each layer's row to the other model, by hand
    subspace = [0.5, 0.7, 0.55, 0.65]  # svcca is symmetric: B0 -> (0.6 + 0.5) / 2, B1 -> (0.4 + 0.9) / 2
    z_n = [(x - statistics.fmean(neuron)) / statistics.pstdev(neuron) for x in neuron]
    z_s = [(x - statistics.fmean(subspace)) / statistics.pstdev(subspace) for x in subspace]
    assert list(zip(out["model"], out["layer"], strict=True)) == layers
    assert out["neuron_mean"].tolist() == pytest.approx(neuron)
    assert out["subspace_mean"].tolist() == pytest.approx(subspace)
    assert out["score"].tolist() == pytest.approx([a - b for a, b in zip(z_n, z_s, strict=True)])


def test_localisation_needs_both_measures():
    table = ResultTable.from_records([row(("A", 0), ("B", 0), "maxsim", "a->b", 0.5)])
    with pytest.raises(KeyError, match="'svcca'"):
        localisation_scores(table)


def test_finetune_similarity_by_hand():
    rows = []
    base_values = {"ft1": [0.95, 0.9, 0.6], "ft2": [0.9, 0.7, 0.3]}
    for model, values in base_values.items():
        for layer, value in enumerate(values):
            rows.append(row((model, layer), ("bert", layer), "maxsim", "a->b", value))
            rows.append(row(("bert", layer), (model, layer), "maxsim", "a->b", value - 0.05))  # other way
            rows.append(row((model, layer), ("bert", layer), "attention_js", "a->b", value / 2, "attention"))
            rows.append(row(("bert", layer), (model, layer), "linear_cka", "sym", value + 0.01))
    table = ResultTable.from_records(rows)
    out = finetune_similarity(table, "bert", ["ft1", "ft2"])
    assert set(out["measure"]) == {"maxsim", "attention_js", "linear_cka"}
    ft2 = out[(out["model"] == "ft2") & (out["measure"] == "maxsim")]
    assert ft2["layer"].tolist() == [0, 1, 2]
    assert ft2["value"].tolist() == [0.9, 0.7, 0.3]  # fine-tuned -> base direction
    cka = out[(out["model"] == "ft1") & (out["measure"] == "linear_cka")]
    assert cka["value"].tolist() == pytest.approx([0.96, 0.91, 0.61])
    attention = out[out["measure"] == "attention_js"]
    assert set(attention["level"]) == {"attention"}
    with pytest.raises(ValueError, match="both the base and a fine-tuned"):
        finetune_similarity(table, "bert", ["bert"])
    with pytest.raises(KeyError, match="'gpt2'"):
        finetune_similarity(table, "bert", ["gpt2"])
    with pytest.raises(ValueError, match="list of model names"):
        finetune_similarity(table, "bert", "ft1")


def test_finetune_layers_must_exist_in_base():
    rows = [
        row(("ft", 0), ("bert", 0), "linear_cka", "sym", 0.9),
        row(("ft", 1), ("bert", 0), "linear_cka", "sym", 0.5),
    ]
    table = ResultTable.from_records(rows)
    with pytest.raises(ValueError, match=r"layers \[1\] that base model 'bert' lacks"):
        finetune_similarity(table, "bert", ["ft"])


def test_aggregates_cover_the_models_a_measure_has():
    blocks = {("A", "B"): A_TO_B, ("B", "A"): B_TO_A}
    rows = directed_table("maxsim", blocks) + directed_table("svcca_like", {("A", "C"): [[0.5]], ("C", "A"): [[0.4]]})
    table = ResultTable.from_records(rows)
    tidy = model_to_model(table, "maxsim")
    assert set(tidy["model_a"]) == {"A", "B"}  # C has no maxsim rows: not a column of empty values
    with pytest.raises(ValueError, match="no maxsim rows for model 'C'"):
        model_to_model(table, "maxsim", models=["A", "B", "C"])


def test_localisation_joins_the_two_measures_on_model_and_layer():
    """maxsim covers layers 0-2 of B, svcca layers 1-3: each layer's two means must be its own."""
    rng = np.random.default_rng(8)
    rows = []
    for measure, b_layers in (("maxsim", range(3)), ("svcca", range(1, 4))):
        direction = "a->b" if measure == "maxsim" else "sym"
        for la in range(3):
            for lb in b_layers:
                value = float(rng.uniform(0.1, 0.9))
                rows.append(row(("A", la), ("B", lb), measure, direction, value))
                if direction == "a->b":
                    rows.append(row(("B", lb), ("A", la), measure, direction, float(rng.uniform(0.1, 0.9))))
    table = ResultTable.from_records(rows)
    scores = localisation_scores(table)
    frame = table.frame
    for r in scores.itertuples(index=False):
        other = "B" if r.model == "A" else "A"
        def mean(measure, r=r, other=other):
            sel = frame[(frame.measure == measure) & (frame.model_a == r.model) & (frame.layer_a == r.layer)
                        & (frame.model_b == other)]
            if measure == "svcca" and sel.empty:  # symmetric rows are stored once, either way round
                sel = frame[(frame.measure == measure) & (frame.model_b == r.model) & (frame.layer_b == r.layer)
                            & (frame.model_a == other)]
            return sel.value.mean()
        assert r.neuron_mean == pytest.approx(mean("maxsim"))
        assert r.subspace_mean == pytest.approx(mean("svcca"))
    assert sorted(zip(scores.model, scores.layer, strict=True)) == [("A", 0), ("A", 1), ("A", 2), ("B", 1), ("B", 2)]
