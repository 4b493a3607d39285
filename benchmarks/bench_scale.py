"""Scale benchmark: all pairs of 2 models x 13 layers x 768 streamed from an on-disk store, memory vs rows.

Writes synthetic activations (see _synthetic.py) for two models into a `reprsim.store.ActivationStore`
(float16; a numpy memmap per layer if the store package is unavailable). Then, in a fresh process,
it streams the rows once into `CrossMoments` (all blocks) and, each time the row count reaches a size of
--sizes, derives the five study measures for every pair (`pair_results`): the time at a size is the pass so
far plus that derivation, the work an `all_pairs` run on that many rows does. --separate instead runs one
`all_pairs` process per size (re-streaming the first rows each time). Reported memory is the peak resident
set beyond the process's own baseline after imports and opening the store (no data read yet): it should
not grow with the rows, while time grows linearly.

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
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import STUDY_MEASURES, SyntheticStudy, machine, peak_rss_bytes

WORDS_PER_SENTENCE = 32
WRITE_ROWS = 8192  # rows per write call: whole sentences and whole generation blocks


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


def readers(path: Path, study: SyntheticStudy, backend: str) -> list[tuple[Any, Any]]:
    """(id, read(start, stop) -> rows) for every layer of both models, in model-major order."""
    out: list[tuple[Any, Any]] = []
    if backend == "store":
        from reprsim.store import ActivationStore

        store = ActivationStore(path, create=False)
        for model in range(study.n_models):
            entry = store.get(f"synthetic-m{model}", verify=False)
            for layer in range(study.n_layers):
                out.append(((entry.name, layer), partial(entry.read_rows, layer)))
        return out
    for model in range(study.n_models):
        for layer in range(study.n_layers):
            array = np.load(path / f"m{model}-l{layer}.f16", mmap_mode="r")
            out.append(((f"model{model}", layer), partial(lambda a, start, stop: a[start:stop], array)))
    return out


def separate_run(args: argparse.Namespace) -> int:
    """One `all_pairs` run over the first --rows rows in this (fresh) process: prints a JSON line."""
    from reprsim.engine import RepresentationSource, all_pairs

    study = SyntheticStudy(n_layers=args.layers, width=args.width)
    rows = args.rows

    def source(rep_id: Any, read: Any) -> RepresentationSource:
        def chunks(chunk_rows: int) -> Iterator[np.ndarray]:
            for start in range(0, rows, chunk_rows):
                yield read(start, min(start + chunk_rows, rows))

        return RepresentationSource(rep_id, study.width, chunks, rows)

    reps = [source(rep_id, read) for rep_id, read in readers(Path(args.store), study, args.backend)]
    baseline = peak_rss_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        all_pairs(reps, STUDY_MEASURES, chunk_rows=args.chunk_rows, precision=args.precision, progress=args.progress)
        seconds = time.perf_counter() - start
    record = {"rows": rows, "pass": None, "derive": None, "seconds": seconds, "baseline": baseline}
    print(json.dumps({**record, "peak": peak_rss_bytes()}), flush=True)
    return 0


def checkpoint_run(args: argparse.Namespace) -> int:
    """One streaming pass to the largest size, deriving every pair at each size on the way (JSON lines)."""
    from tqdm.auto import tqdm

    from reprsim.engine import CrossMoments, pair_results

    study = SyntheticStudy(n_layers=args.layers, width=args.width)
    layer_readers = readers(Path(args.store), study, args.backend)
    ids = [rep_id for rep_id, _ in layer_readers]
    sizes = sorted(int(s) for s in args.sizes.split(","))
    baseline = peak_rss_bytes()
    moments = CrossMoments([study.width] * study.n_reps, device="cpu", precision=args.precision)
    done, streaming = 0, 0.0
    bar = tqdm(total=sizes[-1], unit="row", disable=not args.progress)
    for size in sizes:
        start = time.perf_counter()
        while done < size:
            stop = min(done + args.chunk_rows, size)
            moments.update(read(done, stop) for _, read in layer_readers)
            bar.update(stop - done)
            done = stop
        streaming += time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            pair_results(moments, STUDY_MEASURES, ids=ids)
            deriving = time.perf_counter() - start
        record = {"rows": size, "pass": streaming, "derive": deriving, "seconds": streaming + deriving}
        print(json.dumps({**record, "baseline": baseline, "peak": peak_rss_bytes()}), flush=True)
    bar.close()
    return 0


def print_record(record: dict[str, Any]) -> None:
    def seconds(key: str) -> str:
        return "-" if record.get(key) is None else f"{record[key]:.1f}"

    extra = record["peak"] - record["baseline"]
    print(
        f"{record['rows']:10d} {seconds('pass'):>8s} {seconds('derive'):>9s} {record['seconds']:8.1f} "
        f"{1e6 * record['seconds'] / record['rows']:7.1f} {record['baseline'] / 2**30:12.2f}G "
        f"{record['peak'] / 2**30:8.2f}G {extra / 2**30:7.2f}G",
        flush=True,
    )


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
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument(
        "--separate", action="store_true", help="one all_pairs process per size (re-streams the first rows)"
    )
    parser.add_argument("--worker", choices=("separate", "checkpoints"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "separate":
        return separate_run(args)
    if args.worker == "checkpoints":
        return checkpoint_run(args)

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.rows // 4, args.rows // 2, args.rows]
    if max(sizes) > args.rows or min(sizes) < 2:
        raise SystemExit(f"--sizes must lie in [2, --rows={args.rows}]")
    study = SyntheticStudy(n_layers=args.layers, width=args.width)
    store_dir = Path(args.store) if args.store else Path(tempfile.gettempdir()) / f"reprsim-scale-{args.rows}"
    print(f"machine: {machine()}")
    start = time.perf_counter()
    backend = write_store(store_dir, study, args.rows)
    written = time.perf_counter() - start
    on_disk = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file())
    what = "reprsim.store (raw chunks + crc32c)" if backend == "store" else "numpy memmap (reprsim.store unavailable)"
    print(
        f"data: {study.n_models} models x {args.layers} layers x {args.width} neurons, float16, {args.rows} rows "
        f"in {what} at {store_dir}: {on_disk / 2**30:.1f} GiB on disk (prepared in {written:.0f} s)"
    )
    mode = "one all_pairs process per size" if args.separate else "one pass, all pairs derived at each size"
    print(f"engine: measures {', '.join(STUDY_MEASURES)}, precision {args.precision}, chunk {args.chunk_rows}; {mode}")
    print()
    print(
        f"{'rows':>10s} {'pass s':>8s} {'derive s':>9s} {'total s':>8s} {'us/row':>7s} {'baseline RSS':>13s} "
        f"{'peak RSS':>9s} {'extra':>8s}"
    )
    common = [
        sys.executable, __file__, "--layers", str(args.layers), "--width", str(args.width),
        "--chunk-rows", str(args.chunk_rows), "--precision", args.precision, "--store", str(store_dir),
        "--backend", backend,
    ] + (["--progress"] if args.progress else [])  # fmt: skip
    if args.separate:
        commands = [[*common, "--worker", "separate", "--rows", str(rows)] for rows in sizes]
    else:
        commands = [[*common, "--worker", "checkpoints", "--sizes", ",".join(map(str, sizes))]]
    for command in commands:
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:  # progress bars: stderr
            assert process.stdout is not None
            for line in process.stdout:
                print_record(json.loads(line))
        if process.returncode:
            raise SystemExit(f"benchmark worker failed with exit status {process.returncode}")
    if not args.keep_store and not args.store:
        shutil.rmtree(store_dir, ignore_errors=True)
    print()
    print("extra = peak RSS of the run minus the RSS after imports and opening the store; target < 4 GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
