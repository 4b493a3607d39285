"""Null baselines of reprsim.inference against independent references.

- The analytic permutation moments of linear CKA against all n! permutations (exact, small n) and against a
  Monte Carlo over random permutations (n = 30-50, Gaussian, heavy-tailed, low-rank and outlier rows).
- The calibration of Gröger et al. against the published implementation, calibrated-similarity 0.1.1, on the
  same values and the same permutations.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
from calibrated_similarity import calibrate, calibrate_layers
from scipy import stats

from reprsim.inference import (
    calibrate_layers_max,
    calibrate_value,
    calibrated_score,
    null_threshold,
    permutation_p_value,
    rv_null_moments,
    rv_null_p_value,
    rv_null_skewness,
    rv_side_moments,
)
from reprsim.measures import linear_cka, mutual_knn


def centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


def gram_statistics(x: np.ndarray) -> tuple[float, float, float]:
    """tr K, ||K||_F^2 and sum K_ii^2 of the centred Gram, computed on the n x n Gram itself."""
    k = centred(x) @ centred(x).T
    return float(np.trace(k)), float((k * k).sum()), float((np.diag(k) ** 2).sum())


def permuted_cka(x: np.ndarray, y: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Linear CKA of x with y's rows permuted by each row of perms: ||Xc^T Yc[p]||_F^2 / (||Xc^T Xc|| ||Yc^T Yc||)."""
    xc, yc = centred(x), centred(y)
    scale = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    out = np.empty(len(perms))
    for start in range(0, len(perms), 10_000):
        chunk = perms[start:start + 10_000]
        cross = xc.T @ yc[chunk]  # (chunk, d_x, d_y)
        out[start:start + len(chunk)] = (cross**2).sum(axis=(1, 2)) / scale
    return out


def random_permutations(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permuted(np.tile(np.arange(n), (count, 1)), axis=1)


def data_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    outlier = np.vstack([rng.normal(size=(44, 6)), 8 * rng.normal(size=(1, 6))])
    return {
        "gaussian": (rng.normal(size=(40, 5)), rng.normal(size=(40, 3))),
        "heavy_tailed": (rng.standard_t(3, size=(50, 4)), rng.lognormal(size=(50, 6))),
        "low_rank_skewed": (rng.normal(size=(30, 1)), rng.exponential(size=(30, 2))),
        "outlier_row": (outlier, rng.normal(size=(45, 8)) * np.linspace(0.2, 2.0, 8)),
    }


def analytic(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    mean, variance = rv_null_moments(*gram_statistics(x), *gram_statistics(y), len(x))
    skew = rv_null_skewness(rv_side_moments(x @ x.T), rv_side_moments(y @ y.T))
    return mean, variance, skew


@pytest.mark.parametrize("n", [6, 7, 8])
def test_rv_moments_equal_all_permutations(n: int) -> None:
    rng = np.random.default_rng(n)
    x, y = rng.standard_t(2, size=(n, 3)), rng.lognormal(size=(n, 2))
    values = permuted_cka(x, y, np.array(list(itertools.permutations(range(n)))))
    mean, variance, skew = analytic(x, y)
    assert mean == pytest.approx(values.mean(), rel=1e-10)
    assert variance == pytest.approx(values.var(), rel=1e-9)
    assert skew == pytest.approx(stats.skew(values), rel=1e-8)


@functools.cache
def monte_carlo(name: str) -> np.ndarray:
    x, y = data_sets()[name]
    return permuted_cka(x, y, random_permutations(len(x), 100_000, np.random.default_rng(1)))


@pytest.mark.parametrize("name", list(data_sets()))
def test_rv_moments_match_monte_carlo(name: str) -> None:
    # The issue asks for 2% of a 10,000-permutation Monte Carlo. The Monte Carlo's own relative standard
    # error of a variance is sqrt((kurtosis + 2) / K), 1.5-2.5% at K = 10,000 for these skewed nulls, so
    # 2% would mostly test the reference's noise; 100,000 permutations bring it to 0.5-0.9% (checked).
    x, y = data_sets()[name]
    values = monte_carlo(name)
    mean, variance, skew = analytic(x, y)
    assert np.sqrt((stats.kurtosis(values) + 2) / values.size) < 0.009
    assert mean == pytest.approx(values.mean(), rel=0.02)
    assert variance == pytest.approx(values.var(), rel=0.02)
    assert skew == pytest.approx(stats.skew(values), abs=0.05)
    if name in ("heavy_tailed", "outlier_row"):
        # The fourth-moment term p_x p_y matters on these rows: without it the variance is off by more
        # than 5%, so the 2% check above tells the exact formula from the cruder one.
        n = len(x)
        betas = [t * t / f for t, f, _ in (gram_statistics(x), gram_statistics(y))]
        crude = 2 * (n - 1 - betas[0]) * (n - 1 - betas[1]) / ((n + 1) * (n - 1) ** 2 * (n - 2))
        assert abs(values.var() / crude - 1) > 0.05


@pytest.mark.parametrize("name", list(data_sets()))
def test_pearson_p_value_matches_monte_carlo_tail(name: str) -> None:
    x, y = data_sets()[name]
    values = monte_carlo(name)
    mean, variance, skew = analytic(x, y)
    for tail in (0.1, 0.05, 0.01):
        observed = float(np.quantile(values, 1 - tail))
        assert rv_null_p_value(observed, mean, variance, skew) == pytest.approx(tail, rel=0.25)
    # The normal approximation is named as such because it misses the right tail of this skewed null.
    observed = float(np.quantile(values, 0.99))
    assert rv_null_p_value(observed, mean, variance) < 0.5 * rv_null_p_value(observed, mean, variance, skew)


def test_rv_inputs_from_the_covariance_equal_the_gram_statistics() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 4)) @ rng.normal(size=(4, 4))
    c = centred(x).T @ centred(x)
    fourth = float((np.linalg.norm(centred(x), axis=1) ** 4).sum())
    trace, frob2, diag_sq = gram_statistics(x)
    assert (float(np.trace(c)), float((c * c).sum()), fourth) == pytest.approx((trace, frob2, diag_sq), rel=1e-12)


