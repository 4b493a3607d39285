"""Roofline benchmark: the whole study against one matrix multiply of the cross-product size.

The engine's floor is the GEMM Z^T Z (Z = all representations side by side, n x D): every linear measure for
every pair needs those cross-products. This times, in one run on the same data as bench_study.py,
- the study: `all_pairs` with the five study measures (pass + per-pair derivations),
- the pass alone (`CrossMoments` over all blocks: the symmetric half of Z^T Z, in float64),
- one float64 and one float32 `torch.mm(Z.T, Z)` (the full product, on a contiguous Z),
and prints study / GEMM ratios (target: <= 1.5 against the float32 GEMM) and the derivations' share of the
pass (target: <= 25%).

    python benchmarks/bench_roofline.py            # 10,000 rows, 26 layers x 768
    python benchmarks/bench_roofline.py --quick    # 2,000 rows, 8 layers x 128
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import STUDY_MEASURES, add_study_arguments, machine, study_from_arguments
from reprsim.engine import CrossMoments, RepresentationSource, all_pairs


def time_gemm(reps: list[np.ndarray], dtype: torch.dtype) -> float:
    """Seconds for one Z^T Z with Z the representations side by side (contiguous, in `dtype`)."""
    z = torch.from_numpy(np.concatenate(reps, axis=1)).to(dtype)
    start = time.perf_counter()
    product = torch.mm(z.T, z)
    seconds = time.perf_counter() - start
    del product, z
    return seconds


def time_pass(reps: list[np.ndarray], chunk_rows: int, precision: str) -> tuple[float, int]:
    """Seconds and multiply-adds of one CrossMoments pass over all blocks."""
    moments = CrossMoments([r.shape[1] for r in reps], device="cpu", precision=precision)  # type: ignore[arg-type]
    start = time.perf_counter()
    for s in range(0, reps[0].shape[0], chunk_rows):
        moments.update(r[s : s + chunk_rows] for r in reps)
    return time.perf_counter() - start, moments.multiply_adds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(parser)
    args = parser.parse_args(argv)
    study, rows = study_from_arguments(args)
    width = study.width
    reps = study.all_layers(rows)
    total_width = sum(r.shape[1] for r in reps)
    print(f"machine: {machine()}")
    print(f"data: {study.n_reps} representations x {width} = D {total_width}, n = {rows} rows")

    sources = [RepresentationSource.from_array(i, r) for i, r in enumerate(reps)]
    timings: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        all_pairs(sources, STUDY_MEASURES, progress=False, chunk_rows=args.chunk_rows)
        timings["study (float64 pass)"] = time.perf_counter() - start
        start = time.perf_counter()
        all_pairs(sources, STUDY_MEASURES, progress=False, chunk_rows=args.chunk_rows, precision="float32")
        timings["study (float32 pass)"] = time.perf_counter() - start
    timings["pass alone, float64"], macs = time_pass(reps, args.chunk_rows, "float64")
    timings["pass alone, float32"], _ = time_pass(reps, args.chunk_rows, "float32")
    gemm64 = time_gemm(reps, torch.float64)
    gemm32 = time_gemm(reps, torch.float32)
    full = rows * total_width * total_width
    print(
        f"GEMM Z^T Z ({full / 1e12:.2f} T multiply-adds): float64 {gemm64:.1f} s "
        f"({2 * full / gemm64 / 1e9:.0f} GFLOP/s), float32 {gemm32:.1f} s ({2 * full / gemm32 / 1e9:.0f} GFLOP/s)"
    )
    print(f"the pass computes the blocks a <= b only: {macs / 1e12:.2f} T multiply-adds ({macs / full:.0%} of Z^T Z)")
    print()
    print(f"{'':26s} {'seconds':>8s} {'/ GEMM f64':>11s} {'/ GEMM f32':>11s}")
    for name, seconds in timings.items():
        print(f"{name:26s} {seconds:8.1f} {seconds / gemm64:10.2f}x {seconds / gemm32:10.2f}x")
    derivation = timings["study (float64 pass)"] - timings["pass alone, float64"]
    print()
    print(f"per-pair derivations (study - pass, float64): {derivation:.1f} s = "
          f"{derivation / timings['pass alone, float64']:.0%} of the pass (target: at most 25%)")
    print(f"study (float64) / float32 GEMM: {timings['study (float64 pass)'] / gemm32:.2f}x (target: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
