"""The invariance table of docs/measures.md as property tests for maxsim, linreg, R2_LR, CCA, SVCCA, PWCCA and
Procrustes.

Every "yes" is a hypothesis property (random data, random map of the class); every "no" is a concrete
counterexample with the size of the change asserted, so a measure that is accidentally invariant fails too.

PWCCA: the table in measures.md reads "orthogonal yes, isotropic scaling no". Its definition (alpha_k = sum_i
|<h_k, x_i>|) gives the opposite, as in Kornblith et al. 2019, Table 1: scaling X by c scales every alpha_k by
|c| and cancels in the ratio, while a rotation of X changes the L1 sums. The tests follow the definition.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reprsim.measures.cca import canonical_correlations, cca_r2, cca_rho, pwcca, svcca
from reprsim.measures.neuron import maxsim, maxsim_per_neuron
from reprsim.measures.procrustes import angular_distance, procrustes, procrustes_distance
from reprsim.measures.regression import linreg, r2_lr

Measure = Callable[[np.ndarray, np.ndarray], float]
MEASURES: dict[str, Measure] = {
    "maxsim": maxsim,
    "linreg": linreg,
    "r2_lr": r2_lr,
    "cca_r2": cca_r2,
    "cca_rho": cca_rho,
    "svcca": svcca,
    "svcca_wu": lambda X, Y: svcca(X, Y, keep=0.9, convention="wu"),
    "pwcca": pwcca,
    "procrustes": procrustes,
    "procrustes_distance": procrustes_distance,
    "angular_distance": angular_distance,
}
# measure -> (orthogonal, isotropic scaling, invertible linear on X, invertible linear on Y)
TABLE: dict[str, tuple[bool, bool, bool, bool]] = {
    "maxsim": (False, True, False, False),
    "linreg": (False, True, False, True),  # Wu's mixedsim (not in the table): Y is regressed on as a space
    "r2_lr": (True, True, False, True),
    "cca_r2": (True, True, True, True),
    "cca_rho": (True, True, True, True),
    "svcca": (True, True, False, False),  # invertible only if the kept subspace is unchanged: see below
    "svcca_wu": (False, True, False, False),  # standardising neurons gives up rotation invariance
    "pwcca": (False, True, False, True),
    "procrustes": (True, True, False, False),
    "procrustes_distance": (True, True, False, False),
    "angular_distance": (True, True, False, False),
}
ORTHOGONAL = [m for m, row in TABLE.items() if row[0]]
ISOTROPIC = [m for m, row in TABLE.items() if row[1]]
INVERTIBLE_X = [m for m, row in TABLE.items() if row[2]]
INVERTIBLE_Y = [m for m, row in TABLE.items() if row[3]]

PROPERTY = settings(max_examples=15, deadline=None)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def sample_pair(seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Related X (n x p) and Y (n x q) with n >= 10 * max(p, q), uneven neuron scales and offsets."""
    rng = np.random.default_rng(seed)
    p, q = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    n = 10 * max(p, q) + int(rng.integers(0, 60))
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, p)) + rng.standard_normal((n, p)) * rng.uniform(0.3, 2.0, p)
    Y = latent @ rng.standard_normal((3, q)) + rng.standard_normal((n, q)) * rng.uniform(0.3, 2.0, q)
    return X + rng.uniform(-5, 5, p), Y + rng.uniform(-5, 5, q), rng


def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def random_invertible(rng: np.random.Generator, d: int) -> np.ndarray:
    """Well-conditioned (condition number <= e^4) but far from orthogonal or diagonal."""
    singular_values = np.exp(rng.uniform(-2, 2, d))
    singular_values[0], singular_values[-1] = np.exp(2), np.exp(-2)
    return random_orthogonal(rng, d) @ np.diag(singular_values) @ random_orthogonal(rng, d)


def assert_unchanged(before: float, after: float) -> None:
    assert after == pytest.approx(before, rel=1e-8, abs=1e-10)


# ---------------------------------------------------------------- what must be invariant


@pytest.mark.parametrize("name", sorted(MEASURES))
@PROPERTY
@given(seed=seeds)
def test_neuron_permutation(name: str, seed: int) -> None:
    X, Y, rng = sample_pair(seed)
    f = MEASURES[name]
    assert_unchanged(f(X, Y), f(X[:, rng.permutation(X.shape[1])], Y[:, rng.permutation(Y.shape[1])]))


@pytest.mark.parametrize("name", ORTHOGONAL)
@PROPERTY
@given(seed=seeds)
def test_orthogonal_maps(name: str, seed: int) -> None:
    X, Y, rng = sample_pair(seed)
    f = MEASURES[name]
    Qx, Qy = random_orthogonal(rng, X.shape[1]), random_orthogonal(rng, Y.shape[1])
    assert_unchanged(f(X, Y), f(X @ Qx, Y @ Qy))


