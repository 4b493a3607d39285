"""ResultTable: schema validation, Parquet/CSV round trips with provenance, and matrix views."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from reprsim.results import COLUMNS, LayerId, ResultTable, provenance_sidecar

PROVENANCE = {
    "store": "/data/store",
    "corpus_hash": "0f" * 32,
    "versions": {"reprsim": "0.1.0", "torch": "2.13.0"},
    "options": {"keep": 0.99, "align": "last", "layers": [0, 1, 2]},
}


def row(model_a, layer_a, model_b, layer_b, measure, direction, value, level="representation", **extra):
    out = {
        "model_a": model_a,
        "layer_a": layer_a,
        "model_b": model_b,
        "layer_b": layer_b,
        "measure": measure,
        "direction": direction,
        "value": value,
        "level": level,
        "n_rows": 500,
        "subsample": False,
    }
    out.update(extra)
    return out


def sym_rows(measure, models, layers, value_of):
    """Every unordered pair once (self-pairs included), in the order a <= b by position."""
    ids = [(m, layer) for m in models for layer in layers]
    return [
        row(*ids[i], *ids[j], measure, "sym", value_of(ids[i], ids[j]))
        for i in range(len(ids))
        for j in range(i, len(ids))
    ]


def directed_rows(measure, models, layers, value_of, level="representation"):
    ids = [(m, layer) for m in models for layer in layers]
    return [row(*a, *b, measure, "a->b", value_of(a, b), level=level) for a in ids for b in ids]


def cka_like(a, b):
    """Deterministic, non-trivial values with many decimals, so round trips are checked bit for bit."""
    return 1.0 / (1.0 + abs(a[1] - b[1]) + (0.0 if a[0] == b[0] else 0.123456789))


def js_like(a, b):
    return 0.3 + 0.1 * a[1] + 0.01 * b[1] + (0.05 if a[0] == "bert" else 0.0) + 1e-13


@pytest.fixture
def table() -> ResultTable:
    rows = sym_rows("linear_cka", ["bert", "gpt2"], [0, 1, 2], cka_like)
    rows += directed_rows("attention_js", ["bert", "gpt2"], [0, 1, 2], js_like, level="attention")
    return ResultTable.from_records(rows, PROVENANCE)


def test_models_layers_measures(table):
    assert table.models() == ["bert", "gpt2"]
    assert table.layers("bert") == [0, 1, 2]
    assert table.measures() == ["linear_cka", "attention_js"]
    assert table.measures("attention") == ["attention_js"]
    assert table.level("attention_js") == "attention"
    assert table.is_symmetric("linear_cka") and not table.is_symmetric("attention_js")
    assert len(table) == 21 + 36
    with pytest.raises(KeyError, match=r"'roberta'.*bert"):
        table.layers("roberta")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_keeps_rows_dtypes_and_provenance(table, tmp_path, suffix):
    path = table.save(tmp_path / f"results{suffix}")
    loaded = ResultTable.load(path)
    assert loaded.provenance == PROVENANCE
    pd.testing.assert_frame_equal(loaded.frame, table.frame, check_exact=True)
    assert loaded.frame["layer_a"].dtype == np.int64
    assert loaded.frame["subsample"].dtype == bool


def test_parquet_provenance_lives_in_schema_metadata(table, tmp_path):
    path = table.save(tmp_path / "results.parquet")
    metadata = pq.read_schema(path).metadata
    assert json.loads(metadata[b"reprsim.provenance"]) == PROVENANCE


def test_csv_provenance_sidecar(table, tmp_path):
    path = table.save(tmp_path / "results.csv")
    sidecar = provenance_sidecar(path)
    assert sidecar.name == "results.csv.provenance.json"
    assert json.loads(sidecar.read_text()) == PROVENANCE
    sidecar.unlink()
    assert ResultTable.load(path).provenance == {}


def test_explicit_format_and_unknown_suffix(table, tmp_path):
    path = table.save(tmp_path / "results.dat", format="csv")
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert len(ResultTable.load(path, format="csv")) == len(table)
    with pytest.raises(ValueError, match=r"\.txt"):
        table.save(tmp_path / "results.txt")
    with pytest.raises(ValueError, match="unknown results format 'json'"):
        table.save(tmp_path / "results.parquet", format="json")
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        ResultTable.load(tmp_path / "nope.parquet")


def test_numeric_looking_model_names_stay_strings_through_csv(tmp_path):
    rows = sym_rows("linear_cka", ["123", "007"], [0, 1], cka_like)
    table = ResultTable.from_records(rows)
    loaded = ResultTable.load(table.save(tmp_path / "r.csv"))
    assert loaded.models() == ["123", "007"]


def test_symmetric_matrix_expands_both_orders(table):
    matrix = table.matrix("linear_cka")
    expected_labels = [LayerId(m, layer) for m in ("bert", "gpt2") for layer in (0, 1, 2)]
    assert list(matrix.labels) == expected_labels
    for i, a in enumerate(expected_labels):
        for j, b in enumerate(expected_labels):
            assert matrix.values[i, j] == cka_like(a, b)  # cka_like is itself symmetric
    assert matrix.symmetric and matrix.level == "representation"
    assert matrix.block("gpt2", "bert").shape == (3, 3)


def test_directed_matrix_row_is_from_side(table):
    matrix = table.matrix("attention_js", models=["gpt2", "bert"])
    assert matrix.models == ["gpt2", "bert"]
    for i, a in enumerate(matrix.labels):
        for j, b in enumerate(matrix.labels):
            assert matrix.values[i, j] == js_like(a, b)
    assert table.value("attention_js", ("bert", 2), ("gpt2", 0)) == js_like(("bert", 2), ("gpt2", 0))
    assert not matrix.symmetric


def test_pair_matrix_of_directed_measure_is_not_transposed(table):
    forward = table.pair_matrix("attention_js", "bert", "gpt2")
    backward = table.pair_matrix("attention_js", "gpt2", "bert")
    for i in range(3):
        for j in range(3):
            assert forward[i, j] == js_like(("bert", i), ("gpt2", j))
            assert backward[j, i] == js_like(("gpt2", j), ("bert", i))


def test_missing_pair_raises_naming_it():
    rows = [row("a", 0, "b", 0, "linear_cka", "sym", 0.5), row("a", 0, "b", 1, "linear_cka", "sym", 0.4)]
    table = ResultTable.from_records(rows)
    assert table.pair_matrix("linear_cka", "a", "b").tolist() == [[0.5, 0.4]]
    with pytest.raises(KeyError, match=r"\(a, layer 0\) -> \(a, layer 0\)"):
        table.matrix("linear_cka")
    with pytest.raises(KeyError, match=r"'cka'.*linear_cka"):
        table.matrix("cka")
    with pytest.raises(KeyError, match="no layer 7"):
        table.value("linear_cka", ("a", 7), ("b", 0))


def test_concat_merges_provenance_and_refuses_overlap(table):
    other = ResultTable.from_records(
        sym_rows("svcca", ["bert", "gpt2"], [0, 1, 2], cka_like), {"store": "/elsewhere"}
    )
    both = ResultTable.concat([table, other])
    assert both.measures() == ["linear_cka", "attention_js", "svcca"]
    assert both.provenance == {"parts": [PROVENANCE, {"store": "/elsewhere"}]}
    assert (
        ResultTable.concat([table, table.__class__(table.frame.iloc[:0], PROVENANCE)]).provenance
        == PROVENANCE
    )
    with pytest.raises(ValueError, match="duplicates"):
        ResultTable.concat([table, table])


def test_extra_columns_are_kept(tmp_path):
    rows = [row("a", 0, "b", 0, "maxsim", "a->b", 0.5, n_excluded=3)]
    table = ResultTable.from_records(rows)
    assert table.frame["n_excluded"].tolist() == [3]
    assert ResultTable.load(table.save(tmp_path / "r.parquet")).frame["n_excluded"].tolist() == [3]


def _frame(rows):
    return pd.DataFrame(rows)


def test_missing_column_named():
    frame = _frame([row("a", 0, "b", 0, "maxsim", "a->b", 0.5)]).drop(columns=["direction", "level"])
    with pytest.raises(ValueError, match=r"missing columns \['direction', 'level'\]"):
        ResultTable(frame)


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("direction", "b->a", r"row 1 .*direction must be one of"),
        ("value", float("nan"), r"row 1 .*value must be a finite number"),
        ("value", float("inf"), r"row 1 .*value must be a finite number"),
        ("value", "high", r"row 1 .*value must be a finite number"),
        ("layer_a", 1.5, r"row 1 .*layer_a must be an integer"),
        ("layer_b", -1, r"row 1 .*layer_b must be an integer >= 0"),
        ("level", "neuron", r"row 1 .*level must be one of"),
        ("model_a", "", r"row 1 .*model_a must be a non-empty string"),
        ("model_b", None, r"row 1 .*model_b must be a non-empty string"),
        ("n_rows", 0, r"row 1 .*n_rows must be an integer >= 1"),
        ("subsample", "maybe", r"row 1 .*subsample must be True or False"),
    ],
)
def test_bad_cell_names_the_row(field, bad, message):
    rows = [row("a", 0, "b", 0, "maxsim", "a->b", 0.5), row("a", 1, "b", 0, "maxsim", "a->b", 0.6)]
    rows[1][field] = bad
    with pytest.raises(ValueError, match=message):
        ResultTable(_frame(rows))


def test_mirrored_symmetric_pair_is_a_duplicate():
    rows = [row("a", 0, "b", 1, "linear_cka", "sym", 0.5), row("b", 1, "a", 0, "linear_cka", "sym", 0.5)]
    with pytest.raises(ValueError, match=r"row 1 .*duplicates"):
        ResultTable(_frame(rows))
    # For a directed measure the two orders are different values, and both belong in the table.
    directed = [row("a", 0, "b", 1, "maxsim", "a->b", 0.5), row("b", 1, "a", 0, "maxsim", "a->b", 0.7)]
    assert ResultTable(_frame(directed)).value("maxsim", ("b", 1), ("a", 0)) == 0.7


def test_measure_with_mixed_direction_or_level_is_refused():
    mixed = [row("a", 0, "b", 0, "maxsim", "a->b", 0.5), row("a", 1, "b", 0, "maxsim", "sym", 0.6)]
    with pytest.raises(ValueError, match="'maxsim' has rows with several direction values"):
        ResultTable(_frame(mixed))
    levels = [
        row("a", 0, "b", 0, "maxsim", "a->b", 0.5),
        row("a", 1, "b", 0, "maxsim", "a->b", 0.6, "attention"),
    ]
    with pytest.raises(ValueError, match="several level values"):
        ResultTable(_frame(levels))


def test_provenance_must_be_json():
    with pytest.raises(ValueError, match="JSON"):
        ResultTable.from_records([row("a", 0, "b", 0, "maxsim", "a->b", 0.5)], {"when": object()})


def test_table_is_not_changed_through_its_views(table):
    frame = table.frame
    frame.loc[0, "value"] = -5.0
    provenance = table.provenance
    provenance["options"]["keep"] = 0.5
    assert table.frame.loc[0, "value"] != -5.0
    assert table.provenance == PROVENANCE


def test_load_names_the_file_on_a_bad_table(tmp_path):
    path = tmp_path / "bad.csv"
    frame = _frame([row("a", 0, "b", 0, "maxsim", "a->b", 0.5)])
    frame.loc[0, "direction"] = "sideways"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"bad\.csv.*sideways"):
        ResultTable.load(path)


def test_layers_per_measure_leave_out_layers_a_measure_does_not_cover():
    """Attention measures have no layer 0; matrices and model aggregates of them must not ask for it."""
    from reprsim.analysis import model_matrix

    rows = []
    cross = [("A", i, "B", j) for i in range(3) for j in range(3)]
    within = [(m, i, m, j) for m in ("A", "B") for i in range(3) for j in range(i, 3)]
    for a, la, b, lb in cross + within:
        rows.append({"model_a": a, "layer_a": la, "model_b": b, "layer_b": lb, "measure": "linear_cka",
                     "direction": "sym", "value": 0.5, "level": "representation", "n_rows": 10, "subsample": False})
    for a, b in [("A", "B"), ("B", "A"), ("A", "A"), ("B", "B")]:
        for la in (1, 2):
            for lb in (1, 2):
                rows.append({"model_a": a, "layer_a": la, "model_b": b, "layer_b": lb, "measure": "attention_js",
                             "direction": "a->b", "value": 0.1 * la + 0.01 * lb, "level": "attention",
                             "n_rows": 10, "subsample": False})
    table = ResultTable.from_records(rows)
    assert table.layers("A") == [0, 1, 2]
    assert table.layers("A", "attention_js") == [1, 2]
    assert [label.layer for label in table.matrix("attention_js").labels] == [1, 2, 1, 2]
    matrix = model_matrix(table, "attention_js")
    # A -> B: mean over A's layers 1, 2 of the best over B's layers = mean(0.12, 0.22)
    assert matrix.loc["A", "B"] == pytest.approx(0.17)


def test_loading_a_folder_or_an_empty_csv_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="is a folder, not a file"):
        ResultTable.load(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv' is not a readable CSV file"):
        ResultTable.load(empty)
