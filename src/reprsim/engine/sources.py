"""Where the engine's rows come from: a representation's row chunks, or an attention layer's sentence maps.

A source is data access only; a representation is named by its `id` (a `reprsim.layers.LayerId` for stored
layers). `stream` runs one pass over the rows of many representation sources into a `CrossMoments`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from reprsim.arrays import ArrayLike
from reprsim.layers import LayerId

from .moments import CrossMoments


@dataclass(frozen=True)
class RepresentationSource:
    """One representation to compare: an id, its width and a factory of row-chunk iterators.

    Parameters
    ----------
    id
        How results and errors name the representation (any hashable; `from_store` uses a `LayerId`).
    width
        Number of neurons (columns).
    chunks
        ``chunks(chunk_rows)`` returns a fresh iterator over the rows in corpus order, at most `chunk_rows` at
        a time; it is called once per pass. Every source of one comparison must yield the same rows in the
        same chunking.
    n_rows
        Number of rows, if known (sizes the progress bar).
    """

    id: Hashable
    width: int
    chunks: Callable[[int], Iterable[ArrayLike]]
    n_rows: int | None = None

    @classmethod
    def from_array(cls, id: Hashable, array: ArrayLike) -> RepresentationSource:
        """A source over an in-memory or memory-mapped 2-D array (numpy, torch, zarr).

        Parameters
        ----------
        id
            The representation's name in results and errors.
        array
            Rows x neurons.

        Returns
        -------
        RepresentationSource
            A source streaming slices of `array`.

        Raises
        ------
        ValueError
            If `array` is not 2-D.
        """
        shape = tuple(getattr(array, "shape", ()))
        if len(shape) != 2:
            raise ValueError(f"representation {id!r} must be a 2-D array (rows x neurons), got shape {shape}")
        rows = int(shape[0])

        def chunks(chunk_rows: int) -> Iterator[ArrayLike]:
            for start in range(0, rows, chunk_rows):
                yield array[start : start + chunk_rows]

        return cls(id=id, width=int(shape[1]), chunks=chunks, n_rows=rows)

    @classmethod
    def from_store(cls, entry: Any, layer: int, rows: tuple[int, int] | None = None) -> RepresentationSource:
        """A source over one layer of a `reprsim.store.StoreEntry` (streams ``entry.iter_rows``).

        Parameters
        ----------
        entry
            A complete store entry.
        layer
            One of ``entry.layer_ids``.
        rows
            Only the rows [start, stop) (a shard of the corpus; default: every row).

        Returns
        -------
        RepresentationSource
            A source named ``LayerId(entry.name, layer)``.

        Raises
        ------
        KeyError
            If the entry does not hold that layer (the message names the stored layers).
        """
        width = entry.layer_width(layer)
        start, stop = rows if rows is not None else (0, int(entry.n_words))

        def chunks(chunk_rows: int) -> Iterator[ArrayLike]:
            return iter(entry.iter_rows(layer, chunk_rows, start, stop))

        return cls(id=LayerId(entry.name, int(layer)), width=int(width), chunks=chunks, n_rows=stop - start)


@dataclass(frozen=True)
class AttentionSource:
    """One attention layer to compare: an id, its head count and its word-level maps per sentence.

    Parameters
    ----------
    id
        How results and errors name the layer.
    heads
        Number of attention heads.
    maps
        ``maps()`` returns a fresh iterator over the sentences' (heads, T, T) word-level maps, in corpus order.
    """

    id: Hashable
    heads: int
    maps: Callable[[], Iterable[ArrayLike]]

    @classmethod
    def from_store(cls, entry: Any, layer: int) -> AttentionSource:
        """The attention maps of one layer of a `reprsim.store.StoreEntry`.

        Parameters
        ----------
        entry
            A complete store entry extracted with attention.
        layer
            One of ``entry.layer_ids`` with attention heads.

        Returns
        -------
        AttentionSource
            A source named ``LayerId(entry.name, layer)``.
        """
        return cls(id=LayerId(entry.name, int(layer)), heads=int(entry.heads(layer)),
                   maps=lambda: iter(entry.iter_attention(layer)))


def check_sources(reps: Sequence[RepresentationSource]) -> list[RepresentationSource]:
    """The sources as a list, each checked to be a `RepresentationSource` of positive integer width.

    Parameters
    ----------
    reps
        The sources.

    Returns
    -------
    list of RepresentationSource
        The same sources.

    Raises
    ------
    ValueError
        If there are none, or one is not a source or has a bad width (naming it).
    """
    out = list(reps)
    if not out:
        raise ValueError("no representations given")
    for i, rep in enumerate(out):
        if not isinstance(rep, RepresentationSource):
            raise ValueError(f"reps[{i}] must be a RepresentationSource, got {type(rep).__name__}")
        if isinstance(rep.width, bool) or not isinstance(rep.width, int) or rep.width < 1:
            raise ValueError(f"representation {rep.id!r}: width must be a positive integer, got {rep.width!r}")
    return out


def read_rows(source: RepresentationSource, rows: np.ndarray, chunk_rows: int) -> np.ndarray:
    """The chosen rows of one representation as float32, read chunk by chunk (never the whole layer).

    Parameters
    ----------
    source
        The representation.
    rows
        Sorted row indices.
    chunk_rows
        Rows per chunk read.

    Returns
    -------
    numpy.ndarray
        ``len(rows)`` x width, float32.
    """
    parts = []
    start = 0
    for chunk in source.chunks(chunk_rows):
        stop = start + int(np.shape(chunk)[0])
        lo, hi = np.searchsorted(rows, [start, stop])
        parts.append(np.asarray(chunk[rows[lo:hi] - start]))
        start = stop
    return np.concatenate(parts).astype(np.float32, copy=False)


def stream(
    sources: Sequence[RepresentationSource],
    moments: CrossMoments,
    chunk_rows: int,
    progress: bool,
    description: str,
) -> None:
    """One pass over the rows of `sources` into `moments` (the i-th source is the i-th representation).

    The chunks of one step are read one representation at a time as `CrossMoments.update` consumes them, so
    only one raw chunk is alive at once. Sources that no pending block needs are not read; the moments'
    staging buffers are released at the end.

    Parameters
    ----------
    sources
        One source per representation of `moments`.
    moments
        The accumulator to update.
    chunk_rows
        Rows per chunk asked of each source.
    progress
        Show a progress bar over the chunks.
    description
        The progress bar's label.

    Raises
    ------
    ValueError
        If sources end early or late, or give chunks of other sizes (naming both sources), or a chunk fails
        `CrossMoments.update`'s checks.
    """
    needed = moments.needed()
    iterators = {i: iter(src.chunks(chunk_rows)) for i, src in enumerate(sources) if needed[i]}
    if not iterators:
        return
    first = min(iterators)
    known = sources[first].n_rows
    sentinel = object()

    def mismatch(i: int, more: bool) -> ValueError:
        return ValueError(
            f"representation {sources[i].id!r} has {'more' if more else 'fewer'} rows than "
            f"{sources[first].id!r}: every representation must hold the same rows (words)"
        )

    def step(head: ArrayLike) -> Iterator[ArrayLike | None]:
        rows = int(np.shape(head)[0]) if np.ndim(head) else 0
        for i in range(len(sources)):
            if i not in iterators:
                yield None
            elif i == first:
                yield head
            else:
                value: Any = next(iterators[i], sentinel)
                if value is sentinel:
                    raise mismatch(i, more=False)
                if np.ndim(value) and int(np.shape(value)[0]) != rows:
                    raise ValueError(
                        f"representation {sources[i].id!r} gave a chunk of {np.shape(value)[0]} rows where "
                        f"{sources[first].id!r} gave {rows}: every representation must hold the same rows "
                        "(words) in the same chunks"
                    )
                yield value

    names = [src.id for src in sources]
    total = math.ceil(known / chunk_rows) if known else None
    with tqdm(total=total, desc=description, unit="chunk", disable=not progress, leave=False) as bar:
        for head in iterators[first]:
            moments.update(step(head), names=names)
            bar.update(1)
    moments.release_buffers()
    for i, it in iterators.items():
        if i != first and next(it, sentinel) is not sentinel:
            raise mismatch(i, more=True)
