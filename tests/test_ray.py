"""The Ray backend of compare: the local table to 1e-10, workers killed or failing once survived, errors named."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray  # scripts/setup.sh installs reprsim[ray]

from reprsim.comparison import compare
from reprsim.engine import CrossMoments
from reprsim.ray_compare import accumulate_task, ray_moments
from reprsim.row_shards import shard_moments
from reprsim.store import ActivationStore
from test_compare import LENGTHS, N_WORDS, write_model
from test_shards import KEYS, _layers


@pytest.fixture(scope="module")
def cluster():
    """One small local cluster for the module (2 CPUs, 100 MiB of object store)."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ActivationStore:
    rng = np.random.default_rng(3)
    latent = rng.standard_normal((N_WORDS, 4))
    made = ActivationStore(tmp_path_factory.mktemp("store"))
    for m, (name, width) in enumerate([("A", 6), ("B", 5)]):
        write_model(made, name, _layers(rng, latent, width), heads=2, seed=m)
    return made


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


def test_statistics_and_unknown_backends_are_refused_by_name(cluster, store):
    with pytest.raises(ValueError, match="not available on the Ray backend yet"):
        compare(store, ["linear_cka"], progress=False, backend="ray", ci="jackknife", blocks=5)
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
    local = compare(store, ["linear_cka", "maxsim"], progress=False)
    np.testing.assert_allclose(ResultTable.load(out).frame.value.to_numpy(), local.frame.value.to_numpy(),
                               atol=1e-10, rtol=0)
    assert _CHOICES["compare.backend"] == set(BACKENDS)
    capsys.readouterr()
    assert main(["compare", "--store", str(store.path), "--measures", "linear_cka,rsa,attention_js", "--plan",
                 "--backend", "ray", "--shards", "4", "--memory-per-task", "3KiB"]) == 0
    plan = capsys.readouterr().out.splitlines()
    assert plan[0] == f"2 models, 6 layers, {N_WORDS:,} rows (words)"
    assert re.match(r"linear measures \(1\): 21 pairs in \d+ column tiles = \d+ passes over the rows, on ray: "
                    r"4 row shards per tile, \d+ tasks \(shards and merges\); up to [0-9.]+ MiB of blocks per task "
                    r"\(budget 0 MiB\)", plan[1]), plan[1]
    assert plan[2].startswith("n x n measures (1): on a seeded subsample of") and "attention measures (1)" in plan[3]
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
    study.write_text("name: s\ncorpus: builtin\nmodels: [{name: m, model: minilm}]\ncompare: {backend: dask}\n")
    with pytest.raises(StudyConfigError, match=r"`compare\.backend`: 'dask' is not allowed; choose one of local, ray"):
        load_study(study)
