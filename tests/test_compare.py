"""The all-pairs comparison against per-pair calls of the measure functions on the stored activations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from reprsim import measures
from reprsim.comparison import NOT_IN_COMPARE, compare, resolve_measures
from reprsim.results import ResultTable
from reprsim.store import ActivationStore, make_key

LENGTHS = [5, 7, 4, 6, 8, 5, 6, 7, 4, 6, 5, 7, 6, 5, 4, 8, 7, 6, 5, 4] * 6  # 20 x 6 sentences
N_WORDS = sum(LENGTHS)


def _attention_map(rng: np.random.Generator, heads: int, t: int) -> np.ndarray:
    logits = rng.standard_normal((heads, t, t))
    weights = np.exp(logits)
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def write_model(store: ActivationStore, name: str, layers: dict[int, np.ndarray], heads: int,
                corpus_hash: str = "corpus-1", seed: int = 0, lengths: list[int] = LENGTHS,
                variant: str | None = None) -> str:
    """A store entry straight from arrays (layer 0 has no attention, like embeddings); returns its key.
    variant: an extraction option, giving another entry (key) under the same display name."""
    rng = np.random.default_rng(seed)
    ids = sorted(layers)
    head_counts = [0 if layer == 0 else heads for layer in ids]
    manifest = {"name": name, "corpus_hash": corpus_hash, "model": name}
    if variant is not None:
        manifest["variant"] = variant
    writer = store.writer(make_key(name, manifest), manifest, ids, [layers[i].shape[1] for i in ids], lengths,
                          head_counts)
    attention = [[_attention_map(rng, h, t) if h else None for t in lengths] for h in head_counts]
    writer.write_sentences(0, len(lengths), [layers[i].astype(np.float32) for i in ids], attention)
    return writer.finalize().key


@pytest.fixture(scope="module")
def study_store(tmp_path_factory):
    """Two 'models' of 3 layers each sharing a latent signal, with attention on layers 1 and 2."""
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((N_WORDS, 4))
    store = ActivationStore(tmp_path_factory.mktemp("store"))
    for m, (name, width) in enumerate([("A", 6), ("B", 5)]):
        layers = {
            layer: latent @ rng.standard_normal((4, width)) + (0.5 + layer) * rng.standard_normal((N_WORDS, width))
            for layer in range(3)
        }
        write_model(store, name, layers, heads=2, seed=m)
    return store


def test_every_measure_equals_per_pair_calls(study_store):
    table = compare(study_store, measures=["all", "minibatch_cka", "uniformity_difference", "linear_predictivity"],
                    subsample_rows=N_WORDS,
                    attention_sentences=len(LENGTHS), progress=False)
    entries = {e.name: e for e in study_store.entries()}
    rows = {(e.name, layer): e.read_rows(layer, 0, e.n_words) for e in entries.values() for layer in e.layer_ids}
    maps = {(e.name, layer): list(e.iter_attention(layer))
            for e in entries.values() for layer in e.layer_ids if e.heads(layer)}
    frame = table.frame
    computed = [m for m in measures.available() if m not in NOT_IN_COMPARE]
    assert set(frame.measure) == set(computed)
    n_reps, n_att = len(rows), len(maps)
    for name in computed:
        info = measures.get(name)
        sub = frame[frame.measure == name]
        k = n_att if info.level == "attention" else n_reps
        assert len(sub) == (k * (k + 1) // 2 if info.symmetric else k * k), name
        for r in sub.itertuples():
            a, b = (r.model_a, r.layer_a), (r.model_b, r.layer_b)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if info.level == "attention":
                    expected = info.function(maps[a], maps[b])
                elif info.base == "linear_predictivity":  # its folds are runs of the corpus's sentences
                    expected = info.function(rows[a], rows[b], sentence_lengths=LENGTHS)
                else:
                    expected = info.function(rows[a], rows[b])
            # arccos near 1 turns a rounding error e of the similarity into sqrt(2e): 1e-16 -> 1.5e-8; so does a
            # square root of a near-cancellation (the engine's shape, Bures and soft-matching distances of a
            # layer with itself; Bures is not normalised, so its error scales with the traces).
            tolerance = {"angular_distance": 1e-7, "shape_metric": 1e-7, "soft_matching_distance": 1e-7,
                         "bures_distance": 1e-5}.get(name, 1e-9)
            assert r.value == pytest.approx(expected, rel=1e-6, abs=tolerance), (name, a, b)
            assert r.direction == ("sym" if info.symmetric else "a->b")


def test_previous_rows_are_kept_not_recomputed(study_store, monkeypatch):
    first = compare(study_store, measures=["linear_cka", "rsa"], models=["A"], progress=False)
    calls = []
    import reprsim.comparison_records
    from reprsim.engine import LinearFamily

    original = reprsim.comparison_records.score_pairs

    def counting(family, pairs, budget, **kwargs):
        if isinstance(family, LinearFamily):  # the streaming pass of the linear measures
            calls.append(list(pairs))
        return original(family, pairs, budget, **kwargs)

    monkeypatch.setattr(reprsim.comparison_records, "score_pairs", counting)
    both = compare(study_store, measures=["linear_cka", "rsa"], previous=first, progress=False)
    assert len(calls) == 1
    # Only pairs involving B's layers (indices 3..5) were streamed: A's 6 within-model pairs were not.
    assert all(3 in pair or 4 in pair or 5 in pair for pair in calls[0])
    assert len(both) == 2 * 21
    again = compare(study_store, measures=["linear_cka", "rsa"], previous=both, progress=False)
    assert len(calls) == 1 and len(again) == len(both)


def test_errors_name_the_problem(tmp_path, study_store):
    with pytest.raises(FileNotFoundError, match="activation store not found"):
        compare(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no complete entries"):
        compare(ActivationStore(tmp_path / "empty"))
    with pytest.raises(KeyError, match="unknown measure 'cka_linear'"):
        resolve_measures(["cka_linear"])
    with pytest.raises(KeyError, match="model 'C' is not in store"):
        compare(study_store, measures=["linear_cka"], models=["C"], progress=False)
    other = ActivationStore(tmp_path / "mixed")
    rng = np.random.default_rng(1)
    write_model(other, "A", {0: rng.standard_normal((N_WORDS, 3))}, heads=0)
    write_model(other, "B", {0: rng.standard_normal((N_WORDS - 4, 3))}, heads=0, corpus_hash="corpus-2",
                lengths=LENGTHS[:-1])
    with pytest.raises(ValueError, match="extracted from different corpora"):
        compare(other, measures=["linear_cka"], progress=False)


def test_results_round_trip_and_subsample_flag(study_store, tmp_path):
    table = compare(study_store, measures=["rbf_cka", "linear_cka"], subsample_rows=100, progress=False)
    path = table.save(tmp_path / "r.parquet")
    loaded = ResultTable.load(path)
    f = loaded.frame
    assert set(f[f.measure == "rbf_cka"].n_rows) == {100} and f[f.measure == "rbf_cka"].subsample.all()
    assert set(f[f.measure == "linear_cka"].n_rows) == {N_WORDS} and not f[f.measure == "linear_cka"].subsample.any()
    assert loaded.provenance["corpus_hash"] == "corpus-1"


def test_a_model_extracted_again_is_compared_again_not_taken_from_old_results(tmp_path):
    """Results are keyed by display name; rows computed from a store entry that has since been replaced
    (the model extracted again with another option) must not be kept."""
    rng = np.random.default_rng(3)
    first = {layer: rng.standard_normal((N_WORDS, 4)) for layer in range(2)}
    again = {layer: rng.standard_normal((N_WORDS, 4)) for layer in range(2)}
    other = {layer: first[layer] @ rng.standard_normal((4, 3)) for layer in range(2)}
    store = ActivationStore(tmp_path / "store")
    old_key = write_model(store, "m", first, heads=2)
    write_model(store, "o", other, heads=2, seed=1)
    old = compare(store, measures=["linear_cka"], progress=False)
    store.remove(old_key)
    new_key = write_model(store, "m", again, heads=2, variant="first subword")
    with pytest.warns(UserWarning, match="results for 'm' came from other store entries"):
        updated = compare(store, measures=["linear_cka"], previous=old, progress=False)
    fresh = compare(store, measures=["linear_cka"], progress=False)
    assert updated.frame.sort_values(["model_a", "layer_a", "model_b", "layer_b"])["value"].tolist() == pytest.approx(
        fresh.frame.sort_values(["model_a", "layer_a", "model_b", "layer_b"])["value"].tolist()
    )
    assert updated.value("linear_cka", ("m", 1), ("o", 1)) != pytest.approx(old.value("linear_cka", ("m", 1), ("o", 1)))
    assert updated.provenance["entries"]["m"] == new_key


def test_two_entries_of_one_name_are_told_apart_by_key(tmp_path):
    rng = np.random.default_rng(4)
    layers = {layer: rng.standard_normal((N_WORDS, 3)) for layer in range(2)}
    store = ActivationStore(tmp_path / "store")
    key_a = write_model(store, "m", layers, heads=2, variant="last")
    key_b = write_model(store, "m", layers, heads=2, variant="first")
    with pytest.raises(ValueError, match=r"two store entries share the display name 'm'.*choose one by its key"):
        compare(store, measures=["linear_cka"], progress=False)
    with pytest.raises(ValueError, match="2 store entries are named 'm'"):
        compare(store, measures=["linear_cka"], models=["m"], progress=False)
    table = compare(store, measures=["linear_cka"], models=[key_b], progress=False)
    assert table.provenance["entries"] == {"m": key_b} and key_a != key_b


def test_mutual_knn_on_too_few_words_fails_before_the_other_measures(tmp_path, monkeypatch):
    import reprsim.comparison as comparison

    lengths = [3, 4]  # 7 words: fewer than k + 1 = 11
    store = ActivationStore(tmp_path / "store")
    write_model(store, "m", {0: np.random.default_rng(0).standard_normal((7, 3))}, heads=0, lengths=lengths)
    monkeypatch.setattr(comparison, "streamed_records", lambda *a, **k: pytest.fail("computed before checking"))
    with pytest.raises(ValueError, match=r"mutual_knn .* needs more than 10 rows; the corpus has 7 words"):
        compare(store, measures=["linear_cka", "mutual_knn"], progress=False)


def test_rerun_with_the_models_in_another_order_keeps_the_old_rows(tmp_path, monkeypatch):
    """Symmetric pairs stored as (B, A) by a run that listed B first are done for a run that lists A first."""
    import reprsim.comparison_records as comparison

    rng = np.random.default_rng(5)
    store = ActivationStore(tmp_path / "store")
    for seed, name in enumerate(["A", "B", "C"]):
        write_model(store, name, {0: rng.standard_normal((N_WORDS, 4)), 1: rng.standard_normal((N_WORDS, 3))},
                    heads=2, seed=seed)
    measures_ = ["linear_cka", "maxsim", "rsa"]
    first = compare(store, measures=measures_, models=["B", "A"], subsample_rows=N_WORDS, progress=False)
    computed: list[tuple[str, int, str, int]] = []
    real_todo = comparison._todo

    def recording(reps, measure, done):
        pairs = real_todo(reps, measure, done)
        computed.extend((reps[i].id.model, reps[j].id.model) for i, j in pairs)
        return pairs

    monkeypatch.setattr(comparison, "_todo", recording)
    again = compare(store, measures=measures_, previous=first, subsample_rows=N_WORDS, progress=False)
    assert computed and all("C" in pair for pair in computed)  # only pairs with the new model
    fresh = compare(store, measures=measures_, subsample_rows=N_WORDS, progress=False)
    assert len(again) == len(fresh)
    for r in fresh.frame.itertuples(index=False):
        got = again.value(r.measure, (r.model_a, r.layer_a), (r.model_b, r.layer_b))
        assert got == pytest.approx(r.value, rel=1e-9, abs=1e-12)


def test_warnings_raised_during_compare_are_kept_in_the_provenance(tmp_path):
    """FewRowsWarning concerns the CCA-type measures only; it is still raised, and a later run keeps it."""
    from reprsim.measures import FewRowsWarning

    rng = np.random.default_rng(3)
    store = ActivationStore(tmp_path / "acts")
    lengths = [10] * 6  # 60 rows for widths of 8: fewer than 10 x width
    for name in ("A", "B"):
        writer = store.writer(name, {"name": name}, [0], [8], lengths, None, "float32")
        writer.write_sentences(0, len(lengths), [rng.standard_normal((60, 8)).astype(np.float32)], None)
        writer.finalize()
    with pytest.warns(FewRowsWarning):
        table = compare(store, measures=["cca_rho", "linear_cka"], progress=False)
    entries = table.provenance["warnings"]
    assert {e["measure"] for e in entries} == {"cca_rho"}
    assert entries[0]["category"] == "FewRowsWarning" and "fewer than 10 x" in entries[0]["message"]
    with pytest.warns(FewRowsWarning):
        more = compare(store, measures=["cca_rho", "linear_cka", "svcca"], previous=table, progress=False)
    assert {e["measure"] for e in more.provenance["warnings"]} == {"cca_rho", "svcca"}


def test_linear_predictivity_with_options_and_tiles_equals_the_one_shot_function(study_store):
    from reprsim.comparison_entries import representations
    from reprsim.comparison_records import folded_records

    spec = "linear_predictivity(folds=3,lam=2.5,score=r2)"
    entries = {e.name: e for e in study_store.entries()}
    rows = {(e.name, layer): e.read_rows(layer, 0, e.n_words) for e in entries.values() for layer in e.layer_ids}
    reps = representations(study_store.entries())
    whole = folded_records(reps, [spec], set(), "cpu", 64, False, LENGTHS)
    tiled = folded_records(reps, [spec], set(), "cpu", 64, False, LENGTHS, budget=8 * 6 * 6 * 4 * 3)
    assert len(whole) == len(tiled) == len(reps) ** 2
    for r, t in zip(whole, tiled, strict=True):
        a, b = (r["model_a"], r["layer_a"]), (r["model_b"], r["layer_b"])
        want = measures.linear_predictivity(rows[a], rows[b], lam=2.5, score="r2", folds=3, sentence_lengths=LENGTHS)
        assert r["value"] == pytest.approx(want, rel=1e-9, abs=1e-12) and t["value"] == pytest.approx(r["value"],
                                                                                                       abs=1e-12)
    with pytest.raises(ValueError, match=r"option\(s\) groups do not apply in an all-pairs comparison"):
        compare(study_store, measures=["linear_predictivity(groups=[0])"], progress=False)
    with pytest.raises(ValueError, match=r"option folds=500 exceeds the number of sentences \(120\)"):
        compare(study_store, measures=["linear_predictivity(folds=500)"], progress=False)


def test_recorded_warnings_are_raised_again_once_and_also_when_the_work_fails():
    import warnings as w

    from reprsim.comparison import recording_warnings
    from reprsim.measures import FewRowsWarning

    sink: list[dict[str, str]] = []
    with w.catch_warnings(record=True) as outer:
        w.simplefilter("always")
        with recording_warnings(["cca_rho"], sink):
            for _ in range(5):
                w.warn("too few rows", FewRowsWarning, stacklevel=1)
    assert [str(x.message) for x in outer] == ["too few rows"]  # once, not five times
    assert sink == [{"category": "FewRowsWarning", "message": "too few rows", "measure": "cca_rho"}]
    with w.catch_warnings(record=True) as outer:
        w.simplefilter("always")
        with pytest.raises(RuntimeError, match="the work failed"), recording_warnings(["cca_rho"], []):
            w.warn("raised before the failure", FewRowsWarning, stacklevel=1)
            raise RuntimeError("the work failed")
    assert [str(x.message) for x in outer] == ["raised before the failure"]


# ------------------------------------------------------------------------------------ CKA in sample space


@pytest.fixture(scope="module")
def wide_store(tmp_path_factory):
    """Few rows and wide layers: the Gram-space route of linear and debiased CKA is the cheaper one."""
    rng = np.random.default_rng(5)
    lengths = [3] * 12  # 36 rows
    latent = rng.standard_normal((36, 5))
    store = ActivationStore(tmp_path_factory.mktemp("wide"))
    for m, name in enumerate(["A", "B"]):
        layers = {layer: latent @ rng.standard_normal((5, 90)) + rng.standard_normal((36, 90)) for layer in range(3)}
        write_model(store, name, layers, heads=0, seed=m, corpus_hash="wide", lengths=lengths)
    return store


def test_cka_in_sample_space_equals_feature_space_and_the_one_shot_functions(wide_store):
    from reprsim.comparison import plan_lines

    names = ["linear_cka", "debiased_cka"]
    tables = {space: compare(wide_store, measures=names, space=space, precision="float64", progress=False).frame
              for space in ("auto", "feature", "gram")}
    keys = ["model_a", "layer_a", "model_b", "layer_b", "measure", "direction"]
    described = [*keys, "level", "n_rows", "subsample"]
    feature = tables["feature"].sort_values(keys).reset_index(drop=True)
    for space in ("auto", "gram"):
        other = tables[space].sort_values(keys).reset_index(drop=True)
        assert other[described].equals(feature[described])
        np.testing.assert_allclose(other["value"], feature["value"], rtol=0, atol=1e-12)
    rows = {(e.name, layer): e.read_rows(layer, 0, e.n_words) for e in wide_store.entries() for layer in e.layer_ids}
    for r in feature.itertuples():
        x, y = rows[(r.model_a, r.layer_a)], rows[(r.model_b, r.layer_b)]
        assert r.value == pytest.approx(getattr(measures, r.measure)(x, y, space="feature"), abs=1e-12)
    plan = "\n".join(plan_lines(wide_store, names))
    assert "CKA route: in sample space (linear_cka, debiased_cka)" in plan and "linear measures" not in plan
    assert "CKA route: in feature space" in "\n".join(plan_lines(wide_store, names, space="feature"))


def test_auto_keeps_cka_in_the_pass_beside_other_linear_measures_or_with_statistics(wide_store):
    from reprsim.comparison import plan_lines

    assert "in feature space" in "\n".join(plan_lines(wide_store, ["linear_cka", "maxsim"]))
    assert "in feature space" in "\n".join(plan_lines(wide_store, ["linear_cka"], ci="jackknife", blocks=4))
    mixed = "\n".join(plan_lines(wide_store, ["linear_cka", "maxsim"], space="gram"))
    assert "in sample space (linear_cka)" in mixed and "linear measures (1)" in mixed


def test_space_options_are_checked(wide_store):
    with pytest.raises(ValueError, match="space must be one of auto, feature, gram, got 'grams'"):
        compare(wide_store, measures=["linear_cka"], space="grams", progress=False)
    with pytest.raises(ValueError, match=r"space='gram' \(--space gram\) computes no intervals"):
        compare(wide_store, measures=["linear_cka"], space="gram", ci="jackknife", blocks=4, progress=False)
    with pytest.raises(ValueError, match="applies to linear_cka and debiased_cka only; none of maxsim"):
        compare(wide_store, measures=["maxsim"], space="gram", progress=False)


def test_neighbourhood_measures_share_one_graph_per_layer(study_store, monkeypatch):
    from reprsim.measures import sample_fit

    built: list[int] = []
    real = sample_fit.prepared_graph

    def counting(x, *args, **kwargs):
        built.append(x.shape[0])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(sample_fit, "prepared_graph", counting)
    names = ["mutual_knn", "jaccard_knn", "cknna", "mutual_knn(k=5)", "second_order_cosine"]
    table = compare(study_store, measures=names, subsample_rows=N_WORDS, progress=False)
    layers = sum(len(e.layer_ids) for e in study_store.entries())
    # k=10 clipped (mutual_knn, cknna), k=10 unclipped (jaccard_knn's and second_order_cosine's default), k=5
    # clipped: 3 graphs a layer
    assert len(built) == 3 * layers
    rows = {(e.name, layer): e.read_rows(layer, 0, e.n_words) for e in study_store.entries() for layer in e.layer_ids}
    for r in table.frame.itertuples():
        info = measures.get(r.measure)
        x, y = rows[(r.model_a, r.layer_a)], rows[(r.model_b, r.layer_b)]
        assert r.value == pytest.approx(info.function(x, y, **info.options), abs=1e-12)


def test_shards_accumulate_cka_in_feature_space_where_compare_would_take_sample_space(wide_store, tmp_path):
    from reprsim.shards import accumulate_shard, merge_shards

    names = ["linear_cka", "debiased_cka"]
    files = [accumulate_shard(wide_store, f"{i}/2", tmp_path, measures=names, progress=False) for i in (1, 2)]
    merged = merge_shards(files, progress=False).frame
    local = compare(wide_store, measures=names, progress=False)
    assert local.provenance["sample_space"] == names
    keys = ["model_a", "layer_a", "model_b", "layer_b", "measure", "direction"]
    np.testing.assert_allclose(merged.sort_values(keys)["value"], local.frame.sort_values(keys)["value"], atol=1e-12)


def test_the_plan_and_sample_family_follow_the_statistics_asked_for(wide_store):
    from reprsim.comparison import plan_lines
    from reprsim.comparison_entries import representations
    from reprsim.comparison_records import gram_space_measures
    from reprsim.engine import SampleFamily
    from reprsim.inference import NO_INFERENCE, InferenceOptions

    assert "in feature space" in "\n".join(plan_lines(wide_store, ["linear_cka"], null="permutation"))
    with pytest.raises(ValueError, match="computes no intervals or nulls"):
        plan_lines(wide_store, ["linear_cka"], space="gram", null="analytic")
    with pytest.raises(ValueError, match=r"on 30,000 rows takes 3\.4 GiB, more than a quarter of the 2 GiB"):
        gram_space_measures(["linear_cka"], "gram", 30_000, [8, 8], NO_INFERENCE)
    reps = representations(wide_store.entries())
    rows = np.arange(36)
    with_statistics = SampleFamily(reps, "linear_cka", rows, 64, inference=InferenceOptions(ci="jackknife", blocks=4))
    assert not with_statistics.fitted_here and SampleFamily(reps, "linear_cka", rows, 64).fitted_here


# ------------------------------------------------------------------------------------ precision of the pass


def test_auto_precision_runs_the_cka_family_in_float32_and_the_rest_in_float64(study_store):
    from reprsim.comparison import plan_lines

    names = ["linear_cka", "maxsim"]
    keys = ["model_a", "layer_a", "model_b", "layer_b", "measure", "direction"]
    auto = compare(study_store, measures=names, progress=False)
    exact = compare(study_store, measures=names, precision="float64", progress=False)
    assert auto.provenance["linear_precision"] == "float32" and exact.provenance["linear_precision"] == "float64"
    a, b = (t.frame.sort_values(keys).reset_index(drop=True) for t in (auto, exact))
    assert a[keys].equals(b[keys])
    np.testing.assert_allclose(a["value"], b["value"], rtol=0, atol=1e-6)
    assert not np.array_equal(a["value"], b["value"])  # float32 products did run
    mixed = compare(study_store, measures=["linear_cka", "svcca"], progress=False)
    assert mixed.provenance["linear_precision"] == "float64"
    assert "float32 products" in "\n".join(plan_lines(study_store, names))
    assert "float64 products" in "\n".join(plan_lines(study_store, names, ci="jackknife", blocks=4))


def test_precision_options_are_checked(study_store):
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'float64', 'float32'\), got 'half'"):
        compare(study_store, measures=["linear_cka"], precision="half", progress=False)
    with pytest.raises(ValueError, match=r"precision='float32' .* Ray backend's row shards are summed in float64"):
        compare(study_store, measures=["linear_cka"], precision="float32", backend="ray", progress=False)
