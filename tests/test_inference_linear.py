"""Statistics of the linear measures from the pass's sentence-block moments, against brute force on the rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from reprsim import measures as registry
from reprsim.engine import RepresentationSource, SvccaOptions, score_pairs
from reprsim.engine.block_moments import BlockedMoments, cka_bootstrap_hsic
from reprsim.engine.linear_family import LinearFamily
from reprsim.engine.linear_fit import Directed
from reprsim.engine.moments import CrossMoments
from reprsim.inference import InferenceOptions, bootstrap_counts, sentence_blocks

MEASURES = ["linear_cka", "debiased_cka", "maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "pwcca",
            "procrustes", "procrustes_distance", "angular_distance"]


def _data(n: int = 480, seed: int = 1, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    z = r.standard_normal((n, 6))
    x = z @ r.standard_normal((6, 8)) + 0.5 * r.standard_normal((n, 8)) + offset
    y = z[:, :4] @ r.standard_normal((4, 5)) + r.standard_normal((n, 5))
    return x, y


def _scores(x: np.ndarray, y: np.ndarray, options: InferenceOptions, bounds: np.ndarray,
            measures: list[str]) -> dict[str, object]:
    sources = [RepresentationSource.from_array("x", x), RepresentationSource.from_array("y", y)]
    family = LinearFamily(sources, measures, device=torch.device("cpu"), precision="float64", svcca=SvccaOptions(),
                          chunk_rows=97, inference=options, bounds=bounds)
    ((_, _, values),) = list(score_pairs(family, [(0, 1)], 1 << 30))
    return dict(values)


def _blocked(x: np.ndarray, y: np.ndarray, bounds: np.ndarray, chunk: int, row_norms: bool = False) -> BlockedMoments:
    """The blocked moments of (x, y) from one pass in chunks of `chunk` rows."""
    blocked = BlockedMoments([x.shape[1], y.shape[1]], [(0, 0), (0, 1), (1, 1)], bounds, device=torch.device("cpu"),
                             precision="float64", row_norms=row_norms)
    for i in range(0, len(x), chunk):
        blocked.update([x[i:i + chunk], y[i:i + chunk]])
    blocked.finish()
    return blocked


def _first(value: object) -> object:
    return value.a_to_b if isinstance(value, Directed) else value


def test_leave_one_block_out_values_equal_brute_force_for_every_linear_measure() -> None:
    x, y = _data(offset=1e4)  # a mean far above the spread: the shared shift must keep it exact
    lengths = np.full(96, 5)
    bounds = sentence_blocks(lengths, 8)
    values = _scores(x, y, InferenceOptions(ci="jackknife", blocks=8, jackknife="exact"), bounds, MEASURES)
    for m in MEASURES:
        u = values["uncertainty"][m]  # type: ignore[index]
        function = registry.get(m).function
        for direction, (first, second) in enumerate(((x, y), (y, x))):
            if not isinstance(u, Directed) and direction:
                continue
            got = (u.a_to_b, u.b_to_a)[direction] if isinstance(u, Directed) else u
            brute = [function(first[np.r_[0:bounds[g], bounds[g + 1]:len(x)]],
                              second[np.r_[0:bounds[g], bounds[g + 1]:len(x)]]) for g in range(8)]
            np.testing.assert_allclose(got.replicates, brute, rtol=0, atol=1e-8, err_msg=m)
            assert got.replicate_kind == "jackknife"
            mean = np.mean(brute)
            assert got.se == pytest.approx(np.sqrt(7 / 8 * np.sum((np.asarray(brute) - mean) ** 2)), rel=1e-9)


def _bootstrap_coverage(draw: Callable[[int], tuple[np.ndarray, np.ndarray]], measure: str, truth: float, rows: int,
                        draws: int, r: np.random.Generator) -> int:
    """How many of `draws` data sets' 95% block-bootstrap intervals (G = 20, sentences of 3 rows) cover the truth."""
    bounds = sentence_blocks(np.full(rows // 3, 3), 20)
    covered = 0
    for _ in range(draws):
        x, y = draw(rows)
        u = _scores(x, y, InferenceOptions(ci="bootstrap", blocks=20, resamples=200, seed=int(r.integers(1 << 30))),
                    bounds, [measure])["uncertainty"][measure]  # type: ignore[index]
        covered += u.ci_low <= truth <= u.ci_high
    return covered


LINEARISED = ["maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "svcca(keep=0.6)", "procrustes",
              "procrustes_distance", "angular_distance"]


def _smooth_data(n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Every canonical correlation a signal, and a constant neuron: the regime where first order is accurate."""
    r = np.random.default_rng(3)
    z = r.standard_normal((n, 6))
    x = z @ r.standard_normal((6, 8)) + 0.5 * r.standard_normal((n, 8)) + 5.0
    x[:, 2] = 1.5
    return x, z[:, :5] @ r.standard_normal((5, 5)) + r.standard_normal((n, 5))


def _directions(u: object) -> list:
    return [u.a_to_b, u.b_to_a] if isinstance(u, Directed) else [u]


def test_linearised_jackknife_agrees_with_the_refitted_one() -> None:
    # svcca(keep=0.6) drops directions that matter: without the rotation of the kept subspace its SE is ~45% low.
    x, y = _smooth_data()
    bounds = sentence_blocks(np.full(500, 8), 20)
    linear, exact = (_scores(x, y, InferenceOptions(ci="jackknife", blocks=20, jackknife=j), bounds, LINEARISED)
                     for j in ("linearised", "exact"))
    for m in LINEARISED:
        for lin, ref in zip(_directions(linear["uncertainty"][m]), _directions(exact["uncertainty"][m]),  # type: ignore[index]
                            strict=True):
            assert lin.se == pytest.approx(ref.se, rel=0.03), m
            assert "linearised" in lin.ci_method and "linearised" not in ref.ci_method
            centred = [r.replicates - r.replicates.mean() for r in (lin, ref)]
            assert np.abs(centred[0] - centred[1]).max() <= 0.06 * np.ptp(ref.replicates), m


def test_canonical_decomposition_pairs_the_signs_of_a_rank_deficient_matrix() -> None:
    # With a zero singular value both sides come from their own eigendecompositions, signed independently.
    from reprsim.engine.pair_terms import canonical_decomposition

    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        k = torch.randn(7, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 5, generator=g, dtype=torch.float64)
        c = canonical_decomposition(k, "k")
        assert float(c.rho[-1]) < 1e-6
        torch.testing.assert_close(((c.u.T @ k) * c.v.T).sum(dim=1)[:4], c.rho[:4], atol=1e-9, rtol=1e-9)
        u, _, vt = torch.linalg.svd(k)
        torch.testing.assert_close(c.u[:, :4] @ c.v[:, :4].T, u[:, :4] @ vt[:4], atol=1e-8, rtol=0)


def test_linearised_jackknife_survives_a_rank_deficient_cross_block() -> None:
    # A duplicated neuron makes C_xy rank-deficient: its singular vectors come from two decompositions, whose
    # signs must be paired for the Procrustes gradient.
    x, y = _smooth_data()
    y = np.column_stack([y, y[:, 0]])
    bounds = sentence_blocks(np.full(500, 8), 20)
    measures = ["procrustes", "angular_distance", "cca_rho", "linreg"]
    linear, exact = (_scores(x, y, InferenceOptions(ci="jackknife", blocks=20, jackknife=j), bounds, measures)
                     for j in ("linearised", "exact"))
    for m in measures:
        lin, ref = _directions(linear["uncertainty"][m])[0], _directions(exact["uncertainty"][m])[0]  # type: ignore[index]
        assert lin.se == pytest.approx(ref.se, rel=0.05), m
        assert np.abs(lin.replicates - ref.replicates).max() <= 0.2 * np.ptp(ref.replicates) + 1e-4, m


def test_linearised_jackknife_of_a_representation_with_itself_is_flat() -> None:
    x, _ = _smooth_data(n=800)
    sources = [RepresentationSource.from_array("x", x)]
    family = LinearFamily(sources, ["cca_rho", "procrustes", "maxsim"], device=torch.device("cpu"),
                          precision="float64", svcca=SvccaOptions(), chunk_rows=97,
                          inference=InferenceOptions(ci="jackknife", blocks=10),
                          bounds=sentence_blocks(np.full(100, 8), 10))
    ((_, _, values),) = list(score_pairs(family, [(0, 0)], 1 << 30))
    for m in ("cca_rho", "procrustes", "maxsim"):
        for u in _directions(values["uncertainty"][m]):
            np.testing.assert_allclose(u.replicates, 1.0, atol=1e-9, err_msg=m)


def test_linearised_bootstrap_intervals_cover_the_truth() -> None:
    # The percentile bootstrap built on the linearised jackknife, on 120 data sets whose population CCA is known.
    r = np.random.default_rng(11)
    mix = r.standard_normal((3, 3))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        z = r.standard_normal((n, 3))
        return z + 0.5 * r.standard_normal((n, 3)), z @ mix + r.standard_normal((n, 3))

    big_x, big_y = draw(400_000)
    covered = _bootstrap_coverage(draw, "cca_rho", registry.get("cca_rho").function(big_x, big_y), 600, 120, r)
    assert 102 <= covered <= 120, covered


def test_a_failing_gradient_costs_only_its_own_interval(monkeypatch) -> None:
    from reprsim.arrays import FewRowsWarning
    from reprsim.engine import linear_influence

    def broken(*_: object) -> object:
        raise ValueError("the decomposition did not converge")

    monkeypatch.setitem(linear_influence.GRADIENTS, "cca_rho", broken)
    x, y = _smooth_data(n=800)
    with pytest.warns(FewRowsWarning, match="cca_rho: the decomposition did not converge"):
        values = _scores(x, y, InferenceOptions(ci="jackknife", blocks=10), sentence_blocks(np.full(100, 8), 10),
                         ["cca_rho", "procrustes"])
    assert values["uncertainty"]["cca_rho"].se is None  # type: ignore[index]
    assert values["uncertainty"]["procrustes"].se > 0  # type: ignore[index]


def test_linearised_jackknife_refits_the_measures_without_a_gradient() -> None:
    x, y = _smooth_data(n=800)
    bounds = sentence_blocks(np.full(100, 8), 10)
    measures = ["linear_cka", "debiased_cka", "pwcca", "svcca(convention=wu)"]
    linear, exact = (_scores(x, y, InferenceOptions(ci="jackknife", blocks=10, jackknife=j), bounds, measures)
                     for j in ("linearised", "exact"))
    for m in measures:
        for lin, ref in zip(_directions(linear["uncertainty"][m]), _directions(exact["uncertainty"][m]),  # type: ignore[index]
                            strict=True):
            np.testing.assert_array_equal(lin.replicates, ref.replicates, err_msg=m)
            assert lin.ci_method == ref.ci_method == "delete-one-block jackknife (t interval)"


def test_left_out_changes_are_the_moments_without_each_block() -> None:
    x, y = _data(n=300, offset=2e3)
    bounds = sentence_blocks(np.full(60, 5), 6)
    blocked = _blocked(x, y, bounds, 71)
    matrices = torch.as_tensor(np.random.default_rng(0).standard_normal((3, 8, 5)))

    def centred_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - a.mean(0)).T @ (b - b.mean(0))

    for a, b, first, second, m in ((0, 1, x, y, matrices), (1, 0, y, x, matrices.transpose(1, 2)),
                                   (0, 0, x, x, matrices[:, :, :5].repeat(1, 1, 2)[:, :, :8])):
        got = blocked.left_out_changes(a, b, m).numpy()
        for g in range(6):
            keep = np.r_[0:bounds[g], bounds[g + 1]:300]
            change = centred_cross(first, second) - centred_cross(first[keep], second[keep])
            np.testing.assert_allclose(got[:, g], np.einsum("kab,ab->k", m.numpy(), change), rtol=1e-8, atol=1e-6)


def test_exact_bootstrap_hsic_equals_the_resampled_rows() -> None:
    x, y = _data(n=300, offset=5e3)
    bounds = sentence_blocks(np.full(60, 5), 6)
    blocked = _blocked(x, y, bounds, 64)
    counts = bootstrap_counts(6, 5, seed=3)
    got = cka_bootstrap_hsic(blocked.block_sums, 0, 1, counts)
    for w, value in zip(counts, got, strict=True):
        rows = np.concatenate([np.tile(np.arange(bounds[g], bounds[g + 1]), c) for g, c in enumerate(w)])
        xc, yc = x[rows] - x[rows].mean(0), y[rows] - y[rows].mean(0)
        assert value == pytest.approx(np.linalg.norm(xc.T @ yc) ** 2, rel=1e-9)


def test_blocked_totals_equal_one_plain_pass() -> None:
    x, y = _data(n=250, offset=3e4)
    bounds = sentence_blocks(np.full(50, 5), 7)
    blocked = _blocked(x, y, bounds, 33, row_norms=True)
    plain = CrossMoments([8, 5], row_norms=True)
    plain.update([x, y])
    total = blocked.total
    torch.testing.assert_close(total.centred(0, 1), plain.centred(0, 1), rtol=1e-10, atol=1e-8)
    assert total.centred_norm_product(0, 1) == pytest.approx(plain.centred_norm_product(0, 1), rel=1e-10)


def test_rows_beyond_the_blocks_are_an_error() -> None:
    x, y = _data(n=100)
    blocked = BlockedMoments([8, 5], [(0, 1)], np.array([0, 40, 90]), device=torch.device("cpu"),
                             precision="float64", row_norms=False)
    with pytest.raises(ValueError, match="sentence lengths do not match"):
        blocked.update([x, y])


def test_bootstrap_interval_of_linear_cka_covers_the_truth() -> None:
    # Population CKA from one very large sample; 200 data sets of 300 rows in 20 blocks.
    r = np.random.default_rng(7)
    mix = r.standard_normal((4, 3))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        z = r.standard_normal((n, 4))
        return z, z[:, :3] + 0.8 * (z @ mix) + r.standard_normal((n, 3))

    big_x, big_y = draw(200_000)
    covered = _bootstrap_coverage(draw, "linear_cka", registry.linear_cka(big_x, big_y), 300, 200, r)
    assert 180 <= covered <= 198, covered


def test_inference_off_leaves_the_scores_as_they_were() -> None:
    x, y = _data()
    values = _scores(x, y, InferenceOptions(), sentence_blocks(np.full(96, 5), 8), ["linear_cka"])
    assert set(values) == {"linear_cka"}
    assert _first(values["linear_cka"]) == pytest.approx(registry.linear_cka(x, y), abs=1e-12)


# --- through reprsim.compare and the CLI -------------------------------------------------------------------
from reprsim.comparison import compare  # noqa: E402
from test_compare import LENGTHS, study_store  # noqa: E402,F401


def test_compare_attaches_statistics_and_records_the_methods(study_store) -> None:  # noqa: F811
    table = compare(study_store, measures=["linear_cka", "cca_rho"], ci="jackknife", null="analytic", blocks=12,
                    progress=False)
    f = table.frame
    cross = f[(f.model_a != f.model_b) & (f.measure == "linear_cka")]
    assert cross.se.notna().all() and (cross.ci_low <= cross.ci_high).all()
    assert cross.null_mean.notna().all() and (cross.null_mean < cross.value).all()
    assert f[f.measure == "cca_rho"].null_mean.isna().all()  # no closed-form null
    inference_entry = table.provenance["inference"]
    assert inference_entry["options"]["blocks"] == 12
    assert inference_entry["methods"]["linear_cka"]["ci"] == "delete-one-block jackknife (t interval)"
    assert inference_entry["methods"]["cca_rho"]["ci"] == "delete-one-block jackknife, linearised (t interval)"
    rows = f[(f.model_a != f.model_b) & (f.measure == "cca_rho")]
    assert rows.se.notna().all() and (rows.ci_low < rows.value).all() and (rows.value < rows.ci_high).all()
    assert "RV" in inference_entry["methods"]["linear_cka"]["null"]
    plain = compare(study_store, measures=["linear_cka"], progress=False)
    assert "se" not in plain.frame.columns and "inference" not in plain.provenance


@pytest.mark.parametrize(("options", "named"), [
    ({"ci": "jackknife", "blocks": len(LENGTHS) + 1}, "blocks"),
    ({"ci": "bootstrap", "resamples": 0}, "resamples"),
    ({"null": "permutation", "permutations": 0}, "permutations"),
    ({"ci": "bootstrap", "alpha": 1.5}, "alpha"),
    ({"ci": "sometimes"}, "ci"),
    ({"ci": "jackknife", "jackknife": "approximately"}, "jackknife must be one of"),
])
def test_bad_statistics_options_name_the_option(study_store, options, named) -> None:  # noqa: F811
    with pytest.raises(ValueError, match=named):
        compare(study_store, measures=["linear_cka"], progress=False, **options)


def test_changed_statistics_options_recompute_every_row(study_store) -> None:  # noqa: F811
    first = compare(study_store, measures=["linear_cka"], progress=False)
    with pytest.warns(Warning, match="statistics options differ"):
        again = compare(study_store, measures=["linear_cka"], previous=first, ci="jackknife", blocks=10,
                        progress=False)
    assert again.frame.se.notna().any()


def test_a_table_from_before_the_jackknife_option_counts_as_exact(study_store) -> None:  # noqa: F811
    import warnings

    first = compare(study_store, measures=["cca_rho"], progress=False, ci="jackknife", blocks=10, jackknife="exact")
    del first.provenance["inference"]["options"]["jackknife"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        kept = compare(study_store, measures=["cca_rho"], previous=first, ci="jackknife", blocks=10,
                       jackknife="exact", progress=False)
    assert kept.frame.se.tolist() == first.frame.se.tolist()
    with pytest.warns(Warning, match="statistics options differ"):
        compare(study_store, measures=["cca_rho"], previous=first, ci="jackknife", blocks=10, progress=False)


def test_cli_compare_takes_the_statistics_flags(study_store, tmp_path) -> None:  # noqa: F811
    from reprsim.cli import main

    out = tmp_path / "stats.parquet"
    assert main(["compare", "--store", str(study_store.path), "--measures", "linear_cka", "--ci", "bootstrap",
                 "--null", "analytic", "--blocks", "10", "--resamples", "50", "--jackknife", "exact", "--out", str(out),
                 "--quiet"]) == 0
    from reprsim.results import ResultTable

    table = ResultTable.load(out)
    assert table.provenance["inference"]["options"]["resamples"] == 50
    assert table.provenance["inference"]["options"]["jackknife"] == "exact"
    assert table.frame.ci_low.notna().any()
