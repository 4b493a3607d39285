"""CKA (linear, debiased, RBF, minibatch), RSA and mutual k-NN against textbook references written here,
and against published libraries where one implements the same definition."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.spatial.distance as ssd
import scipy.stats
import torch

from reprsim.measures import (
    MinibatchCKA,
    SubsampleWarning,
    debiased_cka,
    linear_cka,
    minibatch_cka,
    mutual_knn,
    rbf_cka,
    rsa,
)

# ------------------------------------------------------------------------------------------------------------
# Data and references


def related_pair(n: int, p: int, q: int, seed: int, noise: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """X with a low-rank structure and Y a noisy linear image of it: similarity well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 4))
    X = latent @ rng.standard_normal((4, p)) + 0.5 * rng.standard_normal((n, p)) + 3.0
    Y = latent @ rng.standard_normal((4, q)) + noise * rng.standard_normal((n, q)) - 1.0
    return X, Y


def hsic_biased_ref(K: np.ndarray, L: np.ndarray) -> float:
    """Gretton et al.: tr(K H L H) / (n - 1)^2 with the explicit centring matrix H."""
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(K @ H @ L @ H)) / (n - 1) ** 2


def cka_ref(K: np.ndarray, L: np.ndarray, hsic=hsic_biased_ref) -> float:
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def hsic_ustat_ref(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. 2012 U-statistic: the mean over distinct ordered (i, j, q, r) of
    K_ij L_ij + K_ij L_qr - 2 K_ij L_iq."""
    idx = np.array(list(itertools.permutations(range(K.shape[0]), 4)))
    i, j, q, r = idx.T
    return float(np.mean(K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2.0 * K[i, j] * L[i, q]))


def hsic_song_closed_ref(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. 2012 eq. (5) with explicit zero-diagonal matrices (the minibatch CKA building block)."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    value = np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    value -= 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return float(value) / (n * (n - 3))


def rbf_gram_ref(X: np.ndarray, t: float) -> np.ndarray:
    """Kornblith et al.'s gram_rbf: bandwidth from the median of all squared distances (diagonal included)."""
    sq = ssd.cdist(X, X, "sqeuclidean")
    return np.exp(-sq / (2.0 * t**2 * np.median(sq)))


def rsa_ref(X: np.ndarray, Y: np.ndarray) -> float:
    """scipy: Spearman of pdist(..., "correlation"); values equal to 12 decimals count as ties (pdist itself
    returns 0, 1e-16 and 2e-16 for mathematically equal dissimilarities)."""
    dx, dy = np.round(ssd.pdist(X, "correlation"), 12), np.round(ssd.pdist(Y, "correlation"), 12)
    return float(scipy.stats.spearmanr(dx, dy).statistic)


def mutual_knn_ref(X: np.ndarray, Y: np.ndarray, k: int, q: float = 0.95) -> float:
    """Brute force: clip at the exact q-quantile of |x|, unit rows, per-row stable ranking, set overlap."""

    def neighbours(A: np.ndarray) -> list[set[int]]:
        v = np.sort(np.abs(A).ravel())[int(q * A.size)]
        Z = np.clip(A, -v, v)
        Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        out = []
        for i in range(len(Z)):
            others = [j for j in range(len(Z)) if j != i]
            sims = np.array([Z[i] @ Z[j] for j in others])
            order = np.argsort(-sims, kind="stable")[:k]
            out.append({others[o] for o in order})
        return out

    nx, ny = neighbours(X), neighbours(Y)
    return float(np.mean([len(a & b) / k for a, b in zip(nx, ny, strict=True)]))


# ------------------------------------------------------------------------------------------------------------
# Linear CKA


@pytest.mark.parametrize(("n", "p", "q"), [(60, 5, 7), (12, 30, 9)])
def test_linear_cka_matches_h_matrix_trace_formula(n, p, q):
    X, Y = related_pair(n, p, q, seed=1)
    expected = cka_ref(X @ X.T, Y @ Y.T)
    assert linear_cka(X, Y) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("n", "p", "q"), [(60, 5, 7), (12, 30, 9), (20, 20, 20)])
