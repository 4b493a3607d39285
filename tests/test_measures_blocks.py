"""The block-derived measures: shape metrics, Bures, GULP, linear predictivity, neuron matching, ENSD, the
eigenspace overlap, lange CKA and ReSi's statistics.

Checked against published code (netrep's LinearMetric, GULP's predictor_dist as ReSi copies it, ReSi's
statistics, the ENSD tutorial: transcribed here), against POT, scipy and sklearn, against exact identities, and
the engine (StreamingSimilarity, all_pairs, FoldMoments) against the one-shot functions to 1e-8.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

import reprsim.measures as M
from reprsim.engine import RepresentationSource, StreamingSimilarity, all_pairs
from reprsim.engine.folds import FoldMoments
from reprsim.engine.linear_fit import LinearFit
from reprsim.engine.moments import CrossMoments
from reprsim.measures import registry
from reprsim.measures.matching import _transport_cost_highs, hard_matching, soft_matching_distance, transport_cost
from reprsim.measures.predictivity import PredictivityScore, linear_predictivity, row_folds
from reprsim.measures.shape import ShapeKind, bures_distance, shape_metric
from reprsim.measures.spectral import eigenspace_overlap, ensd, gulp, lange_cka, participation_ratio
from reprsim.measures.statistics import concentricity_difference, magnitude_difference, uniformity_difference

ENGINE_RTOL = 1e-8
# Every streamable new measure, with options where it has them.
STREAMED = (
    "shape_metric", "shape_metric(alpha=0.4)", "shape_metric(alpha=0)", "shape_metric(kind=euclidean)",
    "shape_metric(alpha=0.7, kind=euclidean)", "bures_distance", "gulp", "gulp(lam=0.05)", "hard_matching",
    "soft_matching_distance", "ensd", "eigenspace_overlap", "lange_cka", "magnitude_difference",
)


def related(n: int = 300, p: int = 7, q: int = 5, seed: int = 0, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    x = latent @ rng.standard_normal((3, p)) + rng.standard_normal((n, p)) * rng.uniform(0.3, 2.0, p)
    y = latent @ rng.standard_normal((3, q)) + 0.6 * rng.standard_normal((n, q))
    return x + rng.normal(0.0, 2.0, p) + offset, y + rng.normal(0.0, 2.0, q) + offset


def quiet(name: str, x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(registry.get(name).function(x, y))


# --- transcriptions of the published code ------------------------------------------------------------------
def netrep_linear_metric(X: np.ndarray, Y: np.ndarray, alpha: float, score_method: str) -> float:
    """netrep.metrics.LinearMetric(alpha, center_columns=True, zero_pad=True).fit_score (netrep/utils.whiten)."""
    width = max(X.shape[1], Y.shape[1])
    X, Y = np.pad(X, ((0, 0), (0, width - X.shape[1]))), np.pad(Y, ((0, 0), (0, width - Y.shape[1])))

    def whiten(Z: np.ndarray) -> np.ndarray:
        Z = Z - Z.mean(axis=0)
        if alpha > 1 - 1e-7:
            return Z
        lam, V = np.linalg.eigh(Z.T @ Z)
        lam = np.maximum(lam, 1e-7)
        d = alpha + (1 - alpha) * lam ** (-1 / 2)
        new_var = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
        d *= np.sqrt(np.sum(lam) / new_var)
        return Z @ ((V * d[None, :]) @ V.T)

    Xw, Yw = whiten(X), whiten(Y)
    U, _, Vt = np.linalg.svd(Xw.T @ Yw)
    tX, tY = Xw @ U, Yw @ Vt.T
    if score_method == "angular":
        corr = np.dot(tX.ravel(), tY.ravel()) / (np.linalg.norm(tX) * np.linalg.norm(tY))
        return float(np.arccos(np.clip(corr, -1.0, 1.0)))
    return float(np.linalg.norm(tX - tY))


def gulp_predictor_dist(R: np.ndarray, Rp: np.ndarray, lmbda: float) -> float:
    """ReSi's gulp(): its normalisation, then GULP's distance_functions.predictor_dist."""
    n = R.shape[0]
    A, B = (R - R.mean(axis=0)).T, (Rp - Rp.mean(axis=0)).T
    A, B = math.sqrt(n) * A / np.linalg.norm(A), math.sqrt(n) * B / np.linalg.norm(B)
    evals_a, evecs_a = np.linalg.eigh(A @ A.T)
    evals_b, evecs_b = np.linalg.eigh(B @ B.T)
    evals_a = (evals_a + np.abs(evals_a)) / (2 * n)
    evals_b = (evals_b + np.abs(evals_b)) / (2 * n)
    inv_a = np.array([1 / (x + lmbda) if x > 0 else 1 / lmbda for x in evals_a])
    inv_b = np.array([1 / (x + lmbda) if x > 0 else 1 / lmbda for x in evals_b])
    T1, T2 = np.sum(np.square(evals_a * inv_a)), np.sum(np.square(evals_b * inv_b))
    cov_ab = A @ B.T / n
    T3 = np.trace((np.diag(np.sqrt(inv_a)) @ evecs_a.T) @ cov_ab @ (evecs_b @ np.diag(inv_b) @ evecs_b.T)
                  @ cov_ab.T @ (evecs_a @ np.diag(np.sqrt(inv_a))))
    return float(T1 + T2 - 2 * T3)


def ensd_tutorial(X: np.ndarray, Y: np.ndarray) -> tuple[float, float, float]:
    """camillerb/ENSD's ENSD and PR on centred, transposed data (as similarity-repository registers them)."""
    X, Y = (X - X.mean(axis=0)).T, (Y - Y.mean(axis=0)).T

    def pr(Z: np.ndarray) -> float:
        return float(np.trace(Z.T @ Z) ** 2 / np.trace(Z.T @ Z @ Z.T @ Z))

    tr = np.trace(((X.T @ X) / np.trace(X.T @ X)) @ ((Y.T @ Y) / np.trace(Y.T @ Y)))
    return float(pr(X) * pr(Y) * tr), pr(X), pr(Y)


