"""Every linear measure for many pairs of representations from streamed row chunks (`all_pairs`).

One pass over the rows accumulates the requested cross-product blocks (`CrossMoments`); each
representation's decompositions are then computed once (`RepresentationStats`) and each pair pays only for
its own d x d cross terms. Memory is independent of the number of rows: it is the blocks (8 d_a d_b bytes
each) plus one chunk. When the requested blocks exceed `memory_limit_bytes`, they are computed tile by
tile, one pass over the rows per tile (the diagonal blocks in the first pass only).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from reprsim.measures._input import ArrayLike, ConstantNeuronWarning, FewRowsWarning
from reprsim.measures.neuron import NeuronMatch

from .derive import (
    CCA_TYPE_MEASURES,
    Directed,
    MeasureValue,
    PairTerms,
    RepresentationStats,
    SvccaOptions,
    check_measures,
    derive,
    neuron_matches,
)
from .moments import CrossMoments, Precision, check_precision, resolve_device

DEFAULT_MEMORY_LIMIT = 4 * 2**30  # bytes of block accumulators per pass before tiling


@dataclass(frozen=True)
class StoredLayer:
    """Identifies a layer of an activation-store entry: `model` is the entry's display name."""

    key: str
    model: str
    layer: int


@dataclass(frozen=True)
class RepresentationSource:
    """One representation to compare: an id, its width and a factory of row-chunk iterators.

    chunks(chunk_rows) must return a fresh iterator over the rows in corpus order, at most chunk_rows at a
    time (it is called once per pass). Every source of one call must yield the same rows in the same
    chunking. n_rows (optional) sizes the progress bar.
    """

    id: Hashable
    width: int
    chunks: Callable[[int], Iterable[ArrayLike]]
    n_rows: int | None = None

    @classmethod
    def from_array(cls, id: Hashable, array: ArrayLike) -> RepresentationSource:
        """A source over an in-memory or memory-mapped 2-D array (numpy, torch, zarr)."""
        shape = tuple(getattr(array, "shape", ()))
        if len(shape) != 2:
            raise ValueError(f"representation {id!r} must be a 2-D array (rows x neurons), got shape {shape}")
        rows = int(shape[0])

        def chunks(chunk_rows: int) -> Iterator[ArrayLike]:
            for start in range(0, rows, chunk_rows):
                yield array[start : start + chunk_rows]

        return cls(id=id, width=int(shape[1]), chunks=chunks, n_rows=rows)

    @classmethod
    def from_store(cls, entry: Any, layer: int) -> RepresentationSource:
        """A source over one layer of a `reprsim.store.StoreEntry` (streams `entry.iter_rows`)."""
        width = entry.layer_width(layer)  # KeyError naming the stored layers when absent

        def chunks(chunk_rows: int) -> Iterator[ArrayLike]:
            return iter(entry.iter_rows(layer, chunk_rows))

        return cls(
            id=StoredLayer(key=entry.key, model=entry.name, layer=int(layer)),
            width=int(width),
            chunks=chunks,
            n_rows=int(entry.n_words),
        )


@dataclass(frozen=True)
class PairResult:
    """The measures of one pair (a, b) of representations (indices into the sources, and their ids).

    values: measure name -> float (symmetric) or Directed (a_to_b = sim(a -> b), b_to_a = sim(b -> a)).
    neurons: both directions' NeuronMatch when neuron matches were requested.
    """

    a: int
    b: int
    a_id: Hashable
    b_id: Hashable
    n_rows: int
    values: Mapping[str, MeasureValue]
    neurons: Directed[NeuronMatch] | None = None

    def table_rows(self) -> list[tuple[Hashable, Hashable, str, str, float]]:
        """(id_a, id_b, measure, direction, value) rows as docs/design/contracts.md lays out the results
        table: a directed measure gives two "a->b" rows (a, b) and (b, a); a symmetric one a "sym" row."""
        rows: list[tuple[Hashable, Hashable, str, str, float]] = []
        for name, value in self.values.items():
            if isinstance(value, Directed):
                rows.append((self.a_id, self.b_id, name, "a->b", value.a_to_b))
                rows.append((self.b_id, self.a_id, name, "a->b", value.b_to_a))
            else:
                rows.append((self.a_id, self.b_id, name, "sym", value))
        return rows


