"""The results table's statistics: nullable stat columns, per-row arrays, their sidecar and `uncertainty`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from reprsim.inference import STAT_COLUMNS, Uncertainty
from reprsim.results import COLUMNS, ResultTable, StaleStatsWarning, stats_sidecar

INFERENCE = {
    "options": {"ci": "bootstrap", "null": "permutation", "blocks": 5, "resamples": 7, "permutations": 4,
                "alpha": 0.1, "seed": 0},
    "methods": {"linear_cka": {"ci": "bootstrap (exact)", "null": "permutation"},
                "maxsim": {"ci": "bootstrap (linearised)", "null": "none"}},
}


def base_rows() -> list[dict]:
    rows = []
    for la in range(2):
        for lb in range(2):
            rows.append({"model_a": "a", "layer_a": la, "model_b": "b", "layer_b": lb, "measure": "linear_cka",
                         "direction": "sym", "value": 0.5 + 0.1 * la + 0.01 * lb, "level": "representation",
                         "n_rows": 100, "subsample": False})
    for ma, mb in (("a", "b"), ("b", "a")):
        rows.append({"model_a": ma, "layer_a": 0, "model_b": mb, "layer_b": 1, "measure": "maxsim",
                     "direction": "a->b", "value": 0.3 if ma == "a" else 0.2, "level": "representation",
                     "n_rows": 100, "subsample": False})
    return rows


def stat_rows() -> list[dict]:
    """Rows with statistics; the arrays are distinct per row so that a mix-up shows."""
    rows = base_rows()
    for i, row in enumerate(rows):
        if i == 1:  # a row without any statistic: every one missing
            continue
        row.update(se=0.01 * (i + 1), ci_low=row["value"] - 0.05, ci_high=row["value"] + 0.04,
                   null_mean=None if row["measure"] == "maxsim" else 0.02, p_value=1 / (i + 2),
                   calibrated=0.0 if i == 2 else 0.5)
        row["replicates"] = np.arange(7, dtype=float) + 10 * i
        row["replicate_kind"] = "bootstrap"
        if row["measure"] == "linear_cka":
            row["null_values"] = np.linspace(-1, 1, 4) * (i + 1)
    return rows


@pytest.fixture()
def table() -> ResultTable:
    return ResultTable.from_records(stat_rows(), {"inference": INFERENCE, "corpus_hash": "abc"})


def assert_same_stats(a: ResultTable, b: ResultTable) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.provenance == b.provenance
    for row in a.frame.itertuples():
        ua = a.uncertainty(row.measure, (row.model_a, row.layer_a), (row.model_b, row.layer_b))
        ub = b.uncertainty(row.measure, (row.model_a, row.layer_a), (row.model_b, row.layer_b))
        assert ua.columns() == ub.columns()
        assert ua.replicate_kind == ub.replicate_kind
        for name in ("replicates", "null_values"):
            x, y = getattr(ua, name), getattr(ub, name)
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)


def test_stat_columns_are_nullable_floats_after_the_schema(table):
    frame = table.frame
    assert list(frame.columns) == [*COLUMNS, *STAT_COLUMNS]
    for column in STAT_COLUMNS:
        assert str(frame[column].dtype) == "Float64"
    # The row without statistics is missing everywhere, the maxsim rows lack only null_mean.
    assert frame.loc[1, list(STAT_COLUMNS)].isna().all()
    assert frame.loc[frame["measure"] == "maxsim", "null_mean"].isna().all()
    for column in STAT_COLUMNS:  # missing is <NA> (masked), never a NaN hiding in the data
        assert not np.isnan(frame[column].to_numpy(dtype=float, na_value=0.0)).any()
    assert table.has_stats() and table.has_arrays()


def test_uncertainty_reads_columns_arrays_and_methods(table):
    found = table.uncertainty("linear_cka", ("b", 0), ("a", 1))  # a symmetric pair in the other order
    row = base_rows()[2]
    assert isinstance(found, Uncertainty)
    assert found.se == pytest.approx(0.03)
    assert found.ci_low == pytest.approx(row["value"] - 0.05) and found.ci_high == pytest.approx(row["value"] + 0.04)
    assert found.p_value == pytest.approx(1 / 4) and found.calibrated == 0.0 and found.null_mean == 0.02
    assert found.ci_method == "bootstrap (exact)" and found.null_method == "permutation"
    np.testing.assert_array_equal(found.replicates, np.arange(7) + 20)
    assert found.replicate_kind == "bootstrap"
    np.testing.assert_array_equal(found.null_values, np.linspace(-1, 1, 4) * 3)
    with pytest.raises(ValueError):
        found.replicates[0] = 1.0  # read-only: the table's arrays cannot be changed through it
    empty = table.uncertainty("linear_cka", ("a", 0), ("b", 1))
    assert empty.columns() == dict.fromkeys(STAT_COLUMNS) and empty.replicates is None
    directed = table.uncertainty("maxsim", ("b", 0), ("a", 1))
    assert directed.ci_method == "bootstrap (linearised)" and directed.null_values is None
    np.testing.assert_array_equal(directed.replicates, np.arange(7) + 50)
    with pytest.raises(KeyError, match="no value"):
        table.uncertainty("maxsim", ("a", 1), ("b", 0))


def test_stat_matrix_and_array_stack(table):
    rows, cols = [("a", 0), ("a", 1)], [("b", 0), ("b", 1)]
    from reprsim.results import LayerId

    rows, cols = [LayerId(*r) for r in rows], [LayerId(*c) for c in cols]
    p = table.stat_matrix("linear_cka", "p_value", rows, cols)
    expected = np.array([[1 / 2, np.nan], [1 / 4, 1 / 5]])
    np.testing.assert_allclose(p, expected)
    assert table.array_stack("linear_cka", rows, cols) is None  # row 1 has no replicates
    kind, stack = table.array_stack("linear_cka", rows[1:], cols)
    assert kind == "bootstrap" and stack.shape == (7, 1, 2)
    np.testing.assert_array_equal(stack[:, 0, 1], np.arange(7) + 30)
    kind, nulls = table.array_stack("linear_cka", rows[1:], cols, "null_values")
    assert kind == "permutation"
    np.testing.assert_array_equal(nulls[:, 0, 0], np.linspace(-1, 1, 4) * 3)
    with pytest.raises(ValueError, match="statistics column"):
        table.stat_matrix("linear_cka", "value", rows, cols)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_keeps_stats_and_arrays(table, tmp_path, suffix):
    path = table.save(tmp_path / f"results{suffix}")
    assert stats_sidecar(path).is_file() and stats_sidecar(path).name == f"results{suffix}.stats.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = ResultTable.load(path)
    assert_same_stats(table, loaded)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_old_tables_are_unchanged(tmp_path, suffix):
    table = ResultTable.from_records(base_rows())
    assert list(table.frame.columns) == list(COLUMNS)
    assert not table.has_stats() and not table.has_arrays()
    assert table.uncertainty("linear_cka", ("a", 0), ("b", 0)).columns() == dict.fromkeys(STAT_COLUMNS)
    path = table.save(tmp_path / f"old{suffix}")
    assert not stats_sidecar(path).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = ResultTable.load(path)
    assert list(loaded.frame.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(loaded.frame, table.frame)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_missing_sidecar_warns_and_loads_without_arrays(table, tmp_path, suffix):
    path = table.save(tmp_path / f"results{suffix}")
    stats_sidecar(path).unlink()
    with pytest.warns(StaleStatsWarning, match="missing"):
        loaded = ResultTable.load(path)
    assert not loaded.has_arrays()
    pd.testing.assert_frame_equal(loaded.frame, table.frame)


def test_saving_a_table_without_arrays_removes_a_stale_sidecar(table, tmp_path):
    path = table.save(tmp_path / "results.parquet")
    ResultTable.from_records(base_rows()).save(path)
    assert not stats_sidecar(path).exists()


def test_sidecar_rows_are_matched_by_pair_not_position(table, tmp_path):
    path = table.save(tmp_path / "results.csv")
    shuffled = pd.read_csv(path, dtype=str, keep_default_na=False).iloc[::-1]
    shuffled.to_csv(path, index=False)
    loaded = ResultTable.load(path)
    np.testing.assert_array_equal(loaded.uncertainty("maxsim", ("a", 0), ("b", 1)).replicates, np.arange(7) + 40)
    dropped = shuffled.iloc[1:]  # the first maxsim row (b -> a) is gone from the file
    dropped.to_csv(path, index=False)
    with pytest.warns(StaleStatsWarning, match="does not hold"):
        ResultTable.load(path)


def test_concat_keeps_arrays_and_fills_missing_stats(table):
    other = ResultTable.from_records([{**r, "model_a": "c"} for r in base_rows()[:1]])
    both = ResultTable.concat([other, table])
    assert both.frame.loc[0, list(STAT_COLUMNS)].isna().all()
    np.testing.assert_array_equal(both.uncertainty("maxsim", ("a", 0), ("b", 1)).replicates, np.arange(7) + 40)
    assert both.uncertainty("linear_cka", ("c", 0), ("b", 0)).replicates is None


def test_subset_keeps_arrays(table):
    kept = table.subset(table.frame["measure"].to_numpy() == "maxsim")
    assert len(kept) == 2 and kept.provenance == table.provenance
    np.testing.assert_array_equal(kept.uncertainty("maxsim", ("b", 0), ("a", 1)).replicates, np.arange(7) + 50)
    with pytest.raises(ValueError, match="one boolean per row"):
        table.subset([True])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"se": float("nan")}, "se must be a finite number or missing"),
        ({"p_value": float("inf")}, "p_value must be a finite number"),
        ({"se": "0.1"}, "se must be a finite number"),
        ({"ci_low": True}, "ci_low must be a finite number"),
        ({"se": -0.1}, "se must be >= 0"),
        ({"p_value": 0.0}, r"p_value must be in \(0, 1\]"),
        ({"p_value": 1.5}, r"p_value must be in \(0, 1\]"),
        ({"calibrated": -0.01}, r"calibrated must be in \[0, 1\]"),
        ({"calibrated": 1.01}, r"calibrated must be in \[0, 1\]"),
        ({"ci_low": 0.9, "ci_high": 0.8}, "ci_low must be <= ci_high"),
        ({"replicates": [1.0, float("nan")], "replicate_kind": "jackknife"}, "replicates must be finite"),
        ({"replicates": [[1.0, 2.0]], "replicate_kind": "jackknife"}, "non-empty 1-D"),
        ({"replicates": [1.0, 2.0]}, "replicate_kind must be one of"),
        ({"replicates": [1.0], "replicate_kind": "subsample"}, "replicate_kind must be one of"),
        ({"replicate_kind": "bootstrap"}, "without replicates"),
        ({"null_values": []}, "null_values must be a non-empty"),
    ],
)
def test_bad_statistics_name_the_row(change, message):
    rows = base_rows()
    rows[3].update(change)
    with pytest.raises(ValueError, match=message) as info:
        ResultTable.from_records(rows)
    assert "row 3" in str(info.value) and "layer_a=1" in str(info.value)


def test_value_outside_its_interval_is_allowed():
    rows = base_rows()
    rows[0].update(ci_low=0.9, ci_high=0.95)  # a bias-corrected interval need not contain the estimate
    assert ResultTable.from_records(rows).uncertainty("linear_cka", ("a", 0), ("b", 0)).ci_low == 0.9


def test_nan_in_a_float_frame_is_refused_but_na_is_missing():
    frame = pd.DataFrame(base_rows())
    frame["p_value"] = np.nan
    with pytest.raises(ValueError, match=r"row 0 .*p_value must be a finite number or missing"):
        ResultTable(frame)
    frame["p_value"] = pd.array([None] * len(frame), dtype="Float64")
    assert ResultTable(frame).frame["p_value"].isna().all()


def test_bad_csv_statistic_names_the_file_and_row(table, tmp_path):
    path = table.save(tmp_path / "results.csv")
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    text.loc[2, "se"] = "nan"
    text.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"results.csv.*row 2 .*se must be a finite number"):
        ResultTable.load(path)
    text.loc[2, "se"] = "abc"
    text.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 2 .*got 'abc'"):
        ResultTable.load(path)
