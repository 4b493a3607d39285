"""Distributed benchmark: the study's linear pass on the local backend and on Ray with 1 and 2 workers.

The study benchmark's shape (2 synthetic models x 13 layers x 768 neurons, 10,000 rows, in a store) is
compared with ``reprsim.compare`` on its five measures (linear CKA, SVCCA, PWCCA, linreg, maxsim), every pair
a <= b, on three backends, each in a fresh process:

- ``local``: the engine's pass in this process (torch's threads);
- ``ray1``: a local Ray cluster of 1 CPU, 1 row shard (one task: the overhead of going through Ray);
- ``ray2``: a local Ray cluster of 2 CPUs, 2 row shards (the speedup of two workers on two cores).

The workers are started (and import reprsim) before the clock starts; that one-off start-up is printed
apart.

For each it prints the pass alone (``shard_moments`` locally, ``ray_moments`` on Ray: every block of every
layer over all rows) and the whole comparison (pass and derivations), as ratios to ``local`` measured in the
same run, and the largest difference of the values from the local table. From the one-worker pass it takes
the time per multiply-add of a (row shard x column tile) task and prints a cost model for a larger study.

    python benchmarks/bench_distributed.py --quick      # 2 x 4 x 128 on 2,000 rows (seconds)
    python benchmarks/bench_distributed.py              # the study's shape (minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import add_study_arguments, machine, study_from_arguments
from bench_scale import write_store

MEASURES = ["linear_cka", "svcca", "pwcca", "linreg", "maxsim"]
SETTINGS = {"local": (0, 0), "ray1": (1, 1), "ray2": (2, 2)}  # name: (cluster CPUs, row shards)


def run_one(store_dir: Path, setting: str, out: Path) -> dict[str, float]:
    """Time one setting's pass and comparison (in this process) and save its table."""
    from reprsim.comparison import compare
    from reprsim.row_shards import shard_moments
    from reprsim.store import ActivationStore

    cpus, shards = SETTINGS[setting]
    store = ActivationStore(store_dir, create=False)
    entries = store.entries()
    n_reps = sum(len(e.layer_ids) for e in entries)
    blocks = [(a, b) for a in range(n_reps) for b in range(a, n_reps)]
    start = time.perf_counter()
    if setting == "local":
        shard_moments(entries, (0, entries[0].n_words), row_norms=False, device="cpu")
    else:
        import ray

        from reprsim.ray_compare import ray_moments

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        # Start the workers and import reprsim in them first: a one-off cost, reported apart from the pass.
        warm = time.perf_counter()
        ray.get([ray.remote(num_cpus=1)(_import_reprsim).remote() for _ in range(cpus)])
        startup_s = time.perf_counter() - warm
        ray_start = time.perf_counter()
        ray_moments(str(store.path), [e.key for e in entries], entries[0].sentence_lengths,
                    members=list(range(n_reps)), blocks=blocks, row_norms=False, shards=shards, progress=False)
        start = ray_start  # the cluster's start-up is not the pass's
    pass_s = time.perf_counter() - start
    startup = {} if setting == "local" else {"startup_s": startup_s}
    start = time.perf_counter()
    table = compare(store, MEASURES, progress=False, backend="local" if setting == "local" else "ray",
                    shards=shards or None)
    compare_s = time.perf_counter() - start
    table.save(out)
    return {"pass_s": pass_s, "compare_s": compare_s, **startup}


def _import_reprsim() -> None:
    import reprsim.row_shards  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(parser)
    parser.add_argument("--store", type=Path, default=None, help="where the synthetic store goes (default: a temp dir)")
    parser.add_argument("--one", choices=list(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target-rows", type=int, default=50_000, help="rows of the cost model's study")
    parser.add_argument("--target-columns", type=int, default=12 * 33 * 4096,
                        help="columns (all layers' widths) of the cost model's study (12 decoders x 33 x 4096)")
    parser.add_argument("--gpu-tflops", type=float, default=50.0,
                        help="assumed float64-accumulated GEMM rate of one GPU for the cost model")
    args = parser.parse_args()
    study, rows = study_from_arguments(args)
    store_dir = args.store or Path(tempfile.mkdtemp(prefix="reprsim-bench-distributed-"))
    if args.one:
        print(json.dumps(run_one(store_dir, args.one, args.out)))
        return
    print(f"machine: {machine()}")
    print(f"study: {study.n_models} models x {study.n_layers} layers x {study.width} neurons, {rows:,} rows; "
          f"measures {', '.join(MEASURES)}; store {store_dir}")
    write_store(store_dir, study, rows)
    results: dict[str, dict[str, float]] = {}
    tables = {}
    from reprsim.results import ResultTable

    for setting in SETTINGS:
        out = store_dir.parent / f"{store_dir.name}-{setting}.parquet"
        done = subprocess.run([sys.executable, __file__, "--one", setting, "--store", str(store_dir), "--out", str(out),
                               *sys.argv[1:]], capture_output=True, text=True, env={**os.environ}, check=False)
        if done.returncode:
            raise SystemExit(f"{setting} failed:\n{done.stderr}")
        results[setting] = json.loads(done.stdout.strip().splitlines()[-1])
        tables[setting] = ResultTable.load(out).frame.value.to_numpy()
    base = results["local"]
    print(f"{'backend':8} {'start-up s':>10} {'pass s':>8} {'x local':>8} {'compare s':>10} {'x local':>8} "
          f"{'max |diff|':>11}")
    for setting, r in results.items():
        diff = float(np.abs(tables[setting] - tables["local"]).max())
        print(f"{setting:8} {r.get('startup_s', 0.0):10.2f} {r['pass_s']:8.2f} {r['pass_s'] / base['pass_s']:8.2f} "
              f"{r['compare_s']:10.2f} {r['compare_s'] / base['compare_s']:8.2f} {diff:11.1e}")
    columns = study.n_models * study.n_layers * study.width
    multiply_adds = rows * columns * (columns + 1) / 2
    rate = multiply_adds / results["ray1"]["pass_s"]
    print(f"one task (1 CPU): {rate / 1e9:.2f} G multiply-adds/s over {multiply_adds:.2e} "
          f"({rows:,} rows x {columns:,} columns, every block a <= b)")
    target = args.target_rows * args.target_columns * (args.target_columns + 1) / 2
    print(f"cost model: {args.target_rows:,} rows x {args.target_columns:,} columns is {target:.2e} multiply-adds, "
          f"{4 * args.target_columns ** 2 / 2**40:.1f} TiB of blocks (held a tile at a time)")
    for gpus in (4, 16, 64):
        seconds = 2 * target / (gpus * args.gpu_tflops * 1e12)
        print(f"  {gpus:3d} GPUs at {args.gpu_tflops:.0f} TFLOP/s each: {seconds / 3600:.2f} h of GEMM "
              f"(vs {target / rate / gpus / 3600:,.0f} h on {gpus} CPU tasks like this one)")


if __name__ == "__main__":
    main()
