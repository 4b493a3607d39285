"""The Ray backend of compare: the local table to 1e-10, workers killed or failing once survived, errors named."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # scripts/setup.sh installs reprsim[ray]

from reprsim.comparison import compare
from reprsim.engine import CrossMoments
from reprsim.ray_compare import accumulate_task, ray_moments
from reprsim.row_shards import shard_moments
from reprsim.store import ActivationStore
from test_compare import LENGTHS, N_WORDS
from test_shards import KEYS, assert_same_statistics, two_model_store


@pytest.fixture(scope="module")
def cluster():
    """One small local cluster for the module: 2 CPUs, one logical GPU (no CUDA behind it), 100 MiB of store."""
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=100 << 20, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ActivationStore:
    return two_model_store(tmp_path_factory.mktemp("store"), seed=3)


ALL_BLOCKS = [(a, b) for a in range(6) for b in range(a, 6)]  # 2 models x 3 layers


def _one_pass(store: ActivationStore, row_norms: bool) -> CrossMoments:
    return shard_moments(store.entries(), (0, N_WORDS), row_norms=row_norms, device="cpu")


def _on_ray(store: ActivationStore, row_norms: bool, **options) -> CrossMoments:
    path, keys = _entries(store)
    return ray_moments(path, keys, LENGTHS, members=list(range(6)), blocks=ALL_BLOCKS, row_norms=row_norms,
                       progress=False, **options)


def _assert_same_moments(got: CrossMoments, want: CrossMoments) -> None:
    assert got.widths == want.widths and got.blocks == want.blocks and got.n_rows() == want.n_rows()
    for a, b in want.blocks:
        np.testing.assert_allclose(got.centred(a, b).numpy(), want.centred(a, b).numpy(), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("shards", [1, 4])
def test_the_ray_backend_gives_the_local_table(cluster, store, shards):
    local = compare(store, ["all"], progress=False, subsample_rows=300, attention_sentences=40)
    on_ray = compare(store, ["all"], progress=False, subsample_rows=300, attention_sentences=40, backend="ray",
                     shards=shards)
    assert local.frame[KEYS].equals(on_ray.frame[KEYS])
    np.testing.assert_allclose(on_ray.frame.value.to_numpy(), local.frame.value.to_numpy(), rtol=0, atol=1e-10)
    assert on_ray.provenance == local.provenance


def _entries(store: ActivationStore) -> tuple[str, list[str]]:
    return str(store.path), [e.key for e in store.entries()]


def test_a_worker_killed_during_its_shard_is_retried_with_the_same_result(cluster, store, tmp_path):
    marker = tmp_path / "killed-once"

    def killed_once(*args):
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return accumulate_task(*args)

    got = _on_ray(store, True, shards=3, task=killed_once)
    assert marker.exists()
    _assert_same_moments(got, _one_pass(store, True))
    want = _one_pass(store, True).centred_norm_product(0, 3)
    assert got.centred_norm_product(0, 3) == pytest.approx(want, rel=1e-12)


def test_a_task_failing_once_with_an_os_error_is_retried(cluster, store, tmp_path):
    marker = tmp_path / "failed-once"

    def fails_once(*args):
        if not marker.exists():
            marker.write_text("x")
            raise OSError("stale file handle")
        return accumulate_task(*args)

    got = _on_ray(store, False, shards=2, task=fails_once)
    assert marker.exists()
    _assert_same_moments(got, _one_pass(store, False))


def test_a_task_that_raises_names_its_shard_and_the_cause(cluster, store):
    def broken(store_path, keys, rows, *args):
        if rows[0] > 0:
            raise ValueError(f"bad rows at {rows[0]}")
        return accumulate_task(store_path, keys, rows, *args)

    with pytest.raises(ValueError, match=r"shard 2/2 \(rows \d+\.\.\d+\) failed on ray: ValueError: bad rows at"):
        _on_ray(store, False, shards=2, task=broken)


def test_column_tiles_on_ray_give_the_local_table(cluster, store):
    from reprsim.comparison import plan_lines

    measures = ["linear_cka", "debiased_cka", "svcca", "maxsim", "procrustes"]
    small = 8 * 6 * 6 * 12  # a few layers' blocks per tile
    lines = plan_lines(store, measures, backend="ray", shards=3, memory_per_task=small)
    tiles = int(re.search(r"in (\d+) column tiles", lines[1]).group(1))
    assert tiles > 2 and f"{tiles * 5} tasks" in lines[1], lines
    local = compare(store, measures, progress=False)
    tiled = compare(store, measures, progress=False, backend="ray", shards=3, memory_per_task=small)
    assert local.frame[KEYS].equals(tiled.frame[KEYS])
    np.testing.assert_allclose(tiled.frame.value.to_numpy(), local.frame.value.to_numpy(), rtol=0, atol=1e-10)
    assert "in 1 column tiles" in plan_lines(store, measures)[1]
    # The plan's bytes per task are what a task declares: every block a <= b and one chunk of rows.
    from reprsim.comparison_entries import representations
    from reprsim.comparison_records import linear_plan
    from reprsim.engine.linear_family import pass_bytes

    widths = [r.width for r in representations(store.entries())]
    assert linear_plan(representations(store.entries()), measures, set(), chunk_rows=100)["bytes_per_task"] == \
        pass_bytes(widths, ALL_BLOCKS, 100) == 8 * sum(widths[a] * widths[b] for a, b in ALL_BLOCKS) + 800 * sum(widths)


@pytest.mark.parametrize("ci", ["bootstrap", "jackknife"])
def test_statistics_on_ray_equal_the_local_ones(cluster, store, ci):
    # 3 shards over 7 sentence blocks: shard boundaries cut blocks, whose parts the driver adds back.
    measures = ["linear_cka", "debiased_cka", "svcca", "linreg", "procrustes", "rsa", "mutual_knn", "attention_js"]
    options = {"ci": ci, "null": "analytic", "blocks": 7, "resamples": 40, "subsample_rows": 200}
    local = compare(store, measures, progress=False, **options)
    on_ray = compare(store, measures, progress=False, backend="ray", shards=3, **options)
    assert local.frame.ci_low.notna().sum() > 0
    assert_same_statistics(on_ray, local)


def test_unknown_backends_are_refused_by_name(cluster, store):
    with pytest.raises(ValueError, match="backend 'spark': choose one of local, ray"):
        compare(store, ["linear_cka"], progress=False, backend="spark")


def test_without_ray_the_backend_names_the_install_command(store, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs Ray, which is not installed: pip install 'reprsim\[ray\]'"):
        compare(store, ["linear_cka"], progress=False, backend="ray")


def test_the_local_path_never_imports_ray(store, tmp_path):
    code = (f"import sys, reprsim\nreprsim.compare({str(store.path)!r}, ['linear_cka', 'rsa'], progress=False)\n"
            "from reprsim.cli import main\n"
            f"main(['compare', '--store', {str(store.path)!r}, '--measures', 'linear_cka', '--out', "
            f"{str(tmp_path / 'r.parquet')!r}, '--quiet'])\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr


def test_compare_on_the_command_line_and_in_a_study_file(cluster, store, tmp_path, capsys):
    from reprsim.cli import main
    from reprsim.comparison import BACKENDS
    from reprsim.results import ResultTable
    from reprsim.study import _CHOICES, StudyConfigError, load_study

    out = tmp_path / "r.parquet"
    assert main(["compare", "--store", str(store.path), "--measures", "linear_cka,maxsim", "--out", str(out),
                 "--backend", "ray", "--shards", "3", "--quiet"]) == 0
    local = compare(store, ["linear_cka", "maxsim"], progress=False, precision="float64")  # Ray's shards: float64
    np.testing.assert_allclose(ResultTable.load(out).frame.value.to_numpy(), local.frame.value.to_numpy(),
                               atol=1e-10, rtol=0)
    assert _CHOICES["compare.backend"] == set(BACKENDS)
    capsys.readouterr()
    assert main(["compare", "--store", str(store.path), "--measures", "linear_cka,rsa,attention_js", "--plan",
                 "--out", str(tmp_path / "nothing.parquet"),
                 "--backend", "ray", "--shards", "4", "--memory-per-task", "3KiB"]) == 0
    plan = capsys.readouterr().out.splitlines()
    assert plan[0] == f"2 models, 6 layers, {N_WORDS:,} rows (words)"
    assert re.match(r"linear measures \(1\): 21 pairs in \d+ column tiles = \d+ passes over the rows, on ray: "
                    r"4 row shards per tile, \d+ tasks \(shards and merges\), float64 products; "
                    r"up to [0-9.]+ MiB per task "
                    r"\(blocks and one chunk of rows; budget 0 MiB of blocks\)", plan[1]), plan[1]
    assert plan[2].startswith("CKA route: in feature space (the pass)")
    assert plan[3].startswith("n x n measures (1): on a seeded subsample of") and "attention measures (1)" in plan[4]
    assert not (tmp_path / "nothing.parquet").exists()
    assert main(["compare", "--store", str(store.path), "--measures", "linear_cka"]) == 1
    assert "--out is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", "--store", str(store.path), "--out", str(out), "--memory-per-task", "0"])
    assert "must be a size such as 4GiB" in capsys.readouterr().err
    study = tmp_path / "study.yaml"
    study.write_text("name: s\ncorpus: builtin\nmodels: [{name: m, model: minilm}]\n"
                     "compare: {backend: ray, address: auto, shards: 4}\n")
    spec = load_study(study).compare
    assert (spec.backend, spec.address, spec.shards) == ("ray", "auto", 4)
    study.write_text("name: s\ncorpus: builtin\nmodels: [{name: m, model: minilm}]\n"
                     "extraction: {backend: ray, address: auto, gpus_per_model: 0.5, corpus_shards: 4}\n")
    ex = load_study(study).extraction
    assert (ex.backend, ex.address, ex.gpus_per_model, ex.corpus_shards) == ("ray", "auto", 0.5, 4)
    study.write_text("name: s\ncorpus: builtin\nmodels: [{name: m, model: minilm}]\nextraction: {corpus_shards: 2}\n")
    with pytest.raises(StudyConfigError, match=r"`extraction\.corpus_shards`: applies to the Ray backend only"):
        load_study(study)
    study.write_text("name: s\ncorpus: builtin\nmodels: [{name: m, model: minilm}]\ncompare: {backend: dask}\n")
    with pytest.raises(StudyConfigError, match=r"`compare\.backend`: 'dask' is not allowed; choose one of local, ray"):
        load_study(study)


# --- extraction ----------------------------------------------------------------------------------------------
def test_extraction_on_ray_writes_the_entries_local_extraction_writes(cluster, tmp_path):
    from reprsim.extraction import extract
    from test_cli_extract import files_of, tiny_bert_folder, write_corpus

    corpus = str(write_corpus(tmp_path / "corpus.txt", 20))
    model = str(tiny_bert_folder(tmp_path / "tiny"))
    local = extract([model, "minilm"], corpus, tmp_path / "local", names=["tiny", "MiniLM"], layers=[0, 2],
                    progress=False)
    # The cluster's one GPU is logical: each actor declares it (the default), the two run one after the
    # other, and each extracts on the CPU, which is all its worker sees.
    on_ray = extract([model, "minilm"], corpus, tmp_path / "ray", names=["tiny", "MiniLM"], layers=[0, 2],
                     progress=False, backend="ray")
    assert [e.key for e in on_ray] == [e.key for e in local]
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")
    from reprsim.cli import main

    assert main(["extract", model, "--corpus", corpus, "--store", str(tmp_path / "cli"), "--name", "tiny",
                 "--layers", "0,2", "--backend", "ray", "--gpus-per-model", "0", "--quiet"]) == 0
    assert files_of(tmp_path / "cli") == {k: v for k, v in files_of(tmp_path / "local").items() if "tiny" in k}


def test_corpus_shards_join_into_the_entry_a_single_actor_writes(cluster, tmp_path):
    count = 3  # a first, a middle and the last part (whose last window is cut in pieces)
    from reprsim.extraction import extract
    from reprsim.extraction.corpus_shards import PARTS, corpus_parts
    from test_cli_extract import files_of, tiny_bert_folder, write_corpus

    corpus = str(write_corpus(tmp_path / "corpus.txt", 600))  # windows [0, 256), [256, 512), [512, 600)
    assert corpus_parts(600, 2) == [(0, 512), (512, 600)] and len(corpus_parts(600, 3)) == 3
    model = str(tiny_bert_folder(tmp_path / "tiny"))
    (local,) = extract([model], corpus, tmp_path / "local", names=["tiny"], layers=[0, 2], progress=False)
    (joined,) = extract([model], corpus, tmp_path / "ray", names=["tiny"], layers=[0, 2], progress=False,
                        backend="ray", gpus_per_model=0, corpus_shards=count)
    assert joined.key == local.key
    ours = {k: v for k, v in files_of(tmp_path / "ray").items() if not k.startswith(PARTS)}
    assert ours == files_of(tmp_path / "local")
    assert not ActivationStore(tmp_path / "ray" / PARTS).keys()  # the parts are removed once joined
    again = extract([model], corpus, tmp_path / "ray", names=["tiny"], layers=[0, 2], progress=False,
                    backend="ray", gpus_per_model=0, corpus_shards=count)
    assert again[0].key == local.key and not ActivationStore(tmp_path / "ray" / PARTS).keys()


def test_corpus_shards_and_ray_options_are_checked_by_name(tmp_path, capsys):
    from reprsim.cli import main
    from reprsim.extraction import extract

    assert main(["extract", "minilm", "--corpus", "builtin", "--max-sentences", "3", "--store", str(tmp_path),
                 "--corpus-shards", "2", "--quiet"]) == 1
    assert "corpus_shards (--corpus-shards) only apply to the Ray backend" in capsys.readouterr().err

    with pytest.raises(ValueError, match=r"corpus_shards=3 \(--corpus-shards\) but the corpus has 300 sentences, 2 "
                                         r"window\(s\) of 256"):
        extract(["minilm"], "builtin", tmp_path, max_sentences=300, progress=False, backend="ray", corpus_shards=3)
    with pytest.raises(ValueError, match=r"corpus_shards \(--corpus-shards\) only apply to the Ray backend"):
        extract(["minilm"], "builtin", tmp_path, max_sentences=3, progress=False, corpus_shards=2)
    with pytest.raises(ValueError, match=r"gpus_per_model \(--gpus-per-model\) must be a number >= 0, got -1"):
        extract(["minilm"], "builtin", tmp_path, max_sentences=3, progress=False, backend="ray", gpus_per_model=-1)


def test_a_worker_killed_mid_extraction_resumes_from_the_durable_prefix(cluster, tmp_path):
    from reprsim.extraction import extract
    from reprsim.extraction.extract import extraction_task
    from test_cli_extract import files_of, tiny_bert_folder, write_corpus

    corpus = str(write_corpus(tmp_path / "corpus.txt", 300))  # windows [0, 256) and [256, 300)
    model = str(tiny_bert_folder(tmp_path / "tiny"))
    marker = tmp_path / "killed"

    def killed_after_the_first_window(*args):
        from reprsim.store.writer import EntryWriter

        if not marker.exists():
            original = EntryWriter.write_sentences

            def write_then_die(self, start, stop, *rest, **kwargs):
                original(self, start, stop, *rest, **kwargs)
                marker.write_text(str(stop))
                os.kill(os.getpid(), signal.SIGKILL)

            EntryWriter.write_sentences = write_then_die
        return extraction_task(*args)

    from reprsim.corpus import Corpus
    from reprsim.extraction.on_ray import extract_on_ray

    keys = extract_on_ray([model], ["tiny"], Corpus.load(corpus), str(tmp_path / "ray"), [{"layers": None}],
                          progress=False, task=killed_after_the_first_window, gpus_per_model=0)
    assert marker.read_text() == "256"  # the first run died with one window committed
    (entry,) = extract([model], corpus, tmp_path / "local", names=["tiny"], progress=False)
    assert keys == [entry.key]
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")


def test_extraction_errors_on_ray_name_the_model(cluster, tmp_path):
    from reprsim.corpus import Corpus
    from reprsim.extraction import extract
    from reprsim.extraction.on_ray import extract_on_ray
    from test_rows import FixedAdapter

    def broken(spec, name, *args):
        raise RuntimeError(f"no weights for {name}")

    with pytest.raises(ValueError, match="model 'tiny' failed on ray: RuntimeError: no weights for tiny"):
        extract_on_ray(["x"], ["tiny"], Corpus.load("builtin"), str(tmp_path), [{}], progress=False, task=broken)
    with pytest.raises(ValueError, match="models are given by name"):
        extract([FixedAdapter()], "builtin", tmp_path, max_sentences=3, progress=False, backend="ray")
    with pytest.raises(ValueError, match="backend 'spark': choose one of local, ray"):
        extract(["minilm"], "builtin", tmp_path, max_sentences=3, progress=False, backend="spark")


MULTI_NODE = """
import sys
import numpy as np
import ray
from ray.cluster_utils import Cluster
from reprsim.comparison import compare

