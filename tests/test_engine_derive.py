"""Measures derived from streamed moments equal the one-shot functions of reprsim.measures (1e-6 relative).

The one-shot functions (QR/SVD of the data itself) are the reference; debiased CKA is also checked against
the Gram-space U-statistic written out here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import reprsim.measures as M
from reprsim.engine.linear_fit import DIRECTED_MEASURES, ENGINE_MEASURES, Directed, LinearFit, SvccaOptions
from reprsim.engine.linear_score import (
    PairTerms,
    canonical_correlations,
    check_measures,
    derive,
    neuron_matches,
    svcca,
)
from reprsim.engine.moments import CrossMoments

RTOL = 1e-6


def related_pair(
    n: int, p: int, q: int, seed: int = 0, offset: float = 0.0, constant: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 4))
    x = latent @ rng.standard_normal((4, p)) + rng.standard_normal((n, p)) * rng.uniform(0.2, 2.0, p)
    y = latent @ rng.standard_normal((4, q)) + 0.7 * rng.standard_normal((n, q))
    x += rng.normal(0.0, 3.0, p) + offset
    y += rng.normal(0.0, 3.0, q) + offset
    if constant:
        x[:, :constant] = 2.5 + offset
    return x, y


def terms_from_stream(x: np.ndarray, y: np.ndarray, chunk: int) -> PairTerms:
    m = CrossMoments([x.shape[1], y.shape[1]], row_norms=True, device="cpu")
    for s in range(0, x.shape[0], chunk):
        m.update([x[s : s + chunk], y[s : s + chunk]])
    sx = LinearFit.from_moments(m, 0, name="X")
    sy = LinearFit.from_moments(m, 1, name="Y")
    return PairTerms(sx, sy, m.centred(0, 1), m.centred_norm_product(0, 1))


def one_shot(name: str, x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(getattr(M, name)(x, y))


def assert_all_measures_match(x: np.ndarray, y: np.ndarray, chunk: int, skip: tuple[str, ...] = ()) -> None:
    terms = terms_from_stream(x, y, chunk)
    values = derive(terms, ENGINE_MEASURES)
    assert set(values) == set(ENGINE_MEASURES)
    for name in ENGINE_MEASURES:
        if name in skip:
            continue
        value = values[name]
        if name in DIRECTED_MEASURES:
            assert isinstance(value, Directed)
            assert value.a_to_b == pytest.approx(one_shot(name, x, y), rel=RTOL, abs=1e-12), name
            assert value.b_to_a == pytest.approx(one_shot(name, y, x), rel=RTOL, abs=1e-12), name
        else:
            assert isinstance(value, float)
            assert value == pytest.approx(one_shot(name, x, y), rel=RTOL, abs=1e-12), name


@pytest.mark.parametrize("chunk", [2, 7, 64, 400])
def test_every_measure_matches_one_shot_for_any_chunk_size(chunk: int) -> None:
    x, y = related_pair(400, 12, 9)
    assert_all_measures_match(x, y, chunk)


@pytest.mark.parametrize(
    ("n", "p", "q"),
    [(300, 8, 8), (300, 5, 14), (64, 30, 25), (45, 20, 20)],
    ids=["n>p,p=q", "p!=q", "n~p", "n~p,square"],
)
def test_every_measure_matches_one_shot_for_shapes(n: int, p: int, q: int) -> None:
    x, y = related_pair(n, p, q, seed=n + p)
    assert_all_measures_match(x, y, 16)


def test_n_below_width_where_all_correlations_are_one() -> None:
    """n <= p: every canonical correlation is 1 (rank reaches n), PWCCA too, both ways."""
    x, y = related_pair(30, 40, 25, seed=2)
    assert_all_measures_match(x, y, 8)
    rho = canonical_correlations(terms_from_stream(x, y, 8))
    np.testing.assert_allclose(rho, 1.0, atol=1e-8)


def test_constant_neurons_are_excluded_as_in_one_shot() -> None:
    x, y = related_pair(250, 10, 7, constant=3)
    assert_all_measures_match(x, y, 33)
    terms = terms_from_stream(x, y, 33)
    matches = neuron_matches(terms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forward, backward = M.maxsim_per_neuron(x, y), M.maxsim_per_neuron(y, x)
    for got, want in ((matches.a_to_b, forward), (matches.b_to_a, backward)):
        np.testing.assert_allclose(got.best, want.best, rtol=1e-9)
        np.testing.assert_array_equal(got.index, want.index)
        np.testing.assert_array_equal(got.valid, want.valid)
        assert (got.n_constant_x, got.n_constant_y) == (want.n_constant_x, want.n_constant_y)
    assert matches.a_to_b.n_constant_x == 3 and matches.b_to_a.n_constant_y == 3


def test_large_means_do_not_cancel() -> None:
    x, y = related_pair(300, 9, 6, offset=1e4)
    assert_all_measures_match(x, y, 64)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_inputs(dtype: type) -> None:
    x, y = related_pair(300, 9, 7, offset=5.0)
    x, y = x.astype(dtype), y.astype(dtype)
    assert_all_measures_match(x, y, 50)


@pytest.mark.parametrize(
    "options",
    [
        SvccaOptions(0.99, "raghu"),
        SvccaOptions(0.99, "wu"),
        SvccaOptions(0.8, "raghu", standardize=True),
        SvccaOptions(0.9, "wu", standardize=False),
        SvccaOptions(1.0, "raghu"),
    ],
    ids=str,
)
def test_svcca_conventions(options: SvccaOptions) -> None:
    x, y = related_pair(500, 15, 11, seed=4)
    terms = terms_from_stream(x, y, 77)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = M.svcca(x, y, options.keep, options.convention, options.standardize)
    assert svcca(terms, options) == pytest.approx(expected, rel=RTOL)


def test_canonical_correlations_match() -> None:
    x, y = related_pair(400, 10, 6, seed=8)
    got = canonical_correlations(terms_from_stream(x, y, 50))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = M.canonical_correlations(x, y)
    assert got.shape == want.shape == (6,)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-8)


def gram_space_unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC from Gram matrices, written from the formula with explicit sums."""
    n = k.shape[0]
    kt, lt = k.copy(), l_.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    trace_term = float(np.sum(kt * lt))
    sums_term = float(kt.sum() * lt.sum()) / ((n - 1) * (n - 2))
    cross_term = 2.0 / (n - 2) * float(kt.sum(axis=0) @ lt.sum(axis=0))
    return (trace_term + sums_term - cross_term) / (n * (n - 3))


