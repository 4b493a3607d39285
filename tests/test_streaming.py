"""StreamingSimilarity and all_pairs equal the one-shot functions of reprsim.measures (1e-6 relative)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import reprsim.measures as M
from reprsim.engine import (
    ENGINE_MEASURES,
    Directed,
    RepresentationSource,
    StreamingSimilarity,
    SvccaOptions,
    all_pairs,
)
from reprsim.layers import LayerId
from reprsim.measures import ConstantNeuronWarning, FewRowsWarning
from reprsim.store import ActivationStore

RTOL = 1e-6


def layers(n: int, widths: list[int], seed: int = 0) -> list[np.ndarray]:
    """Representations sharing a latent signal, with drifting mixing (like successive layers)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 5))
    return [
        latent @ rng.standard_normal((5, w)) + rng.standard_normal((n, w)) * rng.uniform(0.3, 2.0, w) + 7.0
        for w in widths
    ]


def one_shot(name: str, x: np.ndarray, y: np.ndarray, **kwargs: object) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(getattr(M, name)(x, y, **kwargs))


def expected_values(name: str, x: np.ndarray, y: np.ndarray) -> list[float]:
    from reprsim.engine import DIRECTED_MEASURES

    if name in DIRECTED_MEASURES:
        return [one_shot(name, x, y), one_shot(name, y, x)]
    return [one_shot(name, x, y)]


def flat(value: float | Directed[float]) -> list[float]:
    return [value.a_to_b, value.b_to_a] if isinstance(value, Directed) else [value]


@pytest.mark.parametrize("chunk", [2, 7, 64, 360])
def test_streaming_similarity_equals_one_shot(chunk: int) -> None:
    x, y = layers(360, [11, 8], seed=chunk)
    acc = StreamingSimilarity()
    for s in range(0, 360, chunk):
        acc.update(x[s : s + chunk], y[s : s + chunk])
    assert acc.n_rows == 360
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewRowsWarning)
        values = acc.result()
    assert list(values) == list(ENGINE_MEASURES)
    for name, value in values.items():
        assert flat(value) == pytest.approx(expected_values(name, x, y), rel=RTOL, abs=1e-12), name


def test_uneven_chunks_and_float16() -> None:
    x, y = (a.astype(np.float16) for a in layers(300, [6, 9], seed=3))
    acc = StreamingSimilarity(("linear_cka", "pwcca", "svcca"), svcca=SvccaOptions(0.95, "wu"))
    for start, stop in [(0, 5), (5, 6 + 5), (11, 200), (200, 300)]:
        acc.update(x[start:stop], y[start:stop])
    values = acc.result()
    assert values["linear_cka"] == pytest.approx(one_shot("linear_cka", x, y), rel=RTOL)
    assert flat(values["pwcca"]) == pytest.approx(expected_values("pwcca", x, y), rel=RTOL)
    assert values["svcca"] == pytest.approx(one_shot("svcca", x, y, keep=0.95, convention="wu"), rel=RTOL)


def test_merged_shards_equal_one_accumulator() -> None:
    x, y = layers(400, [7, 5], seed=4)
    left, right = (
        StreamingSimilarity(("cca_rho", "debiased_cka")),
        StreamingSimilarity(("cca_rho", "debiased_cka")),
    )
    for s in range(0, 150, 50):
        left.update(x[s : s + 50], y[s : s + 50])
    for s in range(150, 400, 64):
        right.update(x[s : s + 64], y[s : s + 64])
    merged = StreamingSimilarity(("cca_rho", "debiased_cka")).merge(left).merge(right)
    values = merged.result()
    assert merged.n_rows == 400
    assert values["cca_rho"] == pytest.approx(one_shot("cca_rho", x, y), rel=RTOL)
    assert values["debiased_cka"] == pytest.approx(one_shot("debiased_cka", x, y), rel=RTOL)