def check_sources(reps: Sequence[RepresentationSource]) -> list[RepresentationSource]:
    out = list(reps)
    if not out:
        raise ValueError("no representations given")
    for i, rep in enumerate(out):
        if not isinstance(rep, RepresentationSource):
            raise ValueError(f"reps[{i}] must be a RepresentationSource, got {type(rep).__name__}")
        if isinstance(rep.width, bool) or not isinstance(rep.width, int) or rep.width < 1:
            raise ValueError(f"representation {rep.id!r}: width must be a positive integer, got {rep.width!r}")
    return out


def check_pair_list(pairs: Literal["all"] | Iterable[tuple[int, int]], n_reps: int) -> list[tuple[int, int]]:
    """The pairs to compare: every a < b for "all", else the given (a, b) index pairs (a == b allowed; each
    at most once, (b, a) being another pair)."""
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f"pairs must be 'all' or a list of (a, b) index pairs, got {pairs!r}")
        return [(a, b) for a in range(n_reps) for b in range(a + 1, n_reps)]
    out: list[tuple[int, int]] = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"each pair must be two representation indices, got {pair!r}")
        for i in pair:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_reps:
                raise ValueError(f"pair {pair!r}: index {i!r} is not in 0..{n_reps - 1}")
        out.append((int(pair[0]), int(pair[1])))
    if not out:
        raise ValueError("pairs is empty: nothing to compare")
    first_at: dict[tuple[int, int], int] = {}
    for position, pair in enumerate(out):
        if pair in first_at:  # results come one per pair: a silent merge would misalign them with the list
            raise ValueError(f"pair {pair} is listed twice (positions {first_at[pair]} and {position})")
        first_at[pair] = position
    return out


def plan_tiles(
    pairs: Sequence[tuple[int, int]], widths: Sequence[int], involved: Sequence[int], memory_limit_bytes: int
) -> list[list[tuple[int, int]]]:
    """Group the pairs into tiles whose cross blocks fit the memory limit (the first tile also holds the
    diagonal blocks of the `involved` representations). Pairs are sorted by their lower index so that a
    tile's blocks form few wide panels (few, large GEMMs)."""
    blocks = sorted({(min(a, b), max(a, b)) for a, b in pairs})
    diagonal_bytes = sum(8 * widths[i] * widths[i] for i in involved)
    tiles: list[list[tuple[int, int]]] = [[]]
    used = diagonal_bytes
    for a, b in blocks:
        size = 0 if a == b else 8 * widths[a] * widths[b]
        if tiles[-1] and used + size > memory_limit_bytes:
            tiles.append([])
            used = 0
        tiles[-1].append((a, b))
        used += size
    return tiles