def resi_eigenspace_overlap(R: np.ndarray, Rp: np.ndarray) -> float:
    u, v = np.linalg.svd(R)[0], np.linalg.svd(Rp)[0]
    u, v = u[:, : np.linalg.matrix_rank(R)], v[:, : np.linalg.matrix_rank(Rp)]
    return float(np.linalg.norm(u.T @ v, ord="fro") ** 2 / max(R.shape[1], Rp.shape[1]))


# --- cross-library checks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("kind", ["angular", "euclidean"])
def test_shape_metric_equals_netreps_linear_metric(alpha: float, kind: ShapeKind) -> None:
    x, y = related(p=6, q=6)
    assert shape_metric(x, y, alpha=alpha, kind=kind) == pytest.approx(
        netrep_linear_metric(x, y, alpha, kind), rel=1e-9)
    # Unequal widths: netrep zero-pads; its padded eigenvalues are clipped to 1e-7 instead of 0, which moves the
    # euclidean form's variance-preserving scale by about 2 alpha (1 - alpha) sqrt(1e-7) per padded direction.
    x, y = related(p=7, q=4)
    tolerance = 1e-9 if kind == "angular" or alpha in (0.0, 1.0) else 1e-3
    assert shape_metric(x, y, alpha=alpha, kind=kind) == pytest.approx(
        netrep_linear_metric(x, y, alpha, kind), rel=tolerance)


@pytest.mark.parametrize("lam", [1e-3, 0.1, 2.0])
def test_gulp_equals_gulps_predictor_dist(lam: float) -> None:
    x, y = related(p=6, q=4)
    assert gulp(x, y, lam=lam) == pytest.approx(gulp_predictor_dist(x, y, lam), rel=1e-9, abs=1e-12)


def test_gulp_at_lambda_zero_is_the_least_squares_limit_of_predictor_dist() -> None:
    x, y = related(p=6, q=4)
    assert gulp(x, y) == pytest.approx(gulp_predictor_dist(x, y, 1e-12), rel=1e-6)


