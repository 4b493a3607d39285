"""Realistic synthetic layer activations for the engine benchmarks (no model needed).

Each model's layers mix a latent signal shared by both models (the words' "meaning") with a private one,
through a mixing matrix that drifts from layer to layer (adjacent layers are similar, distant ones less),
plus isotropic noise growing with depth, per-neuron scales (log-normal), per-neuron mean offsets, and a few
"massive activation" neurons with large mean and scale, as transformer hidden states have. Rows are
generated in fixed blocks from seeds that depend only on the block, so any row range is reproducible
without generating the rows before it (the 1M-row scale benchmark writes the data block by block).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

BLOCK_ROWS = 4096  # generation block; row ranges are assembled from whole blocks


@dataclass(frozen=True)
class SyntheticStudy:
    """n_models models x n_layers layers x width neurons of synthetic activations (float32)."""

    n_models: int = 2
    n_layers: int = 13
    width: int = 768
    shared_rank: int = 48
    private_rank: int = 24
    drift: float = 0.35
    noise: float = 0.6
    outliers: int = 2  # massive-activation neurons per layer
    seed: int = 0
    _mixing: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def n_reps(self) -> int:
        return self.n_models * self.n_layers

    def rep_index(self, model: int, layer: int) -> int:
        return model * self.n_layers + layer

    def _layer_params(self, model: int, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mixing matrix, per-neuron scale, per-neuron mean) of one layer; drifts with depth."""
        key = (model, layer)
        if key not in self._mixing:
            rank = self.shared_rank + self.private_rank
            rng = np.random.default_rng([self.seed, 7919, model])
            mixing = rng.standard_normal((rank, self.width)) / np.sqrt(rank)
            keep = np.sqrt(1.0 - self.drift**2)
            for step in range(1, layer + 1):
                step_rng = np.random.default_rng([self.seed, 7919, model, step])
                step_noise = step_rng.standard_normal((rank, self.width)) / np.sqrt(rank)
                mixing = keep * mixing + self.drift * step_noise
            rng = np.random.default_rng([self.seed, 104729, model, layer])
            scale = rng.lognormal(0.0, 0.5, self.width)
            mean = rng.normal(0.0, 1.0, self.width)
            massive = rng.choice(self.width, size=self.outliers, replace=False)
            scale[massive] *= 12.0
            mean[massive] += 40.0
            self._mixing[key] = (mixing.astype(np.float32), scale.astype(np.float32), mean.astype(np.float32))
        return self._mixing[key]

    def _block(self, model: int, layer: int, block: int) -> np.ndarray:
        """Rows [block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS) of one layer."""
        shared_rng = np.random.default_rng([self.seed, block])
        decay = (1.0 + np.arange(self.shared_rank, dtype=np.float32)) ** -0.5
        shared = shared_rng.standard_normal((BLOCK_ROWS, self.shared_rank), dtype=np.float32) * decay
        private_rng = np.random.default_rng([self.seed, block, 1000 + model])
        private = private_rng.standard_normal((BLOCK_ROWS, self.private_rank), dtype=np.float32)
        mixing, scale, mean = self._layer_params(model, layer)
        signal = np.concatenate([shared, private], axis=1) @ mixing
        noise_rng = np.random.default_rng([self.seed, block, model, layer])
        sigma = self.noise * (1.0 + 0.05 * layer)
        signal += sigma * noise_rng.standard_normal(signal.shape, dtype=np.float32)
        signal *= scale
        signal += mean
        return signal

    def layer_rows(self, model: int, layer: int, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of one layer as float32."""
        if not 0 <= start <= stop:
            raise ValueError(f"bad row range [{start}, {stop})")
        first, last = start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS if stop > start else start // BLOCK_ROWS
        parts = [self._block(model, layer, b) for b in range(first, last + 1)] if stop > start else []
        if not parts:
            return np.empty((0, self.width), dtype=np.float32)
        rows = np.concatenate(parts, axis=0)
        offset = first * BLOCK_ROWS
        return np.ascontiguousarray(rows[start - offset : stop - offset])

    def layer(self, model: int, layer: int, n: int) -> np.ndarray:
        return self.layer_rows(model, layer, 0, n)

    def all_layers(self, n: int) -> list[np.ndarray]:
        """Every representation (model-major order) with n rows each."""
        return [self.layer(m, layer, n) for m in range(self.n_models) for layer in range(self.n_layers)]

    def iter_blocks(self, model: int, layer: int, n: int, rows: int) -> Iterator[np.ndarray]:
        """Rows of one layer in chunks of `rows` (generated on the fly)."""
        for start in range(0, n, rows):
            yield self.layer_rows(model, layer, start, min(start + rows, n))


# --- shared by the benchmarks ------------------------------------------------------------------------------
STUDY_MEASURES: tuple[str, ...] = ("linear_cka", "maxsim", "linreg", "svcca", "pwcca")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def machine() -> str:
    """One line describing where the numbers were measured."""
    import os
    import platform

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, {gpu}; "
        f"load average at start {load:.1f}"
    )


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """--quick, --rows, --layers, --width and --chunk-rows: the study shape shared by study and roofline."""
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 2 x 4 layers x 128 (seconds)")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None, help="layers per model")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--chunk-rows", type=int, default=8192)


def study_from_arguments(args: argparse.Namespace) -> tuple[SyntheticStudy, int]:
    """The synthetic study and its row count: 2 x 13 x 768 on 10,000 rows, or 2 x 4 x 128 on 2,000 (--quick)."""
    rows = args.rows or (2000 if args.quick else 10000)
    n_layers = args.layers or (4 if args.quick else 13)
    width = args.width or (128 if args.quick else 768)
    return SyntheticStudy(n_layers=n_layers, width=width), rows
