"""Statistical tests of reprsim.inference: coverage, standard errors and null calibration on simulated data.

Every similarity here is computed by a plain numpy linear CKA written in this file, on the rows themselves
(leave-one-block-out rows, or the rows of the resampled blocks), never by reprsim: the inference functions
are checked on replicates they did not compute. Each claim is tested over >= 200 simulated data sets with
fixed seeds; bounds are those of the issue (coverage of a 95% interval in 90-99%, standard errors within 25%
of the Monte-Carlo SD, uniform p-values by a KS test at 1%, the rate of calibrated scores above 0 within
binomial bounds of alpha).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats

from reprsim.analysis import aggregate_statistics
from reprsim.inference import (
    bootstrap_counts,
    calibrate_value,
    difference_statistics,
    jackknife_summary,
    percentile_interval,
)

G, M = 20, 10  # blocks and rows per block
N = G * M
B = 200  # bootstrap replicates
DATA_SETS = 250
ALPHA = 0.05


def cka(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear CKA of stacks (..., n, d) of row-aligned matrices: ||Xc^T Yc||^2 / (||Xc^T Xc|| ||Yc^T Yc||)."""
    xc = x - x.mean(axis=-2, keepdims=True)
    yc = y - y.mean(axis=-2, keepdims=True)
    xt, yt = np.swapaxes(xc, -1, -2), np.swapaxes(yc, -1, -2)
    cross, sxx, syy = xt @ yc, xt @ xc, yt @ yc
    return (cross**2).sum(axis=(-2, -1)) / np.sqrt((sxx**2).sum(axis=(-2, -1)) * (syy**2).sum(axis=(-2, -1)))


def population_cka(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> float:
    return float((sxy**2).sum() / np.sqrt((sxx**2).sum() * (syy**2).sum()))


# Rows of the leave-one-block-out samples and of the bootstrap samples (whole blocks, counts from reprsim's
# bootstrap_counts); the same row indices serve every simulated data set.
LEAVE_OUT_ROWS = np.array([np.delete(np.arange(N), np.arange(g * M, (g + 1) * M)) for g in range(G)])
COUNTS = bootstrap_counts(G, B, seed=0)
BOOTSTRAP_ROWS = np.array([(np.repeat(np.arange(G), c)[:, None] * M + np.arange(M)).ravel() for c in COUNTS])


def replicates(statistic, *arrays: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """The statistic on all rows, on each leave-one-block-out sample and on each bootstrap sample."""
    full = float(statistic(*arrays))
    loo = statistic(*(a[LEAVE_OUT_ROWS] for a in arrays))
    boot = statistic(*(a[BOOTSTRAP_ROWS] for a in arrays))
    return full, loo, boot


def coverage(lows: list[float], highs: list[float], truth: float) -> float:
    return float(np.mean((np.array(lows) <= truth) & (truth <= np.array(highs))))


def assert_uniform(p_values: list[float]) -> None:
    assert stats.kstest(p_values, "uniform").pvalue > 0.01


def linear_pair(rng: np.random.Generator, w: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(N, w.shape[0]))
    return x, x @ w + noise * rng.normal(size=(N, w.shape[1]))


W = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.5, 0.0, 1.0], [0.2, 0.2, 0.2]])
NOISE = 0.8
CKA_TRUTH = population_cka(np.eye(4), W, W.T @ W + NOISE**2 * np.eye(3))


# --- the core: jackknife SE, bootstrap coverage, permutation p-values, calibrated scores ---------------


def test_jackknife_se_and_bootstrap_coverage_of_linear_cka() -> None:
    rng = np.random.default_rng(1)
    estimates, ses, lows, highs = [], [], [], []
    for _ in range(DATA_SETS):
        full, loo, boot = replicates(cka, *linear_pair(rng, W, NOISE))
        estimates.append(full)
        ses.append(jackknife_summary(full, loo)[0])
        low, high = percentile_interval(boot, ALPHA)
        lows.append(low)
        highs.append(high)
    monte_carlo_sd = float(np.std(estimates, ddof=1))
    assert np.mean(ses) == pytest.approx(monte_carlo_sd, rel=0.25)
    assert 0.90 <= coverage(lows, highs, CKA_TRUTH) <= 0.99


def test_bootstrap_coverage_of_a_block_mean() -> None:
    rng = np.random.default_rng(2)
    lows, highs = [], []
    for _ in range(DATA_SETS):
        # Dependent rows inside a block (a shared block effect), skewed values: the block bootstrap must
        # resample blocks to cover.
        rows = np.repeat(rng.normal(size=G), M) + rng.exponential(size=N)
        boot = rows[BOOTSTRAP_ROWS].mean(axis=1)
        low, high = percentile_interval(boot, ALPHA)
        lows.append(low)
        highs.append(high)
    assert 0.90 <= coverage(lows, highs, 1.0) <= 0.99