def test_ensd_and_participation_ratio_equal_the_ensd_tutorial() -> None:
    x, y = related()
    expected, pr_x, pr_y = ensd_tutorial(x, y)
    assert ensd(x, y) == pytest.approx(expected, rel=1e-10)
    assert participation_ratio(x) == pytest.approx(pr_x, rel=1e-10)
    assert participation_ratio(y) == pytest.approx(pr_y, rel=1e-10)
    assert participation_ratio(x[:5]) == pytest.approx(ensd_tutorial(x[:5], y[:5])[1], rel=1e-10)  # p > n


def test_eigenspace_overlap_equals_resi_and_is_uncentred() -> None:
    x, y = related(n=60, p=5, q=3)
    assert eigenspace_overlap(x, y) == pytest.approx(resi_eigenspace_overlap(x, y), rel=1e-10)
    low_rank = np.column_stack([x[:, :2], x[:, :2] @ np.array([[1.0], [2.0]])])
    assert eigenspace_overlap(low_rank, x) == pytest.approx(resi_eigenspace_overlap(low_rank, x), rel=1e-10)
    assert eigenspace_overlap(x, x + 3.0) != pytest.approx(1.0, abs=1e-6)  # shifts change the column space


def test_lange_cka_is_the_cosine_of_centred_zero_diagonal_grams() -> None:
    x, y = related(n=80)
    h = np.eye(80) - 1.0 / 80
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    assert lange_cka(x, y) == pytest.approx(np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_)), rel=1e-10)


def test_lange_cka_equals_repsims_lange_hsic_ratio() -> None:
    """repsim 0.1.5's HSIC estimator "lange" (its cka() normalises differently, as for "song")."""
    repsim = pytest.importorskip("repsim")
    x, y = related(n=40, p=6, q=5, seed=5)
    h = repsim.hsic([x, y], "linear", "lange")
    assert lange_cka(x, y) == pytest.approx(h[0, 1] / np.sqrt(h[0, 0] * h[1, 1]), rel=1e-9)


def test_resi_statistics_equal_resis_code() -> None:
    from sklearn.metrics import pairwise_distances

    x, y = related(n=120, offset=0.5)
    resi_magnitude = abs(np.linalg.norm(x.mean(axis=0)) - np.linalg.norm(y.mean(axis=0)))

    def concentricity(z: np.ndarray) -> np.ndarray:
        return 1 - pairwise_distances(z, z.mean(axis=0, keepdims=True), metric="cosine")

    def uniformity(z: np.ndarray) -> float:
        return float(np.log(np.exp(-2 * pairwise_distances(z, metric="sqeuclidean")).sum() / z.shape[0] ** 2))

    small_x, small_y = x / 4.0, y / 4.0  # a scale at which ReSi's exp does not underflow
    assert magnitude_difference(x, y) == pytest.approx(resi_magnitude, rel=1e-12)
    assert concentricity_difference(x, y) == pytest.approx(
        abs(concentricity(x).mean() - concentricity(y).mean()), rel=1e-10)
    assert uniformity_difference(small_x, small_y) == pytest.approx(
        abs(uniformity(small_x) - uniformity(small_y)), rel=1e-8)


def test_hard_matching_equals_brute_force_over_assignments() -> None:
    for p, q, seed in ((4, 4, 0), (3, 5, 1), (5, 3, 2), (6, 6, 3)):
        x, y = related(n=50, p=p, q=q, seed=seed)
        corr = np.abs(np.corrcoef(x.T, y.T)[:p, p:])
        small, large = min(p, q), max(p, q)
        best = max(
            np.mean([corr[i, j] if p <= q else corr[j, i] for i, j in zip(range(small), chosen, strict=True)])
            for chosen in itertools.permutations(range(large), small)
        )
        assert hard_matching(x, y) == pytest.approx(best, rel=1e-12)