@pytest.mark.parametrize("name", ISOTROPIC)
@PROPERTY
@given(seed=seeds, cx=st.floats(1e-3, 1e3), cy=st.floats(1e-3, 1e3))
def test_isotropic_scaling(name: str, seed: int, cx: float, cy: float) -> None:
    X, Y, _ = sample_pair(seed)
    f = MEASURES[name]
    assert_unchanged(f(X, Y), f(cx * X, cy * Y))


@pytest.mark.parametrize("name", INVERTIBLE_X)
@PROPERTY
@given(seed=seeds)
def test_invertible_linear_map_of_x(name: str, seed: int) -> None:
    X, Y, rng = sample_pair(seed)
    f = MEASURES[name]
    assert_unchanged(f(X, Y), f(X @ random_invertible(rng, X.shape[1]), Y))


@pytest.mark.parametrize("name", INVERTIBLE_Y)
@PROPERTY
@given(seed=seeds)
def test_invertible_linear_map_of_y(name: str, seed: int) -> None:
    X, Y, rng = sample_pair(seed)
    f = MEASURES[name]
    assert_unchanged(f(X, Y), f(X, Y @ random_invertible(rng, Y.shape[1])))


@PROPERTY
@given(seed=seeds)
def test_canonical_correlations_under_invertible_maps(seed: int) -> None:
    X, Y, rng = sample_pair(seed)
    before = canonical_correlations(X, Y)
    after = canonical_correlations(
        X @ random_invertible(rng, X.shape[1]), Y @ random_invertible(rng, Y.shape[1])
    )
    np.testing.assert_allclose(after, before, rtol=1e-8, atol=1e-10)


@PROPERTY
@given(seed=seeds)
def test_svcca_invariant_to_invertible_maps_when_kept_subspace_is_unchanged(seed: int) -> None:
    """keep=1 keeps every direction: the kept subspace is the column space, which an invertible map keeps."""
    X, Y, rng = sample_pair(seed)
    before = svcca(X, Y, keep=1.0)
    assert_unchanged(before, svcca(X @ random_invertible(rng, X.shape[1]), Y, keep=1.0))
    assert_unchanged(before, cca_rho(X, Y))


@pytest.mark.parametrize("name", ["maxsim", "linreg", "svcca_wu"])
@PROPERTY
@given(seed=seeds)
def test_shifting_and_rescaling_single_neurons_of_x(name: str, seed: int) -> None:
    """Per-neuron affine maps (negative scales included) change nothing for correlation-based measures."""
    X, Y, rng = sample_pair(seed)
    p = X.shape[1]
    scales = np.exp(rng.uniform(-3, 3, p)) * rng.choice([-1.0, 1.0], p)
    f = MEASURES[name]
    assert_unchanged(f(X, Y), f(X * scales + rng.uniform(-100, 100, p), Y))


@PROPERTY
@given(seed=seeds)
def test_maxsim_matching_follows_neuron_scaling_of_y(seed: int) -> None:
    X, Y, rng = sample_pair(seed)
    scales = np.exp(rng.uniform(-3, 3, Y.shape[1])) * rng.choice([-1.0, 1.0], Y.shape[1])
    before, after = maxsim_per_neuron(X, Y), maxsim_per_neuron(X, Y * scales)
    np.testing.assert_allclose(after.best, before.best, rtol=1e-9)


# ---------------------------------------------------------------- what must not be invariant: counterexamples


def independent_columns(n: int = 2000, p: int = 2, seed: int = 0) -> np.ndarray:
    """Centred columns with sample correlation exactly 0 and equal variance (QR of centred noise)."""
    Z = np.random.default_rng(seed).standard_normal((n, p))
    Q, _ = np.linalg.qr(Z - Z.mean(0))
    return Q * np.sqrt(n)


ROTATION_45 = np.array([[1.0, 1.0], [-1.0, 1.0]]) / np.sqrt(2)


def test_maxsim_is_not_invariant_to_rotations() -> None:
    """Rotating two uncorrelated neurons by 45 degrees: each new neuron correlates 1/sqrt(2) with each old."""
    X = independent_columns()
    assert maxsim(X, X) == pytest.approx(1.0)
    assert maxsim(X @ ROTATION_45, X) == pytest.approx(1 / np.sqrt(2), rel=1e-6)
    assert maxsim(X, X @ ROTATION_45) == pytest.approx(1 / np.sqrt(2), rel=1e-6)


def test_maxsim_is_not_invariant_to_invertible_maps() -> None:
    shear = np.array([[1.0, 0.0], [1.0, 1.0]])  # x0' = x0 + x1: corr(x0', x0) = 1/sqrt(2)
    X = independent_columns()
    assert maxsim(X @ shear, X) == pytest.approx((1 / np.sqrt(2) + 1.0) / 2, rel=1e-6)


