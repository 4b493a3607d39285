"""Statistics of the attention measures by resampling sentences, against the measure on the resampled maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reprsim import measures as registry
from reprsim.comparison import compare
from reprsim.comparison_records import subsample_rows
from reprsim.inference import bootstrap_counts, sentence_blocks
from test_compare import LENGTHS, study_store  # noqa: F401

ATTENTION = ["attention_js", "attention_pearson", "attention_cka"]
SENTENCES = 60  # of the store's 120: a subsample, so that the chosen sentences must be mapped back


def _maps(store, sentences: np.ndarray) -> dict[tuple[str, int], list[np.ndarray]]:
    entries = {e.name: e for e in store.entries()}
    return {(name, layer): [m for s, m in enumerate(e.iter_attention(layer)) if s in set(sentences.tolist())]
            for name, e in entries.items() for layer in e.layer_ids if e.heads(layer)}


@pytest.mark.parametrize("measure", ATTENTION)
def test_bootstrap_replicates_are_the_measure_on_the_resampled_sentences(study_store, measure) -> None:  # noqa: F811
    table = compare(study_store, measures=[measure], attention_sentences=SENTENCES, ci="bootstrap", resamples=6,
                    seed=3, null="permutation", progress=False)
    sentences = subsample_rows(len(LENGTHS), SENTENCES, 3)
    maps = _maps(study_store, sentences)
    function = registry.get(measure).function
    counts = bootstrap_counts(SENTENCES, 6, 3)
    for a, b in [(("A", 1), ("B", 2)), (("B", 1), ("B", 1)), (("A", 2), ("A", 1))]:
        u = table.uncertainty(measure, a, b)
        brute = [function([m for m, c in zip(maps[a], w, strict=True) for _ in range(c)],
                          [m for m, c in zip(maps[b], w, strict=True) for _ in range(c)]) for w in counts]
        np.testing.assert_allclose(u.replicates, brute, rtol=0, atol=1e-6, err_msg=f"{measure} {a} {b}")
        assert u.se == pytest.approx(np.std(brute, ddof=1), rel=1e-5)
        assert (u.ci_low, u.ci_high) == pytest.approx(tuple(np.quantile(brute, [0.025, 0.975])), rel=1e-5)
        assert u.p_value is None or np.isnan(u.p_value)
    _, null = table.inference_methods(measure)
    assert "none" in null and "length" in null


@pytest.mark.parametrize("measure", ATTENTION)
def test_jackknife_replicates_leave_out_each_group_of_sentences(study_store, measure) -> None:  # noqa: F811
    table = compare(study_store, measures=[measure], attention_sentences=SENTENCES, ci="jackknife", blocks=7,
                    progress=False)
    sentences = subsample_rows(len(LENGTHS), SENTENCES, 0)
    maps = _maps(study_store, sentences)
    function = registry.get(measure).function
    bounds = sentence_blocks(np.asarray(LENGTHS)[sentences], 7)  # contiguous sentences, near-equal words
    group = np.searchsorted(bounds, np.cumsum(np.asarray(LENGTHS)[sentences]) - np.asarray(LENGTHS)[sentences],
                            side="right") - 1
    a, b = ("A", 1), ("B", 2)
    u = table.uncertainty(measure, a, b)
    value = function(maps[a], maps[b])
    brute = [function([m for m, g2 in zip(maps[a], group, strict=True) if g2 != g],
                      [m for m, g2 in zip(maps[b], group, strict=True) if g2 != g]) for g in range(7)]
    np.testing.assert_allclose(u.replicates, brute, rtol=0, atol=1e-6, err_msg=measure)
    se = np.sqrt(6 / 7 * np.sum((np.asarray(brute) - np.mean(brute)) ** 2))
    assert u.se == pytest.approx(se, rel=1e-5)
    t = stats.t.ppf(0.975, 6)
    assert (u.ci_low, u.ci_high) == pytest.approx((value - t * se, value + t * se), rel=1e-5)


def test_statistics_leave_the_attention_values_as_they_were(study_store) -> None:  # noqa: F811
    plain = compare(study_store, measures=ATTENTION, attention_sentences=SENTENCES, progress=False).frame
    with_ci = compare(study_store, measures=ATTENTION, attention_sentences=SENTENCES, ci="bootstrap", resamples=5,
                      progress=False).frame
    key = ["measure", "model_a", "layer_a", "model_b", "layer_b"]
    merged = plain.merge(with_ci, on=key, suffixes=("", "_ci"))
    assert len(merged) == len(plain)
    np.testing.assert_allclose(merged.value_ci, merged.value, rtol=0, atol=1e-9)
    assert merged.ci_low.le(merged.ci_high).all()
