"""The linear pass of a comparison on a Ray cluster: row-shard tasks, a tree reduction, one derivation.

`ray_moments` submits one Ray task per row shard (`reprsim.shards.shard_moments`: every block of the study's
layers over the shard's whole sentences, read from the store by the worker), merges the results pairwise in
Ray tasks (a tree: log2 N rounds) and returns the study's moments, which the driver derives exactly as the
local backend does. Only this module imports ray, and only when the Ray backend is asked for.

- A task whose worker process dies (killed, out of memory) or that raises an ``OSError`` (a shared file
  system's hiccup) is retried by Ray, up to `MAX_RETRIES` times; a pass is deterministic, so the retried
  shard is the same.
- Any other error (bad rows, a damaged entry) is not retried: it reaches the driver as a ``ValueError``
  naming the shard and the cause.
- Ctrl-C (or any error) in the driver cancels the tasks still running; nothing is written to the store.
- Every worker must see the store at the same path (a shared POSIX file system).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from reprsim.engine import CrossMoments
from reprsim.engine.moments_state import moments_arrays, moments_from_arrays
from reprsim.row_shards import Shard, shard_moments, shard_rows

__all__ = ["MAX_RETRIES", "RAY_INSTALL", "accumulate_task", "check_ray", "ray_moments"]

RAY_INSTALL = "pip install 'reprsim[ray]' (ray==2.60.0)"
MAX_RETRIES = 3  # retries of a task whose worker died or that raised an OSError


def check_ray() -> None:
    """Fail with the install command when ray is not installed.

    Raises
    ------
    ValueError
        If the ``ray`` package cannot be imported.
    """
    if importlib.util.find_spec("ray") is None:
        raise ValueError(f"--backend ray needs Ray, which is not installed: {RAY_INSTALL}")


def accumulate_task(store: str, keys: Sequence[str], rows: tuple[int, int], measures: Sequence[str],
                    chunk_rows: int) -> dict[str, np.ndarray]:
    """What one shard's Ray task runs: the shard's moments, as plain arrays for Ray's object store.

    Parameters
    ----------
    store
        The store's path, as the workers see it.
    keys
        The entries' keys, in the study's order.
    rows
        The shard's rows [start, stop).
    measures
        The linear measures.
    chunk_rows
        Rows per chunk.

    Returns
    -------
    dict of str to numpy.ndarray
        `reprsim.engine.moments_state.moments_arrays` of the shard.
    """
    from reprsim.comparison_entries import select_entries
    from reprsim.store import ActivationStore

    entries = select_entries(ActivationStore(store, create=False), list(keys))
    return moments_arrays(shard_moments(entries, rows, measures, device="cpu", chunk_rows=chunk_rows))


def _merge_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two shards' moments merged, as arrays (the reduction's step)."""
    return moments_arrays(moments_from_arrays(a).merge(moments_from_arrays(b)))


def _connect(address: str | None) -> Any:
    """The ray module, connected to the cluster at `address` (or a local one) unless already connected."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    return ray


def ray_moments(store: str, keys: Sequence[str], sentence_lengths: Sequence[int], measures: Sequence[str], *,
                shards: int | None = None, address: str | None = None, chunk_rows: int = 8192,
                progress: bool = True, task: Callable[..., dict[str, np.ndarray]] = accumulate_task,
                num_cpus: float = 1) -> CrossMoments:
    """The study's moments, accumulated by Ray tasks over row shards and merged by a tree of Ray tasks.

    Parameters
    ----------
    store
        The store's path (every worker must see it there).
    keys
        The entries compared, by key, in the study's order.
    sentence_lengths
        The corpus's sentence lengths, which fix the shards (`reprsim.shards.shard_rows`).
    measures
        The linear measures.
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

    Returns
    -------
    CrossMoments
        Every block of the study's layers over all rows.

    Raises
    ------
    ValueError
        If ray is not installed (with the install command), or a task raised (naming its shard and cause).
    """
    check_ray()
    ray = _connect(address)
    count = shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
    count = min(count, len(sentence_lengths))
    def run_shard(*args: Any) -> tuple[bool, dict[str, np.ndarray]]:
        # Two returns: the driver waits on the small flag, and the arrays go straight to the merges.
        return True, task(*args)

    options = {"num_cpus": num_cpus, "max_retries": MAX_RETRIES, "retry_exceptions": [OSError]}
    remote = ray.remote(num_returns=2, **options)(run_shard)
    merge = ray.remote(**options)(_merge_arrays)
    flags: dict[Any, str] = {}
    arrays: list[Any] = []
    for i in range(1, count + 1):
        shard = Shard(i, count)
        rows = shard_rows(sentence_lengths, shard)
        flag, values = remote.remote(store, list(keys), rows, list(measures), chunk_rows)
        flags[flag] = f"shard {shard} (rows {rows[0]}..{rows[1]})"
        arrays.append(values)
    pending = list(flags)
    try:
        with tqdm(total=count, desc="shards on ray", unit="shard", disable=not progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                _get(ray, ready[0], flags[ready[0]])
                bar.update(1)
        level = arrays  # in shard order, so the merges do not depend on timing
        while len(level) > 1:
            level = [merge.remote(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)] + (
                level[-1:] if len(level) % 2 else [])
        merged = _get(ray, level[0], "merging the shards")
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return moments_from_arrays(merged)


def _get(ray: Any, ref: Any, label: str) -> Any:
    """A task's result, its failure turned into an error naming the task."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        raise ValueError(f"{label} failed on ray: {type(cause).__name__}: {cause}") from cause
    except ray.exceptions.RayError as exc:
        raise ValueError(f"{label} failed on ray: {exc}") from exc
