"""Statistics benchmark: the demo's comparison with and without intervals and nulls.

Runs `reprsim.compare` on the demo's store (MiniLM, SmolLM2 at every fifth layer and their random controls;
the demo's 18 measures, 2,000 subsample rows, 100 attention sentences) once without statistics and once per
statistics setting, each in a fresh process, and prints its wall time, its ratio to the run without
statistics, and its peak resident memory. The target: statistics at most double the comparison's time.

    python benchmarks/bench_statistics.py                 # the demo's store (made by `reprsim demo` if absent)
    python benchmarks/bench_statistics.py --quick         # MiniLM and its control, 100 sentences, 4 measures
    python benchmarks/bench_statistics.py --store DIR --settings "jackknife,analytic,20;bootstrap,permutation,20"
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import machine

DEMO_MEASURES = (
    "maxsim,linreg,r2_lr,cca_r2,cca_rho,svcca,pwcca,linear_cka,debiased_cka,rbf_cka,procrustes,"
    "procrustes_distance,angular_distance,rsa,mutual_knn,attention_js,attention_pearson,attention_cka"
)
QUICK_MEASURES = "linear_cka,maxsim,rbf_cka,attention_js"
DEFAULT_SETTINGS = "jackknife,analytic,50;jackknife,analytic,20;bootstrap,permutation,20"


def one_run(args: argparse.Namespace) -> None:
    """Run one comparison in this process and print its seconds and peak memory as JSON."""
    import warnings

    from reprsim import compare

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    table = compare(args.store, args.measures.split(","), subsample_rows=args.subsample_rows,
                    attention_sentences=args.attention_sentences, progress=False, ci=args.ci, null=args.null,
                    blocks=args.blocks, resamples=args.resamples, permutations=args.permutations)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "rows": len(table.frame)}))


def timed(args: argparse.Namespace, ci: str, null: str, blocks: int) -> dict[str, float]:
    """One comparison in a fresh process (so that its peak memory is its own)."""
    command = [sys.executable, __file__, "--one", "--store", str(args.store), "--measures", args.measures,
               "--subsample-rows", str(args.subsample_rows), "--attention-sentences", str(args.attention_sentences),
               "--ci", ci, "--null", null, "--blocks", str(blocks), "--resamples", str(args.resamples),
               "--permutations", str(args.permutations)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_store(args: argparse.Namespace) -> None:
    """Extract the store the benchmark compares, unless it is there."""
    if Path(args.store).is_dir():
        return
    if args.quick:
        subprocess.run(["reprsim", "extract", "minilm", "minilm-random", "--corpus", "builtin", "--max-sentences",
                        "100", "--store", str(args.store), "--quiet"], check=True)
    else:
        subprocess.run(["reprsim", "demo", "--quiet", "--out", str(Path(args.store).parent)], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=None, help="activation store (default: the demo's)")
    p.add_argument("--quick", action="store_true", help="MiniLM and its control, 100 sentences, 4 measures")
    p.add_argument("--measures", default=None, help="comma-separated measures (default: the demo's)")
    p.add_argument("--settings", default=DEFAULT_SETTINGS,
                   help="semicolon-separated ci,null,blocks settings to time against no statistics")
    p.add_argument("--subsample-rows", type=int, default=2000)
    p.add_argument("--attention-sentences", type=int, default=100)
    p.add_argument("--resamples", type=int, default=200, help="B")
    p.add_argument("--permutations", type=int, default=100, help="K")
    p.add_argument("--ci", default="none", help=argparse.SUPPRESS)
    p.add_argument("--null", default="none", help=argparse.SUPPRESS)
    p.add_argument("--blocks", type=int, default=50, help=argparse.SUPPRESS)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measures is None:
        args.measures = QUICK_MEASURES if args.quick else DEMO_MEASURES
    if args.store is None:
        args.store = Path("reprsim-out/bench-statistics-quick/store" if args.quick else "reprsim-out/demo/store")
    if args.one:
        one_run(args)
        return
    make_store(args)
    print(f"machine: {machine()}")
    print(f"store {args.store}; measures {args.measures}; B = {args.resamples}, K = {args.permutations}")
    base = timed(args, "none", "none", 50)
    print(f"{'ci':<10} {'null':<12} {'G':>3} {'seconds':>9} {'ratio':>6} {'peak MiB':>9}")
    print(f"{'none':<10} {'none':<12} {'':>3} {base['seconds']:9.1f} {1.0:6.2f} {base['peak_mib']:9.0f}")
    for setting in args.settings.split(";"):
        ci, null, blocks = setting.split(",")
        found = timed(args, ci, null, int(blocks))
        print(f"{ci:<10} {null:<12} {int(blocks):>3} {found['seconds']:9.1f} {found['seconds'] / base['seconds']:6.2f} "
              f"{found['peak_mib']:9.0f}")


if __name__ == "__main__":
    main()
