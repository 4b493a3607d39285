"""Shard and merge: moments files round-trip, N shards give compare's table, and bad merges are refused."""

from __future__ import annotations

import itertools
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from reprsim.cli import main
from reprsim.comparison import compare
from reprsim.engine import CrossMoments
from reprsim.engine.moments_state import moments_arrays, moments_from_arrays
from reprsim.shards import Shard, accumulate_shard, merge_shards, shard_bytes, shard_rows, shard_sentences
from reprsim.store import ActivationStore
from test_compare import LENGTHS, N_WORDS, write_model

KEYS = ["model_a", "layer_a", "model_b", "layer_b", "measure", "direction"]


def _layers(rng: np.random.Generator, latent: np.ndarray, width: int) -> dict[int, np.ndarray]:
    return {layer: latent @ rng.standard_normal((latent.shape[1], width))
            + (0.5 + layer) * rng.standard_normal((latent.shape[0], width)) + 3.0 for layer in range(3)}


def two_model_store(folder: Path, seed: int) -> ActivationStore:
    """Two 'models' of 3 layers sharing a latent signal, with attention, offset from zero."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((N_WORDS, 4))
    made = ActivationStore(folder)
    for m, (name, width) in enumerate([("A", 6), ("B", 5)]):
        write_model(made, name, _layers(rng, latent, width), heads=2, seed=m)
    return made


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ActivationStore:
    return two_model_store(tmp_path_factory.mktemp("store"), seed=1)


@pytest.fixture(scope="module")
def local(store: ActivationStore):
    return compare(store, ["all"], progress=False, subsample_rows=300, attention_sentences=40)


def _accumulate_all(store: ActivationStore, folder: Path, count: int, measures=("all",), **options) -> list[Path]:
    options = {"subsample_rows": 300, "attention_sentences": 40, "progress": False, **options}
    return [accumulate_shard(store, Shard(i, count), folder, measures, **options) for i in range(1, count + 1)]


STATISTICS = ["se", "ci_low", "ci_high", "null_mean", "p_value", "calibrated"]


def assert_same_statistics(got, want) -> None:
    """Values and every statistic equal to 1e-10 (missing in the same places), the replicates too."""
    assert got.frame[KEYS].equals(want.frame[KEYS])
    for column in ["value"] + [c for c in STATISTICS if c in want.frame]:
        np.testing.assert_allclose(got.frame[column].to_numpy(float), want.frame[column].to_numpy(float),
                                   rtol=0, atol=1e-10, equal_nan=True, err_msg=column)
    assert {k: v for k, v in got.provenance.items() if k != "shards"} == want.provenance
    compared = 0
    for row in want.frame.itertuples():
        pair = row.measure, (row.model_a, row.layer_a), (row.model_b, row.layer_b)
        mine, theirs = got.uncertainty(*pair), want.uncertainty(*pair)
        assert mine.replicate_kind == theirs.replicate_kind
        if theirs.replicates is not None:
            np.testing.assert_allclose(mine.replicates, theirs.replicates, rtol=0, atol=1e-10)
            compared += 1
    assert compared > 0


# --- moments files ---------------------------------------------------------------------------------------
def test_moments_arrays_round_trip_and_merge_equal_one_pass_by_numpy():
    rng = np.random.default_rng(0)
    widths = [3, 4, 2]
    rows = [rng.standard_normal((90, w)) * (1 + w) + 1e3 for w in widths]
    shards = []
    for lo, hi in ((0, 25), (25, 70), (70, 90)):
        m = CrossMoments(widths, row_norms=True, device="cpu")
        m.update([x[lo:hi] for x in rows])
        shards.append(moments_from_arrays(dict(moments_arrays(m))))
    merged = shards[0].merge(shards[1]).merge(shards[2])
    z = np.hstack(rows)
    zc = z - z.mean(0)
    starts = np.cumsum([0, *widths])
    norms = [np.square(zc[:, starts[a]:starts[a + 1]]).sum(1) for a in range(3)]
    for a in range(3):
        for b in range(a, 3):
            expected = zc[:, starts[a]:starts[a + 1]].T @ zc[:, starts[b]:starts[b + 1]]
            np.testing.assert_allclose(merged.centred(a, b).numpy(), expected, rtol=1e-9, atol=1e-7)
            assert merged.centred_norm_product(a, b) == pytest.approx(float(norms[a] @ norms[b]), rel=1e-9)
    assert merged.n_rows() == 90


@pytest.mark.parametrize("damage, message", [
    (lambda a: a.pop("panel0.product"), "'panel0.product' is missing"),
    (lambda a: a.__setitem__("rep1.total", np.zeros(7)), "'rep1.total' has shape (7,)"),
    (lambda a: a["panel0.product"].__setitem__((0, 0), np.nan), "'panel0.product' holds non-finite values"),
    (lambda a: a.__setitem__("widths", np.asarray([3, -1])), "width"),
])
def test_a_damaged_moments_array_is_refused_by_name(damage, message):
    m = CrossMoments([3, 2], device="cpu")
    m.update([np.ones((4, 3)) * np.arange(4)[:, None], np.arange(8.0).reshape(4, 2)])
    arrays = moments_arrays(m)
    damage(arrays)
    with pytest.raises(ValueError, match=r"shard\.npz: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        moments_from_arrays(arrays, what="shard.npz")


def test_moments_without_rows_cannot_be_written():
    with pytest.raises(ValueError, match="seen no rows"):
        moments_arrays(CrossMoments([2, 2], device="cpu"))


# --- the split -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 2, 7, 33, len(LENGTHS)])
def test_shards_are_contiguous_runs_of_whole_sentences_of_about_equal_words(count):
    runs = [shard_sentences(LENGTHS, Shard(i, count)) for i in range(1, count + 1)]
    assert runs[0][0] == 0 and runs[-1][1] == len(LENGTHS)
    assert all(stop == nxt for (_, stop), (nxt, _) in itertools.pairwise(runs))
    assert all(first < stop for first, stop in runs)
    words = [sum(LENGTHS[first:stop]) for first, stop in runs]
    assert max(words) - min(words) <= 2 * max(LENGTHS)
    rows = [shard_rows(LENGTHS, Shard(i, count)) for i in range(1, count + 1)]
    assert rows[0][0] == 0 and rows[-1][1] == N_WORDS and all(b - a == w for (a, b), w in zip(rows, words,
                                                                                              strict=True))


def test_shard_names_and_bounds():
    assert Shard.parse(" 3 / 8 ") == Shard(3, 8) and str(Shard(3, 8)) == "3/8"
    assert Shard(3, 8).file_name == "moments-00003-of-00008.npz"
    for text in ("0/4", "5/4", "3", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(text)
    with pytest.raises(ValueError, match="4 sentences, fewer than 5 shards"):
        shard_sentences([3, 2, 5, 1], Shard(1, 5))
    assert shard_bytes([3, 2]) == 8 * (9 + 6 + 4)


# --- merge equals compare --------------------------------------------------------------------------------
@pytest.mark.parametrize("count, chunk_rows", [(1, 8192), (3, 50), (7, 33)])
def test_n_shards_merged_give_compares_table(store, local, tmp_path, count, chunk_rows):
    files = _accumulate_all(store, tmp_path / "shards", count, chunk_rows=chunk_rows)
    assert [f.name for f in files] == [Shard(i, count).file_name for i in range(1, count + 1)]
    merged = merge_shards([tmp_path / "shards"], progress=False)
    a, b = local.frame, merged.frame
    assert a[KEYS].equals(b[KEYS])
    assert set(a.measure) == set(b.measure) and len(set(a.measure)) > 20  # linear, n x n and attention
    np.testing.assert_allclose(b.value.to_numpy(), a.value.to_numpy(), rtol=0, atol=1e-10)
    assert merged.provenance["shards"] == count
    assert {k: v for k, v in merged.provenance.items() if k != "shards"} == local.provenance


@pytest.mark.parametrize("ci", ["none", "jackknife"])
def test_column_tiles_of_shards_merge_into_compares_table(store, tmp_path, ci):
    from reprsim.comparison import plan_lines

    measures = ["linear_cka", "debiased_cka", "svcca", "maxsim", "procrustes"]
    stats = {"ci": ci, "null": "analytic", "blocks": 5} if ci != "none" else {}
    small = 8 * 6 * 6 * 12 * (7 if ci != "none" else 1)  # a few layers' blocks per tile
    planned = plan_lines(store, measures, memory_per_task=small, **{k: v for k, v in stats.items() if k != "null"})
    tiles = int(re.search(r"in (\d+) column tiles", planned[1]).group(1))
    assert tiles > 2
    with pytest.raises(ValueError, match=rf"the study's blocks need {tiles} column tiles .*give each job --tile t/"):
        accumulate_shard(store, "1/2", tmp_path, measures, progress=False, memory_per_task=small, **stats)
    for i in (1, 2):
        for t in range(1, tiles + 1):
            accumulate_shard(store, f"{i}/2", tmp_path / "m", measures, progress=False, memory_per_task=small,
                             tile=f"{t}/{tiles}", **stats)
    files = sorted((tmp_path / "m").iterdir())
    assert len(files) == 2 * tiles and files[0].name == f"moments-00001-of-00002-tile-00001-of-{tiles:05d}.npz"
    merged = merge_shards([tmp_path / "m"], progress=False)
    want = compare(store, measures, progress=False, **stats)
    if ci == "none":
        assert merged.frame[KEYS].equals(want.frame[KEYS])
        np.testing.assert_allclose(merged.frame.value.to_numpy(), want.frame.value.to_numpy(), rtol=0, atol=1e-10)
    else:
        assert_same_statistics(merged, want)
    assert merged.provenance["shards"] == 2
    # A budget other than the default that needs no tiles: the files record it, and the merge plans with it.
    for i in (1, 2):
        accumulate_shard(store, f"{i}/2", tmp_path / "big", measures, progress=False, memory_per_task=1 << 40, **stats)
    np.testing.assert_allclose(merge_shards([tmp_path / "big"], progress=False).frame.value.to_numpy(),
                               want.frame.value.to_numpy(), rtol=0, atol=1e-10)
    files[1].unlink()
    with pytest.raises(ValueError, match=rf"shards 1/2 of tile 2/{tiles} are missing"):
        merge_shards([tmp_path / "m"], progress=False)
    with pytest.raises(ValueError, match=r"--tile 'second': write it as t/T"):
        accumulate_shard(store, "1/2", tmp_path, measures, progress=False, memory_per_task=small, tile="second")
    with pytest.raises(ValueError, match=rf"--tile 1/{tiles + 1}: the study has {tiles} column tile"):
        accumulate_shard(store, "1/2", tmp_path, measures, progress=False, memory_per_task=small,
                         tile=f"1/{tiles + 1}", **stats)


def test_files_given_in_any_order_and_one_by_one_merge_alike(store, local, tmp_path):
    files = _accumulate_all(store, tmp_path, 3, measures=["linear_cka", "maxsim"])
    merged = merge_shards(list(reversed(files)), progress=False)
    joined = merged.frame.merge(local.frame, on=KEYS, suffixes=("", "_local"), validate="one_to_one")
    assert len(joined) == len(merged.frame) == (local.frame.measure.isin(["linear_cka", "maxsim"])).sum()
    np.testing.assert_allclose(joined.value.to_numpy(), joined.value_local.to_numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("ci, count, chunk_rows", [("bootstrap", 3, 50), ("jackknife", 4, 8192)])
def test_statistics_through_shards_equal_compares(store, tmp_path, ci, count, chunk_rows):
    # 7 sentence blocks over 3 or 4 shards: shard boundaries cut blocks, which the merge adds back.
    measures = ["linear_cka", "debiased_cka", "pwcca", "maxsim", "procrustes", "rbf_cka", "attention_js"]
    stats = {"ci": ci, "null": "analytic", "blocks": 7, "resamples": 40}
    local = compare(store, measures, progress=False, subsample_rows=300, attention_sentences=40, **stats)
    _accumulate_all(store, tmp_path, count, measures, chunk_rows=chunk_rows, **stats)
    merged = merge_shards([tmp_path], progress=False)
    assert merged.frame.ci_low.notna().sum() > 0 and merged.provenance["inference"]["options"]["ci"] == ci
    assert merged.provenance["shards"] == count
    assert_same_statistics(merged, local)


def test_shards_with_other_statistics_or_a_missing_block_are_refused(store, tmp_path):
    from reprsim.engine.block_moments import BlockedMoments
    from reprsim.engine.moments_state import block_parts_from_arrays

    first = accumulate_shard(store, "1/2", tmp_path / "a", ["linear_cka"], progress=False, ci="jackknife", blocks=6)
    other = accumulate_shard(store, "2/2", tmp_path / "b", ["linear_cka"], progress=False, ci="jackknife", blocks=5)
    plain = accumulate_shard(store, "2/2", tmp_path / "c", ["linear_cka"], progress=False)
    for pair in ([first, other], [first, plain], [plain, first]):  # with statistics or without, either order
        with pytest.raises(ValueError, match="shards of different studies: their inference differ"):
            merge_shards(pair, progress=False)
    with np.load(first, allow_pickle=False) as data:
        parts = block_parts_from_arrays({k: data[k] for k in data.files if k != "record"}, what=first.name)
    bounds = np.asarray([0, 100, 200, 300, 400, 500, N_WORDS])
    with pytest.raises(ValueError, match=r"sentence blocks \[\d.*\] are missing"):
        BlockedMoments.from_parts(parts, bounds)


# --- merges refused ----------------------------------------------------------------------------------------
def test_moments_that_do_not_match_their_record_are_refused(store, tmp_path):
    files = _accumulate_all(store, tmp_path / "s", 3, measures=["linear_cka"])
    half = accumulate_shard(store, "1/2", tmp_path / "half", ["linear_cka"], progress=False)
    with np.load(files[0], allow_pickle=False) as first, np.load(half, allow_pickle=False) as second:
        record, arrays = first["record"], {k: second[k] for k in second.files if k != "record"}
        assert int(first["rep.n"][0]) != int(second["rep.n"][0])
    np.savez(files[0], allow_pickle=False, record=record, **arrays)  # shard 1/3's record, 1/2's sums
    with pytest.raises(ValueError, match=r"moments-00001-of-00003\.npz: its moments hold \d+ rows, not the \d+ of "
                                         r"shard 1/3 .*the file is damaged"):
        merge_shards([tmp_path / "s"], progress=False)


def test_a_shard_merged_twice_or_missing_is_an_error_naming_the_files(store, tmp_path):
    files = _accumulate_all(store, tmp_path / "s", 3, measures=["linear_cka"])
    with pytest.raises(ValueError, match=r"moments-00002-of-00003\.npz is given twice"):
        merge_shards([*files, files[1]], progress=False)
    copy = tmp_path / "copy.npz"
    shutil.copy(files[1], copy)
    with pytest.raises(ValueError, match=r"moments-00002-of-00003\.npz and .*copy\.npz are both shard 2/3"):
        merge_shards([*files, copy], progress=False)
    with pytest.raises(ValueError, match=r"shards 2/3 are missing \(have 2 of 3\)"):
        merge_shards([files[0], files[2]], progress=False)


def test_shards_of_different_studies_or_splits_are_refused(store, tmp_path):
    cka = _accumulate_all(store, tmp_path / "cka", 2, measures=["linear_cka"])
    maxsim = _accumulate_all(store, tmp_path / "maxsim", 2, measures=["maxsim"])
    only_a = accumulate_shard(store, "2/2", tmp_path / "a", ["linear_cka"], models=["A"], progress=False)
    thirds = accumulate_shard(store, "2/3", tmp_path / "thirds", ["linear_cka"], progress=False)
    with pytest.raises(ValueError, match=r"cka/moments-00001-of-00002\.npz and .*maxsim/moments-00002-of-00002\.npz "
                                         r"are shards of different studies: their measures differ"):
        merge_shards([cka[0], maxsim[1]], progress=False)
    with pytest.raises(ValueError, match="different studies: their entries differ"):
        merge_shards([cka[0], only_a], progress=False)
    with pytest.raises(ValueError, match=r"is shard 1/2 but .* is shard 2/3"):
        merge_shards([cka[0], thirds], progress=False)


def test_a_store_changed_since_the_shards_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    latent = rng.standard_normal((N_WORDS, 3))
    store = ActivationStore(tmp_path / "store")
    write_model(store, "A", _layers(rng, latent, 4), heads=0)
    write_model(store, "B", _layers(rng, latent, 3), heads=0)
    files = _accumulate_all(store, tmp_path / "s", 2, measures=["linear_cka"])
    store.remove(next(e.key for e in store.entries() if e.name == "B"))
    write_model(store, "B", _layers(rng, latent, 3), heads=0, variant="again")
    with pytest.raises(ValueError, match=r"from store entry 'B-.*' of model 'B', but the store .* now holds"):
        merge_shards(files, progress=False)


def test_files_that_are_not_moments_are_refused_without_unpickling(store, tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz: not a readable moments file"):
        merge_shards([tmp_path / "junk.npz"], progress=False)
    np.savez(tmp_path / "pickled.npz", record=np.array([{"format": "reprsim-moments"}], dtype=object))
    with pytest.raises(ValueError, match=r"pickled\.npz: not a readable moments file.*pickle"):
        merge_shards([tmp_path / "pickled.npz"], progress=False)
    np.savez(tmp_path / "other.npz", record=np.asarray('{"format": "something-else"}'))
    with pytest.raises(ValueError, match=r"other\.npz: it is not a reprsim moments file"):
        merge_shards([tmp_path / "other.npz"], progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no moments files"):
        merge_shards([tmp_path / "empty"], progress=False)
    with pytest.raises(FileNotFoundError, match="nope"):
        merge_shards([tmp_path / "nope"], progress=False)


def test_shards_need_a_linear_measure(store, tmp_path):
    with pytest.raises(ValueError, match="nothing to accumulate: run `reprsim compare` instead"):
        accumulate_shard(store, "1/2", tmp_path, ["rsa"], progress=False)


def test_an_interrupted_write_leaves_no_file(store, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(KeyboardInterrupt):
        accumulate_shard(store, "1/2", tmp_path, ["linear_cka"], progress=False)
    assert list(tmp_path.iterdir()) == []


# --- the command line --------------------------------------------------------------------------------------
def test_accumulate_and_merge_on_the_command_line(store, local, tmp_path, capsys):
    for i in (1, 2):
        assert main(["accumulate", "--store", str(store.path), "--shard", f"{i}/2", "--out", str(tmp_path / "m"),
                     "--measures", "linear_cka,svcca(keep=0.9)", "--quiet"]) == 0
    assert "wrote shard 2/2" in capsys.readouterr().out
    out = tmp_path / "results.parquet"
    assert main(["merge", str(tmp_path / "m"), "--out", str(out), "--quiet"]) == 0
    assert "merged 2 shards" in capsys.readouterr().out
    table = compare(store, ["linear_cka", "svcca(keep=0.9)"], progress=False)
    from reprsim.results import ResultTable

    np.testing.assert_allclose(ResultTable.load(out).frame.value.to_numpy(), table.frame.value.to_numpy(),
                               atol=1e-10, rtol=0)
    assert main(["merge", str(tmp_path / "m"), "--out", str(out), "--quiet"]) == 1
    assert "exists: add --overwrite" in capsys.readouterr().err
    for i in (1, 2):
        assert main(["accumulate", "--store", str(store.path), "--shard", f"{i}/2", "--out", str(tmp_path / "ci"),
                     "--measures", "linear_cka", "--ci", "jackknife", "--blocks", "5", "--quiet"]) == 0
    assert main(["merge", str(tmp_path / "ci"), "--out", str(tmp_path / "ci.parquet"), "--quiet"]) == 0
    with_ci = ResultTable.load(tmp_path / "ci.parquet")
    want = compare(store, ["linear_cka"], progress=False, ci="jackknife", blocks=5)
    np.testing.assert_allclose(with_ci.frame.se.to_numpy(float), want.frame.se.to_numpy(float), atol=1e-10, rtol=0)
    assert main(["accumulate", "--store", str(store.path), "--shard", "1/2", "--out", str(tmp_path / "t"),
                 "--measures", "linear_cka", "--memory-per-task", "5000", "--quiet"]) == 1
    assert "column tiles under --memory-per-task" in capsys.readouterr().err
    for i in (1, 2):
        for t in (1, 2, 3, 4, 5, 6):
            assert main(["accumulate", "--store", str(store.path), "--shard", f"{i}/2", "--out", str(tmp_path / "t"),
                         "--measures", "linear_cka", "--memory-per-task", "5000", "--tile", f"{t}/6", "--quiet"]) == 0
    assert "wrote shard 2/2, tile 6/6" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "t"), "--out", str(tmp_path / "tiled.parquet"), "--quiet"]) == 0
    tiled = ResultTable.load(tmp_path / "tiled.parquet").frame.value.to_numpy()
    np.testing.assert_allclose(tiled, compare(store, ["linear_cka"], progress=False, precision="float64")
                               .frame.value.to_numpy(), atol=1e-10, rtol=0)  # the shards sum in float64
    assert main(["accumulate", "--store", str(store.path), "--shard", "3", "--out", str(tmp_path)]) == 1
    assert "write it as i/N" in capsys.readouterr().err


def test_moments_files_are_plain_npz(store, tmp_path):
    path = accumulate_shard(store, "1/1", tmp_path, ["linear_cka"], progress=False)
    with zipfile.ZipFile(path) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
    with np.load(path, allow_pickle=False) as data:
        assert "record" in data.files and "panel0.product" in data.files


def test_a_distance_of_a_layer_with_itself_is_exactly_zero(store, local, tmp_path):
    from reprsim import measures as registry

    distances = {m for m in set(local.frame.measure)
                 if registry.get(m).symmetric and not registry.get(m).larger_is_similar
                 and registry.get(m).base in {"procrustes_distance", "angular_distance", "shape_metric",
                                              "bures_distance", "soft_matching_distance", "gulp",
                                              "magnitude_difference"}}
    assert len(distances) >= 6
    merged = merge_shards(_accumulate_all(store, tmp_path, 3, measures=sorted(distances)), progress=False)
    for table in (local, merged):
        f = table.frame
        self_pairs = f[(f.model_a == f.model_b) & (f.layer_a == f.layer_b) & f.measure.isin(distances)]
        assert len(self_pairs) == 6 * len(distances) and (self_pairs.value == 0.0).all()
        others = f[(f.layer_a != f.layer_b) & f.measure.isin(distances)]
        assert (others.value > 0).all()


def test_merge_finds_the_entries_by_key_when_a_name_is_shared(tmp_path):
    made = two_model_store(tmp_path / "store", seed=4)
    files = _accumulate_all(made, tmp_path / "m", 2, measures=["linear_cka"])
    rng = np.random.default_rng(5)
    write_model(made, "A", _layers(rng, rng.standard_normal((N_WORDS, 4)), 6), heads=0, variant="other")
    merged = merge_shards(files, progress=False)
    assert set(merged.frame.model_a) == {"A", "B"}
    made.remove(next(e.key for e in made.entries() if e.name == "B"))
    with pytest.raises(ValueError, match=r"entry 'B-.*' of model 'B', but the store .* now holds no such entry"):
        merge_shards(files, progress=False)
