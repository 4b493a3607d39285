"""The measure registry's metadata must match what each function does on data."""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np
import pytest

from reprsim import measures
from reprsim.measures import MeasureInfo, SubsampleWarning, available, get
from reprsim.measures.registry import INVARIANCES, LEVELS

REPRESENTATION = [name for name in available() if get(name).level != "attention"]
ATTENTION = available(level="attention")
CLASSES = ("orthogonal", "isotropic_scaling", "invertible_linear")


def data(seed: int = 0, n: int = 120, p: int = 6, q: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Related X (n x p) and Y (n x q) with unequal neuron scales, so no measure sits at a trivial value."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, p)) + 0.8 * rng.standard_normal((n, p))
    Y = latent @ rng.standard_normal((3, q)) + 0.8 * rng.standard_normal((n, q))
    return X * rng.uniform(0.5, 4.0, size=p), Y * rng.uniform(0.5, 4.0, size=q)


def transform(kind: str, d: int, rng: np.random.Generator) -> np.ndarray:
    """A random map of the invariance class `kind` (a d x d matrix)."""
    if kind == "permutation":
        return np.eye(d)[rng.permutation(d)]
    if kind == "orthogonal":
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        return Q
    if kind == "isotropic_scaling":
        return 3.7 * np.eye(d)
    M = rng.standard_normal((d, d)) + np.diag(rng.uniform(1.0, 5.0, size=d))
    assert abs(np.linalg.det(M)) > 1e-3
    return M


def value(name: str, X: np.ndarray, Y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(get(name).function(X, Y))


def attention_maps(heads: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = []
    for T in (4, 6, 5):
        a = rng.random((heads, T, T)) ** 3
        maps.append(a / a.sum(axis=-1, keepdims=True))
    return maps


# ------------------------------------------------------------------------------------------------------------


def test_every_public_measure_function_is_registered_under_its_own_name():
    for name in available():
        info = get(name)
        assert info.name == name == info.function.__name__
        assert getattr(measures, name) is info.function
    expected = {
        "maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "pwcca", "linear_cka", "debiased_cka",
        "minibatch_cka", "rbf_cka", "procrustes", "procrustes_distance", "angular_distance", "rsa",
        "mutual_knn", "attention_js", "attention_pearson", "attention_cka",
        # shapes, spectra, matching and ReSi's statistics (from the engine's blocks where streamable)
        "shape_metric", "bures_distance", "gulp", "linear_predictivity", "hard_matching", "soft_matching_distance",
        "ensd", "eigenspace_overlap", "lange_cka", "magnitude_difference", "concentricity_difference",
        "uniformity_difference",
        # neighbourhoods and RSMs
        "jaccard_knn", "rank_similarity", "second_order_cosine", "cknna", "cycle_knn", "distance_correlation",
    }
    assert set(available()) == expected


def test_levels_partition_the_registry_and_metadata_types():
    assert sorted(name for level in LEVELS for name in available(level)) == sorted(available())
    assert available("neuron") == ["maxsim", "hard_matching", "soft_matching_distance"]
    assert available() == [m for level in LEVELS for m in available(level)]
    assert available()[-3:] == available("attention")
    for name in available():
        info = get(name)
        assert info.invariances <= INVARIANCES
        assert "permutation" in info.invariances  # docs/measures.md: every measure ignores neuron order
        assert isinstance(info.description, str) and info.description
    with pytest.raises(ValueError, match="level must be one of"):
        available("layer")


def test_unknown_name_raises_key_error_listing_available_names():
    with pytest.raises(KeyError, match=r"unknown measure 'cka'.*linear_cka.*rbf_cka"):
        get("cka")


def test_measure_info_is_frozen_and_validated():
    info = get("linear_cka")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.symmetric = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="level must be one of"):
        dataclasses.replace(info, level="layer")
    with pytest.raises(ValueError, match="unknown invariance"):
        dataclasses.replace(info, invariances=frozenset({"affine"}))
    assert isinstance(info, MeasureInfo)


@pytest.mark.parametrize("name", REPRESENTATION)
def test_symmetric_flag_matches_behaviour(name):
    X, Y = data(seed=1)
    forward, backward = value(name, X, Y), value(name, Y, X)
    if get(name).symmetric:
        assert forward == pytest.approx(backward, rel=1e-7, abs=1e-10)
    else:
        assert forward != pytest.approx(backward, rel=1e-4)


@pytest.mark.parametrize("name", REPRESENTATION)
def test_identity_and_larger_is_similar_match_behaviour(name):
    X, Y = data(seed=2)
    noise = np.random.default_rng(9).standard_normal(X.shape)
    same, related, unrelated = value(name, X, X), value(name, X, Y), value(name, X, noise)
    if get(name).larger_is_similar:
        # ENSD counts shared dimensions: a layer shares its participation ratio with itself. cycle-kNN of a layer
        # with itself is the fraction of rows with a two-way neighbour, not 1.
        identity = {"ensd": measures.participation_ratio(X)}.get(name, 1.0)
        if name != "cycle_knn":
            assert same == pytest.approx(identity, abs=1e-7)
        assert same > related > unrelated
    else:
        assert same == pytest.approx(0.0, abs=1e-6)
        assert same < related < unrelated


@pytest.mark.parametrize("name", REPRESENTATION)
@pytest.mark.parametrize("kind", ["permutation", *CLASSES])
def test_flagged_invariances_hold_and_unflagged_ones_fail(name, kind):
    """f(X T1, Y T2) == f(X, Y) for T1, T2 of a flagged class; a generic map of an unflagged class changes f.

    "invertible_linear_y_only" means: maps of Y leave f unchanged, maps of X do not.
    """
    info = get(name)
    rng = np.random.default_rng(3)
    # cycle-kNN moves in steps of 1/n: on 120 rows a rotation can leave it on the same step.
    X, Y = data(seed=4, n=600 if name == "cycle_knn" else 120)
    base = value(name, X, Y)
    x_side = value(name, X @ transform(kind, X.shape[1], rng), Y)
    y_side = value(name, X, Y @ transform(kind, Y.shape[1], rng))
    x_holds = kind in info.invariances
    # every class tested here is a subclass of the invertible linear maps
    y_holds = x_holds or "invertible_linear_y_only" in info.invariances
    for moved, holds, side in ((x_side, x_holds, "X"), (y_side, y_holds, "Y")):
        if holds:
            assert moved == pytest.approx(base, rel=1e-7, abs=1e-10), f"{name}: {kind} of {side} changed it"
        else:
            assert moved != pytest.approx(base, rel=1e-6, abs=1e-9), f"{name}: unflagged {kind} of {side}"


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_metadata_matches_behaviour(name):
    info = get(name)
    A, B = attention_maps(4, seed=5), attention_maps(3, seed=6)
    base = info.function(A, B)
    assert info.function(A, A) == pytest.approx(1.0, abs=1e-12)
    if info.symmetric:
        assert info.function(B, A) == pytest.approx(base, rel=1e-10)
    else:
        assert info.function(B, A) != pytest.approx(base, rel=1e-6)
    assert "permutation" in info.invariances  # of heads
    assert info.function([a[::-1] for a in A], B) == pytest.approx(base, rel=1e-12)
    assert info.streamable
    assert info.function(iter(A), iter(B)) == pytest.approx(base, rel=1e-12)  # one-pass iterables


@pytest.mark.parametrize("name", REPRESENTATION)
def test_needs_subsample_flag_matches_a_max_rows_argument_and_warning(name):
    info = get(name)
    parameters = inspect.signature(info.function).parameters
    assert ("max_rows" in parameters) == info.needs_subsample
    assert not (info.needs_subsample and info.streamable)
    if info.needs_subsample:
        X, Y = data(seed=7, n=80)
        with pytest.warns(SubsampleWarning):
            info.function(X, Y, max_rows=50)


# --- measure specs: a registry name with keyword options ---------------------------------------------------
def test_a_spec_binds_options_and_has_one_canonical_name() -> None:
    X, Y = data(3)
    info = get("svcca( convention = wu , keep=0.9 )")
    assert info.name == "svcca(convention=wu, keep=0.9)" and info.base == "svcca"
    assert dict(info.options) == {"convention": "wu", "keep": 0.9}
    assert info.function(X, Y) == measures.svcca(X, Y, keep=0.9, convention="wu")
    assert get("rbf_cka(t=0.8)") is get("rbf_cka")  # a default option is no option
    assert get("rbf_cka(t=0.4)").function(X, Y) == measures.rbf_cka(X, Y, t=0.4)
    assert get("linear_cka").options == {} and get("linear_cka").base == "linear_cka"


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("rbf_cka(q=1)", ValueError, r"measure 'rbf_cka' has no option 'q'; it takes: t, max_rows, seed"),
        ("svcca(keep)", ValueError, r"options are written key=value, got 'keep'"),
        ("svcca(keep=0.9, keep=0.8)", ValueError, r"option 'keep' is given twice"),
        ("svcca(keep=[1)", ValueError, r"is not a number, string or boolean"),
        ("rsa(max_rows=1", ValueError, r"is not a name or name\(option=value, \.\.\.\)"),
        ("cka_linear(t=1)", KeyError, r"unknown measure 'cka_linear'"),
        ("linear_cka(X=1)", ValueError, r"has no option 'X'"),
    ],
)
def test_a_bad_spec_is_named(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        get(spec)


def test_compare_and_the_engine_take_specs(tmp_path) -> None:
    from reprsim import compare
    from reprsim.store import ActivationStore

    rng = np.random.default_rng(5)
    store = ActivationStore(tmp_path / "acts")
    lengths = [30] * 10
    latent = rng.standard_normal((300, 3))
    rows = {}
    for name in ("m1", "m2"):
        reps = [(latent @ rng.standard_normal((3, w)) + rng.standard_normal((300, w))).astype(np.float32)
                for w in (6, 5)]
        writer = store.writer(name, {"name": name}, [0, 1], [6, 5], lengths, None, "float32")
        writer.write_sentences(0, len(lengths), reps, None)
        writer.finalize()
        rows[name] = reps
    specs = ["svcca(keep=0.5)", "rbf_cka(t=0.4)", "mutual_knn(k=5)", "linear_cka"]
    table = compare(store, measures=specs, progress=False)
    assert table.measures() == ["svcca(keep=0.5)", "linear_cka", "rbf_cka(t=0.4)", "mutual_knn(k=5)"]
    for spec in specs:
        got = table.value(spec, ("m1", 0), ("m2", 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = get(spec).function(rows["m1"][0], rows["m2"][1])
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), spec
    with pytest.raises(ValueError, match=r"mutual_knn\(max_rows=100\): option\(s\) max_rows do not apply"):
        compare(store, measures=["mutual_knn(max_rows=100)"], progress=False)


def test_similarity_repository_ids_name_the_default_convention_only() -> None:
    assert get("linear_cka").similarity_repository_id == "cka-kernel=linear-hsic=gretton-score"
    assert get("svcca").similarity_repository_id == "svcca-var=0.99-score"
    assert get("svcca(keep=0.95)").similarity_repository_id == ""  # another convention: no borrowed id
    ids = [get(m).similarity_repository_id for m in available() if get(m).similarity_repository_id]
    assert len(ids) == len(set(ids))


def test_numeric_options_have_one_canonical_spelling() -> None:
    assert get("gulp(lam=0)").name == get("gulp(lam=0.0)").name == "gulp"
    assert get("gulp(lam=1)").name == get("gulp(lam=1.0)").name == "gulp(lam=1.0)"
    assert get("mutual_knn(k=5.0)").name == get("mutual_knn(k=5)").name == "mutual_knn(k=5)"
    assert get("shape_metric(alpha=1)").name == "shape_metric"
