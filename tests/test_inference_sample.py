"""Statistics of the n x n measures on their row subsample, against the measure recomputed on the rows.

Each replicate the engine reports from its fits is checked against a brute-force recomputation: the
jackknife's against the measure on the rows without one group of sentences, the bootstrap's against the
measure on the resampled sentences' rows, the permutation null's against the measure with Y's rows permuted.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reprsim import measures as registry
from reprsim.comparison import compare
from reprsim.comparison_records import subsample_rows
from reprsim.engine import RepresentationSource, score_pairs
from reprsim.engine.sample_family import SampleFamily
from reprsim.engine.sample_inference import row_permutations
from reprsim.inference import InferenceOptions, bootstrap_counts, sentence_blocks
from test_compare import LENGTHS, N_WORDS, study_store  # noqa: F401

# Lengths of the sentences of the synthetic subsample (every row of it is used).
SENTENCE_LENGTHS = [3, 1, 4, 2, 5, 3, 2, 4, 1, 3, 2, 5, 4, 3, 2, 1, 4, 3, 5, 2] * 2
N = sum(SENTENCE_LENGTHS)

# Specs whose one-shot function recomputes nothing from all rows (k-NN clipping off): the brute force is the
# function itself. RBF CKA's bandwidth is fixed by the whole subsample and gets its own reference below.
JACKKNIFE_SPECS = [
    "rsa", "rsa(compare=pearson)", "rsa(rdm=euclidean, compare=cosine)", "rsa(compare=tau_a)",
    "rsa(compare=cosine_cov)", "distance_correlation",
    "mutual_knn(k=5, clip_quantile=None)", "jaccard_knn(k=5, clip_quantile=None)",
    "rank_similarity(k=5, clip_quantile=None)", "second_order_cosine(k=5, clip_quantile=None)",
    "cknna(k=5, clip_quantile=None)", "cycle_knn(k=5, clip_quantile=None)",
]
BOOTSTRAP_SPECS = ["rsa(compare=cosine_cov)", "distance_correlation"]


def _data(seed: int = 0, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    z = r.standard_normal((N, 3))
    x = z @ r.standard_normal((3, 6)) + 0.7 * r.standard_normal((N, 6))
    y = signal * z[:, :2] @ r.standard_normal((2, 5)) + r.standard_normal((N, 5))
    return x, y


def _sentence_of_row() -> np.ndarray:
    """Sentence ids with gaps, as a subsample of a larger corpus gives them."""
    return np.repeat(3 * np.arange(len(SENTENCE_LENGTHS)) + 7, SENTENCE_LENGTHS)


def _uncertainty(x: np.ndarray, y: np.ndarray, spec: str, options: InferenceOptions):
    sources = [RepresentationSource.from_array("x", x), RepresentationSource.from_array("y", y)]
    family = SampleFamily(sources, spec, np.arange(len(x)), 64, inference=options, sentence_of_row=_sentence_of_row())
    ((_, _, values),) = list(score_pairs(family, [(0, 1)], 1 << 30))
    return values[spec], values["uncertainty"][spec]


def _group_rows(blocks: int) -> list[np.ndarray]:
    """The rows of each jackknife group: contiguous sentences of near-equal rows (`sentence_blocks`)."""
    bounds = sentence_blocks(np.asarray(SENTENCE_LENGTHS), blocks)
    return [np.arange(bounds[g], bounds[g + 1]) for g in range(blocks)]


def _rbf_gram(x: np.ndarray, t: float = 0.8) -> np.ndarray:
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d / (2 * t * t * np.median(d)))


def _cka_of_grams(k: np.ndarray, l: np.ndarray) -> float:
    h = np.eye(len(k)) - 1.0 / len(k)
    kc, lc = h @ k @ h, h @ l @ h
    return float((kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum()))


@pytest.mark.parametrize("spec", JACKKNIFE_SPECS)
def test_jackknife_replicates_are_the_measure_without_each_group(spec: str) -> None:
    x, y = _data()
    value, u = _uncertainty(x, y, spec, InferenceOptions(ci="jackknife", blocks=6))
    function = registry.get(spec).function
    assert value == pytest.approx(function(x, y), abs=1e-6)  # float32 fits
    brute = [function(np.delete(x, rows, 0), np.delete(y, rows, 0)) for rows in _group_rows(6)]
    assert u.replicate_kind == "jackknife"
    np.testing.assert_allclose(u.replicates, brute, rtol=0, atol=1e-6, err_msg=spec)
    mean = np.mean(brute)
    assert u.se == pytest.approx(np.sqrt(5 / 6 * np.sum((np.asarray(brute) - mean) ** 2)), rel=1e-6)
    t = stats.t.ppf(0.975, 5)
    assert (u.ci_low, u.ci_high) == pytest.approx((value - t * u.se, value + t * u.se), rel=1e-6, abs=1e-9)


def test_rbf_cka_replicates_keep_the_whole_subsample_bandwidth() -> None:
    x, y = _data()
    k, l = _rbf_gram(x), _rbf_gram(y)
    value, u = _uncertainty(x, y, "rbf_cka", InferenceOptions(ci="jackknife", blocks=6))
    assert value == pytest.approx(_cka_of_grams(k, l), abs=1e-6)
    for rows, got in zip(_group_rows(6), u.replicates, strict=True):
        keep = np.setdiff1d(np.arange(N), rows)
        assert got == pytest.approx(_cka_of_grams(k[np.ix_(keep, keep)], l[np.ix_(keep, keep)]), abs=1e-6)
    _, u = _uncertainty(x, y, "rbf_cka", InferenceOptions(ci="bootstrap", resamples=7, seed=4))
    starts = np.cumsum(SENTENCE_LENGTHS) - SENTENCE_LENGTHS
    for counts, got in zip(bootstrap_counts(len(SENTENCE_LENGTHS), 7, 4), u.replicates, strict=True):
        rows = np.concatenate([np.tile(np.arange(s, s + n), c)
                               for s, n, c in zip(starts, SENTENCE_LENGTHS, counts, strict=True)])
        assert got == pytest.approx(_cka_of_grams(k[np.ix_(rows, rows)], l[np.ix_(rows, rows)]), abs=1e-6)


@pytest.mark.parametrize("spec", BOOTSTRAP_SPECS)
def test_bootstrap_replicates_are_the_measure_on_the_resampled_sentences(spec: str) -> None:
    x, y = _data(seed=2)
    _, u = _uncertainty(x, y, spec, InferenceOptions(ci="bootstrap", resamples=9, seed=5))
    function = registry.get(spec).function
    starts = np.cumsum(SENTENCE_LENGTHS) - SENTENCE_LENGTHS
    brute = []
    for counts in bootstrap_counts(len(SENTENCE_LENGTHS), 9, 5):  # whole sentences, drawn with replacement
        rows = np.concatenate([np.tile(np.arange(s, s + n), c)
                               for s, n, c in zip(starts, SENTENCE_LENGTHS, counts, strict=True)])
        brute.append(function(x[rows], y[rows]))
    assert u.replicate_kind == "bootstrap"
    np.testing.assert_allclose(u.replicates, brute, rtol=0, atol=1e-6, err_msg=spec)
    assert u.se == pytest.approx(np.std(brute, ddof=1), rel=1e-6)
    assert (u.ci_low, u.ci_high) == pytest.approx(tuple(np.quantile(brute, [0.025, 0.975])), rel=1e-6)


@pytest.mark.parametrize("spec", ["rbf_cka", "distance_correlation", "rsa", "rsa(compare=cosine_cov)",
                                  "mutual_knn", "jaccard_knn(k=5)", "rank_similarity(k=5)",
                                  "second_order_cosine(k=5)", "cknna(k=5)", "cycle_knn(k=5)"])
def test_permutation_null_is_the_measure_with_y_rows_permuted(spec: str) -> None:
    x, y = _data(seed=3)
    options = InferenceOptions(ci="none", null="permutation", permutations=12, seed=9, alpha=0.1)
    value, u = _uncertainty(x, y, spec, options)
    function = registry.get(spec).function
    perms = row_permutations(N, 12, 9).numpy()
    brute = np.array([function(x, y[p]) for p in perms])
    np.testing.assert_allclose(u.null_values, brute, rtol=0, atol=1e-6, err_msg=spec)
    assert u.null_mean == pytest.approx(brute.mean(), abs=1e-6)
    assert u.p_value == pytest.approx((1 + np.sum(brute >= value)) / 13)
    tau = np.sort(brute)[int(np.ceil(0.9 * 13)) - 1] if int(np.ceil(0.9 * 13)) <= 12 else np.inf
    expected = 0.0 if not np.isfinite(tau) else float(np.clip((value - tau) / (1 - tau), 0, 1))
    assert u.calibrated == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("spec", ["mutual_knn(k=5)", "rsa", "rbf_cka"])
def test_permutation_p_values_are_uniform_under_independence(spec: str) -> None:
    p_values = []
    options = InferenceOptions(ci="none", null="permutation", permutations=39, seed=1)
    for trial in range(60):
        x, y = _data(seed=100 + trial, signal=0.0)
        p_values.append(_uncertainty(x, y, spec, options)[1].p_value)
    p = np.asarray(p_values)
    # p takes the values j / 40; under the null P(p <= j / 40) = j / 40 exactly (exchangeable rows).
    assert stats.kstest(p - 1 / 80, "uniform").pvalue > 1e-3, np.sort(p)
    assert 0.3 < p.mean() < 0.7


def test_analytic_null_of_mutual_knn_is_its_chance_level() -> None:
    x, y = _data()
    _, u = _uncertainty(x, y, "mutual_knn(k=5)", InferenceOptions(ci="none", null="analytic"))
    assert u.null_mean == pytest.approx(5 / (N - 1))


@pytest.mark.parametrize("spec", ["rbf_cka", "rsa", "rsa(compare=cosine)", "rsa(compare=cosine_cov)",
                                  "mutual_knn(k=5)", "jaccard_knn(k=5)", "cycle_knn(k=5)"])
def test_analytic_null_means_agree_with_many_permutations(spec: str) -> None:
    x, y = _data(seed=6)
    _, analytic = _uncertainty(x, y, spec, InferenceOptions(ci="none", null="analytic"))
    _, drawn = _uncertainty(x, y, spec, InferenceOptions(ci="none", null="permutation", permutations=400, seed=2))
    spread = drawn.null_values.std(ddof=1) / np.sqrt(400)
    assert abs(analytic.null_mean - drawn.null_mean) < 4 * spread + 1e-9, (analytic.null_mean, drawn.null_mean)


def test_sentence_of_row_of_the_wrong_length_is_refused() -> None:
    x, y = _data()
    sources = [RepresentationSource.from_array("x", x), RepresentationSource.from_array("y", y)]
    with pytest.raises(ValueError, match="sentence_of_row"):
        SampleFamily(sources, "rsa", np.arange(N), 64, inference=InferenceOptions(ci="jackknife"),
                     sentence_of_row=np.zeros(N - 1, dtype=int))


def test_compare_resamples_the_sentences_of_the_row_subsample(study_store) -> None:  # noqa: F811
    size, knn = 400, "mutual_knn(clip_quantile=None)"
    table = compare(study_store, measures=["rsa", knn], subsample_rows=size, ci="jackknife", blocks=5,
                    null="permutation", permutations=9, progress=False)
    rows = subsample_rows(N_WORDS, size, 0)
    sentence = np.repeat(np.arange(len(LENGTHS)), LENGTHS)[rows]
    bounds = sentence_blocks(np.bincount(np.unique(sentence, return_inverse=True)[1]), 5)
    entries = {e.name: e for e in study_store.entries()}
    x = entries["A"].read_rows(1, 0, N_WORDS)[rows]
    y = entries["B"].read_rows(2, 0, N_WORDS)[rows]
    for measure in ("rsa", knn):
        u = table.uncertainty(measure, ("A", 1), ("B", 2))
        function = registry.get(measure).function
        brute = [function(np.delete(x, np.s_[bounds[g]:bounds[g + 1]], 0),
                          np.delete(y, np.s_[bounds[g]:bounds[g + 1]], 0)) for g in range(5)]
        np.testing.assert_allclose(u.replicates, brute, atol=1e-6, err_msg=measure)
        assert np.isfinite([u.se, u.ci_low, u.ci_high, u.null_mean, u.p_value, u.calibrated]).all()
    methods = table.provenance["inference"]["methods"]
    assert "jackknife" in methods["rsa"]["ci"] and "permutation" in methods[knn]["null"]