def test_linear_cka_feature_and_gram_space_agree(n, p, q):
    X, Y = related_pair(n, p, q, seed=2)
    feature = linear_cka(X, Y, space="feature")
    gram = linear_cka(X, Y, space="gram")
    assert feature == pytest.approx(gram, rel=1e-10)
    assert linear_cka(X, Y) == pytest.approx(feature, rel=1e-12)


def test_linear_cka_unrelated_is_small_and_bounded():
    rng = np.random.default_rng(3)
    value = linear_cka(rng.standard_normal((5000, 4)), rng.standard_normal((5000, 4)))
    assert 0.0 <= value < 0.01


# ------------------------------------------------------------------------------------------------------------
# Debiased CKA


def test_debiased_cka_matches_explicit_u_statistic():
    X, Y = related_pair(8, 3, 4, seed=4)  # 1680 ordered 4-tuples: the literal U-statistic is cheap
    expected = cka_ref(X @ X.T, Y @ Y.T, hsic=hsic_ustat_ref)
    assert debiased_cka(X, Y) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("n", "p", "q"), [(40, 5, 7), (9, 20, 12), (16, 16, 3)])
def test_debiased_cka_feature_and_gram_space_agree(n, p, q):
    X, Y = related_pair(n, p, q, seed=5)
    assert debiased_cka(X, Y, space="feature") == pytest.approx(debiased_cka(X, Y, space="gram"), rel=1e-9)
    expected = cka_ref(X @ X.T, Y @ Y.T, hsic=hsic_song_closed_ref)
    assert debiased_cka(X, Y) == pytest.approx(expected, rel=1e-9)


def test_debiased_cka_removes_bias_of_linear_cka_for_wide_unrelated_data():
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((50, 400)), rng.standard_normal((50, 400))
    assert linear_cka(X, Y) > 0.5  # the biased estimator's well-known inflation
    assert abs(debiased_cka(X, Y)) < 0.1


@pytest.mark.parametrize("n", [2, 3])
def test_debiased_cka_needs_four_rows(n):
    X, Y = related_pair(n, 3, 3, seed=7)
    with pytest.raises(ValueError, match="at least 4 rows"):
        debiased_cka(X, Y)


# ------------------------------------------------------------------------------------------------------------
# Minibatch CKA (Nguyen et al. 2021)


def minibatch_cka_ref(X: np.ndarray, Y: np.ndarray, batches: list[slice]) -> float:
    """Plain loop: sum per-batch unbiased HSIC_1 of linear Grams, ratio at the end."""
    xy = xx = yy = 0.0
    for b in batches:
        K, L = X[b] @ X[b].T, Y[b] @ Y[b].T
        xy += hsic_song_closed_ref(K, L)
        xx += hsic_song_closed_ref(K, K)
        yy += hsic_song_closed_ref(L, L)
    return xy / np.sqrt(xx * yy)


def test_minibatch_cka_matches_plain_loop_in_stored_order():
    X, Y = related_pair(120, 6, 9, seed=8)
    batches = [slice(s, s + 30) for s in range(0, 120, 30)]
    expected = minibatch_cka_ref(X, Y, batches)
    assert minibatch_cka(X, Y, batch_size=30, seed=None) == pytest.approx(expected, rel=1e-9)


def test_minibatch_cka_short_tail_joins_previous_batch():
    X, Y = related_pair(62, 4, 5, seed=9)  # batches 20, 20, 22 (a 2-row tail is too short for HSIC_1)
    expected = minibatch_cka_ref(X, Y, [slice(0, 20), slice(20, 40), slice(40, 62)])
    assert minibatch_cka(X, Y, batch_size=20, seed=None) == pytest.approx(expected, rel=1e-9)