def test_permutation_p_values_and_calibrated_scores_under_independence() -> None:
    rng = np.random.default_rng(3)
    count, sets, n = 99, 400, 30
    p_values, above = [], 0
    for _ in range(sets):
        x, y = rng.normal(size=(n, 3)), rng.standard_t(4, size=(n, 2))
        perms = rng.permuted(np.tile(np.arange(n), (count, 1)), axis=1)
        result = calibrate_value(float(cka(x, y)), cka(x, y[perms]), ALPHA)
        p_values.append(result.p_value)
        above += result.calibrated > 0
    assert_uniform(p_values)
    low, high = stats.binom.ppf([0.0005, 0.9995], sets, ALPHA)
    assert low <= above <= high


# --- paired differences and model-level values -------------------------------------------------------


def correlated_means(rng: np.random.Generator, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows (a_i, b_i) with correlation 0.8 and a block effect; E a - E b = shift."""
    common = rng.normal(size=N) + np.repeat(0.5 * rng.normal(size=G), M)
    a = common + 0.6 * rng.normal(size=N) + shift
    b = common + 0.6 * rng.normal(size=N)
    return a, b


def mean_rows(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=-1)


@pytest.mark.parametrize("kind", ["jackknife", "bootstrap"])
def test_difference_of_correlated_means(kind: str) -> None:
    rng = np.random.default_rng(4)
    lows, highs, null_p = [], [], []
    for shift in (0.3, 0.0):
        for _ in range(DATA_SETS):
            a, b = correlated_means(rng, shift)
            fa, la, ba = replicates(mean_rows, a)
            fb, lb, bb = replicates(mean_rows, b)
            out = (difference_statistics(fa, la, fb, lb, kind, ALPHA) if kind == "jackknife"
                   else difference_statistics(fa, ba, fb, bb, kind, ALPHA))
            if shift:
                lows.append(out.ci_low)
                highs.append(out.ci_high)
            else:
                null_p.append(out.p_value)
    assert 0.90 <= coverage(lows, highs, 0.3) <= 0.99
    assert_uniform(null_p)


def three_views(rng: np.random.Generator, w_z: np.ndarray, noise_z: float) -> tuple[np.ndarray, ...]:
    x = rng.normal(size=(N, 4))
    return x, x @ W + NOISE * rng.normal(size=(N, 3)), x @ w_z + noise_z * rng.normal(size=(N, 3))


W_OTHER, NOISE_OTHER = W[:, [1, 2, 0]] * np.array([1.0, 0.6, 0.6]), 1.0


@functools.cache
def cka_pairs(alternative: bool) -> list[tuple[tuple[float, np.ndarray, np.ndarray], ...]]:
    """Replicates of CKA(X, Y) and CKA(X, Z) on the same rows, over the simulated data sets.

    Under the null Z is drawn like Y (same map, same noise), so CKA(X, Y) - CKA(X, Z) has mean 0.
    """
    rng = np.random.default_rng(5 if alternative else 7)
    out = []
    for _ in range(DATA_SETS):
        x, y, z = three_views(rng, W_OTHER, NOISE_OTHER) if alternative else three_views(rng, W, NOISE)
        out.append((replicates(cka, x, y), replicates(cka, x, z)))
    return out


@pytest.mark.parametrize("kind", ["jackknife", "bootstrap"])
def test_difference_of_two_linear_ckas(kind: str) -> None:
    truth = CKA_TRUTH - population_cka(np.eye(4), W_OTHER, W_OTHER.T @ W_OTHER + NOISE_OTHER**2 * np.eye(3))
    assert abs(truth) > 0.05
    results = {}
    for alternative in (True, False):
        results[alternative] = [
            difference_statistics(fa, la, fb, lb, kind, ALPHA) if kind == "jackknife"
            else difference_statistics(fa, ba, fb, bb, kind, ALPHA)
            for (fa, la, ba), (fb, lb, bb) in cka_pairs(alternative)
        ]
    lows = [out.ci_low for out in results[True]]
    highs = [out.ci_high for out in results[True]]
    assert 0.90 <= coverage(lows, highs, truth) <= 0.99  # type: ignore[arg-type]
    assert_uniform([out.p_value for out in results[False]])  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["jackknife", "bootstrap"])
def test_model_level_mean_best_covers(kind: str) -> None:
    # A 2 x 3 "layer" matrix of means with a clear best column per row; the model-level value is the mean
    # of the row maxima of the population means.
    rng = np.random.default_rng(6)
    centres = np.array([[0.2, 0.9, 0.1], [0.5, 0.0, 1.4]])
    truth = float(centres.max(axis=1).mean())
    lows, highs = [], []
    for _ in range(DATA_SETS):
        shared = rng.normal(size=(N, 1, 1)) + np.repeat(0.4 * rng.normal(size=G), M)[:, None, None]
        rows = centres + shared + 0.5 * rng.normal(size=(N, 2, 3))
        estimates = rows.mean(axis=0)
        reps = rows[LEAVE_OUT_ROWS].mean(axis=1) if kind == "jackknife" else rows[BOOTSTRAP_ROWS].mean(axis=1)
        out = aggregate_statistics(estimates, reps, kind, "mean_best", ALPHA)
        lows.append(out.ci_low)
        highs.append(out.ci_high)
    assert 0.90 <= coverage(lows, highs, truth) <= 0.99
