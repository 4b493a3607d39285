"""n x n measures: `reprsim compare` against another checkout of reprsim, in the same run.

The case of issue #20: MiniLM and its randomly initialised control (7 layers each, 384 wide) on the first
200 sentences of the built-in corpus (4,665 words, all inside the default 5,000-row subsample), compared on
RBF CKA, RSA and mutual k-NN, every layer against every layer. Each side runs `reprsim compare` as a
subprocess on the same store (this checkout, and the checkout whose ``src`` folder --baseline-src names),
alternating over the repeats; prints the median wall time, the peak resident memory of each, their ratios
and the largest difference of the values (the target: at least 10x faster, at most 2 GB of extra memory).

    git worktree add /tmp/reprsim-before 637670e      # the code when the issue was filed
    python benchmarks/bench_nxn.py --baseline-src /tmp/reprsim-before/src
    python benchmarks/bench_nxn.py --quick              # 40 sentences, no baseline
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import machine

HERE = Path(__file__).resolve().parents[1] / "src"
MEASURES = "rbf_cka,rsa,mutual_knn"
KEYS = ["model_a", "layer_a", "model_b", "layer_b", "measure", "direction"]


def run_compare(src: Path, store: Path, out: Path, measures: str) -> tuple[float, int]:
    """Wall seconds and peak resident bytes of one `reprsim compare` run with `src` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "reprsim", "compare", "--store", str(store), "--measures", measures,
               "--out", str(out), "--quiet", "--overwrite"]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"reprsim compare with {src} failed (status {status})")
    return seconds, usage.ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", type=Path, help="the src folder of the checkout to compare against")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--measures", default=MEASURES, help=f"what to compare (default {MEASURES}; or all)")
    parser.add_argument("--quick", action="store_true", help="40 sentences, one repeat")
    args = parser.parse_args(argv)
    sentences, repeats = (40, 1) if args.quick else (args.sentences, args.repeats)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="reprsim-bench-nxn-") as tmp:
        store = Path(tmp) / "store"
        subprocess.run([sys.executable, "-m", "reprsim", "extract", "minilm", "minilm-random", "--corpus", "builtin",
                        "--max-sentences", str(sentences), "--store", str(store), "--no-attention", "--quiet"],
                       env={**os.environ, "PYTHONPATH": str(HERE)}, check=True, stdout=subprocess.DEVNULL)
        sides = {"this checkout": HERE}
        if args.baseline_src is not None:
            sides["baseline"] = args.baseline_src.resolve()
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        peak: dict[str, int] = dict.fromkeys(sides, 0)
        for _ in range(repeats):
            for name, src in sides.items():
                took, rss = run_compare(src, store, Path(tmp) / f"{name}.parquet", args.measures)
                seconds[name].append(took)
                peak[name] = max(peak[name], rss)
        tables = {name: pd.read_parquet(Path(tmp) / f"{name}.parquet") for name in sides}
        store_bytes = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    print(f"data: minilm + minilm-random, {sentences} sentences, 7 layers each; measures {args.measures}; "
          f"store {store_bytes / 2**20:.0f} MiB; median of {repeats}")
    print()
    print(f"{'':16s} {'seconds':>8s} {'peak RSS':>10s}")
    for name in sides:
        print(f"{name:16s} {statistics.median(seconds[name]):8.1f} {peak[name] / 2**30:8.2f} GiB")
    if "baseline" in sides:
        ours, theirs = statistics.median(seconds["this checkout"]), statistics.median(seconds["baseline"])
        both = tables["this checkout"].merge(tables["baseline"], on=KEYS, suffixes=("", "_baseline"))
        print()
        print(f"speed-up {theirs / ours:.1f}x (target: at least 10x); peak memory "
              f"{peak['this checkout'] / 2**30:.2f} GiB against {peak['baseline'] / 2**30:.2f} GiB; "
              f"{len(both)} values, largest difference {float((both.value - both.value_baseline).abs().max()):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
