"""One-shot measures in a pair loop against plain numpy code of the same formula.

`reprsim.measures.linear_cka` and its siblings validate their input (finite values, safe range, constant
neurons, the input's own rounding) and compute in float64. This times each of them on 10,000 x 768 float32
inputs against a plain numpy float64 implementation of its textbook formula (X -> Y for the directed
measures, as the one-shot functions compute them; no checks), interleaving the two over several repeats,
and prints the median seconds per call, their ratio (target: at most 1.5 at the full size) and the
difference of the values.

    python benchmarks/bench_one_shot.py              # 10,000 x 768, 5 repeats
    python benchmarks/bench_one_shot.py --quick      # 2,000 x 128
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reprsim.measures as measures
from _synthetic import machine
from bench_study import _centre, _standardise, np_linear_cka, np_svcca


# One direction, X -> Y, as the one-shot functions compute it (bench_study.py's baselines give both).
def np_maxsim(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(_standardise(x).T @ _standardise(y)).max(axis=1).mean())


def np_linreg(x: np.ndarray, y: np.ndarray) -> float:
    qy = np.linalg.qr(_standardise(y))[0]
    return float(np.linalg.norm(qy.T @ _standardise(x), axis=0).mean())


def np_pwcca(x: np.ndarray, y: np.ndarray) -> float:
    qx, qy = np.linalg.qr(_standardise(x))[0], np.linalg.qr(_standardise(y))[0]
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    alpha = np.abs((qx @ u).T @ _centre(x)).sum(axis=1)
    return float(alpha @ np.clip(rho, 0.0, 1.0) / alpha.sum())


def np_procrustes(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = _centre(x), _centre(y)
    nuclear = np.linalg.svd(yc.T @ xc, compute_uv=False).sum()
    return float(nuclear / np.sqrt(np.sum(xc**2) * np.sum(yc**2)))


BASELINES: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], float]]] = {
    "linear_cka": ("numpy (3 GEMMs)", np_linear_cka),  # type: ignore[dict-item]
    "maxsim": ("numpy (correlation matrix)", np_maxsim),
    "linreg": ("numpy (QR of Y)", np_linreg),
    "svcca": ("numpy (2 SVD + CCA)", np_svcca),  # type: ignore[dict-item]
    "pwcca": ("numpy (2 QR + SVD)", np_pwcca),
    "procrustes": ("numpy (SVD of the cross-covariance)", np_procrustes),
}


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 rows x 128 (seconds)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows, width = (2000, 128) if args.quick else (10_000, 768)
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((rows, 64))
    x = (shared @ rng.standard_normal((64, width)) + rng.standard_normal((rows, width))).astype(np.float32)
    y = (shared @ rng.standard_normal((64, width)) + rng.standard_normal((rows, width))).astype(np.float32)
    print(f"machine: {machine()}")
    print(f"data: X, Y = {rows} x {width} float32; median of {args.repeats} interleaved repeats per call")
    print()
    print(f"{'measure':12s} {'baseline':46s} {'reprsim s':>10s} {'numpy s':>9s} {'ratio':>7s} {'max diff':>9s}")
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (description, baseline) in BASELINES.items():
            function = getattr(measures, name)
            ours, theirs = [], []
            got, want = function(x, y), baseline(x, y)  # warm-up, and the values compared
            for _ in range(args.repeats):
                ours.append(_seconds(lambda: function(x, y)))  # noqa: B023 - called at once
                theirs.append(_seconds(lambda: baseline(x, y)))  # noqa: B023
            a, b = statistics.median(ours), statistics.median(theirs)
            worst = max(worst, a / b)
            print(f"{name:12s} {description:46s} {a:10.3f} {b:9.3f} {a / b:6.2f}x {abs(got - want):9.1e}")
    print()
    print(f"largest ratio {worst:.2f}x (target: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
