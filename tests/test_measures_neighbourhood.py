"""Neighbourhood and RSM measures (issue 18, part 2) against the published code they follow.

- Jaccard k-NN, rank similarity and second-order cosine against ReSi's functions (github.com/mklabunde/resi,
  repsim/measures/nearest_neighbor.py at 24ab9e5), transcribed below with scikit-learn's neighbour search.
- CKNNA, cycle-kNN and mutual k-NN against platonic-rep's metrics.py (github.com/minyoungg/platonic-rep at
  dcd76ba), transcribed below.
- RSA's RDMs and comparisons against rsatoolbox 0.3.2; distance correlation against dcor 0.7.
- Per-representation fits and the engine's SampleFamily against the one-shot functions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.spatial.distance as ssd
import sklearn.metrics
import sklearn.neighbors
import torch

from reprsim.engine import RepresentationSource, SampleFamily, score_pairs
from reprsim.measures import get, linear_cka, mutual_knn, rsa
from reprsim.measures.neighbours import cknna, cycle_knn, jaccard_knn, rank_similarity, second_order_cosine
from reprsim.measures.rsa import distance_correlation
from reprsim.measures.rsm import COMPARISONS, RDM_KINDS, rdm_upper
from reprsim.measures.sample_fit import SAMPLE_FIT_MEASURES, fit_sample, sample_fit_bytes, score_sample

KNN_MEASURES = {"mutual_knn": mutual_knn, "jaccard_knn": jaccard_knn, "rank_similarity": rank_similarity,
                "second_order_cosine": second_order_cosine, "cknna": cknna, "cycle_knn": cycle_knn}


def related_pair(n: int, p: int, q: int, seed: int, noise: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """X with low-rank structure and Y a noisy linear image of it, both shifted: values well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 4))
    X = latent @ rng.standard_normal((4, p)) + 0.5 * rng.standard_normal((n, p)) + 1.5
    Y = latent @ rng.standard_normal((4, q)) + noise * rng.standard_normal((n, q)) - 0.5
    return X, Y


# --- ReSi, transcribed (inner="cosine"; sklearn's k + 1 neighbours less the point itself) -------------------
def resi_top_k(R: np.ndarray, k: int) -> np.ndarray:
    nns = sklearn.neighbors.NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(R)
    return nns.kneighbors(R)[1][:, 1:]


def resi_jaccard(R: np.ndarray, Rp: np.ndarray, k: int) -> float:
    a, b = resi_top_k(R, k), resi_top_k(Rp, k)
    return float(np.mean([len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(a, b, strict=True)]))


def resi_second_order_cosine(R: np.ndarray, Rp: np.ndarray, k: int, similarities: bool = False) -> float:
    """ReSi's code (cosine distances); with `similarities`, Hamilton et al.'s vectors of cosine similarities."""
    a, b = resi_top_k(R, k), resi_top_k(Rp, k)
    union = [list(set(x) | set(y)) for x, y in zip(a, b, strict=True)]
    d, dp = (sklearn.metrics.pairwise_distances(M, metric="cosine") for M in (R, Rp))
    if similarities:
        d, dp = 1.0 - d, 1.0 - dp
    return float(np.mean([1 - ssd.cosine(d[i, u], dp[i, u]) for i, u in enumerate(union)]))


def resi_rank_similarity(R: np.ndarray, Rp: np.ndarray, k: int, top_k=resi_top_k) -> float:
    a, b = top_k(R, k), top_k(Rp, k)
    scores = []
    for i in range(len(a)):
        joint = list(set(a[i]) & set(b[i]))
        if not joint:
            scores.append(0.0)
            continue
        normalisation = sum(1 / m for m in range(1, len(joint) + 1))
        score = 0.0
        for j in joint:
            ra, rb = np.argwhere(a[i] == j)[0][0] + 1, np.argwhere(b[i] == j)[0][0] + 1
            score += 2 / ((1 + abs(ra - rb)) * (ra + rb))
        scores.append(score / normalisation)
    return float(np.mean(scores))


def stable_top_k(R: np.ndarray, k: int) -> np.ndarray:
    """Neighbours by cosine, ties towards the lower index (reprsim's rule), nearest first."""
    Z = R / np.linalg.norm(R, axis=1, keepdims=True)
    # one dot product per pair, so identical rows tie exactly whatever a matrix product's kernel does
    S = np.array([[float(np.dot(u, v)) for v in Z] for u in Z])
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