def test_rv_null_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="n >= 4"):
        rv_null_moments(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3)
    with pytest.raises(ValueError, match="non-constant Y"):
        rv_null_moments(1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 10)
    with pytest.raises(ValueError, match="n >= 6"):
        rv_side_moments(np.eye(5))
    with pytest.raises(ValueError, match="non-constant"):
        rv_side_moments(np.ones((8, 8)))
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(8, 2)), rng.normal(size=(9, 2))
    with pytest.raises(ValueError, match="same rows"):
        rv_null_skewness(rv_side_moments(a @ a.T), rv_side_moments(b @ b.T))
    with pytest.raises(ValueError, match="variance"):
        rv_null_p_value(0.5, 0.1, 0.0)


def test_rv_moments_do_not_divide_by_zero_at_full_rank_isotropy() -> None:
    # Rows of a regular simplex: the centred Gram has n - 1 equal eigenvalues, so beta = n - 1 and the
    # textbook form's t = ... / (n - 1 - beta) is 0/0; every permutation gives the same CKA.
    n = 6
    x = np.eye(n)
    values = permuted_cka(x, np.random.default_rng(5).normal(size=(n, 2)),
                          np.array(list(itertools.permutations(range(n)))))
    mean, variance = rv_null_moments(*gram_statistics(x), *gram_statistics(np.random.default_rng(5).normal(
        size=(n, 2))), n)
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert variance == pytest.approx(values.var(), abs=1e-15)


# --- cross-library agreement with calibrated-similarity 0.1.1 ------------------------------------------
# calibrated-similarity stores every similarity in float32 and computes tau, p and the calibrated score in
# float32. From the same float64 values: its tau is our tau rounded to float32 (an order statistic is
# picked, not computed); its p is our p rounded to float32 (the same count over the same comparisons: the
# values below are at least 1e-5 apart or exactly tied, far beyond float32's 6e-8 relative rounding); its
# calibrated score is our formula evaluated in float32, within ~1e-6.

def linear_cka_sim(x: torch.Tensor, y: torch.Tensor) -> float:
    return linear_cka(x, y)


def knn_sim(x: torch.Tensor, y: torch.Tensor) -> float:
    return mutual_knn(x, y, k=5, max_rows=None)


