"""The linear pass of a comparison on a Ray cluster: (row shard x column tile) tasks and a tree reduction.

`RayLinearFamily` is the local linear family (`reprsim.engine.LinearFamily`: the same column tiles under the
same memory budget, the same fits kept across tiles, the same derivations) whose pass over a tile's rows runs
on Ray: `ray_moments` submits one task per row shard (`reprsim.row_shards.shard_moments`, read from the store
by the worker), merges the results pairwise in Ray tasks (log2 N rounds, in shard order) and returns the
tile's moments to the driver. Each new representation's fit (its covariance's decompositions) is then a task
(`fit_task`), and the tile's pairs are derived by one task per group of pairs (`derive_task`) from the fits,
which stay in Ray's object store for the later tiles, and the pairs' cross blocks. With statistics, or with
the driver's moments on a GPU, the fits and derivations run on the driver as they do locally. Only this
module and `reprsim.ray_pairs` import ray, and only when the Ray backend is asked for.

- A task whose worker process dies (killed, out of memory) or that raises an ``OSError`` (a shared file
  system's hiccup) is retried by Ray, up to `reprsim.ray_support.MAX_RETRIES` times; a pass is
  deterministic, so the retried shard is the same.
- Any other error (bad rows, a damaged entry) is not retried: it reaches the driver as a ``ValueError``
  naming the shard and the cause.
- Ctrl-C (or any error) in the driver cancels the tasks still running; nothing is written to the store.
- Every worker must see the store at the same path (a shared POSIX file system).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from reprsim.engine import CrossMoments, LinearFamily, RepresentationSource
from reprsim.engine.block_moments import BlockedMoments, MomentSums, merge_block_parts
from reprsim.engine.linear_family import derive_pair, pass_bytes, prepare_fit_for
from reprsim.engine.linear_fit import LinearFit, SvccaOptions
from reprsim.engine.moments_state import (
    block_parts_arrays,
    block_parts_from_arrays,
    moments_arrays,
    moments_from_arrays,
)
from reprsim.engine.pair_terms import PairTerms
from reprsim.engine.scheduler import PairScore, Tile
from reprsim.ray_support import (
    MAX_RETRIES,
    RETRIED_EXCEPTIONS,
    cancel_unfinished,
    checked_memory,
    connect,
    consecutive_groups,
    gathered,
    recording_warnings_of,
    result,
)
from reprsim.row_shards import Shard, most_blocks_per_shard, shard_block_parts, shard_moments, shard_rows

__all__ = ["RayLinearFamily", "accumulate_task", "default_shards", "derive_task", "fit_task", "ray_moments"]

def accumulate_task(store: str, keys: Sequence[str], rows: tuple[int, int], members: Sequence[int],
                    blocks: Sequence[tuple[int, int]], row_norms: bool, chunk_rows: int,
                    bounds: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """What one (row shard x column tile) task runs: the tile's moments over the shard's rows, as arrays.

    Parameters
    ----------
    store
        The store's path, as the workers see it.
    keys
        The entries' keys, in the study's order.
    rows
        The shard's rows [start, stop).
    members
        The tile's representations (indices over every layer of the entries).
    blocks
        The tile's blocks, in member positions.
    row_norms
        Keep the row-norm sums.
    chunk_rows
        Rows per chunk.
    bounds
        The sentence blocks' row offsets over the corpus, when the statistics need moments per block.

    Returns
    -------
    dict of str to numpy.ndarray
        `reprsim.engine.moments_state.moments_arrays` of the shard's tile, or with `bounds`
        `reprsim.engine.moments_state.block_parts_arrays` of its moments per sentence block.
    """
    from reprsim.comparison_entries import select_entries
    from reprsim.store import ActivationStore

    entries = select_entries(ActivationStore(store, create=False), list(keys))
    if bounds is not None:
        return block_parts_arrays(shard_block_parts(entries, rows, np.asarray(bounds), row_norms=row_norms,
                                                    members=members, blocks=list(blocks), device="cpu",
                                                    chunk_rows=chunk_rows))
    return moments_arrays(shard_moments(entries, rows, row_norms=row_norms, members=members, blocks=list(blocks),
                                        device="cpu", chunk_rows=chunk_rows))


def _merge_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two shards' moments merged, as arrays (the reduction's step)."""
    return moments_arrays(moments_from_arrays(a).merge(moments_from_arrays(b)))


