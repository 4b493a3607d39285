"""Scale benchmark: all pairs of 2 models x 13 layers x 768 streamed from an on-disk store, memory vs rows.

Writes synthetic activations (see _synthetic.py) for two models into a `reprsim.store.ActivationStore`
(float16, zstd; a numpy memmap per layer if the store package is unavailable), then, for each row count in
--sizes, runs `all_pairs` with the five study measures in a fresh process and reports its time and its peak
resident memory beyond the same process's baseline after imports and opening the store (no data read yet).
Memory should not grow with the rows; time should grow linearly.

    python benchmarks/bench_scale.py --rows 20000 --layers 3 --width 128   # small, seconds
    python benchmarks/bench_scale.py                                        # 1M rows: about 40 GB of disk, hours

The store is kept under --store (default: a directory in the system temp dir, removed at the end unless
--keep-store); an existing complete store with the same settings is reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import STUDY_MEASURES, SyntheticStudy, machine, peak_rss_bytes

WORDS_PER_SENTENCE = 25
WRITE_ROWS = 8200  # rows per write call (whole sentences of 25 words)


def has_store() -> bool:
    try:
        from reprsim.store import ActivationStore  # noqa: F401
    except ImportError:
        return False
    return True


def sentence_lengths(rows: int) -> list[int]:
    full, rest = divmod(rows, WORDS_PER_SENTENCE)
    return [WORDS_PER_SENTENCE] * full + ([rest] if rest else [])


def write_store(path: Path, study: SyntheticStudy, rows: int) -> str:
    """Write (or reuse) the synthetic models; returns which backend holds them ("store" or "memmap")."""
    if has_store():
        from reprsim.store import ActivationStore

        store = ActivationStore(path, create=True)
        lengths = sentence_lengths(rows)
        for model in range(study.n_models):
            key = f"synthetic-m{model}"
            if store.has_complete(key):
                continue
            manifest = {"name": f"model{model}", "rows": rows, "study": repr(study)}
            layers = list(range(study.n_layers))
            writer = store.writer(
                key, manifest, layers, [study.width] * study.n_layers, lengths, None, "float16", overwrite=True
            )
            per_call = WRITE_ROWS // WORDS_PER_SENTENCE
            for first in range(0, len(lengths), per_call):
                last = min(first + per_call, len(lengths))
                start, stop = first * WORDS_PER_SENTENCE, min(last * WORDS_PER_SENTENCE, rows)
                hidden = [study.layer_rows(model, layer, start, stop) for layer in layers]
                writer.write_sentences(first, last, hidden, None)
                print(f"\rwriting model {model}: {stop}/{rows} rows", end="", flush=True)
            writer.finalize()
            print()
        return "store"
    path.mkdir(parents=True, exist_ok=True)
    for model in range(study.n_models):
        for layer in range(study.n_layers):
            file = path / f"m{model}-l{layer}.f16"
            if file.exists() and file.stat().st_size == rows * study.width * 2:
                continue
            array = np.lib.format.open_memmap(file, mode="w+", dtype=np.float16, shape=(rows, study.width))
            for start in range(0, rows, WRITE_ROWS):
                stop = min(start + WRITE_ROWS, rows)
                array[start:stop] = study.layer_rows(model, layer, start, stop)
            array.flush()
            del array
    return "memmap"


def sources(path: Path, study: SyntheticStudy, rows: int, backend: str) -> list[Any]:
    """RepresentationSources over the first `rows` rows of every layer of both models."""
    from reprsim.engine import RepresentationSource

    out = []
    if backend == "store":
        from reprsim.store import ActivationStore

        store = ActivationStore(path, create=False)
        for model in range(study.n_models):
            entry = store.get(f"synthetic-m{model}", verify=False)
            for layer in range(study.n_layers):

                def chunks(chunk_rows: int, entry: Any = entry, layer: int = layer) -> Iterator[np.ndarray]:
                    for start in range(0, rows, chunk_rows):
                        yield entry.read_rows(layer, start, min(start + chunk_rows, rows))

                out.append(RepresentationSource((entry.name, layer), study.width, chunks, rows))
        return out
    for model in range(study.n_models):
        for layer in range(study.n_layers):
            array = np.load(path / f"m{model}-l{layer}.f16", mmap_mode="r")
            out.append(RepresentationSource.from_array((f"model{model}", layer), array[:rows]))
    return out


def worker(args: argparse.Namespace) -> int:
    """One measurement in this (fresh) process: prints a JSON line."""
    from reprsim.engine import all_pairs

    study = SyntheticStudy(n_layers=args.layers, width=args.width)
    reps = sources(Path(args.store), study, args.rows, args.backend)
    baseline = peak_rss_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        results = all_pairs(
            reps, STUDY_MEASURES, chunk_rows=args.chunk_rows, precision=args.precision, progress=args.progress
        )
        seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    print(
        json.dumps({"rows": args.rows, "seconds": seconds, "baseline": baseline, "peak": peak, "pairs": len(results)})
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows written (the largest size)")
    parser.add_argument("--sizes", default=None, help="comma-separated row counts (default: rows/4, rows/2, rows)")
    parser.add_argument("--layers", type=int, default=13, help="layers per model")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--chunk-rows", type=int, default=4096)
    parser.add_argument("--precision", choices=("float64", "float32"), default="float32")
    parser.add_argument("--store", default=None, help="store directory (default: a temporary one)")
    parser.add_argument("--keep-store", action="store_true")
    parser.add_argument("--progress", action="store_true", help="show the engine's progress bars")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.rows // 4, args.rows // 2, args.rows]
    if max(sizes) > args.rows:
        raise SystemExit(f"--sizes exceed --rows {args.rows}")
    study = SyntheticStudy(n_layers=args.layers, width=args.width)
    store_dir = Path(args.store) if args.store else Path(tempfile.gettempdir()) / f"reprsim-scale-{args.rows}"
    print(f"machine: {machine()}")
    start = time.perf_counter()
    backend = write_store(store_dir, study, args.rows)
    written = time.perf_counter() - start
    on_disk = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file())
    what = "reprsim.store (zarr, zstd)" if backend == "store" else "numpy memmap (reprsim.store unavailable)"
    print(
        f"data: {study.n_models} models x {args.layers} layers x {args.width} neurons, float16, {args.rows} rows in "
        f"{what} at {store_dir}: {on_disk / 2**30:.1f} GiB on disk (prepared in {written:.0f} s)"
    )
    print(
        f"engine: all_pairs, measures {', '.join(STUDY_MEASURES)}, precision {args.precision}, chunk {args.chunk_rows}"
    )
    print()
    print(f"{'rows':>10s} {'seconds':>9s} {'us/row':>8s} {'baseline RSS':>13s} {'peak RSS':>10s} {'extra':>9s}")
    for rows in sizes:
        command = [
            sys.executable, __file__, "--worker", "--rows", str(rows), "--layers", str(args.layers),
            "--width", str(args.width), "--chunk-rows", str(args.chunk_rows), "--precision", args.precision,
            "--store", str(store_dir), "--backend", backend,
        ]  # fmt: skip
        if args.progress:
            command.append("--progress")
        out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # progress bars: stderr
        record = json.loads(out.stdout.strip().splitlines()[-1])
        extra = record["peak"] - record["baseline"]
        print(
            f"{rows:10d} {record['seconds']:9.1f} {1e6 * record['seconds'] / rows:8.1f} "
            f"{record['baseline'] / 2**30:12.2f}G {record['peak'] / 2**30:9.2f}G {extra / 2**30:8.2f}G",
            flush=True,
        )
    if not args.keep_store and not args.store:
        shutil.rmtree(store_dir, ignore_errors=True)
    print()
    print("extra = peak RSS of the run minus the RSS after imports and opening the store; target < 4 GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
