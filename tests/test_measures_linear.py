"""One-shot linear measures (maxsim, linreg, R2_LR, CCA family, Procrustes) against independent references.

Each reference below is written from the textbook formula with plain loops, numpy least squares or scipy
whitening, never with reprsim code; published libraries (scikit-learn, statsmodels, repsim, scipy) are
checked to 1e-6 relative where one implements the same quantity.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import torch

from reprsim.arrays import CONSTANT_RTOL, ConstantNeuronWarning, FewRowsWarning, constant_columns
from reprsim.measures.cca import canonical_correlations, cca_r2, cca_rho, pwcca, svcca
from reprsim.measures.neuron import NeuronMatch, maxsim, maxsim_per_neuron
from reprsim.measures.procrustes import angular_distance, procrustes, procrustes_distance
from reprsim.measures.regression import linreg, r2_lr

SIMILARITIES: dict[str, Callable[..., float]] = {
    "maxsim": maxsim,
    "linreg": linreg,
    "r2_lr": r2_lr,
    "cca_r2": cca_r2,
    "cca_rho": cca_rho,
    "svcca_raghu": lambda X, Y: svcca(X, Y, convention="raghu"),
    "svcca_wu": lambda X, Y: svcca(X, Y, convention="wu"),
    "pwcca": pwcca,
    "procrustes": procrustes,
}
DISTANCES: dict[str, Callable[..., float]] = {
    "procrustes_distance": procrustes_distance,
    "angular_distance": angular_distance,
}
ALL = {**SIMILARITIES, **DISTANCES, "maxsim_per_neuron": lambda X, Y: maxsim_per_neuron(X, Y).score}
CCA_TYPE = {
    "canonical_correlations": canonical_correlations,
    "cca_r2": cca_r2,
    "cca_rho": cca_rho,
    "svcca": svcca,
    "pwcca": pwcca,
}


def related_pair(seed: int, n: int = 300, p: int = 6, q: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """X with uneven neuron scales and a mean offset; Y a noisy linear read-out of part of X."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.2, 5.0, p) + rng.uniform(-3, 3, p)
    Y = X[:, : min(p, q)] @ rng.standard_normal((min(p, q), q)) + rng.standard_normal((n, q)) * 1.5
    return X, Y + rng.uniform(-2, 2, q)


# ---------------------------------------------------------------- independent references


def ref_maxsim(X: np.ndarray, Y: np.ndarray) -> tuple[float, list[float], list[int]]:
    """Double loop of np.corrcoef over neuron pairs, constant neurons skipped."""
    best, index = [], []
    for i in range(X.shape[1]):
        if np.ptp(X[:, i]) == 0:
            best.append(0.0)
            index.append(-1)
            continue
        top, arg = -1.0, -1
        for j in range(Y.shape[1]):
            if np.ptp(Y[:, j]) == 0:
                continue
            c = abs(np.corrcoef(X[:, i], Y[:, j])[0, 1])
            if c > top:
                top, arg = c, j
        best.append(top)
        index.append(arg)
    valid = [b for b, i in zip(best, index, strict=True) if i >= 0]
    return float(np.mean(valid)), best, index


def with_intercept(Y: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(Y)), Y])


def ref_linreg(X: np.ndarray, Y: np.ndarray) -> float:
    """Per neuron: least squares of x_i on [1, Y]; multiple correlation sqrt(R^2); mean over neurons."""
    rs = []
    for i in range(X.shape[1]):
        x = X[:, i]
        if np.ptp(x) == 0:
            continue
        coef, *_ = np.linalg.lstsq(with_intercept(Y), x, rcond=None)
        residual = x - with_intercept(Y) @ coef
        rs.append(math.sqrt(1 - residual @ residual / ((x - x.mean()) @ (x - x.mean()))))
    return float(np.mean(rs))


def ref_r2_lr(X: np.ndarray, Y: np.ndarray) -> float:
    """1 - total residual sum of squares / total sum of squares of a multi-output least-squares fit."""
    coef, *_ = np.linalg.lstsq(with_intercept(Y), X, rcond=None)
    residual = X - with_intercept(Y) @ coef
    return float(1 - (residual**2).sum() / ((X - X.mean(0)) ** 2).sum())


