"""Linear and debiased CKA in feature space (the pass) and in sample space (n x n Gram matrices).

A text-level study has one row per text and wide layers: here 2 models x 6 layers x 2,048 neurons on 1,000
texts (synthetic activations written to a store), compared with `reprsim.compare` on linear and debiased CKA
with `space="feature"`, `"gram"` and `"auto"` in one run. Prints each route's seconds, the cost model's
multiply-adds, the route `auto` took and the largest difference of the values.

    python benchmarks/bench_sample_space.py
    python benchmarks/bench_sample_space.py --texts 4000 --width 1024
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reprsim
from _synthetic import machine
from reprsim.comparison import plan_lines
from reprsim.comparison_records import space_costs
from reprsim.store import ActivationStore, make_key

MEASURES = ["linear_cka", "debiased_cka"]


def write_store(path: Path, texts: int, layers: int, width: int) -> ActivationStore:
    """Two synthetic models sharing a latent signal, one row per text."""
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((texts, 32))
    store = ActivationStore(path)
    for m in range(2):
        name = f"model{m}"
        manifest = {"name": name, "corpus_hash": "texts", "model": name}
        ids = list(range(layers))
        writer = store.writer(make_key(name, manifest), manifest, ids, [width] * layers, [1] * texts, [0] * layers)
        arrays = [(latent @ rng.standard_normal((32, width)) + rng.standard_normal((texts, width))).astype(np.float32)
                  for _ in ids]
        writer.write_sentences(0, texts, arrays, [[None] * texts for _ in ids])
        writer.finalize()
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=6, help="layers per model")
    parser.add_argument("--width", type=int, default=2048)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="reprsim-bench-space-") as tmp:
        store = write_store(Path(tmp) / "store", args.texts, args.layers, args.width)
        feature_cost, gram_cost = space_costs(args.texts, [args.width] * 2 * args.layers, len(MEASURES))
        print(f"data: 2 models x {args.layers} layers x {args.width}, {args.texts} rows (one per text); "
              f"measures {', '.join(MEASURES)}")
        print(f"cost model: feature space {feature_cost:.2g} multiply-adds, sample space {gram_cost:.2g}")
        print(next(line for line in plan_lines(store, MEASURES) if line.startswith("CKA route")))
        seconds, values = {}, {}
        for space in ("feature", "gram", "auto"):
            start = time.perf_counter()
            table = reprsim.compare(store, measures=MEASURES, space=space, progress=False)
            seconds[space] = time.perf_counter() - start
            keys = ["model_a", "layer_a", "model_b", "layer_b", "measure", "direction"]
            values[space] = table.frame.sort_values(keys)["value"].to_numpy()
    print()
    for space, took in seconds.items():
        print(f"space={space:8s} {took:7.2f} s  ({seconds['feature'] / took:5.1f}x the feature space's speed)")
    print(f"largest difference, gram against feature: {np.abs(values['gram'] - values['feature']).max():.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
