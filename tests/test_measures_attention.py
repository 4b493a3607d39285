"""Attention-level measures against plain loops over sentences, query words and head pairs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from reprsim.measures import attention_cka, attention_head_similarity, attention_js, attention_pearson

LENGTHS = [3, 6, 1, 5, 8]


def random_maps(
    heads: int, seed: int, lengths: list[int] = LENGTHS, causal: bool = False
) -> list[np.ndarray]:
    """Per-sentence (heads, T, T) maps with peaked, row-normalised weights (optionally lower-triangular)."""
    rng = np.random.default_rng(seed)
    maps = []
    for T in lengths:
        a = rng.random((heads, T, T)) ** 4
        if causal:
            a = a * np.tril(np.ones((T, T)))
        maps.append(a / a.sum(axis=-1, keepdims=True))
    return maps


def js_head_similarity_ref(A: list[np.ndarray], B: list[np.ndarray]) -> np.ndarray:
    """1 - mean over (sentence, query word) of scipy's JS distance squared (natural log), per head pair."""
    out = np.zeros((A[0].shape[0], B[0].shape[0]))
    for h in range(out.shape[0]):
        for g in range(out.shape[1]):
            values = [
                jensenshannon(a[h, i], b[g, i]) ** 2
                for a, b in zip(A, B, strict=True)
                for i in range(a.shape[1])
            ]
            out[h, g] = 1.0 - np.mean(values)
    return out


def pearson_head_similarity_ref(A: list[np.ndarray], B: list[np.ndarray]) -> np.ndarray:
    """Mean over (sentence, query word) of np.corrcoef of the two rows, skipping constant rows."""
    out = np.zeros((A[0].shape[0], B[0].shape[0]))
    for h in range(out.shape[0]):
        for g in range(out.shape[1]):
            values = [
                np.corrcoef(a[h, i], b[g, i])[0, 1]
                for a, b in zip(A, B, strict=True)
                for i in range(a.shape[1])
                if np.ptp(a[h, i]) > 0 and np.ptp(b[g, i]) > 0
            ]
            out[h, g] = np.mean(values)
    return out


def attention_cka_ref(A: list[np.ndarray], B: list[np.ndarray]) -> float:
    """Concatenate rows (sentence, i, j) x heads and apply the explicit-H linear CKA formula."""
    X = np.concatenate([a.reshape(a.shape[0], -1).T for a in A])
    Y = np.concatenate([b.reshape(b.shape[0], -1).T for b in B])
    n = X.shape[0]
    H = np.eye(n) - 1.0 / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(P: np.ndarray, Q: np.ndarray) -> float:
        return float(np.trace(P @ H @ Q @ H))

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.mark.parametrize("causal", [False, True])
def test_js_head_similarity_matches_scipy_loop(causal):
    A, B = random_maps(4, seed=1, causal=causal), random_maps(3, seed=2, causal=causal)
    ours = attention_head_similarity(A, B, kind="js")
    assert ours.shape == (4, 3)
    np.testing.assert_allclose(ours, js_head_similarity_ref(A, B), rtol=1e-10)
    assert np.all(ours >= 1.0 - np.log(2.0) - 1e-12) and np.all(ours <= 1.0)


def test_js_layer_similarity_is_mean_of_row_max_and_directed():
    A, B = random_maps(4, seed=3), random_maps(3, seed=4)
    ref = js_head_similarity_ref(A, B)
    assert attention_js(A, B) == pytest.approx(ref.max(axis=1).mean(), rel=1e-10)
    assert attention_js(B, A) == pytest.approx(ref.T.max(axis=1).mean(), rel=1e-10)
    assert attention_js(A, B) != pytest.approx(attention_js(B, A), rel=1e-6)


def test_js_floor_is_one_minus_ln2_for_disjoint_attention():
    T = 4
    eye = np.eye(T)[None]
    shifted = np.roll(np.eye(T), 1, axis=1)[None]  # every query attends to a different word
    assert attention_head_similarity([eye], [shifted])[0, 0] == pytest.approx(1.0 - np.log(2.0), rel=1e-12)


def test_pearson_head_similarity_matches_loop_and_warns_about_constant_rows():
    A, B = random_maps(3, seed=5), random_maps(2, seed=6)  # the one-word sentence has constant rows
    with pytest.warns(UserWarning, match="left out 5 of"):
        ours = attention_head_similarity(A, B, kind="pearson")
    np.testing.assert_allclose(ours, pearson_head_similarity_ref(A, B), rtol=1e-10)
    with pytest.warns(UserWarning):
        assert attention_pearson(A, B) == pytest.approx(ours.max(axis=1).mean(), rel=1e-12)