def test_minibatch_accumulator_matches_loop_for_uneven_batches_and_wide_batches():
    X, Y = related_pair(50, 12, 3, seed=10)
    cuts = [0, 5, 17, 30, 50]  # batches of 5 rows are narrower than p=12: the Gram path is used there
    batches = [slice(a, b) for a, b in itertools.pairwise(cuts)]
    acc = MinibatchCKA()
    for b in batches:
        acc.update(torch.from_numpy(X[b]), Y[b])
    assert acc.n_batches == 4 and acc.n_rows == 50
    assert acc.result() == pytest.approx(minibatch_cka_ref(X, Y, batches), rel=1e-9)


def test_minibatch_cka_one_batch_is_debiased_cka_and_shuffled_batches_estimate_it():
    X, Y = related_pair(400, 6, 8, seed=11)
    assert minibatch_cka(X, Y, batch_size=400, seed=None) == pytest.approx(debiased_cka(X, Y), rel=1e-9)
    shuffled = minibatch_cka(X, Y, batch_size=100, seed=3)
    assert shuffled == minibatch_cka(X, Y, batch_size=100, seed=3)  # seeded: reproducible
    assert abs(shuffled - debiased_cka(X, Y)) < 0.05


def test_minibatch_cka_agrees_with_pytorch_cka_hsic():
    """pytorch-cka (PyPI `pytorch-cka`, module `cka`) accumulates the same unbiased HSIC over batches."""
    from cka.hsic import hsic as pytorch_cka_hsic

    X, Y = related_pair(96, 5, 7, seed=12)
    xy = xx = yy = 0.0
    for s in range(0, 96, 32):
        xb, yb = torch.from_numpy(X[s:s + 32]), torch.from_numpy(Y[s:s + 32])
        h_xy, h_xx, h_yy = pytorch_cka_hsic((xb @ xb.T)[None], (yb @ yb.T)[None])
        xy, xx, yy = xy + float(h_xy), xx + float(h_xx), yy + float(h_yy)
    assert minibatch_cka(X, Y, batch_size=32, seed=None) == pytest.approx(xy / np.sqrt(xx * yy), rel=1e-6)


def test_minibatch_errors_name_the_problem():
    X, Y = related_pair(20, 3, 3, seed=13)
    acc = MinibatchCKA()
    with pytest.raises(ValueError, match="at least 4 rows per minibatch"):
        acc.update(X[:3], Y[:3])
    with pytest.raises(ValueError, match="no minibatch"):
        acc.result()
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_cka(X, Y, batch_size=3)
    with pytest.raises(ValueError, match="same number of rows"):
        acc.update(X[:8], Y[:9])


# ------------------------------------------------------------------------------------------------------------
# RBF CKA


@pytest.mark.parametrize("t", [0.2, 0.4, 0.8])
@pytest.mark.parametrize("n", [31, 40])  # odd and even counts of squared distances for the median
def test_rbf_cka_matches_plain_numpy_gram(t, n):
    X, Y = related_pair(n, 5, 6, seed=14)
    expected = cka_ref(rbf_gram_ref(X, t), rbf_gram_ref(Y, t))
    assert rbf_cka(X, Y, t=t) == pytest.approx(expected, rel=1e-9)


def test_linear_and_debiased_cka_agree_with_repsim():
    """repsim 0.1.5: cka(linear, gretton) is linear CKA; its unbiased HSIC matrix (estimator "song") gives
    debiased CKA as hsic_xy / sqrt(hsic_xx hsic_yy). (repsim's own cka(..., "song") normalises differently
    and does not equal that ratio of its own HSIC values, so it is not compared.)"""
    import repsim

    X, Y = related_pair(40, 6, 9, seed=33)
    assert linear_cka(X, Y) == pytest.approx(float(repsim.cka([X, Y], "linear", "gretton")[0, 1]), rel=1e-6)
    H = repsim.hsic([X, Y], "linear", "song")
    assert debiased_cka(X, Y) == pytest.approx(H[0, 1] / np.sqrt(H[0, 0] * H[1, 1]), rel=1e-6)