def test_neuron_matches_and_canonical_correlations() -> None:
    x, y = layers(250, [6, 4], seed=5)
    x[:, 2] = 1.5  # a constant neuron
    acc = StreamingSimilarity(("maxsim",))
    acc.update(x, y)
    with pytest.warns(ConstantNeuronWarning, match="excluded 1 constant neuron"):
        matches = acc.neuron_matches()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = M.maxsim_per_neuron(x, y)
        rho = M.canonical_correlations(x, y)
    np.testing.assert_allclose(matches.a_to_b.best, want.best, rtol=1e-9)
    np.testing.assert_array_equal(matches.a_to_b.index, want.index)
    assert matches.a_to_b.index[2] == -1 and not matches.a_to_b.valid[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(acc.canonical_correlations(), rho, rtol=1e-7, atol=1e-8)


def test_streaming_warns_like_one_shot() -> None:
    x, y = layers(60, [8, 8], seed=6)
    acc = StreamingSimilarity(("cca_rho",))
    acc.update(x, y)
    with pytest.warns(FewRowsWarning):
        acc.result()


def test_streaming_errors() -> None:
    with pytest.raises(ValueError, match="no rows were added"):
        StreamingSimilarity().result()
    with pytest.raises(ValueError, match="cannot be derived"):
        StreamingSimilarity(("rsa",))
    with pytest.raises(ValueError, match="precision"):
        StreamingSimilarity(precision="half")  # type: ignore[arg-type]
    acc = StreamingSimilarity()
    with pytest.raises(ValueError, match="2-D"):
        acc.update(np.ones(5), np.ones((5, 2)))
    acc.update(np.ones((5, 3)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="same rows"):
        acc.update(np.ones((5, 3)), np.ones((4, 2)))


@pytest.mark.parametrize("memory_limit", [2**30, 2000], ids=["one pass", "tiled"])
def test_all_pairs_equals_one_shot(memory_limit: int) -> None:
    reps = layers(500, [9, 6, 9, 12], seed=7)
    sources = [RepresentationSource.from_array(("model", i), r) for i, r in enumerate(reps)]
    measures = ("linear_cka", "maxsim", "linreg", "svcca", "pwcca", "debiased_cka")
    results = all_pairs(sources, measures, chunk_rows=64, progress=False, memory_limit_bytes=memory_limit)
    assert [(r.a, r.b) for r in results] == [(a, b) for a in range(4) for b in range(a + 1, 4)]
    for r in results:
        assert (r.a_id, r.b_id, r.n_rows) == (("model", r.a), ("model", r.b), 500)
        for name in measures:
            got = flat(r.values[name])
            assert got == pytest.approx(expected_values(name, reps[r.a], reps[r.b]), rel=RTOL), (
                r.a,
                r.b,
                name,
            )


def test_all_pairs_chosen_pairs_float32_and_neurons() -> None:
    reps = layers(400, [5, 7, 6], seed=8)
    sources = [RepresentationSource.from_array(i, r) for i, r in enumerate(reps)]
    results = all_pairs(
        sources,
        ["cca_r2", "r2_lr"],
        pairs=[(2, 0), (1, 1)],
        progress=False,
        precision="float32",
        neuron_matches_too=True,
        chunk_rows=100,
    )
    assert [(r.a, r.b) for r in results] == [(2, 0), (1, 1)]
    first = results[0]
    assert first.values["cca_r2"] == pytest.approx(one_shot("cca_r2", reps[2], reps[0]), rel=1e-5)
    assert flat(first.values["r2_lr"]) == pytest.approx(expected_values("r2_lr", reps[2], reps[0]), rel=1e-5)
    assert results[1].values["cca_r2"] == pytest.approx(1.0, rel=1e-6)  # a representation with itself
    assert first.neurons is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = M.maxsim_per_neuron(reps[0], reps[2])
    np.testing.assert_array_equal(first.neurons.b_to_a.index, want.index)


def test_table_rows_follow_the_results_contract() -> None:
    reps = layers(200, [4, 3], seed=9)
    sources = [RepresentationSource.from_array(name, r) for name, r in zip("ab", reps, strict=True)]
    (result,) = all_pairs(sources, ["maxsim", "linear_cka"], progress=False)
    rows = result.table_rows()
    assert rows[0] == (
        "a",
        "b",
        "maxsim",
        "a->b",
        pytest.approx(one_shot("maxsim", reps[0], reps[1]), rel=RTOL),
    )
    assert rows[1] == (
        "b",
        "a",
        "maxsim",
        "a->b",
        pytest.approx(one_shot("maxsim", reps[1], reps[0]), rel=RTOL),
    )
    assert rows[2] == ("a", "b", "linear_cka", "sym", pytest.approx(one_shot("linear_cka", *reps), rel=RTOL))


def test_all_pairs_warns_once_about_constant_neurons() -> None:
    reps = layers(300, [5, 4, 4], seed=10)
    reps[1][:, 0] = 3.0
    sources = [RepresentationSource.from_array(i, r) for i, r in enumerate(reps)]
    with pytest.warns(ConstantNeuronWarning, match="1: 1") as record:
        all_pairs(sources, ["maxsim"], progress=False)
    assert sum(issubclass(w.category, ConstantNeuronWarning) for w in record) == 1


def test_all_pairs_from_an_activation_store(tmp_path: Path) -> None:
    lengths = [7, 5, 9, 6] * 20
    n = sum(lengths)
    reps = layers(n, [6, 6, 8, 8], seed=11)
    store = ActivationStore(tmp_path / "store", chunk_rows=32)
    entries = []
    for model, (first, second) in enumerate([(reps[0], reps[1]), (reps[2], reps[3])]):
        writer = store.writer(f"m{model}", {"name": f"model{model}"}, [0, 1], [first.shape[1]] * 2, lengths, None)
        writer.write_sentences(0, len(lengths), [first.astype(np.float32), second.astype(np.float32)], None)
        entries.append(writer.finalize())
    sources = [RepresentationSource.from_store(e, layer) for e in entries for layer in (0, 1)]
    assert sources[2].id == LayerId("model1", 0)
    results = all_pairs(sources, ["linear_cka", "cca_rho"], chunk_rows=50, progress=False)
    stored = [r.astype(np.float32) for r in reps]
    for r in results:
        assert r.values["linear_cka"] == pytest.approx(one_shot("linear_cka", stored[r.a], stored[r.b]), rel=RTOL)
        assert r.values["cca_rho"] == pytest.approx(one_shot("cca_rho", stored[r.a], stored[r.b]), rel=RTOL)


def test_sources_with_different_row_counts_are_named() -> None:
    reps = layers(100, [3, 3], seed=12)
    short = RepresentationSource.from_array("short", reps[1][:90])
    with pytest.raises(ValueError, match="'short' gave a chunk of 90 rows where 'full' gave 100"):
        all_pairs([RepresentationSource.from_array("full", reps[0]), short], ["linear_cka"], progress=False)
    with pytest.raises(ValueError, match="'short' has fewer rows"):
        all_pairs(
            [RepresentationSource.from_array("full", reps[0]), short],
            ["linear_cka"],
            chunk_rows=30,
            progress=False,
        )
    with pytest.raises(ValueError, match="'full' has more rows"):
        all_pairs(
            [short, RepresentationSource.from_array("full", reps[0])],
            ["linear_cka"],
            chunk_rows=30,
            progress=False,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measures": ["nope"]}, "'nope' cannot be derived"),
        ({"pairs": [(0, 5)]}, "not in 0..1"),
        ({"pairs": []}, "empty"),
        ({"chunk_rows": 0}, "chunk_rows"),
        ({"precision": "half"}, "precision"),
    ],
)
def test_all_pairs_argument_errors(kwargs: dict, message: str) -> None:
    reps = layers(40, [3, 3])
    args: dict = {"measures": ["linear_cka"], "progress": False}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        all_pairs([RepresentationSource.from_array(i, r) for i, r in enumerate(reps)], **args)


def test_all_pairs_on_auto_device_uses_cpu_without_cuda() -> None:
    reps = layers(120, [4, 4], seed=13)
    (result,) = all_pairs(
        [RepresentationSource.from_array(i, r) for i, r in enumerate(reps)],
        ["procrustes"],
        device="auto",
        progress=False,
    )
    assert result.values["procrustes"] == pytest.approx(one_shot("procrustes", *reps), rel=RTOL)


def test_pair_results_from_merged_and_grown_moments() -> None:
    from reprsim.engine import CrossMoments, pair_results

    reps = layers(300, [6, 5, 7], seed=14)
    left, right = CrossMoments([6, 5], device="cpu"), CrossMoments([6, 5], device="cpu")
    left.update([reps[0][:120], reps[1][:120]])
    right.update([reps[0][120:], reps[1][120:]])
    grown = left.merge(right).with_representations([7])
    for s in range(0, 300, 100):
        grown.update([reps[0][s : s + 100], reps[1][s : s + 100], reps[2][s : s + 100]])
    results = pair_results(grown, ["linear_cka", "linreg"], ids=["x", "y", "z"])
    assert [(r.a_id, r.b_id) for r in results] == [("x", "y"), ("x", "z"), ("y", "z")]
    for r in results:
        assert r.values["linear_cka"] == pytest.approx(one_shot("linear_cka", reps[r.a], reps[r.b]), rel=RTOL)
        assert flat(r.values["linreg"]) == pytest.approx(expected_values("linreg", reps[r.a], reps[r.b]), rel=RTOL)
    partial = CrossMoments([6, 5, 7], pairs=[(0, 1)], device="cpu")
    partial.update(reps)
    with pytest.raises(ValueError, match=r"needs block \(0, 2\)"):
        pair_results(partial, ["linear_cka"], pairs=[(0, 2)])


def test_a_one_dimensional_chunk_is_refused_by_name() -> None:
    X = np.random.default_rng(0).standard_normal((20, 3))
    for x, y in ((X, X[:, 0]), (X[:, 0], X)):
        with pytest.raises(ValueError, match=r"X and Y chunks must be 2-D \(rows x neurons\)"):
            StreamingSimilarity(device="cpu").update(x, y)


def test_a_bad_value_is_named_by_representation_and_row_of_the_whole_stream() -> None:
    """all_pairs streams chunks: an error must say which representation and which row of the corpus (word),
    not the index inside the engine and the row inside one chunk."""
    from reprsim.engine.pairs import RepresentationSource, all_pairs

    rng = np.random.default_rng(0)
    good = rng.standard_normal((20, 3))
    bad = rng.standard_normal((20, 2))
    bad[10, 1] = np.nan  # row 2 of the third chunk of 4 rows
    sources = [RepresentationSource.from_array("layer A", good), RepresentationSource.from_array("layer B", bad)]
    message = r"chunk of representation 'layer B' contains 1 NaN .*row 10 of the stream, row 2 of this chunk"
    with pytest.raises(ValueError, match=message):
        list(all_pairs(sources, ["linear_cka"], chunk_rows=4, device="cpu", progress=False))


def test_a_pair_listed_twice_is_an_error_not_a_silent_merge() -> None:
    """One result comes per pair, in the order given: merging a repeated pair would misalign the results with
    the caller's list. (b, a) is another pair (its directed values are the other way round)."""
    reps = layers(50, [3, 4], seed=9)
    sources = [RepresentationSource.from_array(i, r) for i, r in enumerate(reps)]
    with pytest.raises(ValueError, match=r"pair \(0, 1\) is listed twice \(positions 0 and 2\)"):
        all_pairs(sources, ["linear_cka"], pairs=[(0, 1), (1, 1), (0, 1)], progress=False)
    results = all_pairs(sources, ["linear_cka"], pairs=[(0, 1), (1, 0)], progress=False)
    assert [(r.a, r.b) for r in results] == [(0, 1), (1, 0)]
