"""Extraction benchmark: words per second of `reprsim.extract` against the bare transformers forward pass.

Both run the same model (MiniLM preset by default) on the same sentences in the same batches: the baseline
tokenises each batch of pre-split words and calls the model with output_hidden_states=True (no alignment, no
store), the way a notebook would; reprsim adds word alignment, (optionally) word-level attention, and the
chunked on-disk store with durable progress. Batches are formed the way `extract` forms them (sentences
sorted by length within windows of contiguous sentences), so padding is identical. Prints both rates and the
overhead ratio (target: under 15%).

    python benchmarks/bench_extract.py                     # MiniLM, 1,000 sentences, hidden states only
    python benchmarks/bench_extract.py --attention         # with word-level attention (eager attention in both)
    python benchmarks/bench_extract.py --model smollm2 --sentences 200
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import machine
from reprsim.corpus import Corpus
from reprsim.extraction import extract
from reprsim.extraction.models import load_transformer, resolve_device, resolve_model
from reprsim.extraction.plan import length_batches, window_bounds
from reprsim.store import ActivationStore


def batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Sentence indices per batch, exactly as `extract` forms them (its own window and batching functions)."""
    return [
        [start + i for i in batch]
        for start, stop in window_bounds(0, len(lengths))
        for batch in length_batches(lengths[start:stop], batch_size)
    ]


def bare_forward(model_name: str, corpus: Corpus, batch_size: int, attention: bool) -> float:
    source = resolve_model(model_name)
    model, tok = load_transformer(source, attention=attention, device=resolve_device("cpu"))
    sentences = corpus.sentences
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches(corpus.sentence_lengths, batch_size):
            enc = tok([sentences[i] for i in batch], is_split_into_words=True, padding=True, return_tensors="pt")
            model(**enc, output_hidden_states=True, output_attentions=attention)
    return time.perf_counter() - start


def reprsim_extract(model_name: str, corpus: Corpus, batch_size: int, attention: bool) -> tuple[float, float]:
    """Seconds of `extract`, and seconds of writing its hidden states alone into a fresh store (same windows,
    same durability and checksums): the part of the overhead that is the store's."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ActivationStore(Path(tmp) / "run")
        start = time.perf_counter()
        (entry,) = extract(
            [model_name], corpus, store, attention=attention, batch_size=batch_size, device="cpu", progress=False
        )
        seconds = time.perf_counter() - start
        layers = entry.layer_ids
        hidden = [entry.read_rows(layer, 0, entry.n_words) for layer in layers]
        lengths = entry.sentence_lengths
        offsets = [0, *itertools.accumulate(lengths)]
        writer = ActivationStore(Path(tmp) / "copy").writer(
            "copy", {"name": "copy"}, layers, [h.shape[1] for h in hidden], lengths, None
        )
        start = time.perf_counter()
        for first, last in window_bounds(0, len(lengths)):
            writer.write_sentences(first, last, [h[offsets[first] : offsets[last]] for h in hidden])
        writer.finalize()
        return seconds, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--attention", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each side")
    args = parser.parse_args()
    corpus = Corpus.builtin(n=args.sentences, max_words=40)
    print(
        f"{machine()}; {args.model}, {len(corpus)} sentences, {corpus.n_words} words, batch {args.batch_size}, "
        f"attention {'on' if args.attention else 'off'}"
    )
    bare, ours, writes = [], [], []
    for _ in range(args.repeats):  # interleaved so both sides see the same machine load
        bare.append(bare_forward(args.model, corpus, args.batch_size, args.attention))
        seconds, write = reprsim_extract(args.model, corpus, args.batch_size, args.attention)
        ours.append(seconds)
        writes.append(write)
    b, o, w = min(bare), min(ours), min(writes)
    paired = statistics.median(x / y for x, y in zip(ours, bare, strict=True))
    print(f"bare forward:     {b:7.2f} s  {corpus.n_words / b:8.0f} words/s")
    print(f"reprsim extract:  {o:7.2f} s  {corpus.n_words / o:8.0f} words/s (incl. model load and store)")
    print(f"overhead ratio:   {o / b:.3f} best of each (target < 1.15); {paired:.3f} median of the paired repeats")
    print(f"store alone:      {w:7.2f} s  = {w / b:.3f} of the bare forward (writing the hidden states durably)")


if __name__ == "__main__":
    main()