def test_linreg_is_not_invariant_to_rotations_of_x() -> None:
    """Y = first neuron of X: neurons x0, x1 have r = 1, 0; after 45 degrees both have r = 1/sqrt(2)."""
    X = independent_columns()
    Y = X[:, :1]
    assert linreg(X, Y) == pytest.approx(0.5, rel=1e-6)
    assert linreg(X @ ROTATION_45, Y) == pytest.approx(1 / np.sqrt(2), rel=1e-6)


def test_r2_lr_is_not_invariant_to_invertible_maps_of_x() -> None:
    """Y explains x0 only; R2_LR = var(x0) / total variance, which rescaling x1 changes from 1/2 to 1/101."""
    X = independent_columns()
    Y = X[:, :1]
    assert r2_lr(X, Y) == pytest.approx(0.5, rel=1e-6)
    assert r2_lr(X @ np.diag([1.0, 10.0]), Y) == pytest.approx(1 / 101, rel=1e-6)
    assert r2_lr(Y, X @ np.diag([1.0, 10.0])) == pytest.approx(1.0, rel=1e-9)  # Y side: still invariant


def test_svcca_changes_when_an_invertible_map_changes_the_kept_subspace() -> None:
    """X = [10 a, b], Y = b: keeping 90% of X's variance keeps a (SVCCA 0); [a, 10 b] keeps b (SVCCA 1)."""
    ab = independent_columns()
    X, Y = ab * [10.0, 1.0], ab[:, 1:]
    assert svcca(X, Y, keep=0.9) == pytest.approx(0.0, abs=1e-9)
    assert svcca(X @ np.diag([0.1, 10.0]), Y, keep=0.9) == pytest.approx(1.0, abs=1e-9)


def test_svcca_wu_standardised_is_not_invariant_to_rotations() -> None:
    """Standardising after a rotation changes the correlation spectrum, hence k and the kept subspace."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((2000, 3)) @ np.array([[1.0, 0.8, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 1.0]])
    Y = X @ rng.standard_normal((3, 3)) + rng.standard_normal((2000, 3))
    Q = random_orthogonal(rng, 3)
    assert abs(svcca(X @ Q, Y, keep=0.9, convention="wu") - svcca(X, Y, keep=0.9, convention="wu")) > 0.01
    assert svcca(X @ Q, Y, keep=0.9) == pytest.approx(svcca(X, Y, keep=0.9), rel=1e-9)  # raghu: invariant


def test_pwcca_is_not_invariant_to_orthogonal_maps_of_x() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2000, 3)) * [3.0, 1.0, 0.3]
    Y = X @ rng.standard_normal((3, 3)) + 2.0 * rng.standard_normal((2000, 3))
    Q = random_orthogonal(rng, 3)
    assert abs(pwcca(X @ Q, Y) - pwcca(X, Y)) > 0.01
    # The canonical correlations themselves are untouched: only the weights moved.
    np.testing.assert_allclose(canonical_correlations(X @ Q, Y), canonical_correlations(X, Y), rtol=1e-9)


def test_pwcca_is_not_invariant_to_invertible_maps_of_x() -> None:
    rng = np.random.default_rng(4)
    X = rng.standard_normal((2000, 3))
    Y = X[:, :1] + 0.1 * rng.standard_normal((2000, 1))  # rho = (~1,); one variate, along x0
    Y = np.column_stack([Y, X[:, 1] + 3.0 * rng.standard_normal(2000)])
    A = np.diag([1.0, 20.0, 1.0])  # weight the weakly matched neuron more
    assert pwcca(X @ A, Y) < pwcca(X, Y) - 0.05


@pytest.mark.parametrize("name", ["procrustes", "procrustes_distance", "angular_distance"])
def test_procrustes_is_not_invariant_to_invertible_maps(name: str) -> None:
    """X vs X diag(1, 10) on uncorrelated unit columns: similarity (1 + 10) / sqrt(2 * 101)."""
    X = independent_columns()
    expected = 11 / np.sqrt(2 * 101)
    value = {
        "procrustes": expected,
        "procrustes_distance": 2 - 2 * expected,
        "angular_distance": np.arccos(expected),
    }[name]
    assert MEASURES[name](X, X @ np.diag([1.0, 10.0])) == pytest.approx(value, rel=1e-6)


def test_distances_are_consistent_with_the_similarity() -> None:
    X, Y, _ = sample_pair(5)
    s = procrustes(X, Y)
    assert procrustes_distance(X, Y) == pytest.approx(2 - 2 * s, rel=1e-12)
    assert angular_distance(X, Y) == pytest.approx(np.arccos(s), rel=1e-12)
