"""Where an entry's files live and how rows and attention blocks map to positions in its arrays.

Layout of one entry (store format version FORMAT_VERSION; entries of any other version are refused)::

    <store>/<key>/manifest.json       what the entry holds (written once, before any data)
    <store>/<key>/progress.json       {"done_sentences": k}: the durable prefix (replaced atomically)
    <store>/<key>/complete.json       completion marker: per-file sizes and checksums (written last)
    <store>/<key>/hidden/<layer>/     zarr v3 array, n_words x width, chunks of whole rows in files
                                      c.<i>.0
    <store>/<key>/attention/<layer>/  zarr v3 1-D array: for each sentence s, its (heads, T_s, T_s) map
                                      flattened in C order, sentences concatenated; chunk files c.<i>
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
# Bumped whenever the files of an entry change; an entry of another version is refused, with advice to
# extract it again (one reader, one layout).
FORMAT_VERSION = 2
CHUNK_KEY_SEPARATOR = "."  # chunk files side by side in the array's folder, not a folder per row chunk


# Automatic row chunks hold 2-4 MiB (up to CHUNK_BYTES): small enough that rewriting the partly filled last
# chunk on every append stays cheap, large enough that writing one costs little beyond its bytes (creating
# and flushing a file costs about a millisecond on ext4, whatever its size).
CHUNK_BYTES = 4 << 20
MIN_CHUNK_ROWS = 64
MAX_CHUNK_ROWS = 4096


def auto_chunk_rows(width: int, itemsize: int) -> int:
    """Choose the rows per chunk of a layer.

    Parameters
    ----------
    width : int
        Values per row (the layer's width).
    itemsize : int
        Bytes per stored value.

    Returns
    -------
    int
        The largest power of two of rows whose chunk fits in CHUNK_BYTES, clipped to [64, 4096].
    """
    rows = max(1, CHUNK_BYTES // (width * itemsize))
    return min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, 1 << (rows.bit_length() - 1)))


def hidden_name(layer: int) -> str:
    """Return the relative path of a layer's hidden-state array inside an entry.

    Parameters
    ----------
    layer : int
        The layer id.

    Returns
    -------
    str
        ``"hidden/<layer>"``.
    """
    return f"{HIDDEN_DIR}/{layer}"


def attention_name(layer: int) -> str:
    """Return the relative path of a layer's attention array inside an entry.

    Parameters
    ----------
    layer : int
        The layer id.

    Returns
    -------
    str
        ``"attention/<layer>"``.
    """
    return f"{ATTENTION_DIR}/{layer}"


def word_offsets(sentence_lengths: list[int]) -> np.ndarray:
    """Return the row where each sentence starts.

    Parameters
    ----------
    sentence_lengths : list of int
        Words per sentence.

    Returns
    -------
    numpy.ndarray
        int64 array of length n_sentences + 1; the last value is n_words.
    """
    return np.concatenate([[0], np.cumsum(np.asarray(sentence_lengths, dtype=np.int64))])


def attention_offsets(sentence_lengths: list[int], heads: int) -> np.ndarray:
    """Return the element where each sentence's heads x T x T block starts in a flat attention array.

    Parameters
    ----------
    sentence_lengths : list of int
        Words per sentence.
    heads : int
        Attention heads of the layer.

    Returns
    -------
    numpy.ndarray
        int64 array of length n_sentences + 1; the last value is the array's length.
    """
    lengths = np.asarray(sentence_lengths, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(heads * lengths * lengths)])


def row_chunking(meta: dict[str, Any]) -> tuple[int, int]:
    """Read an array's row count and rows per chunk from its zarr.json.

    Parameters
    ----------
    meta : dict
        The parsed zarr.json of the array.

    Returns
    -------
    tuple of int
        (rows, rows per chunk).
    """
    return int(meta["shape"][0]), int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])


def chunk_files(array_dir: Path, start: int, stop: int, chunk: int, ndim: int) -> list[Path]:
    """List the chunk files that hold rows (or elements) [start, stop) of an array.

    Parameters
    ----------
    array_dir : pathlib.Path
        The array's folder.
    start, stop : int
        The range of rows, ``start < stop``.
    chunk : int
        Rows per chunk.
    ndim : int
        Dimensions of the array (a 2-D array's chunk files are ``c.<i>.0``, a 1-D array's ``c.<i>``).

    Returns
    -------
    list of pathlib.Path
        The files, in row order.
    """
    first, last = start // chunk, (stop - 1) // chunk
    suffix = ("0",) * (ndim - 1)
    return [array_dir / CHUNK_KEY_SEPARATOR.join(("c", str(i), *suffix)) for i in range(first, last + 1)]