SIMS = {"linear_cka": linear_cka_sim, "mutual_knn": knn_sim}


def related_pair(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = x[:, :4] @ rng.normal(size=(4, 5)) + 2.0 * rng.normal(size=(n, 5))
    return torch.from_numpy(x), torch.from_numpy(y)


def feeder(perms: np.ndarray):  # type: ignore[no-untyped-def]
    """A perm_fn handing calibrated-similarity our permutations, in order."""
    queue = iter(perms)

    def perm_fn(n: int, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(next(queue)).to(device)

    return perm_fn


def assert_far_or_tied(observed: float, null: np.ndarray) -> None:
    gaps = np.abs(null - observed)
    assert np.all((gaps == 0) | (gaps > 1e-5))


@pytest.mark.parametrize("measure", list(SIMS))
def test_calibrate_agrees_with_calibrated_similarity(measure: str) -> None:
    sim, alpha, count = SIMS[measure], 0.05, 99
    x, y = related_pair(60, 6)
    perms = random_permutations(60, count, np.random.default_rng(7))
    observed = sim(x, y)
    null = np.array([sim(x, y[torch.from_numpy(p)]) for p in perms])
    assert_far_or_tied(observed, null)
    ours = calibrate_value(observed, null, alpha)
    theirs = calibrate(x, y, sim, K=count, alpha=alpha, smax=1.0, perm_fn=feeder(perms))
    scal, p, tau = (float(t) for t in theirs)
    assert tau == float(np.float32(ours.tau))
    assert p == float(np.float32(ours.p_value))
    assert scal == pytest.approx(ours.calibrated, abs=2e-6)
    assert ours.tau == null_threshold(observed, null, alpha)
    assert ours.p_value == permutation_p_value(observed, null)
    assert ours.calibrated == calibrated_score(observed, ours.tau)
    assert 0 < ours.calibrated < 1  # a related pair: the comparison is not one of two zeros


@pytest.mark.parametrize("measure", list(SIMS))
def test_calibrate_layers_max_agrees_with_calibrated_similarity(measure: str) -> None:
    sim, alpha, count = SIMS[measure], 0.1, 49
    base, _ = related_pair(50, 8)
    rng = np.random.default_rng(9)
    layers_x = [torch.from_numpy(base.numpy() @ rng.normal(size=(6, 6)) + s * rng.normal(size=(50, 6)))
                for s in (0.5, 1.5, 3.0)]
    layers_y = [torch.from_numpy(base.numpy()[:, :3] @ rng.normal(size=(3, 4)) + s * rng.normal(size=(50, 4)))
                for s in (1.0, 2.5)]
    perms = random_permutations(50, count, np.random.default_rng(10))
    observed = np.array([[sim(a, b) for b in layers_y] for a in layers_x])
    nulls = np.array([[[sim(a, b[torch.from_numpy(p)]) for b in layers_y] for a in layers_x] for p in perms])
    assert_far_or_tied(float(observed.max()), nulls.max(axis=(1, 2)))
    ours = calibrate_layers_max(observed, nulls, alpha)
    theirs = calibrate_layers(layers_x, layers_y, sim, agg="max", K=count, alpha=alpha, smax=1.0,
                              perm_fn=feeder(perms))
    scal, p, tau = (float(t) for t in theirs)
    assert tau == float(np.float32(ours.tau))
    assert p == float(np.float32(ours.p_value))
    assert scal == pytest.approx(ours.calibrated, abs=2e-6)
    # The max's null is the max of each shared permutation's matrix, not of independently drawn pairs: it
    # is at least every single pair's null, so the max is harder to call significant than its best pair.
    best = np.unravel_index(observed.argmax(), observed.shape)
    assert ours.tau >= null_threshold(float(observed.max()), nulls[:, best[0], best[1]], alpha)


def test_calibrate_layers_max_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="null_matrices"):
        calibrate_layers_max(np.zeros((2, 3)), np.zeros((5, 3, 2)), 0.05)
    with pytest.raises(ValueError, match="observed_matrix"):
        calibrate_layers_max(np.zeros(3), np.zeros((5, 3)), 0.05)
