"""Model-level aggregation options and the depth-normalised aggregate, against plain loops over the table."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from reprsim.analysis import AGGREGATIONS, depth_aggregate, model_matrix, model_to_model
from reprsim.results import ResultTable

DEPTHS = {"A": [0, 1, 2, 3, 4, 5, 6], "B": [0, 5, 10, 15, 20, 25, 30], "C": [0, 2, 4]}


def table(measure: str = "linear_cka", symmetric: bool = True, seed: int = 0) -> ResultTable:
    rng = np.random.default_rng(seed)
    layers = [(m, layer) for m, ls in DEPTHS.items() for layer in ls]
    records = []
    for i, a in enumerate(layers):
        for j, b in enumerate(layers):
            if symmetric and j < i:
                continue
            value = 1.0 if a == b else float(rng.uniform(0, 1))
            records.append({"model_a": a[0], "layer_a": a[1], "model_b": b[0], "layer_b": b[1], "measure": measure,
                            "direction": "sym" if symmetric else "a->b", "value": value,
                            "level": "representation", "n_rows": 100, "subsample": False})
    return ResultTable.from_records(records)


def value(t: ResultTable, measure: str, a: tuple[str, int], b: tuple[str, int]) -> float:
    return t.value(measure, a, b)


@pytest.mark.parametrize(("measure", "symmetric", "larger"), [("linear_cka", True, True), ("maxsim", False, True),
                                                              ("angular_distance", True, False)])
def test_each_aggregation_equals_a_plain_loop(measure: str, symmetric: bool, larger: bool) -> None:
    t = table(measure, symmetric)
    best = max if larger else min
    for aggregation in AGGREGATIONS:
        tidy = model_to_model(t, measure, aggregation=aggregation).set_index(["model_a", "model_b"])
        for a, b in itertools.permutations(DEPTHS, 2):
            if aggregation == "mean_best":
                expected = np.mean([best(value(t, measure, (a, la), (b, lb)) for lb in DEPTHS[b]) for la in DEPTHS[a]])
            elif aggregation == "max":
                expected = best(value(t, measure, (a, la), (b, lb)) for la in DEPTHS[a] for lb in DEPTHS[b])
            else:
                da = [la / max(DEPTHS[a]) for la in DEPTHS[a]]
                db = [lb / max(DEPTHS[b]) for lb in DEPTHS[b]]
                nearest = [DEPTHS[b][min(range(len(db)), key=lambda k, x=x: (abs(x - db[k]), k))] for x in da]
                expected = np.mean([value(t, measure, (a, la), (b, lb)) for la, lb in zip(DEPTHS[a], nearest,
                                                                                          strict=True)])
            assert tidy.loc[(a, b), "value"] == pytest.approx(expected, abs=1e-12), (aggregation, a, b)
            reverse = tidy.loc[(b, a), "value"]
            assert tidy.loc[(a, b), "symmetric"] == pytest.approx((tidy.loc[(a, b), "value"] + reverse) / 2)
        if aggregation == "max" and symmetric:  # the best layer pair is the same pair seen from either side
            matrix = model_matrix(t, measure, aggregation="max")
            np.testing.assert_allclose(matrix.values, matrix.values.T)


def test_depth_aggregate_bins_every_cross_model_layer_pair() -> None:
    t = table()
    got = depth_aggregate(t, "linear_cka", bins=4)
    total, count = np.zeros((4, 4)), np.zeros((4, 4))
    for a, b in itertools.permutations(DEPTHS, 2):
        for la in DEPTHS[a]:
            for lb in DEPTHS[b]:
                i = min(int(la / max(DEPTHS[a]) * 4), 3)
                j = min(int(lb / max(DEPTHS[b]) * 4), 3)
                total[i, j] += value(t, "linear_cka", (a, la), (b, lb))
                count[i, j] += 1
    np.testing.assert_allclose(got.values, total / count, atol=1e-12)
    np.testing.assert_allclose(got.values, got.values.T, atol=1e-12)  # symmetric measure, both orders used
    assert list(got.index) == [0.0, 0.25, 0.5, 0.75]


def test_bad_aggregation_options_are_named() -> None:
    t = table()
    with pytest.raises(ValueError, match="aggregation must be one of mean_best, max, depth_diagonal, got 'mean'"):
        model_to_model(t, "linear_cka", aggregation="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bins must be a positive integer, got 0"):
        depth_aggregate(t, "linear_cka", bins=0)


def test_depth_ties_and_bins_are_decided_exactly() -> None:
    """Relative depths compared as fractions: an exact tie goes to the shallower layer, a bin edge is exact."""
    from reprsim.analysis.aggregate import _depth_bins, _nearest_depth

    for n_a in range(2, 14):
        for n_b in range(2, 14):
            a, b = list(range(n_a)), list(range(n_b))

            expected = [min(range(n_b), key=lambda k, la=la: (abs(Fraction(la, n_a - 1) - Fraction(k, n_b - 1)), k))
                        for la in a]
            assert _nearest_depth(a, b).tolist() == expected, (n_a, n_b)
    for deepest in range(1, 60):
        for bins in range(1, 25):
            got = _depth_bins(range(deepest + 1), bins).tolist()
            assert got == [min(layer * bins // deepest, bins - 1) for layer in range(deepest + 1)]
            assert got == [min(int(Fraction(layer, deepest) * bins), bins - 1) for layer in range(deepest + 1)]