@pytest.mark.parametrize("n", [6, 11, 40])
def test_debiased_cka_equals_the_gram_space_estimator(n: int) -> None:
    x, y = related_pair(n, 5, 4, seed=n, offset=20.0)  # uncentred: the estimator ignores feature shifts
    k, l_ = x @ x.T, y @ y.T
    expected = gram_space_unbiased_hsic(k, l_) / np.sqrt(
        gram_space_unbiased_hsic(k, k) * gram_space_unbiased_hsic(l_, l_)
    )
    got = derive(terms_from_stream(x, y, 3), ["debiased_cka"])["debiased_cka"]
    assert got == pytest.approx(expected, rel=1e-8)


def test_debiased_cka_needs_row_norms_and_four_rows() -> None:
    x, y = related_pair(50, 3, 3)
    m = CrossMoments([3, 3], device="cpu")
    m.update([x, y])
    terms = PairTerms(
        LinearFit.from_moments(m, 0), LinearFit.from_moments(m, 1), m.centred(0, 1)
    )
    with pytest.raises(ValueError, match="row_norms=True"):
        derive(terms, ["debiased_cka"])
    with pytest.raises(ValueError, match="at least 4 rows"):
        derive(terms_from_stream(x[:3], y[:3], 3), ["debiased_cka"])


def test_a_fully_constant_representation_is_an_error() -> None:
    x, y = related_pair(100, 4, 3)
    x[:] = 1.0
    terms = terms_from_stream(x, y, 25)
    for name in ("linear_cka", "maxsim", "cca_rho", "svcca", "procrustes"):
        with pytest.raises(ValueError, match="constant"):
            derive(terms, [name])


def test_stats_are_computed_once_and_shared_by_pairs() -> None:
    x, y = related_pair(200, 6, 5)
    z = related_pair(200, 4, 4, seed=1)[0]
    m = CrossMoments([6, 5, 4], device="cpu")
    m.update([x, y, z])
    stats = [LinearFit.from_moments(m, a) for a in range(3)]
    derive(PairTerms(stats[0], stats[1], m.centred(0, 1)), ["cca_rho"])
    whitener = stats[0].whitener
    derive(PairTerms(stats[0], stats[2], m.centred(0, 2)), ["cca_rho", "linreg"])
    assert stats[0].whitener is whitener  # cached, not recomputed for the second pair


def test_unknown_measure_is_named() -> None:
    with pytest.raises(ValueError, match="'rbf_cka' cannot be derived"):
        check_measures(["linear_cka", "rbf_cka"])
    with pytest.raises(ValueError, match="keep must be"):
        SvccaOptions(keep=1.5)


def test_cross_block_shape_is_checked() -> None:
    s = LinearFit(torch.eye(3), 10, torch.ones(3))
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        PairTerms(s, s, torch.zeros(3, 2))


def test_dropped_decompositions_are_recomputed_identically() -> None:
    """A study keeps only the pair-level factors per representation; anything else asked again is rebuilt."""
    x, y = related_pair(300, 8, 6, seed=3)
    terms = terms_from_stream(x, y, 50)
    before = derive(terms, ENGINE_MEASURES)
    correlation, covariance_spectrum = terms.x.correlation, terms.x.covariance_spectrum
    terms.x.drop_decompositions()
    assert "correlation" not in terms.x.__dict__ and "covariance_spectrum" not in terms.x.__dict__
    again = terms_from_stream(x, y, 50)
    again.x.whitener  # noqa: B018 (the factor pairs use, built before the spectra are dropped)
    again.x.drop_decompositions()
    assert derive(again, ENGINE_MEASURES) == before
    torch.testing.assert_close(terms.x.correlation.vectors, correlation.vectors, rtol=0, atol=0)
    torch.testing.assert_close(terms.x.covariance_spectrum.values, covariance_spectrum.values, rtol=0, atol=0)


def test_blocks_are_restricted_to_varying_neurons_without_a_copy_when_all_vary() -> None:
    x, y = related_pair(200, 6, 5, seed=4)
    terms = terms_from_stream(x, y, 40)
    assert terms.varying_cross is terms.cross
    assert terms.x.varying_covariance is terms.x.covariance
    x[:, 2] = 7.0  # one constant neuron: its row leaves the restricted blocks
    terms = terms_from_stream(x, y, 40)
    assert tuple(terms.varying_cross.shape) == (5, 5)
    torch.testing.assert_close(terms.varying_cross, terms.cross[[0, 1, 3, 4, 5]], rtol=0, atol=0)
    assert tuple(terms.x.varying_covariance.shape) == (5, 5)