def covariances(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    n = len(X)
    return Xc.T @ Xc / (n - 1), Yc.T @ Yc / (n - 1), Xc.T @ Yc / (n - 1)


def inv_sqrtm(C: np.ndarray) -> np.ndarray:
    return np.real(np.linalg.inv(scipy.linalg.sqrtm(C)))


def ref_canonical_whitening(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Textbook CCA: singular values of Cxx^{-1/2} Cxy Cyy^{-1/2} (full-rank inputs)."""
    Cxx, Cyy, Cxy = covariances(X, Y)
    return np.linalg.svd(inv_sqrtm(Cxx) @ Cxy @ inv_sqrtm(Cyy), compute_uv=False)


def ref_canonical_eigen(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Generalised eigenproblem Cxy Cyy^-1 Cyx a = rho^2 Cxx a; the top min(p, q) roots."""
    Cxx, Cyy, Cxy = covariances(X, Y)
    lam = scipy.linalg.eigh(Cxy @ np.linalg.solve(Cyy, Cxy.T), Cxx, eigvals_only=True)
    m = min(X.shape[1], Y.shape[1])
    return np.sqrt(np.clip(np.sort(lam)[::-1][:m], 0, None))


def ref_svcca_k(s: np.ndarray, keep: float, convention: str) -> int:
    """Plain loop over the variance spectrum choosing how many directions to keep."""
    variance = s**2
    total = variance.sum()
    cumulative, count = 0.0, 0
    for k, v in enumerate(variance, start=1):
        cumulative += v
        if convention == "raghu" and cumulative / total >= keep:
            return k
        if convention == "wu" and cumulative / total < keep:
            count += 1
    return max(count, 1)


def ref_svcca(X: np.ndarray, Y: np.ndarray, keep: float, convention: str, standardize: bool) -> float:
    """Project each centred (optionally unbiased-std standardised) matrix on its kept right singular
    vectors, then mean canonical correlation by whitening."""
    reduced = []
    for A in (X, Y):
        Ac = A - A.mean(0)
        if standardize:
            Ac = Ac / A.std(0, ddof=1)
        _, s, Vt = np.linalg.svd(Ac, full_matrices=False)
        reduced.append(Ac @ Vt[: ref_svcca_k(s, keep, convention)].T)
    return float(ref_canonical_whitening(*reduced).mean())


def ref_pwcca(X: np.ndarray, Y: np.ndarray) -> float:
    """Morcos et al.: canonical weights a_k = Cxx^{-1/2} u_k, variates h_k = Xc a_k, weights
    alpha_k = sum_i |<h_k / ||h_k||, x_i>|, score = sum alpha_k rho_k / sum alpha_k."""
    Cxx, Cyy, Cxy = covariances(X, Y)
    Wx = inv_sqrtm(Cxx)
    U, rho, _ = np.linalg.svd(Wx @ Cxy @ inv_sqrtm(Cyy), full_matrices=False)
    Xc = X - X.mean(0)
    alpha = []
    for k in range(len(rho)):
        h = Xc @ (Wx @ U[:, k])
        h = h / np.linalg.norm(h)
        alpha.append(sum(abs(h @ Xc[:, i]) for i in range(X.shape[1])))
    alpha_arr = np.array(alpha)
    return float((alpha_arr * rho).sum() / alpha_arr.sum())


def ref_procrustes_residual(X: np.ndarray, Y: np.ndarray) -> float:
    """min over orthogonal R of ||X - Y R||_F^2 for centred unit-norm X, Y (scipy's rotation, p == q)."""
    Xn = (X - X.mean(0)) / np.linalg.norm(X - X.mean(0))
    Yn = (Y - Y.mean(0)) / np.linalg.norm(Y - Y.mean(0))
    R, _ = scipy.linalg.orthogonal_procrustes(Yn, Xn)
    return float(np.linalg.norm(Xn - Yn @ R) ** 2)


# ---------------------------------------------------------------- against the references


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maxsim_matches_double_loop(seed: int) -> None:
    X, Y = related_pair(seed)
    expected, best, index = ref_maxsim(X, Y)
    match = maxsim_per_neuron(X, Y)
    assert maxsim(X, Y) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(match.best, best, rtol=1e-12)
    np.testing.assert_array_equal(match.index, index)
    assert match.valid.all() and match.n_constant_x == 0 and match.n_constant_y == 0


def test_maxsim_is_directed() -> None:
    X, Y = related_pair(4, p=8, q=3)
    assert maxsim(X, Y) == pytest.approx(ref_maxsim(X, Y)[0], rel=1e-12)
    assert maxsim(Y, X) == pytest.approx(ref_maxsim(Y, X)[0], rel=1e-12)
    assert abs(maxsim(X, Y) - maxsim(Y, X)) > 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linreg_matches_per_neuron_lstsq(seed: int) -> None:
    X, Y = related_pair(seed)
    assert linreg(X, Y) == pytest.approx(ref_linreg(X, Y), rel=1e-10)
    assert linreg(Y, X) == pytest.approx(ref_linreg(Y, X), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_r2_lr_matches_multioutput_lstsq(seed: int) -> None:
    X, Y = related_pair(seed)
    assert r2_lr(X, Y) == pytest.approx(ref_r2_lr(X, Y), rel=1e-10)
    assert r2_lr(Y, X) == pytest.approx(ref_r2_lr(Y, X), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_canonical_correlations_match_whitening_and_eigenproblem(seed: int) -> None:
    X, Y = related_pair(seed)
    rho = canonical_correlations(X, Y)
    assert rho.shape == (5,)
    np.testing.assert_allclose(rho, ref_canonical_whitening(X, Y), rtol=1e-9)
    np.testing.assert_allclose(rho, ref_canonical_eigen(X, Y), rtol=1e-7)
    assert cca_r2(X, Y) == pytest.approx(float((ref_canonical_whitening(X, Y) ** 2).mean()), rel=1e-9)
    assert cca_rho(X, Y) == pytest.approx(float(ref_canonical_whitening(X, Y).mean()), rel=1e-9)


@pytest.mark.parametrize("convention", ["raghu", "wu"])
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_svcca_matches_reference(convention: str, standardize: bool, keep: float) -> None:
    X, Y = related_pair(7, n=400, p=8, q=7)
    expected = ref_svcca(X, Y, keep, convention, standardize)
    got = svcca(X, Y, keep=keep, convention=convention, standardize=standardize)  # type: ignore[arg-type]
    assert got == pytest.approx(expected, rel=1e-9)


def test_svcca_default_standardisation_follows_convention() -> None:
    X, Y = related_pair(8, n=400, p=8, q=7)
    assert svcca(X, Y, keep=0.9, convention="wu") == pytest.approx(ref_svcca(X, Y, 0.9, "wu", True), rel=1e-9)
    assert svcca(X, Y, keep=0.9) == pytest.approx(ref_svcca(X, Y, 0.9, "raghu", False), rel=1e-9)
    # The two conventions choose different k on this spectrum, so they must differ.
    assert svcca(X, Y, keep=0.9, convention="wu", standardize=False) != pytest.approx(svcca(X, Y, keep=0.9))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pwcca_matches_morcos_formula(seed: int) -> None:
    X, Y = related_pair(seed, n=500, p=6, q=4)
    assert pwcca(X, Y) == pytest.approx(ref_pwcca(X, Y), rel=1e-9)
    assert pwcca(Y, X) == pytest.approx(ref_pwcca(Y, X), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_procrustes_matches_optimal_rotation_residual(seed: int) -> None:
    X, Y = related_pair(seed, p=5, q=5)
    residual = ref_procrustes_residual(X, Y)
    assert procrustes_distance(X, Y) == pytest.approx(residual, rel=1e-10)
    assert procrustes(X, Y) == pytest.approx(1 - residual / 2, rel=1e-10)
    assert angular_distance(X, Y) == pytest.approx(math.acos(1 - residual / 2), rel=1e-10)


def test_procrustes_of_different_widths_is_nuclear_norm() -> None:
    X, Y = related_pair(5, p=7, q=3)
    Xn = (X - X.mean(0)) / np.linalg.norm(X - X.mean(0))
    Yn = (Y - Y.mean(0)) / np.linalg.norm(Y - Y.mean(0))
    assert procrustes(X, Y) == pytest.approx(np.linalg.norm(Xn.T @ Yn, ord="nuc"), rel=1e-12)


# ---------------------------------------------------------------- published libraries


def test_r2_lr_and_linreg_agree_with_scikit_learn() -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    X, Y = related_pair(11)
    fitted = LinearRegression().fit(Y, X).predict(Y)
    assert r2_lr(X, Y) == pytest.approx(r2_score(X, fitted, multioutput="variance_weighted"), rel=1e-6)
    per_neuron = r2_score(X, fitted, multioutput="raw_values")
    assert linreg(X, Y) == pytest.approx(float(np.sqrt(per_neuron).mean()), rel=1e-6)


def test_canonical_correlations_agree_with_statsmodels() -> None:
    from statsmodels.multivariate.cancorr import CanCorr

    X, Y = related_pair(12)
    np.testing.assert_allclose(canonical_correlations(X, Y), CanCorr(Y, X).cancorr, rtol=1e-6)


def test_cca_and_pwcca_agree_with_repsim() -> None:
    import repsim

    X, Y = related_pair(13, n=400, p=6, q=4)
    assert cca_r2(X, Y) == pytest.approx(repsim.cca([X, Y], "yanai")[0, 1], rel=1e-6)
    assert cca_rho(X, Y) == pytest.approx(repsim.cca([X, Y], "pillai")[0, 1], rel=1e-6)
    # repsim symmetrises PWCCA by averaging both directions.
    assert 0.5 * (pwcca(X, Y) + pwcca(Y, X)) == pytest.approx(repsim.pwcca([X, Y])[0, 1], rel=1e-6)


def test_procrustes_agrees_with_scipy_spatial() -> None:
    X, Y = related_pair(14, p=5, q=5)
    _, _, disparity = scipy.spatial.procrustes(X, Y)
    assert procrustes(X, Y) == pytest.approx(math.sqrt(1 - disparity), rel=1e-6)


# ---------------------------------------------------------------- identity and permutation


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_identity_gives_one(name: str) -> None:
    X, _ = related_pair(20, n=200, p=6)
    assert SIMILARITIES[name](X, X) == pytest.approx(1.0, abs=1e-12)
    # An exact copy on another scale and offset is still the same representation.
    assert SIMILARITIES[name](X, 3.0 * X + 1.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", sorted(DISTANCES))
def test_identity_gives_distance_zero(name: str) -> None:
    X, _ = related_pair(21, n=200, p=6)
    assert DISTANCES[name](X, X) == pytest.approx(0.0, abs=1e-6)


def test_canonical_correlations_of_identity_are_all_one() -> None:
    X, _ = related_pair(22)
    np.testing.assert_allclose(canonical_correlations(X, X), np.ones(6), atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_neuron_permutation_changes_nothing(name: str) -> None:
    X, Y = related_pair(23)
    rng = np.random.default_rng(0)
    px, py = rng.permutation(X.shape[1]), rng.permutation(Y.shape[1])
    assert ALL[name](X[:, px], Y[:, py]) == pytest.approx(ALL[name](X, Y), rel=1e-12, abs=1e-14)


def test_maxsim_per_neuron_follows_a_permutation() -> None:
    X, Y = related_pair(24)
    rng = np.random.default_rng(1)
    px, py = rng.permutation(X.shape[1]), rng.permutation(Y.shape[1])
    before, after = maxsim_per_neuron(X, Y), maxsim_per_neuron(X[:, px], Y[:, py])
    np.testing.assert_allclose(after.best, before.best[px], rtol=1e-12)
    np.testing.assert_array_equal(py[after.index], before.index[px])


# ---------------------------------------------------------------- bad input


BAD_INPUTS = [
    ("mismatched", lambda X: (X, X[:-1]), "same number of rows"),
    ("nan", lambda X: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), X), "NaN or Inf"),
    ("inf", lambda X: (X, np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X)), "NaN or Inf"),
    ("one_row", lambda X: (X[:1], X[:1]), "at least 2 rows"),
    ("empty", lambda X: (X[:, :0], X), "empty"),
    ("one_d", lambda X: (X[:, 0], X), "2-D"),
    ("strings", lambda X: (X.astype(str), X), "numeric"),
]


@pytest.mark.parametrize("name", sorted(ALL) + sorted(CCA_TYPE))
@pytest.mark.parametrize(("case", "make", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_the_problem(name: str, case: str, make: Callable, message: str) -> None:
    measure = {**ALL, **CCA_TYPE}[name]
    X, _ = related_pair(30, n=60, p=4)
    A, B = make(X)
    with pytest.raises(ValueError, match=message):
        measure(A, B)


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5, float("nan"), "0.9"])
def test_svcca_rejects_bad_keep(keep: object) -> None:
    X, Y = related_pair(31)
    with pytest.raises(ValueError, match="keep"):
        svcca(X, Y, keep=keep)  # type: ignore[arg-type]


def test_svcca_rejects_unknown_convention() -> None:
    X, Y = related_pair(32)
    with pytest.raises(ValueError, match="convention"):
        svcca(X, Y, convention="kornblith")  # type: ignore[arg-type]


# ---------------------------------------------------------------- constant neurons


def with_constant_columns(X: np.ndarray, where: list[int], value: float = 0.1) -> np.ndarray:
    out = X.copy()
    for w in where:
        out = np.insert(out, w, value, axis=1)
    return out


@pytest.mark.parametrize("name", sorted(ALL))
def test_constant_neurons_are_excluded_not_nan(name: str) -> None:
    X, Y = related_pair(40)
    Xk, Yk = with_constant_columns(X, [0, 3]), with_constant_columns(Y, [2], value=-7.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantNeuronWarning)
        got = ALL[name](Xk, Yk)
    assert math.isfinite(got)
    assert got == pytest.approx(ALL[name](X, Y), rel=1e-10, abs=1e-12)


def test_constant_columns_follow_their_definition_column_by_column() -> None:
    # The check scans only the columns under a matrix-wide bound; it must mark exactly the columns whose
    # centred norm is at most CONSTANT_RTOL * max|x_j| * sqrt(n), however the magnitudes are spread.
    rng = np.random.default_rng(44)
    n = 500
    columns = [
        np.full(n, 0.1),                                  # constant, small
        np.full(n, -3e5),                                 # constant, the matrix's largest magnitude
        1e6 + 1e-7 * rng.standard_normal(n),              # varies only in its rounding: constant
        1e-5 * rng.standard_normal(n),                    # varies, tiny next to the largest magnitude
        rng.standard_normal(n),                           # varies
        np.where(np.arange(n) == 7, 1.0 + 1e-12, 1.0),    # one value off by less than the tolerance
    ]
    X = torch.from_numpy(np.stack(columns, axis=1))
    spread = np.linalg.norm(X.numpy() - X.numpy().mean(axis=0), axis=0)
    expected = spread <= CONSTANT_RTOL * np.abs(X.numpy()).max(axis=0) * np.sqrt(n)
    np.testing.assert_array_equal(constant_columns(X).numpy(), expected)
    np.testing.assert_array_equal(expected, [True, True, True, False, False, True])


def test_maxsim_reports_constant_neurons() -> None:
    X, Y = related_pair(41)
    Xk, Yk = with_constant_columns(X, [0, 3]), with_constant_columns(Y, [2])
    with pytest.warns(ConstantNeuronWarning, match="excluded 2 constant neuron"):
        match = maxsim_per_neuron(Xk, Yk)
    expected, best, index = ref_maxsim(Xk, Yk)
    assert isinstance(match, NeuronMatch)
    assert (match.n_constant_x, match.n_constant_y) == (2, 1)
    np.testing.assert_array_equal(match.valid, [i >= 0 for i in index])
    np.testing.assert_array_equal(match.index, index)
    np.testing.assert_allclose(match.best, best, rtol=1e-12)
    assert match.score == pytest.approx(expected, rel=1e-12)


def test_linreg_warns_about_constant_neurons() -> None:
    X, Y = related_pair(42)
    with pytest.warns(ConstantNeuronWarning, match="linreg"):
        linreg(with_constant_columns(X, [1]), Y)


@pytest.mark.parametrize("name", sorted(ALL) + sorted(CCA_TYPE))
@pytest.mark.parametrize("side", ["X", "Y"])
def test_all_constant_side_is_an_error(name: str, side: str) -> None:
    measure = {**ALL, **CCA_TYPE}[name]
    X, Y = related_pair(43)
    flat = np.full_like(X, 2.5)
    with pytest.raises(ValueError, match=f"every neuron of {side} is constant"):
        measure(flat, Y) if side == "X" else measure(X, flat[:, :3])


# ---------------------------------------------------------------- CCA numerics


@pytest.mark.parametrize("name", sorted(CCA_TYPE))
def test_cca_type_warns_when_rows_are_few(name: str) -> None:
    X, Y = related_pair(50, n=49, p=5, q=3)
    with pytest.warns(FewRowsWarning, match="n=49"):
        CCA_TYPE[name](X, Y)
    X, Y = related_pair(50, n=50, p=5, q=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewRowsWarning)
        CCA_TYPE[name](X, Y)


def test_rank_deficient_input_gives_finite_scores() -> None:
    """More neurons than rows and duplicated neurons: rank-deficient covariances, no NaN."""
    rng = np.random.default_rng(51)
    X = rng.standard_normal((20, 40))
    X[:, 1] = X[:, 0]  # exact duplicate
    Y = rng.standard_normal((20, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewRowsWarning)
        rho = canonical_correlations(X, Y)
        # rank X = rank Y = n - 1 after centring: both span all centred vectors, every rho is 1.
        assert rho.shape == (19,)
        np.testing.assert_allclose(rho, 1.0, atol=1e-9)
        for f in (cca_r2, cca_rho, svcca, pwcca, r2_lr, linreg, procrustes):
            value = f(X, Y)
            assert math.isfinite(value) and 0.0 <= value <= 1.0


def test_collinear_y_does_not_break_regression() -> None:
    X, Y = related_pair(52)
    Y_dup = np.column_stack([Y, Y[:, :2] * 3.0, Y[:, 0] - Y[:, 1]])
    assert r2_lr(X, Y_dup) == pytest.approx(ref_r2_lr(X, Y), rel=1e-10)
    assert linreg(X, Y_dup) == pytest.approx(ref_linreg(X, Y), rel=1e-10)
    np.testing.assert_allclose(canonical_correlations(X, Y_dup), ref_canonical_whitening(X, Y), rtol=1e-9)


def test_failed_decomposition_is_an_error_not_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_svd(*args: object, **kwargs: object) -> None:
        raise torch.linalg.LinAlgError("simulated non-convergence")

    monkeypatch.setattr(torch.linalg, "svd", broken_svd)
    monkeypatch.setattr(torch.linalg, "svdvals", broken_svd)
    monkeypatch.setattr(torch.linalg, "qr", broken_svd)
    X, Y = related_pair(53)
    for f in (canonical_correlations, cca_r2, cca_rho, svcca, pwcca, r2_lr, linreg, procrustes):
        with pytest.raises(ValueError, match="did not converge"):
            f(X, Y)


def test_extreme_neuron_scales_stay_finite_and_exact() -> None:
    X, Y = related_pair(54)
    scales = np.array([1e-8, 1e8, 1.0, 1e-4, 1e4, 3.0])
    assert cca_rho(X * scales, Y) == pytest.approx(cca_rho(X, Y), rel=1e-8)
    assert linreg(X * scales, Y) == pytest.approx(linreg(X, Y), rel=1e-8)
    assert maxsim(X * scales, Y) == pytest.approx(maxsim(X, Y), rel=1e-10)


# ---------------------------------------------------------------- numpy vs torch, dtypes


@pytest.mark.parametrize("name", [*sorted(ALL), "canonical_correlations"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_torch_and_numpy_inputs_agree(name: str, dtype: str) -> None:
    measure = {**ALL, "canonical_correlations": canonical_correlations}[name]
    X, Y = related_pair(60, n=120, p=6, q=5)
    Xd, Yd = X.astype(dtype), Y.astype(dtype)
    from_numpy = measure(Xd, Yd)
    from_torch = measure(torch.from_numpy(Xd), torch.from_numpy(Yd))
    in_float64 = measure(Xd.astype(np.float64), Yd.astype(np.float64))
    np.testing.assert_allclose(from_torch, from_numpy, rtol=1e-12)
    np.testing.assert_allclose(from_numpy, in_float64, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_float16_with_large_values_does_not_overflow(name: str) -> None:
    rng = np.random.default_rng(61)
    X = (rng.uniform(20000, 60000, (200, 4))).astype(np.float16)  # squares and sums overflow float16
    Y = (X.astype(np.float64) @ rng.uniform(0.1, 0.3, (4, 3))).astype(np.float16)
    got = ALL[name](torch.from_numpy(X), torch.from_numpy(Y))
    assert math.isfinite(got)
    assert got == pytest.approx(ALL[name](X.astype(np.float64), Y.astype(np.float64)), rel=1e-12)


def test_results_are_python_floats_and_numpy_arrays() -> None:
    X, Y = related_pair(62)
    for f in (maxsim, linreg, r2_lr, cca_r2, cca_rho, svcca, pwcca, procrustes, procrustes_distance):
        assert type(f(torch.from_numpy(X), torch.from_numpy(Y))) is float
    match = maxsim_per_neuron(torch.from_numpy(X), Y)
    assert isinstance(match.best, np.ndarray) and match.index.dtype == np.int64
    assert isinstance(canonical_correlations(torch.from_numpy(X), Y), np.ndarray)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_match_cpu() -> None:
    X, Y = related_pair(63)
    for name, measure in ALL.items():
        on_gpu = measure(torch.from_numpy(X).cuda(), torch.from_numpy(Y).cuda())
        assert on_gpu == pytest.approx(measure(X, Y), rel=1e-9, abs=1e-12), name


# ---------------------------------------------------------------- rounding and range of the input


def low_rank_pair(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """X of exact rank 4 in 15 neurons, Y of 12 neurons sharing 2 of X's directions plus noise."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, 4))
    return a @ rng.standard_normal((4, 15)), a[:, :2] @ rng.standard_normal((2, 12)) + rng.standard_normal((n, 12))


@pytest.mark.parametrize("name", ["linreg", "r2_lr", "cca_r2", "cca_rho", "svcca_raghu", "svcca_wu", "pwcca"])
def test_float32_rounding_of_a_low_rank_layer_is_not_counted_as_dimensions(name: str) -> None:
    """Stored as float32, a rank-4 layer carries rounding in its other 11 directions (about 1e-7 of the
    values): the rank decisions must treat that as zero, as for the same values in float64."""
    X, Y = low_rank_pair(70)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    # The float64 reference: X exactly (no rounding), Y as stored.
    assert SIMILARITIES[name](X32, Y32) == pytest.approx(SIMILARITIES[name](X, Y32.astype(np.float64)), abs=1e-5)
    assert SIMILARITIES[name](Y32, X32) == pytest.approx(SIMILARITIES[name](Y32.astype(np.float64), X), abs=1e-5)
    assert len(canonical_correlations(X32, Y32)) == 4 == len(canonical_correlations(X, Y))


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
@pytest.mark.parametrize("scale", [1e155, 1e76, 1e-90, 1e-300])
def test_values_far_outside_the_usual_range_give_the_same_score(name: str, scale: float) -> None:
    """Every measure is invariant to isotropic scaling; squares (and CKA's fourth powers) of such values
    overflow or underflow float64 unless the input is brought into range first."""
    X, Y = related_pair(71)
    got = SIMILARITIES[name](X * scale, Y)
    assert got == pytest.approx(SIMILARITIES[name](X, Y), rel=1e-9)


# --- rank decisions follow the centred data ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("cca_rho", {}), ("cca_r2", {}), ("svcca", {}), ("svcca", {"convention": "wu"}), ("pwcca", {}),
     ("linreg", {}), ("r2_lr", {})],
)
def test_float16_with_a_mean_far_above_its_spread_keeps_every_direction(name: str, kwargs: dict) -> None:
    """A float16 layer whose mean (49152) is ~50x its spread: an exact shift of the data must not change any
    measure that decides a rank, and the value must match the engine (which sees only centred moments)."""
    import reprsim.measures as M
    from reprsim.engine import StreamingSimilarity, SvccaOptions

    r = np.random.default_rng(0)
    Z = r.standard_normal((3000, 16))
    X = (Z @ r.standard_normal((16, 16)) * 250 + 49152).astype(np.float16)
    Y = Z[:, :8] + 0.3 * r.standard_normal((3000, 8))
    shifted = X - np.float16(49152)  # exact in float16 (Sterbenz): the same rounding, a small mean
    assert np.array_equal(shifted.astype(np.float64), X.astype(np.float64) - 49152)
    f = getattr(M, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in ((X, Y), (Y, X)):
            a_shift = shifted if a is X else a
            b_shift = shifted if b is X else b
            value = f(a, b, **kwargs)
            assert value == pytest.approx(f(a_shift, b_shift, **kwargs), rel=1e-9, abs=1e-12)
            assert value == pytest.approx(f(a.astype(np.float64), b.astype(np.float64), **kwargs), rel=1e-9)
        svcca_options = SvccaOptions(**kwargs) if name == "svcca" else None
        acc = StreamingSimilarity((name,), device="cpu", svcca=svcca_options)
        for start in range(0, 3000, 700):
            acc.update(X[start : start + 700], Y[start : start + 700])
        streamed = acc.result()[name]
    forward = streamed.a_to_b if hasattr(streamed, "a_to_b") else streamed
    assert f(X, Y, **kwargs) == pytest.approx(forward, rel=1e-6)
