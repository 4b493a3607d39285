"""precision="auto": float32 products only for the measures that keep float64's values whatever the conditioning.

Each case is built to strain float32 (outlier neurons 1e4 x the rest, near-duplicate neurons, means 1e6 x the
spread, a first chunk whose means, which the engine subtracts, lie far from the rest's); the automatic pass must
stay within 1e-6 of a float64 computation on every measure, and a plain float32 pass is shown to leave it where
"auto" does not use float32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from reprsim.engine import RepresentationSource, all_pairs
from reprsim.engine.linear_fit import ENGINE_MEASURES, FLOAT32_EXACT_MEASURES, Directed, pass_precision

N, WIDTH = 6000, 24
EXACT = sorted(FLOAT32_EXACT_MEASURES)
SENSITIVE = ["linreg", "r2_lr", "cca_rho", "svcca", "pwcca", "gulp"]


def _layers(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((N, 6))
    return [(latent @ rng.standard_normal((6, WIDTH)) + 0.5 * rng.standard_normal((N, WIDTH))).astype(np.float32)
            for _ in range(3)]


def _outliers(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[:, :2] *= 1e4
    return y


def _near_duplicates(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[:, 1] = y[:, 0] + 1e-3 * np.random.default_rng(1).standard_normal(len(y)).astype(np.float32)
    return y


def _large_means(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) + 1e6 * x.std(axis=0)).astype(np.float32)


def _unlike_first_chunk(x: np.ndarray) -> np.ndarray:
    """The engine subtracts the first chunk's means before its products: here they are 30 sd from the rest's."""
    y = x.astype(np.float64)
    y[:10] += 30 * y.std(axis=0)
    return y.astype(np.float32)


CASES = {"outliers 1e4": _outliers, "near-duplicate neurons": _near_duplicates, "means 1e6 x the spread": _large_means,
         "a first chunk unlike the rest": _unlike_first_chunk}
CHUNK_ROWS = {"a first chunk unlike the rest": 10}


def _flat(value: object) -> list[float]:
    if isinstance(value, Directed):
        return [float(value.a_to_b), float(value.b_to_a)]
    return [float(value)]  # type: ignore[arg-type]


def _values(layers: list[np.ndarray], measures: list[str], precision: str, chunk_rows: int = 1000) -> np.ndarray:
    sources = [RepresentationSource.from_array(i, x) for i, x in enumerate(layers)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-duplicate neurons warn about rank; not what is tested here
        results = all_pairs(sources, measures, precision=precision, chunk_rows=chunk_rows, progress=False)  # type: ignore[arg-type]
    return np.array([v for r in results for m in measures for v in _flat(r.values[m])])


def _float64_reference(layers: list[np.ndarray], measures: list[str]) -> np.ndarray:
    return _values([x.astype(np.float64) for x in layers], measures, "float64")


@pytest.mark.parametrize("case", sorted(CASES))
def test_auto_keeps_float64_values_of_the_float32_measures_on_ill_conditioned_layers(case: str) -> None:
    base = _layers()
    layers = [CASES[case](base[0]), base[1], base[2]]
    auto = _values(layers, EXACT, "auto", CHUNK_ROWS.get(case, 1000))
    np.testing.assert_allclose(auto, _float64_reference(layers, EXACT), rtol=0, atol=1e-6)
    assert np.abs(auto - _values(layers, EXACT, "float64")).max() > 0  # float32 products did run


def test_auto_gives_the_whitening_measures_float64_where_float32_would_miss_1e_6() -> None:
    base = _layers()
    layers = [_near_duplicates(base[0]), base[1], base[2]]
    reference = _float64_reference(layers, SENSITIVE)
    np.testing.assert_allclose(_values(layers, SENSITIVE, "auto"), reference, rtol=0, atol=1e-9)
    assert np.abs(_values(layers, SENSITIVE, "float32") - reference).max() > 1e-6  # the case is a real test


def test_pass_precision_chooses_float32_only_for_the_exact_measures_without_statistics() -> None:
    assert pass_precision("auto", ["linear_cka", "maxsim", "procrustes"]) == "float32"
    assert pass_precision("auto", ["linear_cka", "linreg"]) == "float64"
    assert pass_precision("auto", ["linear_cka"], statistics=True) == "float64"
    assert pass_precision("auto", ["shape_metric(alpha=1)"]) == "float64"  # whitening below alpha = 1: not listed
    assert pass_precision("float32", ["pwcca"]) == "float32"
    assert pass_precision("float64", ["linear_cka"]) == "float64"
    assert set(FLOAT32_EXACT_MEASURES) < set(ENGINE_MEASURES)
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'float64', 'float32'\), got 'half'"):
        pass_precision("half", ["linear_cka"])  # type: ignore[arg-type]