def test_rbf_cka_agrees_with_repsim_at_equivalent_bandwidth():
    """repsim's "rbf" kernel (estimator "gretton") takes sigma = median of the off-diagonal distances, i.e.
    t = 1 with the diagonal zeros left out of the median. Ours includes them (as Kornblith et al.'s code), so
    the same kernel is t = sqrt(sigma^2 / median of all squared distances). Y is a partial row shuffle of a
    rotation of X: the same multiset of distances, hence the same equivalent t on both sides.
    """
    import repsim

    rng = np.random.default_rng(15)
    X, _ = related_pair(50, 5, 4, seed=15)  # 1225 off-diagonal pairs: an odd count, one middle value
    rotation, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    order = np.arange(50)
    order[:15] = rng.permutation(15)
    Y = X[order] @ rotation
    t = float(np.sqrt(np.median(ssd.pdist(X)) ** 2 / np.median(ssd.cdist(X, X, "sqeuclidean"))))
    expected = float(repsim.cka([X, Y], "rbf", "gretton")[0, 1])
    assert 0.3 < expected < 0.95
    assert rbf_cka(X, Y, t=t) == pytest.approx(expected, rel=1e-6)


def test_rbf_cka_subsamples_with_a_warning_and_the_same_rows_for_x_and_y():
    X, Y = related_pair(300, 4, 5, seed=16)
    with pytest.warns(SubsampleWarning, match="100 rows"):
        value = rbf_cka(X, Y, max_rows=100, seed=5)
    rows = np.sort(np.random.default_rng(5).choice(300, size=100, replace=False))
    assert value == pytest.approx(rbf_cka(X[rows], Y[rows], max_rows=None), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when every row is used
        rbf_cka(X, Y, max_rows=300)


def test_rbf_cka_errors():
    X, Y = related_pair(20, 3, 3, seed=17)
    with pytest.raises(ValueError, match="t must be a positive"):
        rbf_cka(X, Y, t=0.0)
    dup = X[[0] * 15 + [1, 2, 3, 4, 5]]  # 225 of 400 squared distances are 0: so is their median
    with pytest.raises(ValueError, match="median squared distance"):
        rbf_cka(dup, Y)
    with pytest.raises(ValueError, match="max_rows"):
        rbf_cka(X, Y, max_rows=1)


# ------------------------------------------------------------------------------------------------------------
# RSA


@pytest.mark.parametrize(("n", "p", "q"), [(40, 6, 3), (25, 2, 30)])
def test_rsa_matches_scipy_spearman_of_pdist_correlation(n, p, q):
    X, Y = related_pair(n, p, q, seed=18)  # p = 2: every dissimilarity is 0 or 2, all ties
    assert rsa(X, Y) == pytest.approx(rsa_ref(X, Y), rel=1e-9)


def test_rsa_ties_get_average_ranks_like_scipy():
    rng = np.random.default_rng(19)
    base = rng.standard_normal((6, 5))
    X = base[[0, 1, 2, 3, 4, 5, 0, 1, 2]]  # repeated rows: exactly tied dissimilarities
    Y = rng.standard_normal((9, 4))
    assert rsa(X, Y) == pytest.approx(rsa_ref(X, Y), rel=1e-9)


def _rank_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(22)
    close = np.linspace(1.0, 1.0 + 1e-12, 5000)  # values sharing their leading bits: the re-sorted runs
    return [
        rng.random(1000),
        np.round(rng.standard_normal(5000), 1),  # many exact ties, both signs
        np.r_[np.zeros(7), -np.zeros(5), -rng.random(30), rng.random(30), [1e300, -1e300, 5e-324, -5e-324]],
        np.r_[close, close[::-1]],  # ties inside runs of shared leading bits
        np.array([3.0]),
        np.array([2.0, 2.0]),
        np.array([]),
    ]


@pytest.mark.parametrize("case", range(7))
def test_average_ranks_equal_scipy_rankdata(case):
    from reprsim.measures.rsm import average_ranks

    v = _rank_cases()[case]
    np.testing.assert_array_equal(average_ranks(torch.from_numpy(v)).numpy(), scipy.stats.rankdata(v))


def test_rsa_agrees_with_rsatoolbox():
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    X, Y = related_pair(45, 7, 5, seed=20)
    rdm_x = calc_rdm(Dataset(X), method="correlation")
    rdm_y = calc_rdm(Dataset(Y), method="correlation")
    expected = float(compare(rdm_x, rdm_y, method="spearman")[0, 0])
    assert rsa(X, Y) == pytest.approx(expected, rel=1e-6)


def test_rsa_constant_rows_raise_naming_original_rows():
    X, Y = related_pair(30, 5, 4, seed=21)
    X[[4, 17]] = 2.5  # every neuron equal in these rows: no Pearson correlation
    with pytest.raises(ValueError, match=r"2 row\(s\) of X have zero variance.*rows 4, 17"):
        rsa(X, Y)
    Y[3] = 0.0
    with pytest.raises(ValueError, match=r"row\(s\) of Y.*rows 3\b"):
        rsa(X[[0, 1, 2, 3, 5, 6]], Y[[0, 1, 2, 3, 5, 6]])
    with pytest.raises(ValueError, match="at least 3 rows"):
        rsa(X[:2], Y[:2])


def test_rsa_subsample_matches_explicit_rows():
    X, Y = related_pair(200, 5, 6, seed=22)
    with pytest.warns(SubsampleWarning):
        value = rsa(X, Y, max_rows=60, seed=1)
    rows = np.sort(np.random.default_rng(1).choice(200, size=60, replace=False))
    assert value == pytest.approx(rsa_ref(X[rows], Y[rows]), rel=1e-9)


# ------------------------------------------------------------------------------------------------------------
# Mutual k-NN


@pytest.mark.parametrize("k", [1, 5, 10])
def test_mutual_knn_matches_brute_force_loop(k):
    X, Y = related_pair(50, 6, 8, seed=23, noise=1.5)
    expected = mutual_knn_ref(X, Y, k)
    assert 0.0 < expected < 1.0
    assert mutual_knn(X, Y, k=k) == pytest.approx(expected, abs=1e-12)


def test_mutual_knn_ties_resolve_to_lower_index_like_a_stable_sort():
    rng = np.random.default_rng(24)
    base = rng.standard_normal((10, 4))
    X = base[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3]]  # duplicated rows tie exactly
    Y = rng.standard_normal((14, 3))
    assert mutual_knn(X, Y, k=3) == pytest.approx(mutual_knn_ref(X, Y, 3), abs=1e-12)