# --- platonic-rep, transcribed (features clipped exactly and L2-normalised as measure_alignment.py does) ---
def platonic_prepare(X: np.ndarray, q: float | None) -> torch.Tensor:
    feats = torch.tensor(X)
    if q is not None:
        q_val = feats.view(-1).abs().sort().values[int(q * feats.numel())]
        feats = feats.clamp(-q_val, q_val)
    return torch.nn.functional.normalize(feats, p=2, dim=-1)


def platonic_knn(feats: torch.Tensor, topk: int) -> torch.Tensor:
    return (feats @ feats.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :topk]


def platonic_cycle_knn(A: torch.Tensor, B: torch.Tensor, topk: int) -> float:
    knn_A, knn_B = platonic_knn(A, topk), platonic_knn(B, topk)
    n = knn_A.shape[0]
    hits = (knn_A[knn_B] == torch.arange(n).view(-1, 1, 1)).double()  # platonic-rep: .float(); exact here
    return float(hits.view(n, -1).max(dim=1).values.mean())


def platonic_hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    m = K.shape[0]
    K_tilde, L_tilde = K.clone().fill_diagonal_(0), L.clone().fill_diagonal_(0)
    value = (torch.sum(K_tilde * L_tilde.T) + torch.sum(K_tilde) * torch.sum(L_tilde) / ((m - 1) * (m - 2))
             - 2 * torch.sum(torch.mm(K_tilde, L_tilde)) / (m - 2))
    return value / (m * (m - 3))