def _stream(
    sources: Sequence[RepresentationSource],
    moments: CrossMoments,
    chunk_rows: int,
    progress: bool,
    description: str,
) -> None:
    """One pass over the rows of `sources` into `moments` (the i-th source is the i-th representation).

    The chunks of one step are read one representation at a time as `update` consumes them, so only one
    raw chunk is alive at once; sources that end early or late are an error naming them.
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


@contextlib.contextmanager
def _one_blas_thread_each(workers: int, device: torch.device) -> Iterator[int]:
    """Run small decompositions as `workers` parallel single-threaded jobs (restores the thread count).

    LAPACK on d x d matrices of a few hundred scales poorly across threads (and collapses when the cores
    are shared), while independent pairs parallelise perfectly.
    """
    if device.type != "cpu" or workers <= 1:
        yield 1
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield workers
    finally:
        torch.set_num_threads(before)


def _prepare(stats: RepresentationStats, measures: Sequence[str], svcca_options: SvccaOptions) -> None:
    """Compute the per-representation decompositions the measures will use, before pairs share them."""
    if any(m in measures for m in ("linreg", "r2_lr", "cca_r2", "cca_rho", "pwcca")):
        stats.whitener  # noqa: B018 (cached)
        if "pwcca" in measures:
            stats.loadings  # noqa: B018
    if "svcca" in measures:
        stats.svcca_basis(svcca_options)
    stats.drop_decompositions()


def _warn_once(stats: Mapping[int, RepresentationStats], ids: Sequence[Hashable], measures: Sequence[str]) -> None:
    constant = [(ids[i], s.n_constant) for i, s in sorted(stats.items()) if s.n_constant]
    if constant:
        listing = ", ".join(f"{rid!r}: {k}" for rid, k in constant[:10])
        more = f" and {len(constant) - 10} more" if len(constant) > 10 else ""
        warnings.warn(
            f"constant neurons (zero variance) excluded from neuron-level and CCA-type scores: {listing}{more}",
            ConstantNeuronWarning,
            stacklevel=3,
        )
    if CCA_TYPE_MEASURES & set(measures) and stats:
        any_stats = next(iter(stats.values()))
        widest = max(s.width for s in stats.values())
        if any_stats.n < 10 * widest:
            warnings.warn(
                f"n={any_stats.n} rows is fewer than 10 x the widest representation ({widest}); CCA-type "
                "measures approach 1 as rank reaches n and say little about similarity here",
                FewRowsWarning,
                stacklevel=3,
            )


def all_pairs(
    reps: Sequence[RepresentationSource],
    measures: Sequence[str],
    pairs: Literal["all"] | Iterable[tuple[int, int]] = "all",
    device: str | torch.device = "auto",
    chunk_rows: int = 8192,
    progress: bool = True,
    *,
    precision: Precision = "float64",
    svcca: SvccaOptions | None = None,
    neuron_matches_too: bool = False,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
    workers: int | None = None,
) -> list[PairResult]:
    """Every requested linear measure for every requested pair, from one streaming pass per tile.

    reps: the representations (e.g. `RepresentationSource.from_store(entry, layer)` for each layer of each
    model). measures: names from `reprsim.engine.ENGINE_MEASURES`. pairs: "all" (every a < b; directed
    measures carry both directions) or (a, b) index pairs. chunk_rows: rows per chunk (memory: about
    chunk_rows x sum(widths) x 8 bytes for the stacked chunk). precision: "float64", or "float32" GEMMs added
    into float64 accumulators. svcca: SVCCA options (default: keep 0.99, Raghu's rule). neuron_matches_too:
    also return each pair's per-neuron maxsim matches. memory_limit_bytes: block accumulators per pass
    before splitting into tiles (each tile streams the rows again). workers: parallel pair derivations on
    the CPU (default: torch's thread count).
    Returns one PairResult per pair, in the order of `pairs`.
    """
    sources = check_sources(reps)
    names = check_measures(measures)
    svcca_options = svcca if svcca is not None else SvccaOptions()
    precision = check_precision(precision)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if isinstance(memory_limit_bytes, bool) or not isinstance(memory_limit_bytes, int) or memory_limit_bytes < 1:
        raise ValueError(f"memory_limit_bytes must be a positive integer, got {memory_limit_bytes!r}")
    torch_device = resolve_device(device)
    wanted = check_pair_list(pairs, len(sources))
    widths = [s.width for s in sources]
    n_workers = max(1, workers if workers is not None else torch.get_num_threads())
    row_norms = "debiased_cka" in names

    ids = [s.id for s in sources]
    involved = sorted({i for pair in wanted for i in pair})
    stats: dict[int, RepresentationStats] = {}
    results: dict[tuple[int, int], PairResult] = {}
    tiles = plan_tiles(wanted, widths, involved, memory_limit_bytes)
    for number, tile in enumerate(tiles):
        members = sorted({i for block in tile for i in block} | (set(involved) if number == 0 else set()))
        local = {g: i for i, g in enumerate(members)}
        moments = CrossMoments(
            [widths[g] for g in members],
            [(local[a], local[b]) for a, b in tile],
            device=torch_device,
            precision=precision,
            row_norms=row_norms,
            diagonal=number == 0,
        )
        label = f"pass {number + 1}/{len(tiles)}" if len(tiles) > 1 else "streaming rows"
        _stream([sources[g] for g in members], moments, chunk_rows, progress, label)
        if number == 0:
            stats = _representation_stats(moments, members, ids, names, svcca_options, torch_device, n_workers)
            _warn_once(stats, ids, names)
        tile_pairs = [p for p in wanted if (min(p), max(p)) in set(tile)]
        for pair, result in zip(
            tile_pairs,
            _derive_pairs(
                tile_pairs,
                moments,
                local,
                stats,
                ids,
                names,
                svcca_options,
                neuron_matches_too,
                torch_device,
                n_workers,
                progress,
            ),
            strict=True,
        ):
            results[pair] = result
        del moments
    return [results[p] for p in wanted]


def _representation_stats(
    moments: CrossMoments,
    members: Sequence[int],
    ids: Sequence[Hashable],
    measures: Sequence[str],
    svcca_options: SvccaOptions,
    device: torch.device,
    workers: int,
) -> dict[int, RepresentationStats]:
    def build(g: int) -> RepresentationStats:
        s = RepresentationStats.from_moments(moments, members.index(g), name=f"representation {ids[g]!r}")
        _prepare(s, measures, svcca_options)
        return s

    with _one_blas_thread_each(workers, device) as n, ThreadPoolExecutor(n) as pool:
        return dict(zip(members, pool.map(build, members), strict=True))


def _derive_pairs(
    pairs: Sequence[tuple[int, int]],
    moments: CrossMoments,
    local: Mapping[int, int],
    stats: Mapping[int, RepresentationStats],
    ids: Sequence[Hashable],
    measures: Sequence[str],
    svcca_options: SvccaOptions,
    with_neurons: bool,
    device: torch.device,
    workers: int,
    progress: bool,
) -> list[PairResult]:
    def one(pair: tuple[int, int]) -> PairResult:
        a, b = pair
        terms = PairTerms(
            stats[a],
            stats[b],
            moments.centred(local[a], local[b]),
            moments.centred_norm_product(local[a], local[b]) if moments.row_norms else None,
        )
        try:
            values = derive(terms, measures, svcca_options)
            neurons = neuron_matches(terms) if with_neurons else None
        except ValueError as exc:
            raise ValueError(f"pair ({ids[a]!r}, {ids[b]!r}): {exc}") from exc
        return PairResult(a, b, ids[a], ids[b], terms.n, values, neurons)

    with _one_blas_thread_each(workers, device) as n, ThreadPoolExecutor(n) as pool:
        return list(tqdm(pool.map(one, pairs), total=len(pairs), desc="pairs", disable=not progress, leave=False))


def pair_results(
    moments: CrossMoments,
    measures: Sequence[str],
    pairs: Literal["all"] | Iterable[tuple[int, int]] = "all",
    ids: Sequence[Hashable] | None = None,
    *,
    svcca: SvccaOptions | None = None,
    neuron_matches_too: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> list[PairResult]:
    """The measures of pairs of representations from moments you accumulated (or merged) yourself.

    For CrossMoments streamed by hand, merged from shards, or grown with `with_representations`: every
    representation in a pair needs its diagonal block, every pair its cross block. ids label the
    representations (default: their indices). Other arguments as in `all_pairs`.
    """
    names = check_measures(measures)
    svcca_options = svcca if svcca is not None else SvccaOptions()
    labels: list[Hashable] = list(range(moments.n_reps)) if ids is None else list(ids)
    if len(labels) != moments.n_reps:
        raise ValueError(f"got {len(labels)} ids for {moments.n_reps} representations")
    wanted = check_pair_list(pairs, moments.n_reps)
    for a, b in wanted:
        for block in ((a, a), (b, b), (a, b)):
            if not moments.has_block(*block):
                raise ValueError(f"pair ({labels[a]!r}, {labels[b]!r}) needs block {block}, which was not accumulated")
    n_workers = max(1, workers if workers is not None else torch.get_num_threads())
    moments.release_buffers()  # the chunk staging buffers are not needed to derive; free them for the stats
    involved = sorted({i for pair in wanted for i in pair})
    identity = {i: i for i in range(moments.n_reps)}
    stats = _representation_stats(moments, involved, labels, names, svcca_options, moments.device, n_workers)
    _warn_once(stats, labels, names)
    return _derive_pairs(
        wanted, moments, identity, stats, labels, names, svcca_options, neuron_matches_too, moments.device,
        n_workers, progress,
    )  # fmt: skip