def test_soft_matching_equals_pot_and_highs_and_a_permutation_for_equal_widths() -> None:
    ot = pytest.importorskip("ot")
    for p, q, seed in ((6, 4, 0), (5, 5, 1), (3, 7, 2)):
        x, y = related(n=60, p=p, q=q, seed=seed)
        corr = np.corrcoef(x.T, y.T)[:p, p:]
        cost = 2.0 - 2.0 * corr
        expected = math.sqrt(ot.emd2(np.full(p, 1 / p), np.full(q, 1 / q), cost))
        assert soft_matching_distance(x, y) == pytest.approx(expected, rel=1e-10)
        assert _transport_cost_highs(cost, np.full(p, 1 / p), np.full(q, 1 / q)) == pytest.approx(
            transport_cost(cost), rel=1e-8, abs=1e-12)
        if p == q:  # Birkhoff: the optimal plan is a permutation
            best = min(np.mean(cost[np.arange(p), list(perm)]) for perm in itertools.permutations(range(p)))
            assert soft_matching_distance(x, y) == pytest.approx(math.sqrt(best), rel=1e-10)


@pytest.mark.parametrize("lam", [0.0, 1.0, 25.0])
@pytest.mark.parametrize("score", ["pearson", "r2"])
def test_linear_predictivity_equals_sklearn_fold_by_fold(lam: float, score: PredictivityScore) -> None:
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    x, y = related(n=240, p=5, q=6)
    cuts = np.sort(np.random.default_rng(4).choice(np.arange(1, 240), size=59, replace=False))
    lengths = np.diff(np.concatenate([[0], cuts, [240]]))  # 60 sentences of uneven lengths
    sentence_of_row = np.repeat(np.arange(lengths.size), lengths)
    scores = []
    for train_sentences, test_sentences in KFold(5).split(np.arange(lengths.size)):
        train, test = np.isin(sentence_of_row, train_sentences), np.isin(sentence_of_row, test_sentences)
        model = LinearRegression() if lam == 0.0 else Ridge(alpha=lam)
        predicted = model.fit(y[train], x[train]).predict(y[test])
        if score == "r2":
            scores.append(r2_score(x[test], predicted))
        else:
            scores.append(np.mean([np.corrcoef(predicted[:, j], x[test][:, j])[0, 1] for j in range(x.shape[1])]))
    got = linear_predictivity(x, y, lam=lam, score=score, folds=5, sentence_lengths=lengths)
    assert got == pytest.approx(np.mean(scores), rel=1e-8)
    groups = np.array([f"s{i}" for i in sentence_of_row])
    assert linear_predictivity(x, y, lam=lam, score=score, groups=groups) == pytest.approx(got, rel=1e-12)


# --- exact identities -----------------------------------------------------------------------------------
def test_gulp_at_lambda_zero_is_ranks_minus_twice_the_squared_canonical_correlations() -> None:
    x, y = related(p=7, q=4)
    rho = M.canonical_correlations(x, y)
    assert gulp(x, y) == pytest.approx(7 + 4 - 2 * np.sum(rho**2), rel=1e-12)
    duplicated = np.column_stack([x, x[:, :2] * 3.0])  # rank 7 of 9 neurons: k is the rank
    assert gulp(duplicated, y) == pytest.approx(7 + 4 - 2 * np.sum(rho**2), rel=1e-9)
    assert gulp(x, x) == pytest.approx(0.0, abs=1e-9)


def test_ensd_is_cka_times_the_root_of_the_participation_ratios() -> None:
    x, y = related()
    assert ensd(x, y) == pytest.approx(M.linear_cka(x, y) * math.sqrt(participation_ratio(x) * participation_ratio(y)),
                                       rel=1e-12)
    assert ensd(x, x) == pytest.approx(participation_ratio(x), rel=1e-12)