def platonic_cknna(A: torch.Tensor, B: torch.Tensor, topk: int, epsilon: float = 0.0) -> float:
    """platonic-rep's cknna(unbiased=True); epsilon is its 1e-6 in the denominator (0: reprsim's choice)."""
    n = A.shape[0]
    K, L = A @ A.T, B @ B.T

    def similarity(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        _, top_K = torch.topk(K.clone().fill_diagonal_(float("-inf")), topk, dim=1)
        _, top_L = torch.topk(L.clone().fill_diagonal_(float("-inf")), topk, dim=1)
        mask = (torch.zeros(n, n, dtype=K.dtype).scatter_(1, top_K, 1)
                * torch.zeros(n, n, dtype=K.dtype).scatter_(1, top_L, 1))
        return platonic_hsic_unbiased(mask * K, mask * L)

    return float(similarity(K, L)) / (float(torch.sqrt(similarity(K, K) * similarity(L, L))) + epsilon)


# ------------------------------------------------------------------------------------------------------------
# k-NN measures against ReSi and platonic-rep


@pytest.mark.parametrize(("n", "p", "q", "k"), [(80, 6, 5, 10), (45, 3, 12, 4), (30, 8, 8, 1)])
def test_resi_neighbourhood_measures_match_resi(n, p, q, k):
    X, Y = related_pair(n, p, q, seed=n + k)
    assert jaccard_knn(X, Y, k=k) == pytest.approx(resi_jaccard(X, Y, k), abs=1e-12)
    assert rank_similarity(X, Y, k=k) == pytest.approx(resi_rank_similarity(X, Y, k), abs=1e-12)
    assert second_order_cosine(X, Y, k=k, vectors="distance") == pytest.approx(
        resi_second_order_cosine(X, Y, k), abs=1e-10)
    assert second_order_cosine(X, Y, k=k) == pytest.approx(resi_second_order_cosine(X, Y, k, True), abs=1e-10)


def test_rank_similarity_with_tied_neighbours_ranks_ties_by_row_index():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((12, 4))
    X = base[[*range(12), 0, 1, 2, 3, 4]]  # duplicated rows tie exactly
    Y = rng.standard_normal((17, 3))
    expected = resi_rank_similarity(X, Y, 4, top_k=stable_top_k)
    assert rank_similarity(X, Y, k=4) == pytest.approx(expected, abs=1e-12)


def test_repeated_rows_tie_exactly_and_the_lower_index_ranks_first():
    from reprsim.measures.knn import knn_graph
    rng = np.random.default_rng(4)
    base = rng.standard_normal((300, 97))  # wide and long enough for a blocked, vectorised matrix product
    copies = np.arange(0, 300, 7)
    z = torch.tensor(base[np.r_[np.arange(300), copies]])
    z = z / z.norm(dim=1, keepdim=True)
    graph = knn_graph(z, 40)
    rank = {(int(i), int(j)): int(r) for i, j, r in zip(graph.rows, graph.columns, graph.ranks, strict=True)}
    checked = 0
    for c, original in enumerate(copies):
        duplicate = 300 + c
        for i in range(z.shape[0]):
            if i in (original, duplicate):
                continue
            a, b = rank.get((i, int(original))), rank.get((i, duplicate))
            assert b is None or (a is not None and b == a + 1), (i, original)
            checked += b is not None
    assert checked > 100


@pytest.mark.parametrize(("clip", "k"), [(0.95, 10), (None, 5), (0.9, 2)])
def test_platonic_measures_match_platonic_rep(clip, k):
    X, Y = related_pair(90, 7, 6, seed=11)
    A, B = platonic_prepare(X, clip), platonic_prepare(Y, clip)
    assert cknna(X, Y, k=k, clip_quantile=clip) == pytest.approx(platonic_cknna(A, B, k), rel=1e-10)
    assert cknna(Y, X, k=k, clip_quantile=clip) == pytest.approx(platonic_cknna(B, A, k), rel=1e-10)
    # platonic-rep's own value adds 1e-6 to the denominator; reprsim leaves it out (so X with X gives 1)
    assert cknna(X, Y, k=k, clip_quantile=clip) == pytest.approx(platonic_cknna(A, B, k, 1e-6), rel=1e-4)
    assert cycle_knn(X, Y, k=k, clip_quantile=clip) == pytest.approx(platonic_cycle_knn(A, B, k), abs=1e-12)
    assert cycle_knn(Y, X, k=k, clip_quantile=clip) == pytest.approx(platonic_cycle_knn(B, A, k), abs=1e-12)


def test_cknna_and_cycle_knn_are_directed():
    X, Y = related_pair(90, 7, 6, seed=12)
    assert cknna(X, Y) != pytest.approx(cknna(Y, X), rel=1e-6)
    assert cycle_knn(X, Y) != pytest.approx(cycle_knn(Y, X), abs=1e-9)


@pytest.mark.parametrize("name", ["mutual_knn", "jaccard_knn", "cknna", "rank_similarity", "second_order_cosine"])
@pytest.mark.parametrize("clip", [0.95, None])
def test_a_representation_with_itself_scores_one(name, clip):
    X, _ = related_pair(70, 6, 3, seed=13)
    assert KNN_MEASURES[name](X, X, k=7, clip_quantile=clip) == pytest.approx(1.0, abs=1e-12)


def test_cycle_knn_with_itself_is_the_fraction_of_rows_with_a_reciprocal_neighbour():
    X, _ = related_pair(70, 6, 3, seed=14)
    neighbours = stable_top_k(X, 3)
    reciprocal = np.mean([any(i in neighbours[j] for j in neighbours[i]) for i in range(70)])
    assert cycle_knn(X, X, k=3, clip_quantile=None) == pytest.approx(reciprocal, abs=1e-12)
    assert 0.5 < reciprocal < 1.0  # the identity is not 1 for this measure


@pytest.mark.parametrize("name", list(KNN_MEASURES))
def test_k_at_least_n_is_an_error_naming_k_and_n(name):
    X, Y = related_pair(12, 3, 3, seed=15)
    measure = KNN_MEASURES[name]
    for k in (12, 13):
        with pytest.raises(ValueError, match=rf"{name}: k={k} must be smaller than the number of rows compared "
                                             r"\(n=12\)"):
            measure(X, Y, k=k)
    with pytest.raises(ValueError, match=rf"{name}: k must be"):
        measure(X, Y, k=0)
    with pytest.raises(ValueError, match=rf"{name}: k must be"):
        measure(X, Y, k=True)
    with pytest.raises(ValueError, match=rf"{name}: clip_quantile must be in \(0, 1\]"):
        measure(X, Y, k=3, clip_quantile=1.5)
    with pytest.raises(ValueError, match=rf"{name}: k=12 must be smaller .*\(n=12\)"):
        fit_sample(name, X, k=12)
    # after a subsample, n is the rows compared
    with pytest.warns(UserWarning, match="subsample"), pytest.raises(ValueError, match=r"k=8 .*\(n=8\)"):
        measure(np.vstack([X, X]), np.vstack([Y, Y]), k=8, max_rows=8)


def test_cknna_needs_two_neighbours_and_four_rows():
    X, Y = related_pair(12, 3, 3, seed=16)
    with pytest.raises(ValueError, match="cknna: k must be an integer of at least 2, got 1"):
        cknna(X, Y, k=1)
    with pytest.raises(ValueError, match="at least 4 rows"):
        cknna(X[:3], Y[:3], k=2)


def test_zero_rows_and_constant_representations_are_named():
    X, Y = related_pair(20, 4, 3, seed=17)
    X[5] = 0.0
    with pytest.raises(ValueError, match=r"jaccard_knn: 1 row\(s\) of X are all zeros"):
        jaccard_knn(X, Y, k=3)
    same_way = np.tile([1.0, 2.0, -1.0], (20, 1)) * np.linspace(1, 2, 20)[:, None]
    with pytest.raises(ValueError, match="cknna: every row of Y points the same way"):
        cknna(Y, same_way, k=3, clip_quantile=None)


def test_graph_blocks_do_not_change_the_values(monkeypatch):
    import reprsim.measures.knn as knn_module

    X, Y = related_pair(70, 5, 6, seed=18)
    whole = {name: f(X, Y, k=4) for name, f in KNN_MEASURES.items()}
    monkeypatch.setattr(knn_module, "BLOCK_ROWS", 16)
    assert {name: f(X, Y, k=4) for name, f in KNN_MEASURES.items()} == whole


# ------------------------------------------------------------------------------------------------------------
# RSA variants against rsatoolbox


def rsatoolbox_rdm(X: np.ndarray, kind: str):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import RDMs, calc_rdm

    if kind == "correlation":
        return calc_rdm(Dataset(X), method="correlation")
    if kind == "squared_euclidean":
        return calc_rdm(Dataset(X), method="euclidean")  # squared Euclidean / width: a constant factor
    metric = "cosine" if kind == "cosine" else "euclidean"  # rsatoolbox has neither: give it scipy's pdist
    return RDMs(dissimilarities=ssd.pdist(X, metric=metric)[None, :])


RSATOOLBOX_METHOD = {"pearson": "corr", "spearman": "spearman", "tau_a": "tau-a", "cosine": "cosine",
                     "cosine_cov": "cosine_cov"}


@pytest.mark.parametrize("kind", RDM_KINDS)
def test_rdms_match_rsatoolbox_and_scipy(kind):
    X, _ = related_pair(30, 6, 3, seed=19)
    ours = rdm_upper(torch.tensor(X), kind, "X", None).numpy()
    theirs = rsatoolbox_rdm(X, kind).dissimilarities[0]
    scale = X.shape[1] if kind == "squared_euclidean" else 1.0
    np.testing.assert_allclose(ours, theirs * scale, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", RDM_KINDS)
@pytest.mark.parametrize("compare", COMPARISONS)
def test_rsa_variants_match_rsatoolbox(kind, compare):
    from rsatoolbox.rdm import compare as rsatoolbox_compare

    X, Y = related_pair(36, 7, 5, seed=20)
    expected = float(rsatoolbox_compare(rsatoolbox_rdm(X, kind), rsatoolbox_rdm(Y, kind),
                                        method=RSATOOLBOX_METHOD[compare])[0, 0])
    assert rsa(X, Y, rdm=kind, compare=compare) == pytest.approx(expected, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("compare", ["spearman", "tau_a"])
def test_rank_comparisons_with_ties_match_rsatoolbox(compare):
    from rsatoolbox.rdm import compare as rsatoolbox_compare

    X, Y = related_pair(25, 2, 30, seed=21)  # two neurons: every correlation distance is 0 or 2
    Y = Y[[*range(20), 0, 1, 2, 3, 4]]  # repeated rows: exactly tied dissimilarities
    from rsatoolbox.rdm import RDMs

    # rsatoolbox orders exact ties by rounding noise; reprsim ties them: give rsatoolbox the tied values
    tied = [RDMs(dissimilarities=np.round(rsatoolbox_rdm(M, "correlation").dissimilarities, 10)) for M in (X, Y)]
    assert len(np.unique(tied[0].dissimilarities)) == 2
    expected = float(rsatoolbox_compare(*tied, method=RSATOOLBOX_METHOD[compare])[0, 0])
    assert rsa(X, Y, compare=compare) == pytest.approx(expected, rel=1e-9)


def test_whitened_cosine_of_squared_euclidean_rdms_is_linear_cka():
    X, Y = related_pair(50, 9, 4, seed=22)
    value = rsa(X, Y, rdm="squared_euclidean", compare="cosine_cov")
    assert value == pytest.approx(linear_cka(X, Y), rel=1e-10)


def test_default_rsa_is_unchanged_correlation_distance_with_spearman():
    X, Y = related_pair(40, 6, 5, seed=23)
    assert rsa(X, Y) == rsa(X, Y, rdm="correlation", compare="spearman")
    assert get("rsa(rdm=correlation, compare=spearman)") is get("rsa")


def test_euclidean_rdms_tie_repeated_rows_and_ignore_a_large_shift():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((15, 4))
    X = base[[*range(15), 0, 1, 2]]
    Y = rng.standard_normal((18, 3))
    for kind in ("euclidean", "squared_euclidean"):
        upper = rdm_upper(torch.tensor(X + 1e4), kind, "X", None)
        square = ssd.squareform(upper.numpy())
        assert square[0, 15] == 0.0 and square[1, 16] == 0.0  # exact zeros, not rounding noise
        for compare in ("spearman", "tau_a", "pearson"):
            assert rsa(X + 1e4, Y, rdm=kind, compare=compare) == pytest.approx(
                rsa(X, Y, rdm=kind, compare=compare), rel=1e-9)


def test_bad_rdm_or_comparison_names_the_choices():
    X, Y = related_pair(10, 3, 3, seed=24)
    with pytest.raises(ValueError, match=r"rsa: rdm must be one of correlation, cosine, euclidean, "
                                         r"squared_euclidean, got 'mahalanobis'"):
        rsa(X, Y, rdm="mahalanobis")
    with pytest.raises(ValueError, match=r"rsa: compare must be one of pearson, spearman, tau_a, cosine, "
                                         r"cosine_cov, got 'kendall'"):
        get("rsa(compare=kendall)").function(X, Y)
    Z = X.copy()
    Z[[2, 7]] = 0.0
    with pytest.raises(ValueError, match=r"rsa: 2 row\(s\) of X are all zeros \(rows 2, 7\)"):
        rsa(Z, Y, rdm="cosine")
    with pytest.raises(ValueError, match="every dissimilarity of Y is equal"):
        rsa(X, np.ones((10, 3)), rdm="euclidean", compare="pearson")


# ------------------------------------------------------------------------------------------------------------
# Distance correlation against dcor


@pytest.mark.parametrize(("n", "p", "q"), [(60, 5, 3), (25, 1, 40)])
def test_distance_correlation_matches_dcor(n, p, q):
    dcor = pytest.importorskip("dcor")
    X, Y = related_pair(n, p, q, seed=25)
    assert distance_correlation(X, Y) == pytest.approx(float(dcor.distance_correlation(X, Y)), rel=1e-9)
    assert distance_correlation(X + 1e5, 3.0 * Y) == pytest.approx(distance_correlation(X, Y), rel=1e-9)
    assert distance_correlation(X, X) == pytest.approx(1.0, abs=1e-12)


def test_distance_correlation_of_a_constant_representation_is_an_error():
    X, _ = related_pair(10, 3, 3, seed=26)
    with pytest.raises(ValueError, match="distance_correlation: every row of Y is the same"):
        distance_correlation(X, np.full((10, 2), 4.0))


# ------------------------------------------------------------------------------------------------------------
# Per-representation fits and the engine


SPECS = [
    "mutual_knn", "jaccard_knn(k=4)", "rank_similarity", "second_order_cosine(k=6)",
    "second_order_cosine(vectors=distance)", "cknna(k=5)",
    "cycle_knn(clip_quantile=None)", "distance_correlation", "rsa", "rsa(compare=tau_a, rdm=cosine)",
    "rsa(compare=cosine_cov, rdm=squared_euclidean)", "rsa(compare=pearson, rdm=euclidean)", "rbf_cka",
    "linear_cka", "debiased_cka",
]


@pytest.mark.parametrize("spec", SPECS)
def test_fits_scored_in_pairs_equal_the_one_shot_function(spec):
    info = get(spec)
    X, Y = related_pair(60, 5, 4, seed=27)
    a = fit_sample(info.base, X, **info.options)
    b = fit_sample(info.base, Y, name="Y", **info.options)
    assert score_sample(a, b) == pytest.approx(info.function(X, Y), abs=1e-12)
    assert score_sample(b, a) == pytest.approx(info.function(Y, X), abs=1e-12)
    assert a.nbytes <= sample_fit_bytes(info.base, 60, **({"k": a.k} if a.k else {}), width=X.shape[1])


def test_fits_with_other_options_or_rows_do_not_score_together():
    X, Y = related_pair(30, 4, 4, seed=28)
    with pytest.raises(ValueError, match="fits do not match"):
        score_sample(fit_sample("jaccard_knn", X, k=3), fit_sample("jaccard_knn", Y, k=4))
    with pytest.raises(ValueError, match="fits do not match"):
        score_sample(fit_sample("rsa", X), fit_sample("rsa", Y, compare="pearson"))
    with pytest.raises(ValueError, match="fits do not match"):
        score_sample(fit_sample("cknna", X), fit_sample("cknna", Y[:20]))
    with pytest.raises(ValueError, match=r"rsa: a per-representation fit has no option 'k'; it takes: rdm, compare"):
        fit_sample("rsa", X, k=3)
    with pytest.raises(ValueError, match="second_order_cosine: vectors must be one of similarity, distance"):
        fit_sample("second_order_cosine", X, vectors="distances")
    with pytest.raises(ValueError, match="no per-representation fit for measure 'maxsim'"):
        fit_sample("maxsim", X)
    assert set(KNN_MEASURES) | {"rsa", "distance_correlation", "rbf_cka", "linear_cka", "debiased_cka"} == set(
        SAMPLE_FIT_MEASURES)


def test_graph_fit_and_fit_bytes_refuse_what_second_order_cosine_cannot_use():
    from reprsim.measures.sample_fit import graph_fit

    X, Y = related_pair(30, 4, 4, seed=30)
    shared = fit_sample("jaccard_knn", X).data  # the same k and clipping as second_order_cosine's
    with pytest.raises(ValueError, match="its fit keeps the unit rows; pass the representation"):
        graph_fit("second_order_cosine", shared)
    with pytest.raises(ValueError, match="X has 20 rows, its graph 30"):
        graph_fit("second_order_cosine", shared, X[:20])
    with pytest.raises(ValueError, match=r"give the representation's width \(width=\)"):
        sample_fit_bytes("second_order_cosine", 30)
    reused, own = graph_fit("second_order_cosine", shared, X), fit_sample("second_order_cosine", Y, name="Y")
    assert score_sample(reused, own) == pytest.approx(get("second_order_cosine").function(X, Y), abs=1e-12)


def test_sample_family_fits_each_representation_once_and_equals_the_one_shot_functions():
    rng = np.random.default_rng(29)
    latent = rng.standard_normal((50, 3))
    reps = [latent @ rng.standard_normal((3, w)) + 0.6 * rng.standard_normal((50, w)) for w in (4, 6, 5)]
    sources = [RepresentationSource.from_array(i, r.astype(np.float32)) for i, r in enumerate(reps)]
    pairs = [(a, b) for a in range(3) for b in range(3)]  # both orders: cknna and cycle_knn are directed
    for spec in SPECS:
        name = get(spec).name
        family = SampleFamily(sources, name, np.arange(50), chunk_rows=16)
        values = {(a, b): v[name] for a, b, v in score_pairs(family, pairs, budget=10**9)}
        assert family.fitted == 3, spec
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for a, b in pairs:
                expected = get(name).function(reps[a].astype(np.float32), reps[b].astype(np.float32))
                assert values[a, b] == pytest.approx(expected, abs=1e-9), (spec, a, b)


def test_compare_gives_both_orders_of_a_directed_neighbourhood_measure(tmp_path):
    from reprsim import compare
    from reprsim.store import ActivationStore

    rng = np.random.default_rng(30)
    store = ActivationStore(tmp_path / "acts")
    lengths = [25] * 8
    latent = rng.standard_normal((200, 3))
    rows = {}
    for model in ("m1", "m2"):
        reps = [(latent @ rng.standard_normal((3, w)) + rng.standard_normal((200, w))).astype(np.float32)
                for w in (6, 5)]
        writer = store.writer(model, {"name": model}, [0, 1], [6, 5], lengths, None, "float32")
        writer.write_sentences(0, len(lengths), reps, None)
        writer.finalize()
        rows[model] = reps
    specs = ["cycle_knn(k=5)", "jaccard_knn", "rsa(compare=tau_a, rdm=euclidean)", "distance_correlation"]
    table = compare(store, measures=specs, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for spec in specs:
            function = get(spec).function
            for a, b in ((("m1", 0), ("m2", 1)), (("m2", 1), ("m1", 0))):
                expected = function(rows[a[0]][a[1]], rows[b[0]][b[1]])
                assert table.value(spec, a, b) == pytest.approx(expected, abs=1e-9), (spec, a, b)
    assert table.value("cycle_knn(k=5)", ("m1", 0), ("m2", 1)) != table.value("cycle_knn(k=5)", ("m2", 1), ("m1", 0))