def default_shards(ray: Any, n_sentences: int) -> int:
    """One shard per CPU of the cluster, at most one per sentence."""
    return max(1, min(int(ray.cluster_resources().get("CPU", 1)), n_sentences))


def ray_moments(store: str, keys: Sequence[str], sentence_lengths: Sequence[int], *, members: Sequence[int],
                blocks: Sequence[tuple[int, int]], row_norms: bool, shards: int | None = None,
                address: str | None = None, chunk_rows: int = 8192, progress: bool = True,
                task: Callable[..., dict[str, np.ndarray]] = accumulate_task, num_cpus: float = 1,
                memory: int | None = None, device: str | torch.device = "cpu",
                description: str = "shards on ray", bounds: np.ndarray | None = None) -> Any:
    """A tile's moments, accumulated by Ray tasks over row shards and merged by a tree of Ray tasks.

    Parameters
    ----------
    store
        The store's path (every worker must see it there).
    keys
        The entries compared, by key, in the study's order.
    sentence_lengths
        The corpus's sentence lengths, which fix the shards (`reprsim.row_shards.shard_rows`).
    members, blocks, row_norms
        The tile, as `accumulate_task` takes it.
    shards
        Row shards, one task each (default: the cluster's CPUs, at most the number of sentences).
    address
        The cluster (``ray start --head`` prints it; ``"auto"`` finds a running one); default: a running
        connection, else a local cluster started for this process.
    chunk_rows
        Rows per chunk.
    progress
        Show a progress bar over the shards.
    task
        The function each shard's task runs (`accumulate_task`; tests wrap it to inject faults).
    num_cpus
        CPUs each task declares.
    memory
        Bytes each task declares to Ray's scheduler (default: none declared).
    device
        Where the merged moments go (the driver's derivations).
    description
        The progress bar's label.
    bounds
        The sentence blocks' row offsets (G + 1,), for moments per block (the statistics' intervals): the
        shards' parts then come to the driver in shard order and are added there (their sum is as large
        as the parts, so a tree of merges would save nothing).

    Returns
    -------
    CrossMoments or BlockedMoments
        The tile's blocks over all rows; per sentence block (finished) with `bounds`.

    Raises
    ------
    ValueError
        If ray is not installed (with the install command), or a task raised (naming its shard and cause).
    """
    ray = connect(address)
    count = min(shards or default_shards(ray, len(sentence_lengths)), len(sentence_lengths))

    def run_shard(*args: Any) -> tuple[bool, dict[str, np.ndarray]]:
        # Two returns: the driver waits on the small flag, and the arrays go straight to the merges.
        return True, task(*args)

    options: dict[str, Any] = {"num_cpus": num_cpus, "max_retries": MAX_RETRIES,
                               "retry_exceptions": RETRIED_EXCEPTIONS}
    if memory:
        options["memory"] = checked_memory(ray, int(memory), "a shard's task")
    remote = ray.remote(num_returns=2, **options)(run_shard)
    # A merge holds its two inputs and its output.
    merge_memory = {"memory": checked_memory(ray, 3 * int(memory), "a merge of two shards")} if memory else {}
    merge = ray.remote(**{**options, **merge_memory})(_merge_arrays)
    flags: dict[Any, str] = {}
    arrays: list[Any] = []
    extra = [] if bounds is None else [[int(b) for b in bounds]]
    for i in range(1, count + 1):
        shard = Shard(i, count)
        rows = shard_rows(sentence_lengths, shard)
        flag, values = remote.remote(store, list(keys), rows, list(members), list(blocks), row_norms, chunk_rows,
                                     *extra)
        flags[flag] = f"shard {shard} (rows {rows[0]}..{rows[1]})"
        arrays.append(values)
    pending = list(flags)
    try:
        with tqdm(total=count, desc=description, unit="shard", disable=not progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                result(ray, ready[0], flags[ready[0]])
                bar.update(1)
        if bounds is not None:
            parts: dict[int, CrossMoments] = {}
            for k, ref in enumerate(arrays):  # in shard order, so the sums do not depend on timing
                merge_block_parts(parts, block_parts_from_arrays(result(ray, ref, "fetching the shards"),
                                                                 device=device, what=f"shard {k + 1}/{count}"))
                arrays[k] = None
            return BlockedMoments.from_parts(parts, bounds, what="the shards on ray")
        level = arrays  # in shard order, so the merges do not depend on timing
        while len(level) > 1:
            merges = [merge.remote(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
            pending += merges
            level = merges + (level[-1:] if len(level) % 2 else [])
        merged = result(ray, level[0], "merging the shards")
    except BaseException:
        cancel_unfinished(ray, pending)
        raise
    return moments_from_arrays(merged, device=device)


def fit_task(covariance: torch.Tensor, n: int, absmax: torch.Tensor, norm_product: float | None, name: str,
             mean: torch.Tensor, measures: Sequence[str], svcca: SvccaOptions) -> LinearFit:
    """One representation's fit with the decompositions the measures use (a task).

    Parameters
    ----------
    covariance, n, absmax, norm_product, name, mean
        As `reprsim.engine.LinearFit` takes them.
    measures, svcca
        The measures and SVCCA's options, which fix the decompositions computed.

    Returns
    -------
    LinearFit
        The fit, its decompositions computed.
    """
    fit = LinearFit(covariance, n, absmax, norm_product=norm_product, name=name, mean=mean)
    prepare_fit_for(fit, measures, svcca)
    return fit


def derive_task(measures: Sequence[str], svcca: SvccaOptions, neurons: bool, pairs: Sequence[tuple[int, int]],
                labels: Sequence[str], crosses: Sequence[torch.Tensor], norms: Sequence[float | None],
                members: Sequence[int], *fits: LinearFit) -> list[PairScore]:
    """Every measure of a group of pairs from their cross blocks and the members' fits (a task).

    Parameters
    ----------
    measures, svcca, neurons
        As for `reprsim.engine.linear_family.derive_pair`.
    pairs, labels, crosses, norms
        Per pair: its indices, how errors name it, its centred cross block and its row-norm product.
    members, *fits
        The pairs' representations and their fits (Ray resolves the fits' references).

    Returns
    -------
    list
        ``(a, b, {measure: value})`` per pair, in order.
    """
    fit_of = dict(zip(members, fits, strict=True))
    return [(a, b, derive_pair(PairTerms(fit_of[a], fit_of[b], cross, norm), measures, svcca, neurons, label))
            for (a, b), label, cross, norm in zip(pairs, labels, crosses, norms, strict=True)]


def _fit_recording(*args: Any) -> tuple[LinearFit, list[tuple[type[Warning], str]]]:
    """`fit_task` with the warnings it raised (what the Ray task runs)."""
    result: tuple[LinearFit, list[tuple[type[Warning], str]]] = recording_warnings_of(fit_task, *args)
    return result


def _derive_recording(measures: Sequence[str], svcca: SvccaOptions, neurons: bool, pairs: Sequence[tuple[int, int]],
                      labels: Sequence[str], crosses: Sequence[torch.Tensor], norms: Sequence[float | None],
                      members: Sequence[int], *fits: tuple[LinearFit, Any]) -> tuple[list[PairScore], list[Any]]:
    """`derive_task` from `_fit_recording`'s results, with the warnings it raised (what the Ray task runs)."""
    result: tuple[list[PairScore], list[Any]] = recording_warnings_of(
        derive_task, measures, svcca, neurons, pairs, labels, crosses, norms, members, *(fit for fit, _ in fits))
    return result


class RayLinearFamily(LinearFamily):
    """`reprsim.engine.LinearFamily` whose pass over each column tile runs as Ray tasks over row shards.

    Parameters
    ----------
    sources
        The representations: every layer of the entries, entry by entry (`reprsim.comparison_entries`).
    measures
        As for `LinearFamily`.
    store
        The store's path, as the workers see it.
    keys
        The entries' keys, in the study's order.
    sentence_lengths
        The corpus's sentence lengths.
    shards
        Row shards per tile (default: the cluster's CPUs).
    address
        The Ray cluster's address.
    **options
        The other options of `LinearFamily` (device, precision, svcca, chunk_rows, workers, progress).
    """

    def __init__(self, sources: Sequence[RepresentationSource], measures: Sequence[str], *, store: str,
                 keys: Sequence[str], sentence_lengths: Sequence[int], shards: int | None = None,
                 address: str | None = None, **options: Any) -> None:
        super().__init__(sources, measures, **options)
        self.store, self.keys, self.sentence_lengths = store, list(keys), list(sentence_lengths)
        self.shards, self.address = shards, address
        self.fit_refs: dict[int, Any] = {}  # the fits in Ray's object store, for the derivation tasks

    def _remote(self) -> bool:
        """Whether the fits and derivations go to Ray: without statistics, and with the moments on the CPU."""
        return not self.inference.enabled and self.device.type == "cpu"

    def _new_fits(self, moments: CrossMoments | MomentSums, new: Sequence[int]) -> dict[int, LinearFit]:
        """One fit task per new member; the fits come back for the later tiles and stay on Ray for the pairs."""
        if not new or not self._remote():
            return super()._new_fits(moments, new)
        ray = connect(self.address)
        remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=RETRIED_EXCEPTIONS)(_fit_recording)
        refs = {}
        for g in new:
            i, width = self._local[g], self.sources[g].width
            norm = moments.centred_norm_product(i, i) if moments.row_norms else None
            # The covariance and its decompositions, a few d x d matrices each.
            memory = checked_memory(ray, 8 * 8 * width * width, f"the fit of {self.ids[g]!r}")
            refs[g] = remote.options(memory=memory).remote(
                moments.centred(i, i), moments.n_rows(i), moments.column_absmax(i), norm,
                f"representation {self.ids[g]!r}", moments.mean(i), self.measures, self.svcca)
        fits = gathered(ray, [(refs[g], f"the fit of {self.ids[g]!r}") for g in new])
        self.fit_refs.update(refs)
        return dict(zip(new, fits, strict=True))

    def score(self, tile: Tile) -> Iterator[PairScore]:
        """The tile's pairs, derived by one Ray task per group of consecutive pairs, in the tile's order."""
        if not self._remote():
            yield from super().score(tile)
            return
        assert self._moments is not None
        ray = connect(self.address)
        remote = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=RETRIED_EXCEPTIONS)(_derive_recording)
        pairs, moments = list(tile.pairs), self._moments
        tasks = []
        try:
            for start, group in consecutive_groups(pairs, self.shards or default_shards(ray, len(pairs))):
                members = sorted({k for p in group for k in p})
                local = [(self._local[a], self._local[b]) for a, b in group]
                crosses = [moments.centred(la, lb) for la, lb in local]
                norms = [moments.centred_norm_product(la, lb) if moments.row_norms else None for la, lb in local]
                labels = [f"pair ({self.ids[a]!r}, {self.ids[b]!r})" for a, b in group]
                label = f"pairs {start + 1}..{start + len(group)} of {len(pairs)}"
                memory = checked_memory(ray, sum(self.pair_bytes(a, b) for a, b in group)
                                        + 8 * sum(self.fit_bytes(k) for k in members), f"deriving {label}")
                ref = remote.options(memory=memory).remote(
                    self.measures, self.svcca, self.neuron_matches_too, group, labels, crosses, norms, members,
                    *(self.fit_refs[k] for k in members))
                tasks.append((ref, label))
        except BaseException:  # a group refused (memory): the groups already submitted are not left running
            cancel_unfinished(ray, [ref for ref, _ in tasks])
            raise
        scored = gathered(ray, tasks)
        self._moments = None
        for group_scores in scored:
            yield from group_scores

    def _pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> CrossMoments:
        """The tile's pass as (row shard x this tile) tasks, merged by a tree of tasks."""
        moments: CrossMoments = ray_moments(**self._tile_options(members, blocks, 1))
        return moments

    def _blocked_pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> BlockedMoments:
        """The tile's pass per sentence block as (row shard x this tile) tasks, the parts added on the driver."""
        assert self.bounds is not None
        count = min(self.shards or default_shards(connect(self.address), len(self.sentence_lengths)),
                    len(self.sentence_lengths))
        held = most_blocks_per_shard(self.bounds, self.sentence_lengths, count)
        blocked: BlockedMoments = ray_moments(**self._tile_options(members, blocks, held), bounds=self.bounds)
        return blocked

    def _tile_options(self, members: Sequence[int], blocks: Sequence[tuple[int, int]], copies: int) -> dict[str, Any]:
        """`ray_moments`' options for one tile, each task declaring `copies` times the tile's blocks."""
        memory = pass_bytes([self.sources[g].width for g in members], blocks, self.chunk_rows, copies)
        return {"store": self.store, "keys": self.keys, "sentence_lengths": self.sentence_lengths,
                "members": members, "blocks": blocks, "row_norms": self._row_norms(), "shards": self.shards,
                "address": self.address, "chunk_rows": self.chunk_rows, "progress": self.progress, "memory": memory,
                "device": self.device,
                "description": f"pass {self.passes} on ray" if self.passes > 1 else "shards on ray"}