def test_shape_metric_limits_and_bures() -> None:
    x, y = related(p=6, q=6)
    assert shape_metric(x, y) == pytest.approx(M.angular_distance(x, y), rel=1e-12)
    assert shape_metric(x, y, alpha=0.0) == pytest.approx(math.acos(M.cca_rho(x, y)), rel=1e-10)
    assert bures_distance(x, y) == pytest.approx(shape_metric(x, y, kind="euclidean"), rel=1e-12)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    nuclear = np.linalg.svd(xc.T @ yc, compute_uv=False).sum()
    assert bures_distance(x, y) == pytest.approx(math.sqrt(np.sum(xc**2) + np.sum(yc**2) - 2 * nuclear), rel=1e-10)
    assert bures_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert 2 - 2 * M.procrustes(x, y) == pytest.approx(M.procrustes_distance(x, y))  # the normalised form


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("kind", ["angular", "euclidean"])
def test_shape_distances_obey_the_triangle_inequality(alpha: float, kind: ShapeKind) -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        latent = rng.standard_normal((80, 3))
        a, b, c = (latent @ rng.standard_normal((3, 5)) + rng.uniform(0.2, 2.0) * rng.standard_normal((80, 5))
                   for _ in range(3))
        ab, bc, ac = (shape_metric(u, v, alpha=alpha, kind=kind) for u, v in ((a, b), (b, c), (a, c)))
        assert ac <= ab + bc + 1e-10


def test_lange_cka_and_participation_ratio_on_the_fit() -> None:
    x, y = related()
    moments = CrossMoments([x.shape[1], y.shape[1]], device="cpu")
    moments.update([x, y])
    assert LinearFit.from_moments(moments, 0).participation_ratio == pytest.approx(participation_ratio(x), rel=1e-12)
    assert lange_cka(x, x) == pytest.approx(1.0, rel=1e-12)


# --- engine against reference ---------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [7, 64, 1000])
@pytest.mark.parametrize(("offset", "constant"), [(0.0, 0), (500.0, 2)])
def test_streaming_similarity_equals_the_one_shot_functions(chunk: int, offset: float, constant: int) -> None:
    x, y = related(n=400, p=9, q=6, offset=offset)
    if constant:
        x[:, :constant] = 1.5 + offset
    # debiased_cka asks the accumulator for the row-norm sums that lange_cka also needs
    acc = StreamingSimilarity((*STREAMED, "debiased_cka"), device="cpu")
    for s in range(0, x.shape[0], chunk):
        acc.update(x[s : s + chunk], y[s : s + chunk])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = acc.result()
    for spec in STREAMED:
        name = registry.get(spec).name
        assert values[name] == pytest.approx(quiet(spec, x, y), rel=ENGINE_RTOL, abs=1e-12), spec