def test_pearson_undefined_when_no_row_varies():
    uniform = [np.full((2, 3, 3), 1.0 / 3.0)]
    with pytest.raises(ValueError, match="share no query word"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attention_pearson(uniform, random_maps(2, seed=7, lengths=[3]))


def test_attention_cka_matches_explicit_formula_and_is_symmetric():
    A, B = random_maps(4, seed=8), random_maps(3, seed=9)
    assert attention_cka(A, B) == pytest.approx(attention_cka_ref(A, B), rel=1e-9)
    assert attention_cka(A, B) == pytest.approx(attention_cka(B, A), rel=1e-12)


@pytest.mark.parametrize(
    "measure", [attention_js, attention_cka, attention_pearson], ids=["js", "cka", "pearson"]
)
def test_identity_one_head_permutation_invariance_and_streaming(measure):
    A, B = random_maps(4, seed=10, lengths=[4, 6, 5]), random_maps(3, seed=11, lengths=[4, 6, 5])
    assert measure(A, A) == pytest.approx(1.0, abs=1e-12)
    base = measure(A, B)
    perm_a, perm_b = [2, 0, 3, 1], [1, 2, 0]
    assert measure([a[perm_a] for a in A], [b[perm_b] for b in B]) == pytest.approx(base, rel=1e-12)
    # one-pass generators (what the activation store yields) give the same result as lists
    assert measure((a for a in A), (torch.from_numpy(b) for b in B)) == pytest.approx(base, rel=1e-12)
    # float16 storage: rows sum to 1 only to ~1e-3, accepted, and the value stays close
    assert measure([a.astype(np.float16) for a in A], B) == pytest.approx(base, abs=2e-3)


def test_js_streams_sentence_by_sentence():
    """Each sentence is consumed before the next is requested (never the whole corpus at once)."""
    A, B = random_maps(2, seed=12), random_maps(2, seed=13)
    seen: list[int] = []

    def tracked(maps):
        for s, m in enumerate(maps):
            seen.append(s)
            yield m

    attention_js(tracked(A), B)
    assert seen == list(range(len(A)))


def test_errors_name_the_sentence_and_problem():
    A, B = random_maps(2, seed=14), random_maps(2, seed=15)
    with pytest.raises(ValueError, match="A has 5 sentences and B has 4"):
        attention_js(A, B[:4])
    with pytest.raises(ValueError, match="B ended after 4 sentences"):
        attention_js(A, iter(B[:4]))
    with pytest.raises(ValueError, match="A ended after 4 sentences but B has more"):
        attention_js(iter(A[:4]), iter(B))
    wrong_t = list(B)
    wrong_t[3] = random_maps(2, seed=16, lengths=[4])[0]
    with pytest.raises(ValueError, match="sentence 3 has 5 words in A but 4 in B"):
        attention_js(A, wrong_t)
    not_normalised = [a.copy() for a in A]
    not_normalised[1][1, 2] *= 2.0
    with pytest.raises(ValueError, match=r"A, sentence 1\): row of head 1, query word 2 sums to"):
        attention_cka(not_normalised, B)
    negative = [b.copy() for b in B]
    negative[4][0, 1, 0] = -0.1
    negative[4][0, 1, 1] += 0.1
    with pytest.raises(ValueError, match=r"B, sentence 4\): negative weight in head 0, query word 1"):
        attention_pearson(A, negative)
    with pytest.raises(ValueError, match=r"sentence 2\): expected a \(heads, T, T\) map"):
        attention_js(A, [*B[:2], B[2][0], *B[3:]])
    heads_changed = [*B[:3], random_maps(3, seed=17, lengths=[5])[0], B[4]]
    with pytest.raises(ValueError, match="sentence 3 has 2 heads in A and 3 in B"):
        attention_js(A, heads_changed)
    with pytest.raises(ValueError, match="no sentences"):
        attention_cka([], [])
    with pytest.raises(ValueError, match="kind must be"):
        attention_head_similarity(A, B, kind="cosine")  # type: ignore[arg-type]


def test_long_sentences_chunk_heads_without_changing_the_result(monkeypatch):
    import reprsim.measures.attention as attention_module

    A, B = random_maps(5, seed=18, lengths=[7, 9]), random_maps(4, seed=19, lengths=[7, 9])
    whole = attention_head_similarity(A, B)
    monkeypatch.setattr(attention_module, "MAX_PAIR_ELEMENTS", 100)  # one head of A per chunk
    np.testing.assert_allclose(attention_head_similarity(A, B), whole, rtol=1e-13)
