"""The invariance table of docs/measures.md as property tests, for CKA-family measures, RSA and mutual k-NN.

Linear, debiased and RBF CKA: invariant to orthogonal maps and isotropic scaling of either side, and shown
NOT invariant to a general invertible linear map (an explicit counterexample). RSA and mutual k-NN:
invariant to neuron permutation and isotropic scaling.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reprsim.measures import debiased_cka, linear_cka, minibatch_cka, mutual_knn, rbf_cka, rsa

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True)

CKA_FAMILY = [
    pytest.param(linear_cka, id="linear_cka"),
    pytest.param(debiased_cka, id="debiased_cka"),
    pytest.param(rbf_cka, id="rbf_cka"),
    pytest.param(lambda X, Y: minibatch_cka(X, Y, batch_size=10, seed=1), id="minibatch_cka"),
]

shapes = st.tuples(st.integers(12, 40), st.integers(2, 8), st.integers(2, 8))
seeds = st.integers(0, 2**31 - 1)
scales = st.floats(1e-3, 1e3)


def pair(n: int, p: int, q: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3.0, size=p) + rng.standard_normal(p)
    Y = X[:, rng.integers(0, p, size=q)] + rng.standard_normal((n, q))
    return X, Y, rng


def orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


@pytest.mark.parametrize("measure", CKA_FAMILY)
@PROPERTY
@given(shape=shapes, seed=seeds, scale_x=scales, scale_y=scales)
def test_cka_invariant_to_orthogonal_maps_and_isotropic_scaling(measure, shape, seed, scale_x, scale_y):
    X, Y, rng = pair(*shape, seed)
    base = measure(X, Y)
    moved = measure(scale_x * X @ orthogonal(rng, X.shape[1]), scale_y * Y @ orthogonal(rng, Y.shape[1]))
    assert moved == pytest.approx(base, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("measure", CKA_FAMILY)
def test_cka_not_invariant_to_a_general_invertible_linear_map(measure):
    """Counterexample: stretching one neuron of X by 20 (an invertible diagonal map) lets that neuron dominate
    X's geometry; Y keeps its own, so CKA(X A, X) moves far from CKA(X, X) = 1."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    A = np.diag([20.0, 1.0, 1.0])
    assert abs(np.linalg.det(A)) > 0
    assert measure(X, X) == pytest.approx(1.0, abs=1e-9)
    assert measure(X @ A, X) < 0.9


@pytest.mark.parametrize(
    "measure",
    [pytest.param(rsa, id="rsa"), pytest.param(lambda X, Y: mutual_knn(X, Y, k=3), id="mutual_knn")],
)
@PROPERTY
@given(shape=shapes, seed=seeds, scale_x=scales, scale_y=scales)
def test_row_geometry_measures_invariant_to_permutation_and_isotropic_scaling(
    measure, shape, seed, scale_x, scale_y
):
    X, Y, rng = pair(*shape, seed)
    base = measure(X, Y)
    moved = measure(scale_x * X[:, rng.permutation(X.shape[1])], scale_y * Y[:, rng.permutation(Y.shape[1])])
    assert moved == pytest.approx(base, rel=1e-9, abs=1e-12)


@PROPERTY
@given(shape=shapes, seed=seeds)
def test_linear_cka_bounded_and_symmetric(shape, seed):
    X, Y, _ = pair(*shape, seed)
    value = linear_cka(X, Y)
    assert -1e-12 <= value <= 1.0 + 1e-12
    assert linear_cka(Y, X) == pytest.approx(value, rel=1e-12)