def test_all_pairs_equals_the_one_shot_functions() -> None:
    reps = [*related(n=300, p=8, q=5, seed=3), related(n=300, p=6, q=4, seed=3)[1] * 2.0 + 1.0]
    sources = [RepresentationSource.from_array(i, r) for i, r in enumerate(reps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = all_pairs(sources, [*STREAMED, "debiased_cka"], chunk_rows=50, progress=False, device="cpu")
    for result in results:
        for spec in STREAMED:
            name = registry.get(spec).name
            expected = quiet(spec, reps[result.a], reps[result.b])
            assert result.values[name] == pytest.approx(expected, rel=ENGINE_RTOL, abs=1e-12), (spec, result.a)


@pytest.mark.parametrize("chunk", [5, 33, 240])
@pytest.mark.parametrize(("lam", "score"), [(0.0, "pearson"), (3.0, "r2"), (0.5, "pearson")])
def test_fold_moments_equal_linear_predictivity(chunk: int, lam: float, score: PredictivityScore) -> None:
    x, y = related(n=240, p=5, q=6, offset=100.0)
    lengths = [4] * 60
    acc = FoldMoments.from_sentences((5, 6), lengths, folds=4)
    for s in range(0, 240, chunk):
        acc.update(x[s : s + chunk], torch.from_numpy(y[s : s + chunk]))
    both = acc.result(lam=lam, score=score)
    assert both.a_to_b == pytest.approx(
        linear_predictivity(x, y, lam=lam, score=score, folds=4, sentence_lengths=lengths), rel=ENGINE_RTOL)
    assert both.b_to_a == pytest.approx(
        linear_predictivity(y, x, lam=lam, score=score, folds=4, sentence_lengths=lengths), rel=ENGINE_RTOL)


def test_fold_moments_refuse_missing_or_extra_rows() -> None:
    x, y = related(n=40)
    acc = FoldMoments.from_sentences((7, 5), [10, 10, 10, 10], folds=2)
    acc.update(x[:30], y[:30])
    with pytest.raises(ValueError, match="30 rows were added; the folds were made for 40"):
        acc.result()
    with pytest.raises(ValueError, match="more rows than the 40"):
        acc.update(x, y)


# --- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [-0.1, 1.5, True, "half"])
def test_alpha_outside_the_unit_interval_is_named(alpha: object) -> None:
    x, y = related(n=50)
    with pytest.raises(ValueError, match=r"shape_metric: option alpha must be a number in \[0, 1\]"):
        shape_metric(x, y, alpha=alpha)  # type: ignore[arg-type]
    acc = StreamingSimilarity([f"shape_metric(alpha={alpha!r})"], device="cpu")
    acc.update(x, y)
    with pytest.raises(ValueError, match="option alpha"):
        acc.result()


def test_unknown_kind_and_score_are_named() -> None:
    x, y = related(n=50)
    with pytest.raises(ValueError, match="option kind must be 'angular' or 'euclidean'"):
        shape_metric(x, y, kind="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="option score must be 'pearson' or 'r2'"):
        linear_predictivity(x, y, score="mse")  # type: ignore[arg-type]


@pytest.mark.parametrize("lam", [-1e-3, -5.0, float("nan")])
def test_negative_lambda_is_named(lam: float) -> None:
    x, y = related(n=50)
    with pytest.raises(ValueError, match="gulp: option lam must be a finite number >= 0"):
        gulp(x, y, lam=lam)
    with pytest.raises(ValueError, match="linear_predictivity: option lam must be a finite number >= 0"):
        linear_predictivity(x, y, lam=lam)
    acc = StreamingSimilarity([f"gulp(lam={lam})"], device="cpu")
    acc.update(x, y)
    with pytest.raises(ValueError, match="option lam"):
        acc.result()


def test_more_folds_than_sentences_is_named() -> None:
    x, y = related(n=50)
    with pytest.raises(ValueError, match=r"option folds=6 exceeds the number of sentences \(5\)"):
        linear_predictivity(x, y, folds=6, sentence_lengths=[10] * 5)
    with pytest.raises(ValueError, match=r"option folds=4 exceeds the number of sentences \(3\)"):
        linear_predictivity(x, y, folds=4, groups=["a"] * 20 + ["b"] * 20 + ["c"] * 10)
    with pytest.raises(ValueError, match=r"option folds=60 exceeds the number of sentences \(50\)"):
        linear_predictivity(x, y, folds=60)
    with pytest.raises(ValueError, match=r"option folds=9 exceeds the number of sentences \(5\)"):
        FoldMoments.from_sentences((7, 5), [10] * 5, folds=9)
    with pytest.raises(ValueError, match="option folds must be an integer >= 2"):
        linear_predictivity(x, y, folds=1)
    with pytest.raises(ValueError, match="sentence_lengths must be positive and sum to the 50 rows"):
        linear_predictivity(x, y, sentence_lengths=[10] * 4)


def test_folds_keep_sentences_whole_and_follow_kfold() -> None:
    folds = row_folds(12, 3, sentence_lengths=[2, 1, 3, 1, 1, 4])  # 6 sentences, two per fold
    assert folds.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert row_folds(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_equal_width_transport_by_assignment_equals_the_network_simplex() -> None:
    import ot

    from reprsim.measures.matching import transport_cost

    rng = np.random.default_rng(11)
    for width in (1, 2, 5, 40, 120):
        cost = rng.uniform(0, 2, size=(width, width))
        cost[rng.random((width, width)) < 0.2] = 1.0  # ties
        a = np.full(width, 1.0 / width)
        assert transport_cost(cost) == pytest.approx(ot.emd2(a, a, cost), abs=1e-12)
