"""The linear pass of a comparison on a Ray cluster: (row shard x column tile) tasks and a tree reduction.

`RayLinearFamily` is the local linear family (`reprsim.engine.LinearFamily`: the same column tiles under the
same memory budget, the same fits kept across tiles, the same derivations) whose pass over a tile's rows runs
on Ray: `ray_moments` submits one task per row shard (`reprsim.row_shards.shard_moments`, read from the store
by the worker), merges the results pairwise in Ray tasks (log2 N rounds, in shard order) and returns the
tile's moments to the driver, which derives the tile's pairs. Only this module imports ray, and only when
the Ray backend is asked for.

- A task whose worker process dies (killed, out of memory) or that raises an ``OSError`` (a shared file
  system's hiccup) is retried by Ray, up to `reprsim.ray_support.MAX_RETRIES` times; a pass is
  deterministic, so the retried shard is the same.
- Any other error (bad rows, a damaged entry) is not retried: it reaches the driver as a ``ValueError``
  naming the shard and the cause.
- Ctrl-C (or any error) in the driver cancels the tasks still running; nothing is written to the store.
- Every worker must see the store at the same path (a shared POSIX file system).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from reprsim.engine import CrossMoments, LinearFamily, RepresentationSource
from reprsim.engine.block_moments import BlockedMoments, merge_block_parts
from reprsim.engine.moments_state import (
    block_parts_arrays,
    block_parts_from_arrays,
    moments_arrays,
    moments_from_arrays,
)
from reprsim.ray_support import MAX_RETRIES, RETRIED_EXCEPTIONS, connect, result
from reprsim.row_shards import Shard, shard_block_parts, shard_moments, shard_rows

__all__ = ["RayLinearFamily", "accumulate_task", "default_shards", "ray_moments"]

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
        options["memory"] = int(memory)
    remote = ray.remote(num_returns=2, **options)(run_shard)
    # A merge holds its two inputs and its output.
    merge = ray.remote(**{**options, **({"memory": 3 * int(memory)} if memory else {})})(_merge_arrays)
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
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return moments_from_arrays(merged, device=device)


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

    def _pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> CrossMoments:
        """The tile's pass as (row shard x this tile) tasks, merged by a tree of tasks."""
        moments: CrossMoments = ray_moments(**self._tile_options(members, blocks, 1))
        return moments

    def _blocked_pass(self, members: Sequence[int], blocks: Sequence[tuple[int, int]]) -> BlockedMoments:
        """The tile's pass per sentence block as (row shard x this tile) tasks, the parts added on the driver."""
        assert self.bounds is not None
        count = self.shards or default_shards(connect(self.address), len(self.sentence_lengths))
        held = -(-(len(self.bounds) - 1) // count) + 1  # the sentence blocks one shard overlaps, at most
        blocked: BlockedMoments = ray_moments(**self._tile_options(members, blocks, held), bounds=self.bounds)
        return blocked

    def _tile_options(self, members: Sequence[int], blocks: Sequence[tuple[int, int]], copies: int) -> dict[str, Any]:
        """`ray_moments`' options for one tile, each task declaring `copies` times the tile's blocks."""
        widths = [self.sources[g].width for g in members]
        memory = 8 * copies * sum(widths[a] * widths[b] for a, b in blocks) + 8 * self.chunk_rows * sum(widths)
        return {"store": self.store, "keys": self.keys, "sentence_lengths": self.sentence_lengths,
                "members": members, "blocks": blocks, "row_norms": self._row_norms(), "shards": self.shards,
                "address": self.address, "chunk_rows": self.chunk_rows, "progress": self.progress, "memory": memory,
                "device": self.device,
                "description": f"pass {self.passes} on ray" if self.passes > 1 else "shards on ray"}

