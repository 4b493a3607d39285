"""Attention-level measures (per pair and from per-layer fits) against plain loops over sentences, query
words and head pairs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from reprsim.measures import attention_cka, attention_head_similarity, attention_js, attention_pearson
from reprsim.measures.attention import (
    attention_fit_bytes,
    fit_attention,
    score_attention,
    score_attention_heads,
)

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
    import reprsim.measures.attention_score as attention_module

    A, B = random_maps(5, seed=18, lengths=[7, 9]), random_maps(4, seed=19, lengths=[7, 9])
    whole = attention_head_similarity(A, B)
    monkeypatch.setattr(attention_module, "MAX_PAIR_ELEMENTS", 100)  # one head of A per chunk
    np.testing.assert_allclose(attention_head_similarity(A, B), whole, rtol=1e-13)


# --- per-layer fits ----------------------------------------------------------------------------------------
EDGE_LENGTHS = [1, 2, 4, 1, 7, 2, 5]


def maps_with_zeros(heads: int, seed: int, lengths: list[int] = EDGE_LENGTHS) -> list[np.ndarray]:
    """Maps with exact zeros: causal rows, one-hot rows, uniform rows and rows with a few zero keys."""
    maps = random_maps(heads, seed, lengths, causal=seed % 2 == 0)
    rng = np.random.default_rng(seed + 100)
    for a in maps:
        T = a.shape[-1]
        a[0, T - 1] = np.eye(T)[rng.integers(T)]  # one-hot row
        if heads > 1:
            a[1, 0] = 1.0 / T  # uniform (constant) row
        zeros = rng.random(a.shape) < 0.3
        a[zeros] = 0.0
        empty = a.sum(axis=-1) == 0
        a[empty] = 1.0 / T
        a /= a.sum(axis=-1, keepdims=True)
    return maps


def js_from_elementwise_terms(a: np.ndarray, b: np.ndarray) -> float:
    """Sum over keys of f(a, b) = a/2 log(2a/(a+b)) + b/2 log(2b/(a+b)), 0 log 0 = 0 (plain loop)."""
    total = 0.0
    for x, y in zip(a, b, strict=True):
        total += 0.5 * x * np.log(2 * x / (x + y)) if x > 0 else 0.0
        total += 0.5 * y * np.log(2 * y / (x + y)) if y > 0 else 0.0
    return total


def test_js_is_a_sum_of_elementwise_terms():
    """The identity the fitted JS relies on, checked against scipy on rows with zeros."""
    for a, b in zip(maps_with_zeros(3, 40), maps_with_zeros(3, 41), strict=True):
        for h in range(a.shape[0]):
            for i in range(a.shape[1]):
                expected = jensenshannon(a[h, i], b[h, i]) ** 2
                assert js_from_elementwise_terms(a[h, i], b[h, i]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seeds", [(20, 21), (22, 23), (24, 25), (20, 22)])  # (20, 22): both causal
def test_fitted_head_similarity_matches_reference_loops(seeds):
    A, B = maps_with_zeros(4, seeds[0]), maps_with_zeros(3, seeds[1])
    fa_js, fb_js = fit_attention(A, "js"), fit_attention(B, "js", name="B")
    np.testing.assert_allclose(score_attention_heads(fa_js, fb_js), js_head_similarity_ref(A, B),
                               rtol=0, atol=1e-9)
    fa_p, fb_p = fit_attention(A, "pearson"), fit_attention(B, "pearson")
    with pytest.warns(UserWarning, match="left out"):
        pearson = score_attention_heads(fa_p, fb_p)
    np.testing.assert_allclose(pearson, pearson_head_similarity_ref(A, B), rtol=0, atol=1e-9)
    assert score_attention(fit_attention(A, "cka"), fit_attention(B, "cka")) == pytest.approx(
        attention_cka_ref(A, B), abs=1e-9)


def test_pearson_warning_counts_constant_rows():
    A, B = maps_with_zeros(2, 26), maps_with_zeros(3, 27)
    constant = sum(int(np.sum(np.ptp(m, axis=-1) == 0)) for m in [*A, *B])
    rows = sum(EDGE_LENGTHS) * (2 + 3)
    with pytest.warns(UserWarning, match=f"left out {constant} of {rows} attention rows"):
        score_attention(fit_attention(A, "pearson"), fit_attention(B, "pearson"))


def test_one_fit_serves_every_pair_and_equals_per_pair_functions():
    layers = [maps_with_zeros(h, 30 + h) for h in (2, 3, 4)]
    per_pair = {"js": attention_js, "pearson": attention_pearson, "cka": attention_cka}
    for kind, function in per_pair.items():
        fits = [fit_attention(m, kind) for m in layers]  # type: ignore[arg-type]
        for i, A in enumerate(layers):
            for j, B in enumerate(layers):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = function(A, B)
                    fitted = score_attention(fits[i], fits[j])
                assert fitted == pytest.approx(expected, rel=1e-12, abs=1e-12), (kind, i, j)
    js = [fit_attention(m, "js") for m in layers]
    ref = js_head_similarity_ref(layers[2], layers[0])
    assert score_attention(js[2], js[0]) == pytest.approx(ref.max(axis=1).mean(), abs=1e-9)


def test_fitted_js_blocks_of_entries_do_not_change_the_result(monkeypatch):
    import reprsim.measures.attention_score as attention_module

    A, B = maps_with_zeros(3, 50), maps_with_zeros(2, 51)
    fa, fb = fit_attention(A, "js"), fit_attention(B, "js")
    whole = score_attention_heads(fa, fb)
    monkeypatch.setattr(attention_module, "MAX_PAIR_ELEMENTS", 7)  # 3 entries per block
    np.testing.assert_allclose(score_attention_heads(fa, fb), whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(whole, js_head_similarity_ref(A, B), rtol=0, atol=1e-9)


def test_profiles_hold_the_flattened_layer_once():
    A = maps_with_zeros(3, 52)
    n_entries = sum(t * t for t in EDGE_LENGTHS)
    for kind in ("js", "pearson", "cka"):
        profile = fit_attention(A, kind)  # type: ignore[arg-type]
        assert profile.entries.shape == (3, n_entries) and profile.entries.dtype == torch.float64
        assert profile.lengths == tuple(EDGE_LENGTHS) and profile.n_rows == sum(EDGE_LENGTHS)
        assert profile.nbytes == attention_fit_bytes(3, EDGE_LENGTHS, kind)  # type: ignore[arg-type]
    assert fit_attention(A, "pearson").valid_rows.shape == (3, sum(EDGE_LENGTHS))  # type: ignore[union-attr]
    flat = np.concatenate([a.reshape(3, -1) for a in A], axis=1)
    np.testing.assert_array_equal(fit_attention(A, "js").support, (flat > 0).any(axis=0))


def test_fit_and_profile_errors_name_the_problem():
    A, B = maps_with_zeros(2, 53), maps_with_zeros(2, 54)
    with pytest.raises(ValueError, match=r"attention \(gpt L3, sentence 2\): row of head 0"):
        bad = [a.copy() for a in A]
        bad[2][0, 0] *= 3.0
        fit_attention(bad, "js", name="gpt L3")
    with pytest.raises(ValueError, match=r"attention \(gpt L3\): sentence 1 has 3 heads but sentence 0 had 2"):
        fit_attention([A[0], maps_with_zeros(3, 55)[1]], "js", name="gpt L3")
    with pytest.raises(ValueError, match="no sentences"):
        fit_attention([], "cka")
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_attention(A, "cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="different kinds"):
        score_attention(fit_attention(A, "js"), fit_attention(B, "cka"))
    with pytest.raises(ValueError, match="A has 7 sentences and B has 6"):
        score_attention(fit_attention(A, "js"), fit_attention(B[:6], "js"))
    swapped = [B[1], B[0], *B[2:]]  # lengths 2, 1 instead of 1, 2
    with pytest.raises(ValueError, match="sentence 0 has 1 words in A but 2 in B"):
        score_attention(fit_attention(A, "js"), fit_attention(swapped, "js"))
    with pytest.raises(ValueError, match="no head x head similarity"):
        score_attention_heads(fit_attention(A, "cka"), fit_attention(B, "cka"))
    uniform = [np.full((2, 2, 2), 0.5)] * 3  # A[1] has two words
    with pytest.raises(ValueError, match="every head of B has constant attention weights"):
        score_attention(fit_attention(A[1:2] * 3, "cka"), fit_attention(uniform, "cka"))


# --- all-pairs comparison: fitted once per layer -----------------------------------------------------------
def test_comparison_fits_each_layer_once_and_tiles_without_changing_values(tmp_path, monkeypatch):
    import reprsim.comparison_records as comparison
    from reprsim.engine import attention_family as families
    from reprsim.store import ActivationStore, make_key

    lengths = [1, 4, 2, 6, 5, 3]
    store = ActivationStore(tmp_path / "store")
    for m, (name, heads) in enumerate([("P", 3), ("Q", 2)]):
        rng = np.random.default_rng(m)
        ids = [0, 1, 2]
        manifest = {"name": name, "corpus_hash": "c", "model": name}
        writer = store.writer(make_key(name, manifest), manifest, ids, [4, 4, 4], lengths, [0, heads, heads])
        hidden = [rng.standard_normal((sum(lengths), 4)).astype(np.float32) for _ in ids]
        no_attention: list[np.ndarray | None] = [None] * len(lengths)  # layer 0, like embeddings
        attention = [no_attention] + [
            [x.astype(np.float32) for x in maps_with_zeros(heads, 60 + 2 * m + k, lengths)] for k in (0, 1)
        ]
        writer.write_sentences(0, len(lengths), hidden, attention)  # type: ignore[arg-type]
        writer.finalize()
    entries = store.entries()
    layers = {(e.name, layer): list(e.iter_attention(layer)) for e in entries for layer in (1, 2)}
    names = ["attention_js", "attention_pearson", "attention_cka"]

    fits: list[str] = []
    original = families.fit_attention

    def counting(maps, kind, *, name="A"):
        fits.append(name)
        return original(maps, kind, name=name)

    monkeypatch.setattr(families, "fit_attention", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = comparison.attention_records(entries, names, set(), 100, 0, progress=False)
        assert len(fits) == 3 * 4  # each of the 4 attention layers once per measure
        monkeypatch.setattr(comparison, "ATTENTION_FIT_BUDGET_BYTES", 1)  # one layer per tile
        tiled = comparison.attention_records(entries, names, set(), 100, 0, progress=False)
    assert len(records) == 16 + 16 + 10
    per_pair = {"attention_js": attention_js, "attention_pearson": attention_pearson, "attention_cka": attention_cka}
    references = {"attention_js": js_head_similarity_ref, "attention_pearson": pearson_head_similarity_ref}
    for r, t in zip(records, tiled, strict=True):
        assert (r["model_a"], r["layer_a"], r["model_b"], r["layer_b"], r["measure"]) == (
            t["model_a"], t["layer_a"], t["model_b"], t["layer_b"], t["measure"])
        assert r["value"] == pytest.approx(t["value"], abs=1e-12)
        A, B = layers[r["model_a"], r["layer_a"]], layers[r["model_b"], r["layer_b"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert r["value"] == pytest.approx(per_pair[r["measure"]](A, B), abs=1e-12), r
        if r["measure"] == "attention_cka":
            reference = attention_cka_ref(A, B)
        else:
            reference = references[r["measure"]](A, B).max(axis=1).mean()
        # float32 storage: rows sum to 1 only to ~1e-7, and scipy's jensenshannon renormalises them
        assert r["value"] == pytest.approx(reference, abs=1e-6), r
        assert r["n_rows"] == sum(lengths) and r["level"] == "attention" and not r["subsample"]
