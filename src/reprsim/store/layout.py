"""Where an entry's files live and how rows and attention blocks map to positions in its arrays.

<store>/<key>/manifest.json    what the entry holds (written once, before any data)
<store>/<key>/progress.json    {"done_sentences": k}: the durable prefix (replaced atomically)
<store>/<key>/complete.json    completion marker: per-file sizes and checksums (written last)
<store>/<key>/hidden/<layer>/  zarr v3 array, n_words x width, chunks of whole rows (about 1 MiB) in files
                               c.<i>.0 (entries written before 22 November 2026: c/<i>/0)
<store>/<key>/attention/<layer>/  zarr v3 1-D array: for each sentence s, its (heads, T_s, T_s) map
                               flattened in C order, sentences concatenated; chunk files c.<i> (or c/<i>)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
PROGRESS = "progress.json"
COMPLETE = "complete.json"
ZARR_METADATA = "zarr.json"  # each array's own metadata file
HIDDEN_DIR = "hidden"
ATTENTION_DIR = "attention"
FORMAT = "reprsim-activations"
FORMAT_VERSION = 1


# Automatic row chunks hold 2-4 MiB (up to CHUNK_BYTES): small enough that rewriting the partly filled last
# chunk on every append stays cheap, large enough that writing one costs little beyond its bytes (a direct
# write pays about a millisecond per file on ext4: 1 MiB chunks cost 4x the system time of 4 MiB ones).
CHUNK_BYTES = 4 << 20
MIN_CHUNK_ROWS = 64
MAX_CHUNK_ROWS = 4096


def auto_chunk_rows(width: int, itemsize: int) -> int:
    """Rows per chunk for a layer: the largest power of two up to CHUNK_BYTES / row size, in [64, 4096]."""
    rows = max(1, CHUNK_BYTES // (width * itemsize))
    return min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, 1 << (rows.bit_length() - 1)))


def hidden_name(layer: int) -> str:
    """Relative path of a layer's hidden-state array inside the entry."""
    return f"{HIDDEN_DIR}/{layer}"


def attention_name(layer: int) -> str:
    """Relative path of a layer's attention array inside the entry."""
    return f"{ATTENTION_DIR}/{layer}"


def word_offsets(sentence_lengths: list[int]) -> np.ndarray:
    """Row where each sentence starts (length n_sentences + 1; the last value is n_words)."""
    return np.concatenate([[0], np.cumsum(np.asarray(sentence_lengths, dtype=np.int64))])


def attention_offsets(sentence_lengths: list[int], heads: int) -> np.ndarray:
    """Element where each sentence's heads x T x T block starts in the flat attention array (+ the total)."""
    lengths = np.asarray(sentence_lengths, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(heads * lengths * lengths)])


def row_chunking(meta: dict[str, Any]) -> tuple[int, int, str]:
    """(rows, rows per chunk, chunk key separator) of an array, from its zarr.json ("/" is zarr's default)."""
    return (
        int(meta["shape"][0]),
        int(meta["chunk_grid"]["configuration"]["chunk_shape"][0]),
        str(meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")),
    )


def chunk_files(array_dir: Path, start: int, stop: int, chunk: int, ndim: int, separator: str = ".") -> list[Path]:
    """Chunk files that hold elements or rows [start, stop) of an array: zarr v3 default chunk keys with
    `separator`, "c.i.0" (written since 22 November 2026) or "c/i/0" (zarr's default, earlier entries)."""
    first, last = start // chunk, (stop - 1) // chunk
    suffix = ("0",) * (ndim - 1)
    return [array_dir.joinpath(*separator.join(("c", str(i), *suffix)).split("/")) for i in range(first, last + 1)]
