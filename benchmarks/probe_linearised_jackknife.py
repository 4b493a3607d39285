"""Probe: the linearised against the refitted (exact) delete-one-block jackknife, on draws whose spread is known.

Draws R independent data sets (n rows, widths 30 and 20 sharing 8 latent dimensions, so most canonical
correlations are noise), and for every linearised measure prints the Monte Carlo standard deviation of its value
(the truth the standard error estimates) beside the mean jackknife standard error of each method, and the
seconds each method's comparisons took in all.

    python benchmarks/probe_linearised_jackknife.py            # n = 4000, 60 draws, G = 20
    python benchmarks/probe_linearised_jackknife.py --n 20000 --draws 30
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from reprsim.engine import RepresentationSource, SvccaOptions, score_pairs
from reprsim.engine.linear_family import LinearFamily
from reprsim.engine.linear_fit import Directed
from reprsim.inference import InferenceOptions, sentence_blocks

MEASURES = ["maxsim", "linreg", "r2_lr", "cca_r2", "cca_rho", "svcca", "procrustes", "procrustes_distance",
            "angular_distance"]


def jackknife(x: np.ndarray, y: np.ndarray, method: str, bounds: np.ndarray, blocks: int) -> dict[str, object]:
    """The pair's values and statistics under one jackknife method."""
    sources = [RepresentationSource.from_array("x", x), RepresentationSource.from_array("y", y)]
    family = LinearFamily(sources, MEASURES, device=torch.device("cpu"), precision="float64", svcca=SvccaOptions(),
                          chunk_rows=4096, bounds=bounds,
                          inference=InferenceOptions(ci="jackknife", blocks=blocks, jackknife=method))
    ((_, _, values),) = list(score_pairs(family, [(0, 1)], 1 << 30))
    return dict(values)


SUFFIX = ("", " (b -> a)")


def directions(value: object) -> list:
    """A directed value's two directions, or the value alone."""
    return [value.a_to_b, value.b_to_a] if isinstance(value, Directed) else [value]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--draws", type=int, default=60)
    p.add_argument("--blocks", type=int, default=20)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    mixing = np.random.default_rng(0)
    to_x, to_y = mixing.standard_normal((12, 30)), mixing.standard_normal((8, 20))
    bounds = sentence_blocks(np.full(args.n // 10, 10), args.blocks)
    values: dict[str, list[float]] = {}
    errors: dict[str, dict[str, list[float]]] = {"linearised": {}, "exact": {}}
    seconds = {"linearised": 0.0, "exact": 0.0}
    for draw in range(args.draws):
        r = np.random.default_rng(100 + draw)
        z = r.standard_normal((args.n, 12))
        x = z @ to_x + 0.7 * r.standard_normal((args.n, 30)) + 3.0
        y = z[:, :8] @ to_y + r.standard_normal((args.n, 20))
        for method in ("linearised", "exact"):
            start = time.perf_counter()
            scored = jackknife(x, y, method, bounds, args.blocks)
            seconds[method] += time.perf_counter() - start
            for m in MEASURES:
                for direction, u in enumerate(directions(scored["uncertainty"][m])):  # type: ignore[index]
                    errors[method].setdefault(f"{m}{SUFFIX[direction]}", []).append(u.se)
                if method == "exact":
                    for direction, v in enumerate(directions(scored[m])):
                        values.setdefault(f"{m}{SUFFIX[direction]}", []).append(float(v))
    print(f"n = {args.n}, G = {args.blocks}, {args.draws} draws; mean SE / Monte Carlo SD of the value")
    print(f"{'measure':22s} {'MC SD':>9s} {'linearised':>11s} {'exact':>8s}")
    for m in values:
        sd = float(np.std(values[m], ddof=1))
        lin, exact = (float(np.mean(errors[k][m])) / sd for k in ("linearised", "exact"))
        print(f"{m:22s} {sd:9.5f} {lin:11.2f} {exact:8.2f}")
    print(f"seconds: linearised {seconds['linearised']:.1f}, exact {seconds['exact']:.1f}")


if __name__ == "__main__":
    main()