store = sys.argv[1]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1)
ray.init(address=cluster.address, log_to_driver=False)
cluster.wait_for_nodes()
alive = [n for n in ray.nodes() if n["Alive"]]

measures = ["linear_cka", "debiased_cka", "svcca", "maxsim"]
on_two = compare(store, measures, progress=False, backend="ray", shards=4)
local = compare(store, measures, progress=False)
print(len(alive), float(np.abs(on_two.frame.value.to_numpy() - local.frame.value.to_numpy()).max()))
ray.shutdown()
cluster.shutdown()
"""


def test_two_nodes_sharing_the_store_give_the_local_table(store, tmp_path):
    script = tmp_path / "two_nodes.py"
    script.write_text(MULTI_NODE)
    done = subprocess.run([sys.executable, str(script), str(store.path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr[-3000:]
    nodes, diff = done.stdout.split()[-2:]
    assert int(nodes) == 2 and float(diff) <= 1e-10


CTRL_C = """
import sys, time
import ray
from reprsim.ray_compare import accumulate_task, ray_moments
from reprsim.store import ActivationStore

def slow(*args):
    print("TASK", flush=True)
    time.sleep(120)
    return accumulate_task(*args)

store = ActivationStore(sys.argv[1], create=False)
entries = store.entries()
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True)
blocks = [(a, b) for a in range(6) for b in range(a, 6)]
try:
    ray_moments(str(store.path), [e.key for e in entries], entries[0].sentence_lengths, members=list(range(6)),
                blocks=blocks, row_norms=False, shards=2, progress=False, task=slow)
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
"""


def test_ctrl_c_in_the_driver_stops_at_once_and_leaves_the_store_as_it_was(store, tmp_path):
    from test_cli_extract import files_of

    before = files_of(store.path)
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    child = subprocess.Popen([sys.executable, str(script), str(store.path)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).parent,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.stdout is not None
    for line in child.stdout:  # a task is running (its worker's output is forwarded)
        if "TASK" in line:
            break
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)  # the tasks sleep 120 s: returning sooner means they were not awaited
    assert "INTERRUPTED" in out, out[-3000:]
    assert files_of(store.path) == before


def test_nxn_and_attention_fits_are_one_task_per_layer_and_pairs_run_in_groups(cluster, store):
    from functools import partial

    from reprsim.comparison_entries import attention_layers, representations
    from reprsim.comparison_records import attention_records, subsampled_records
    from reprsim.ray_pairs import ray_attention_family, ray_sample_family

    path, keys = _entries(store)
    made = []

    def recorded(factory, *args, **options):
        family = factory(*args, **options, store=path, keys=keys, address=None)
        made.append(family)
        return family

    entries, reps = store.entries(), representations(store.entries())
    for measure in ("rbf_cka", "cknna"):
        local = subsampled_records(reps, [measure], set(), 250, 0, 64, False)
        remote = subsampled_records(reps, [measure], set(), 250, 0, 64, False,
                                    family=partial(recorded, ray_sample_family))
        assert [r["value"] for r in remote] == pytest.approx([r["value"] for r in local], abs=1e-12, rel=0)
        assert made[-1].fitted == len(reps) and made[-1].groups == 2
    local = attention_records(entries, ["attention_pearson"], set(), 30, 0, False)
    remote = attention_records(entries, ["attention_pearson"], set(), 30, 0, False,
                               family=partial(recorded, ray_attention_family))
    assert len(remote) == len(local) > 0
    assert [r["value"] for r in remote] == pytest.approx([r["value"] for r in local], abs=1e-12, rel=0)
    assert made[-1].fitted == len(attention_layers(entries))


def test_a_failing_fit_on_ray_names_the_measure_and_the_cause(cluster, store):
    from reprsim.engine.scheduler import Tile
    from reprsim.ray_pairs import RayMemberFamily

    class Broken:
        def fit_member(self, item):
            raise ValueError(f"representation {item}: rows are not finite")

    local = type("Sizes", (), {"fit_bytes": lambda self, k: 8, "pair_bytes": lambda self, a, b: 0})()
    family = RayMemberFamily(local, Broken, address=None, label="rsa")
    tile = Tile((0, 1), ((0, 1),))
    family.fit(tile)
    with pytest.raises(ValueError, match=r"rsa pairs 1\.\.1 of 1 failed on ray: .*representation 0: rows are not "):
        list(family.score(tile))


def test_linear_fits_and_derivations_are_ray_tasks_and_an_undefined_pair_is_named(cluster, tmp_path):
    from functools import partial

    from reprsim.comparison_entries import representations
    from reprsim.comparison_records import streamed_records
    from reprsim.ray_compare import RayLinearFamily
    from test_compare import write_model

    made = ActivationStore(tmp_path / "store")
    rng = np.random.default_rng(0)
    write_model(made, "A", {0: rng.normal(size=(N_WORDS, 4)), 1: rng.normal(size=(N_WORDS, 3))}, heads=0, seed=0)
    write_model(made, "C", {0: np.full((N_WORDS, 3), 3.0)}, heads=0, seed=1)
    families = []

    def recorded(*args, **options):
        families.append(RayLinearFamily(*args, store=str(made.path), keys=[e.key for e in made.entries()],
                                        sentence_lengths=LENGTHS, shards=2, address=None, **options))
        return families[-1]

    reps = representations(made.entries())
    with pytest.raises(ValueError, match=r"pairs \d+\.\.\d+ of 6 failed on ray: ValueError: pair \(LayerId\(model='A'"
                                         r", layer=0\), LayerId\(model='C', layer=0\)\): \w+: every neuron"):
        streamed_records(reps, ["linear_cka", "maxsim"], set(), "cpu", 128, False, family=partial(recorded))
    assert sorted(families[-1].fit_refs) == [0, 1, 2]
    local = streamed_records(reps[:2], ["linear_cka", "svcca"], set(), "cpu", 128, False)
    remote = streamed_records(reps[:2], ["linear_cka", "svcca"], set(), "cpu", 128, False, family=partial(recorded))
    assert [r["value"] for r in remote] == pytest.approx([r["value"] for r in local], abs=1e-12, rel=0)


def test_a_tiny_model_study_gives_one_table_locally_on_ray_and_through_shards(cluster, tmp_path):
    """`reprsim run` of two tiny transformers with statistics: local, all on Ray, and shard/merge agree."""
    from reprsim.cli import main
    from reprsim.results import ResultTable
    from reprsim.shards import accumulate_shard, merge_shards
    from test_extraction_models import WORDS, build_family

    folders = {}
    for family in ("bert", "gpt2"):
        (tmp_path / f"{family}-vocab").mkdir()
        model, tok = build_family(family, tmp_path / f"{family}-vocab")
        folders[family] = tmp_path / f"tiny-{family}"
        model.save_pretrained(folders[family])
        tok.save_pretrained(folders[family])
    rng = np.random.default_rng(0)
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(40)) + "\n")
    measures = ["linear_cka", "debiased_cka", "pwcca", "procrustes", "gulp", "rsa", "cknna", "attention_cka"]
    statistics = {"ci": "jackknife", "null": "analytic", "blocks": 6}
    tables = {}
    for where in ("local", "ray"):
        extraction = "{backend: ray, batch_size: 8}" if where == "ray" else "{batch_size: 8}"
        on_ray = "backend: ray, shards: 3, " if where == "ray" else ""
        config = tmp_path / f"{where}.yaml"
        config.write_text(f"""