def test_mutual_knn_blocks_do_not_change_the_result(monkeypatch):
    import reprsim.measures.knn as knn_module

    X, Y = related_pair(70, 5, 5, seed=25, noise=1.5)
    whole = mutual_knn(X, Y, k=4)
    monkeypatch.setattr(knn_module, "BLOCK_ROWS", 16)
    assert mutual_knn(X, Y, k=4) == whole


def test_mutual_knn_errors():
    X, Y = related_pair(10, 3, 3, seed=26)
    with pytest.raises(ValueError, match=r"k=10 must be smaller than the number of rows compared \(n=10\)"):
        mutual_knn(X, Y, k=10)
    with pytest.raises(ValueError, match="positive integer"):
        mutual_knn(X, Y, k=0)
    Z = X.copy()
    Z[2] = 0.0
    with pytest.raises(ValueError, match="all zeros"):
        mutual_knn(Z, Y, k=3)
    # A constant representation (or rows that are all positive multiples of one): every row equally near
    # every other; before, the tie-break's choice came back as a score (1.0 for two constant inputs).
    constant = np.tile(np.array([0.3, -1.2, 2.0]), (10, 1))
    scaled = constant * np.linspace(0.5, 3.0, 10)[:, None]  # clipping would bend the larger rows
    for same_direction, clip in ((constant, 0.95), (scaled, None)):
        with pytest.raises(ValueError, match="every row of Y points the same way"):
            mutual_knn(X, same_direction, k=3, clip_quantile=clip)
        with pytest.raises(ValueError, match="every row of X points the same way"):
            mutual_knn(same_direction, same_direction, k=3, clip_quantile=clip)
    mutual_knn(X, np.vstack([constant[:9], [0.35, -1.2, 2.0]]), k=3)  # one row apart: defined


