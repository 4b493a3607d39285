"""Study benchmark: the full matrix of five linear measures for 2 models x 13 layers x 768 neurons.

reprsim (`reprsim.engine.all_pairs`: one streaming pass, then per-pair d x d algebra) against per-pair
implementations measured in the same run: a plain numpy loop (every pair computed from its rows, the way
per-pair code works), pytorch-cka (debiased CKA from Gram matrices) and repsim (C++ all-pairs; only at
small sizes, it takes minutes per pair at the full size). Baselines run on a seeded sample of pairs and are
extrapolated linearly to all pairs (every pair has the same shapes, so a per-pair loop's cost is exactly
linear in the number of pairs). Prints each baseline's time, reprsim's time, their ratio, and the largest
absolute difference of the values over the sampled pairs.

    python benchmarks/bench_study.py            # 10,000 rows, 26 layers x 768 (several minutes on 2 cores)
    python benchmarks/bench_study.py --quick    # 2,000 rows, 8 layers x 128 (seconds)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import STUDY_MEASURES, add_study_arguments, machine, study_from_arguments
from reprsim.engine import ENGINE_MEASURES, Directed, RepresentationSource, all_pairs

PairValue = float | tuple[float, float]


# --- plain numpy per-pair baselines (textbook definitions, docs/measures.md) ----------------------------
def _centre(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def _standardise(x: np.ndarray) -> np.ndarray:
    c = _centre(x)
    return c / np.linalg.norm(c, axis=0)


def np_linear_cka(x: np.ndarray, y: np.ndarray) -> PairValue:
    xc, yc = _centre(x), _centre(y)
    return float(np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def np_maxsim(x: np.ndarray, y: np.ndarray) -> PairValue:
    corr = np.abs(_standardise(x).T @ _standardise(y))
    return float(corr.max(axis=1).mean()), float(corr.max(axis=0).mean())


def np_linreg(x: np.ndarray, y: np.ndarray) -> PairValue:
    xs, ys = _standardise(x), _standardise(y)
    qx, qy = np.linalg.qr(xs)[0], np.linalg.qr(ys)[0]
    return float(np.linalg.norm(qy.T @ xs, axis=0).mean()), float(np.linalg.norm(qx.T @ ys, axis=0).mean())


def _top_directions(x: np.ndarray, keep: float) -> np.ndarray:
    u, s, _ = np.linalg.svd(_centre(x), full_matrices=False)
    fraction = np.cumsum(s**2) / np.sum(s**2)
    return u[:, : int(np.sum(fraction < keep)) + 1]


def np_svcca(x: np.ndarray, y: np.ndarray, keep: float = 0.99) -> PairValue:
    ux, uy = _top_directions(x, keep), _top_directions(y, keep)
    return float(np.clip(np.linalg.svd(ux.T @ uy, compute_uv=False), 0.0, 1.0).mean())


def np_pwcca(x: np.ndarray, y: np.ndarray) -> PairValue:
    xc, yc = _centre(x), _centre(y)
    qx, qy = np.linalg.qr(_standardise(x))[0], np.linalg.qr(_standardise(y))[0]
    u, rho, vt = np.linalg.svd(qx.T @ qy, full_matrices=False)
    rho = np.clip(rho, 0.0, 1.0)
    alpha = np.abs((qx @ u).T @ xc).sum(axis=1)
    beta = np.abs((qy @ vt.T).T @ yc).sum(axis=1)
    return float(alpha @ rho / alpha.sum()), float(beta @ rho / beta.sum())


NUMPY_BASELINES: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], PairValue]]] = {
    "linear_cka": ("numpy per-pair (3 GEMMs)", np_linear_cka),
    "maxsim": ("numpy per-pair (correlation matrix)", np_maxsim),
    "linreg": ("numpy per-pair (2 QR)", np_linreg),
    "svcca": ("numpy per-pair (2 SVD + CCA)", np_svcca),
    "pwcca": ("numpy per-pair (2 QR + SVD)", np_pwcca),
}


# --- library baselines ----------------------------------------------------------------------------------
def library_baselines(rows: int, width: int) -> list[tuple[str, str, Callable[..., PairValue], str]]:
    """(measure compared, description, per-pair function, note) for the libraries that are installed."""
    found: list[tuple[str, str, Callable[..., PairValue], str]] = []
    if importlib.util.find_spec("cka") is not None:
        import torch
        from cka import cka_from_features

        def pytorch_cka(x: np.ndarray, y: np.ndarray) -> PairValue:
            # float64: in float32 its Gram-space sums of uncentred activations cancel catastrophically
            # (on this data the float32 result is off by up to 0.99)
            return float(cka_from_features(torch.from_numpy(x).double(), torch.from_numpy(y).double())[0, 0])

        found.append(("debiased_cka", "pytorch-cka 1.1.3 cka_from_features (Gram, float64)", pytorch_cka, ""))
    if importlib.util.find_spec("repsim") is not None:
        if rows <= 2000 and width <= 256:
            import repsim

            def repsim_cka(x: np.ndarray, y: np.ndarray) -> PairValue:
                return float(repsim.cka([x, y], "linear", "gretton")[0, 1])

            def repsim_pwcca(x: np.ndarray, y: np.ndarray) -> PairValue:
                return float(repsim.pwcca([x, y])[0, 1])

            found.append(("linear_cka", "repsim 0.1.5 cka(linear, gretton) (C++)", repsim_cka, ""))
            found.append(("pwcca", "repsim 0.1.5 pwcca (C++, mean of both directions)", repsim_pwcca, "sym"))
        else:
            print(
                "repsim 0.1.5: skipped at this size (its C++ CKA took 11.7 s per pair at 2,000 rows x 128 "
                "and grows ~n^3;\n  its PWCCA 39 s per pair at 2,000 x 256, growing faster than d^3); "
                "see --quick"
            )
    return found


def _as_pair(value: float | Directed[float]) -> PairValue:
    return (value.a_to_b, value.b_to_a) if isinstance(value, Directed) else value


def _difference(got: PairValue, want: PairValue) -> float:
    g = np.atleast_1d(np.asarray(got, dtype=np.float64))
    w = np.atleast_1d(np.asarray(want, dtype=np.float64))
    return float(np.abs(g - w).max())


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Limit numpy's BLAS and torch to `count` threads for the duration."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(count):
            yield
    finally:
        torch.set_num_threads(before)


def time_baseline(
    function: Callable[..., PairValue],
    reps: list[np.ndarray],
    pairs: list[tuple[int, int]],
    reference: dict[tuple[int, int], PairValue],
) -> tuple[float, float, int]:
    """(seconds per pair, max |difference| to reprsim, BLAS threads used) over the sampled pairs.

    The baseline gets its faster thread setting, tried on the first pair: on a shared 2-core machine a
    2-thread LAPACK call can be 40x slower than a 1-thread one, which would flatter reprsim.
    """
    import os

    trial: dict[int, float] = {}
    for count in sorted({1, os.cpu_count() or 1}):
        with blas_threads(count):
            start = time.perf_counter()
            function(reps[pairs[0][0]], reps[pairs[0][1]])
            trial[count] = time.perf_counter() - start
    threads = min(trial, key=lambda c: trial[c])
    elapsed, worst = 0.0, 0.0
    with blas_threads(threads):
        for a, b in pairs:
            start = time.perf_counter()
            value = function(reps[a], reps[b])
            elapsed += time.perf_counter() - start
            worst = max(worst, _difference(value, reference[(a, b)]))
    return elapsed / len(pairs), worst, threads


def report_line(measure: str, label: str, per_pair: float, n_pairs: int, engine: float, worst: float) -> str:
    total = per_pair * n_pairs
    return f"{measure:13s} {label:56s} {per_pair:8.3f} {total:9.1f}s {total / engine:7.1f}x {worst:10.1e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(parser)
    parser.add_argument("--baseline-pairs", type=int, default=None, help="pairs sampled for the baselines")
    parser.add_argument("--library-pairs", type=int, default=3, help="pairs sampled for library baselines")
    parser.add_argument("--precision", choices=("float64", "float32"), default="float64")
    args = parser.parse_args(argv)
    study, rows = study_from_arguments(args)
    n_layers, width = study.n_layers, study.width
    reps = study.all_layers(rows)
    n_pairs = study.n_reps * (study.n_reps - 1) // 2
    sample_size = min(n_pairs, args.baseline_pairs or (n_pairs if args.quick else 8))
    everything = [(a, b) for a in range(study.n_reps) for b in range(a + 1, study.n_reps)]
    chosen = np.random.default_rng(0).choice(len(everything), size=sample_size, replace=False)
    sample = [everything[i] for i in sorted(chosen)]
    library_sample = sample[: max(1, min(len(sample), args.library_pairs))]
    libraries = library_baselines(rows, width)
    measures = STUDY_MEASURES + tuple(m for m, *_ in libraries if m not in STUDY_MEASURES)

    print(f"machine: {machine()}")
    print(
        f"study: {study.n_models} models x {n_layers} layers x {width} neurons, {rows} rows "
        f"(float32 synthetic), {n_pairs} pairs; measures {', '.join(measures)}; engine precision {args.precision}"
    )
    sources = [RepresentationSource.from_array(i, r) for i, r in enumerate(reps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        results = all_pairs(sources, measures, progress=False, precision=args.precision, chunk_rows=args.chunk_rows)
        engine_seconds = time.perf_counter() - start
    values = {(r.a, r.b): {m: _as_pair(v) for m, v in r.values.items()} for r in results}
    print(f"reprsim all_pairs, all {len(measures)} measures, all {n_pairs} pairs: {engine_seconds:.1f} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        all_pairs(sources, ENGINE_MEASURES, progress=False, precision=args.precision, chunk_rows=args.chunk_rows)
        every_seconds = time.perf_counter() - start
    print(
        f"reprsim all_pairs, every streamable measure ({len(ENGINE_MEASURES)}), all {n_pairs} pairs: "
        f"{every_seconds:.1f} s = {every_seconds / engine_seconds:.2f}x the {len(measures)} measures above "
        "(target: at most 1.3x)"
    )
    print(
        f"numpy baselines timed on {sample_size} sampled pairs, libraries on {len(library_sample)}; "
        f"extrapolated linearly to all {n_pairs} pairs"
    )
    print()
    header = (
        f"{'measure':13s} {'baseline (BLAS threads)':56s} {'s/pair':>8s} {'all pairs':>10s} {'ratio':>8s} "
        f"{'max|diff|':>10s}"
    )
    print(header)
    print("-" * len(header))
    total_numpy = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for measure, (label, function) in NUMPY_BASELINES.items():
            reference = {p: values[p][measure] for p in sample}
            per_pair, worst, threads = time_baseline(function, reps, sample, reference)
            total_numpy += per_pair * n_pairs
            print(report_line(measure, f"{label} ({threads})", per_pair, n_pairs, engine_seconds, worst))
        summed = "sum of the five numpy per-pair loops"
        print(f"{'all five':13s} {summed:56s} {'':8s} {total_numpy:9.1f}s {total_numpy / engine_seconds:7.1f}x")
        for measure, label, function, kind in libraries:
            reference = {}
            for p in library_sample:
                value = values[p][measure]
                reference[p] = float(np.mean(value)) if kind == "sym" and isinstance(value, tuple) else value
            per_pair, worst, threads = time_baseline(function, reps, library_sample, reference)
            print(report_line(measure, f"{label} ({threads})", per_pair, n_pairs, engine_seconds, worst))
    print()
    print(
        "ratio = baseline time for all pairs / reprsim time for all measures and pairs (conservative: each\n"
        "measure is charged reprsim's whole run). max|diff| = largest absolute difference of the values\n"
        "(both directions of directed measures) over the sampled pairs. rsatoolbox 0.3.2 is installed but\n"
        "computes RSA only (not a linear measure); cka-pytorch 1.1.3 is on the index but requires\n"
        "lightning/torchvision/torchmetrics (it would replace the pinned torch), so it is not installed."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