name: tiny-{where}
corpus: {{source: {corpus}}}
models:
  - {{name: bert, model: {folders['bert']}}}
  - {{name: gpt2, model: {folders['gpt2']}}}
extraction: {extraction}
compare: {{{on_ray}measures: [{', '.join(measures)}], ci: jackknife, null: analytic, blocks: 6}}
output: {{dir: {tmp_path / where}}}
""")
        assert main(["run", str(config), "--quiet"]) == 0
        tables[where] = ResultTable.load(tmp_path / where / "results.parquet")
    store = tmp_path / "local" / "store"
    for i in (1, 2, 3):
        accumulate_shard(store, f"{i}/3", tmp_path / "moments", measures, progress=False, **statistics)
    tables["merged"] = merge_shards([tmp_path / "moments"], progress=False)
    local = tables["local"]
    assert set(local.measures()) == set(measures) and local.frame.se.notna().any()
    for name in ("ray", "merged"):
        got = tables[name]
        assert got.frame[KEYS].equals(local.frame[KEYS]), name
        for column in ["value", "se", "ci_low", "ci_high", "null_mean", "p_value", "calibrated"]:
            np.testing.assert_allclose(got.frame[column].to_numpy(float), local.frame[column].to_numpy(float),
                                       rtol=0, atol=1e-10, equal_nan=True, err_msg=f"{name}: {column}")


def test_a_failing_model_is_named_while_another_still_waits_for_the_gpu(cluster, tmp_path):
    from reprsim.corpus import Corpus
    from reprsim.extraction.on_ray import extract_on_ray

    def first_fails(spec, name, *args):
        if name == "first":
            raise ValueError("sentence 3: the model gave 2 rows for 3 words")
        time.sleep(30)  # holds the one GPU's turn: the failure must not wait for it, nor be hidden by a cancel
        return "never"

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"model 'first' failed on ray: ValueError: sentence 3: the model gave"):
        extract_on_ray(["a", "b", "c"], ["first", "second", "third"], Corpus.load("builtin").head(3),
                       str(tmp_path), [{}, {}, {}], progress=False, task=first_fails, gpus_per_model=1)
    assert time.perf_counter() - start < 25


def test_a_task_no_node_could_hold_is_refused_by_name(cluster, store):
    with pytest.raises(ValueError, match=r"a shard's task needs [0-9,.]+ GiB, more than the largest node of the Ray "
                                         r"cluster offers .*lower --memory-per-task"):
        _on_ray(store, False, shards=2, memory=1 << 50)


def test_warnings_raised_in_ray_tasks_are_raised_on_the_driver(cluster):
    import warnings as w

    from reprsim.arrays import ConstantNeuronWarning
    from reprsim.engine.scheduler import Tile
    from reprsim.inference import InferenceWarning
    from reprsim.ray_pairs import RayMemberFamily

    class Warns:
        def fit_member(self, item):
            w.warn(f"layer {item}: 3 constant neurons", ConstantNeuronWarning, stacklevel=1)
            w.warn("a library's own warning on the worker", UserWarning, stacklevel=1)
            return item

        def hold(self, fits):
            self.fits = fits

        def score(self, tile):
            w.warn("interval not available for one pair", InferenceWarning, stacklevel=1)
            for a, b in tile.pairs:
                yield a, b, {"m": float(self.fits[a] + self.fits[b])}

    local = type("Sizes", (), {"fit_bytes": lambda self, k: 8, "pair_bytes": lambda self, a, b: 0})()
    family = RayMemberFamily(local, Warns, address=None, label="m")
    tile = Tile((0, 1), ((0, 1), (1, 1)))
    family.fit(tile)
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        scores = list(family.score(tile))
    assert [(a, b, v["m"]) for a, b, v in scores] == [(0, 1, 1.0), (1, 1, 2.0)]
    messages = {str(c.message) for c in caught}
    assert {"layer 0: 3 constant neurons", "layer 1: 3 constant neurons",
            "interval not available for one pair"} <= messages
    assert "a library's own warning on the worker" not in messages


def test_plan_counts_the_statistics_copies_and_ray_options_need_the_ray_backend(cluster, store):
    from reprsim.comparison import plan_lines

    plain = plan_lines(store, ["linear_cka"], backend="ray", shards=3)[1]
    with_ci = plan_lines(store, ["linear_cka"], backend="ray", shards=3, ci="jackknife", blocks=7)[1]
    assert "(shards and merges)" in plain and "3 tasks (shards)" in with_ci
    from reprsim.comparison_entries import representations
    from reprsim.comparison_records import linear_plan
    from reprsim.inference import InferenceOptions

    reps, ci = representations(store.entries()), InferenceOptions(ci="jackknife", blocks=7)
    one, three = (linear_plan(reps, ["linear_cka"], set(), chunk_rows=10, inference=ci, copies=k)["bytes_per_task"]
                  for k in (1, 3))
    assert three - 80 * sum(r.width for r in reps) == 3 * (one - 80 * sum(r.width for r in reps))
    with pytest.raises(ValueError, match=r"shards \(--shards\) only apply to the Ray backend"):
        compare(store, ["linear_cka"], progress=False, shards=2)
    with pytest.raises(ValueError, match=r"address \(--address\) only apply to the Ray backend"):
        plan_lines(store, ["linear_cka"], address="auto")