# ------------------------------------------------------------------------------------------------------------
# Properties shared by all of these measures

ALL = [
    pytest.param(linear_cka, id="linear_cka"),
    pytest.param(debiased_cka, id="debiased_cka"),
    pytest.param(rbf_cka, id="rbf_cka"),
    pytest.param(lambda X, Y: minibatch_cka(X, Y, batch_size=20), id="minibatch_cka"),
    pytest.param(rsa, id="rsa"),
    pytest.param(lambda X, Y: mutual_knn(X, Y, k=5), id="mutual_knn"),
]


@pytest.mark.parametrize("measure", ALL)
def test_identity_is_one(measure):
    X, _ = related_pair(60, 7, 3, seed=27)
    assert measure(X, X) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("measure", ALL)
def test_neuron_permutation_invariance(measure):
    X, Y = related_pair(60, 7, 5, seed=28)
    rng = np.random.default_rng(0)
    base = measure(X, Y)
    assert measure(X[:, rng.permutation(7)], Y[:, rng.permutation(5)]) == pytest.approx(base, rel=1e-9)


@pytest.mark.parametrize("measure", ALL)
def test_torch_input_equals_numpy_input(measure):
    X, Y = related_pair(60, 7, 5, seed=29)
    assert measure(torch.from_numpy(X), torch.from_numpy(Y)) == pytest.approx(measure(X, Y), rel=1e-12)
    assert measure(torch.from_numpy(X).float(), Y.astype(np.float32)) == pytest.approx(
        measure(X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)), rel=1e-12
    )


@pytest.mark.parametrize("measure", ALL)
def test_float16_inputs_do_not_overflow(measure):
    # squares of 250 summed over 60 rows or 40 neurons exceed float16's max (65504): float64 must be used
    X, Y = related_pair(60, 40, 30, seed=30)
    X16, Y16 = (X * 60).astype(np.float16), (Y * 60).astype(np.float16)
    assert float(np.abs(X16).max()) > 250
    value = measure(X16, torch.from_numpy(Y16))
    assert np.isfinite(value)
    assert value == pytest.approx(measure(X16.astype(np.float64), Y16.astype(np.float64)), rel=1e-12)


@pytest.mark.parametrize("measure", ALL)
def test_bad_inputs_name_the_problem(measure):
    X, Y = related_pair(30, 4, 4, seed=31)
    with pytest.raises(ValueError, match="same number of rows"):
        measure(X, Y[:-1])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or Inf.*row 3"):
        measure(bad, Y)
    with pytest.raises(ValueError, match="2-D"):
        measure(X[:, 0], Y)


@pytest.mark.parametrize(
    "measure",
    [linear_cka, debiased_cka, rbf_cka, lambda X, Y: minibatch_cka(X, Y, batch_size=10)],
    ids=["linear_cka", "debiased_cka", "rbf_cka", "minibatch_cka"],
)
def test_cka_constant_input_raises(measure):
    X, _ = related_pair(30, 4, 4, seed=32)
    with pytest.raises(ValueError, match="Y"):
        measure(X, np.full((30, 4), 7.0))
