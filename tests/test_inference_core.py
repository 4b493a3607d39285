"""Unit tests of reprsim.inference: sentence blocks, bootstrap counts, options, replicate summaries and the
pure functions of several values (differences, model-level aggregates), each against a plain reference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from reprsim.analysis import aggregate_statistics, aggregate_values
from reprsim.inference import (
    InferenceOptions,
    InferenceWarning,
    Uncertainty,
    block_of_rows,
    bootstrap_counts,
    difference_statistics,
    jackknife_summary,
    linearised_bootstrap,
    normal_interval,
    percentile_interval,
    replicate_statistics,
    sentence_blocks,
)

# --- sentence_blocks ------------------------------------------------------------------------------------


def sentence_ends(lengths: list[int]) -> set[int]:
    return {int(e) for e in np.cumsum(lengths)}


@pytest.mark.parametrize("seed", range(5))
def test_blocks_end_on_sentences_and_have_near_equal_sizes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = [int(v) for v in rng.integers(0, 30, size=400)]  # some sentences have no rows
    for blocks in (2, 7, 50):
        bounds = sentence_blocks(lengths, blocks)
        n = sum(lengths)
        assert len(bounds) == blocks + 1 and bounds[0] == 0 and bounds[-1] == n
        assert set(bounds[1:].tolist()) <= sentence_ends(lengths)
        sizes = np.diff(bounds)
        assert (sizes > 0).all()
        # Each cut is the sentence end nearest its ideal n g / G, so a block is off by at most one sentence.
        assert np.abs(sizes - n / blocks).max() <= max(lengths)
        ideal = n * np.arange(1, blocks) / blocks
        assert np.abs(bounds[1:-1] - ideal).max() <= max(lengths) / 2


def test_blocks_equal_sentences_when_g_is_the_number_of_sentences() -> None:
    lengths = [3, 0, 1, 5, 2, 0, 4]
    bounds = sentence_blocks(lengths, 5)
    assert bounds.tolist() == [0, 3, 4, 9, 11, 15]


def test_blocks_of_equal_sentences_are_equal() -> None:
    assert sentence_blocks([4] * 12, 4).tolist() == [0, 12, 24, 36, 48]


def test_empty_sentences_join_a_neighbour() -> None:
    bounds = sentence_blocks([0, 0, 2, 0, 2, 0], 2)
    assert bounds.tolist() == [0, 2, 4]


@pytest.mark.parametrize("lengths, blocks", [([1, 2, 3], 4), ([0, 0, 5], 2), ([], 2), ([0, 0], 2)])
def test_too_many_blocks_is_an_error_naming_blocks(lengths: list[int], blocks: int) -> None:
    with pytest.raises(ValueError, match=r"blocks=\d+ is larger than the number of sentences"):
        sentence_blocks(lengths, blocks)


@pytest.mark.parametrize("blocks", [1, 0, -3, 2.5, True])
def test_bad_block_count_is_refused(blocks: object) -> None:
    with pytest.raises(ValueError, match=r"^blocks must be an integer >= 2"):
        sentence_blocks([1, 1, 1], blocks)  # type: ignore[arg-type]


@pytest.mark.parametrize("lengths", [[1, -1, 2], [1.5, 2.0], [[1, 2], [3, 4]]])
def test_bad_sentence_lengths_are_refused(lengths: object) -> None:
    with pytest.raises(ValueError, match="sentence_lengths"):
        sentence_blocks(lengths, 2)  # type: ignore[arg-type]


def test_block_of_rows_inverts_the_bounds() -> None:
    bounds = sentence_blocks([2, 3, 1, 4, 2], 3)
    rows = np.arange(bounds[-1])
    expected = [next(g for g in range(3) if bounds[g] <= r < bounds[g + 1]) for r in rows]
    assert block_of_rows(bounds, rows).tolist() == expected


# --- bootstrap_counts -----------------------------------------------------------------------------------


def test_bootstrap_counts_are_draws_of_g_blocks() -> None:
    counts = bootstrap_counts(12, 3000, seed=5)
    assert counts.shape == (3000, 12) and counts.dtype == np.int64
    assert (counts.sum(axis=1) == 12).all() and (counts >= 0).all()
    # Multinomial(G, 1/G): each count has mean 1 and variance 1 - 1/G; P(block left out) = (1 - 1/G)^G.
    assert counts.mean() == pytest.approx(1.0, abs=0.02)
    assert counts.var() == pytest.approx(1 - 1 / 12, rel=0.05)
    assert (counts == 0).mean() == pytest.approx((1 - 1 / 12) ** 12, abs=0.01)


def test_bootstrap_counts_are_reproducible_by_seed() -> None:
    assert np.array_equal(bootstrap_counts(8, 50, seed=3), bootstrap_counts(8, 50, seed=3))
    assert not np.array_equal(bootstrap_counts(8, 50, seed=3), bootstrap_counts(8, 50, seed=4))


@pytest.mark.parametrize("blocks, resamples, name", [(0, 5, "blocks"), (5, 0, "resamples"), (5, 2.0, "resamples")])
def test_bootstrap_counts_refuse_bad_sizes(blocks: int, resamples: int, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be"):
        bootstrap_counts(blocks, resamples, seed=0)


# --- InferenceOptions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [("ci", "percentile"), ("null", "exact"), ("blocks", 1), ("blocks", 10.0), ("resamples", 0),
     ("permutations", 0), ("permutations", True), ("seed", -1), ("alpha", 0.0), ("alpha", 1.0), ("alpha", -0.2),
     ("alpha", "0.05"), ("alpha", True), ("jackknife", "first-order")],
)
def test_bad_options_are_named(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{option} must be"):
        InferenceOptions(**{option: value})  # type: ignore[arg-type]


def test_options_defaults_and_dict() -> None:
    opts = InferenceOptions(ci="bootstrap", null="permutation", blocks=20, resamples=10, permutations=5, alpha=0.1)
    assert opts.enabled and not InferenceOptions().enabled
    assert opts.as_dict() == {"ci": "bootstrap", "null": "permutation", "blocks": 20, "resamples": 10,
                              "permutations": 5, "alpha": 0.1, "seed": 0, "jackknife": "linearised"}


# --- intervals ------------------------------------------------------------------------------------------


def block_means(rows: np.ndarray, blocks: int) -> np.ndarray:
    return rows.reshape(blocks, -1).mean(axis=1)


def test_linearised_bootstrap_is_exact_for_a_statistic_linear_in_the_weights() -> None:
    rng = np.random.default_rng(11)
    g, m = 15, 8
    rows = rng.lognormal(size=g * m)
    estimate = rows.mean()
    loo = np.array([np.delete(rows.reshape(g, m), b, axis=0).mean() for b in range(g)])
    counts = bootstrap_counts(g, 200, seed=2)
    # Brute force: the mean of the resampled rows, each block appearing count times.
    exact = np.array([np.repeat(rows.reshape(g, m), c, axis=0).mean() for c in counts])
    assert np.allclose(linearised_bootstrap(estimate, loo, counts), exact, rtol=0, atol=1e-12)
    # It is only first order: for the variance, a quadratic statistic, the linearisation is not exact.
    var_loo = np.array([np.delete(rows.reshape(g, m), b, axis=0).var() for b in range(g)])
    var_exact = np.array([np.repeat(rows.reshape(g, m), c, axis=0).var() for c in counts])
    assert np.abs(linearised_bootstrap(rows.var(), var_loo, counts) - var_exact).max() > 1e-3


def test_jackknife_of_the_mean_is_the_textbook_standard_error() -> None:
    rng = np.random.default_rng(12)
    rows = rng.normal(size=20 * 5)
    means = block_means(rows, 20)
    loo = (means.sum() - means) / 19
    se, bias = jackknife_summary(rows.mean(), loo)
    assert se == pytest.approx(means.std(ddof=1) / math.sqrt(20), rel=1e-12)
    assert bias == pytest.approx(0.0, abs=1e-13)


def test_percentile_and_normal_intervals() -> None:
    r = np.arange(1001, dtype=float)
    assert percentile_interval(r, 0.1) == pytest.approx((50.0, 950.0))
    low, high = normal_interval(2.0, 0.5, 0.05, dof=9)
    assert (high - 2.0) == pytest.approx(0.5 * stats.t.ppf(0.975, 9)) and (2.0 - low) == pytest.approx(high - 2.0)


def test_uncertainty_merges_array_fields() -> None:
    a = Uncertainty(se=1.0, replicates=np.arange(3.0), replicate_kind="jackknife")
    b = Uncertainty(se=9.0, p_value=0.5, null_values=np.arange(4.0), replicates=np.zeros(2))
    merged = a.merged(b)
    assert merged.se == 1.0 and merged.p_value == 0.5
    assert merged.replicates is not None and merged.replicates.tolist() == [0.0, 1.0, 2.0]
    assert merged.null_values is not None and merged.null_values.size == 4


# --- differences and aggregates -------------------------------------------------------------------------


def test_jackknife_difference_against_the_textbook_formulas() -> None:
    rng = np.random.default_rng(13)
    g = 12
    la, lb = rng.normal(0.6, 0.02, size=g), rng.normal(0.55, 0.02, size=g)
    out = difference_statistics(0.61, la, 0.56, lb, "jackknife", 0.05)
    d = la - lb
    se = math.sqrt((g - 1) / g * ((d - d.mean()) ** 2).sum())
    q = stats.t.ppf(0.975, g - 1)
    assert out.se == pytest.approx(se, rel=1e-12)
    assert (out.ci_low, out.ci_high) == pytest.approx((0.05 - q * se, 0.05 + q * se), rel=1e-10)
    assert out.p_value == pytest.approx(2 * stats.t.sf(0.05 / se, g - 1), rel=1e-10)
    assert out.replicates is not None and np.allclose(out.replicates, d)
    assert out.replicate_kind == "jackknife" and "jackknife" in out.ci_method and out.null_method


def test_bootstrap_difference_against_plain_counting() -> None:
    rng = np.random.default_rng(14)
    ra, rb = rng.normal(0.02, 0.03, size=499), rng.normal(0.0, 0.01, size=499)
    out = difference_statistics(0.5, 0.5 + ra, 0.5, 0.5 + rb, "bootstrap", 0.1)
    d = ra - rb
    below = (1 + sum(1 for v in d if v <= 0)) / 500
    above = (1 + sum(1 for v in d if v >= 0)) / 500
    assert out.p_value == pytest.approx(min(1.0, 2 * min(below, above)), rel=1e-12)
    assert (out.ci_low, out.ci_high) == pytest.approx(tuple(np.quantile(d, [0.05, 0.95])), abs=1e-12)
    assert out.se == pytest.approx(d.std(ddof=1))
    # A bootstrap centred on zero gives p = 1, not more.
    assert difference_statistics(0.0, np.r_[-1.0, 1.0, 0.0], 0.0, np.zeros(3), "bootstrap", 0.05).p_value == 1.0


def test_difference_refuses_mismatched_or_unknown_input() -> None:
    with pytest.raises(ValueError, match="same blocks"):
        difference_statistics(0.0, np.zeros(5), 0.0, np.zeros(6), "jackknife", 0.05)
    with pytest.raises(ValueError, match=r"^kind must be one of"):
        difference_statistics(0.0, np.zeros(5), 0.0, np.zeros(5), "delta", 0.05)


@pytest.mark.parametrize("replicates", [np.array([0.3]), np.array([0.1, np.nan, 0.2])])
def test_too_few_or_non_finite_replicates_give_a_warning_and_no_interval(replicates: np.ndarray) -> None:
    with pytest.warns(InferenceWarning, match="not available"):
        out = replicate_statistics(0.2, replicates, "jackknife", 0.05)
    assert out.columns() == {c: None for c in out.columns()}
    with pytest.warns(InferenceWarning):
        assert difference_statistics(0.2, replicates, 0.1, replicates, "bootstrap", 0.05).p_value is None


def test_a_difference_that_never_varies() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = difference_statistics(0.4, np.full(6, 0.4), 0.4, np.full(6, 0.4), "jackknife", 0.05)
        shifted = difference_statistics(0.5, np.full(6, 0.5), 0.4, np.full(6, 0.4), "jackknife", 0.05)
    assert same.se == 0.0 and same.p_value == 1.0
    assert shifted.p_value == 0.0 and shifted.ci_low == pytest.approx(0.1) and shifted.ci_high == pytest.approx(0.1)


def nearest_by_loop(layers_a: list[int], layers_b: list[int]) -> list[int]:
    deepest_a, deepest_b = max(max(layers_a), 1), max(max(layers_b), 1)
    out = []
    for la in layers_a:
        gaps = [abs(la / deepest_a - lb / deepest_b) for lb in layers_b]
        out.append(min(range(len(layers_b)), key=lambda j: (round(gaps[j], 12), j)))
    return out


def test_aggregate_values_against_loops() -> None:
    rng = np.random.default_rng(15)
    stack = rng.uniform(size=(4, 5, 3))
    for m in stack:
        assert aggregate_values(m, "mean_best") == pytest.approx(np.mean([max(row) for row in m]))
        assert aggregate_values(m, "mean_best", larger_is_similar=False) == pytest.approx(
            np.mean([min(row) for row in m]))
        assert aggregate_values(m, "max") == pytest.approx(max(m.ravel()))
        assert aggregate_values(m, "max", larger_is_similar=False) == pytest.approx(min(m.ravel()))
        layers_a, layers_b = [0, 3, 6, 9, 12], [0, 4, 8]
        nearest = nearest_by_loop(layers_a, layers_b)
        assert aggregate_values(m, "depth_diagonal", layers_a=layers_a, layers_b=layers_b) == pytest.approx(
            np.mean([m[i, j] for i, j in enumerate(nearest)]))
    assert aggregate_values(stack, "max").shape == (4,)
    with pytest.raises(ValueError, match="aggregation"):
        aggregate_values(stack, "median")
    with pytest.raises(ValueError, match="layers_a"):
        aggregate_values(stack, "depth_diagonal", layers_a=[0, 1])


def test_aggregate_statistics_aggregates_each_replicate() -> None:
    rng = np.random.default_rng(16)
    estimates = rng.uniform(size=(3, 4))
    loo = estimates + rng.normal(0, 0.01, size=(10, 3, 4))
    out = aggregate_statistics(estimates, loo, "jackknife", "mean_best", 0.05)
    per_replicate = np.array([np.mean(m.max(axis=1)) for m in loo])
    se, _ = jackknife_summary(np.mean(estimates.max(axis=1)), per_replicate)
    assert out.se == pytest.approx(se, rel=1e-12)
    assert out.replicates is not None and np.allclose(out.replicates, per_replicate)
    # Differences of model-level values chain through the aggregated replicates.
    other = aggregate_statistics(estimates * 0.9, loo * 0.9, "jackknife", "mean_best", 0.05)
    assert other.replicates is not None
    diff = difference_statistics(np.mean(estimates.max(axis=1)), out.replicates,
                                 np.mean(0.9 * estimates.max(axis=1)), other.replicates, "jackknife", 0.05)
    assert diff.se == pytest.approx(0.1 * se, rel=1e-9)
    with pytest.raises(ValueError, match="replicates"):
        aggregate_statistics(estimates, loo[:, :2], "bootstrap", "max", 0.05)
