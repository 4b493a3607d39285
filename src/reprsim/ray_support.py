"""What every Ray backend shares: the install check, the connection, the retries, named errors, memory, warnings.

The memory a task may declare is checked against the cluster's nodes, and the warnings a task raises are
carried back to the driver.

Nothing here imports ray until a backend asks for it, so the local paths never do.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "MAX_RETRIES", "RAY_INSTALL", "RETRIED_EXCEPTIONS", "cancel_unfinished", "check_ray", "checked_memory", "connect",
    "consecutive_groups", "gathered", "recording_warnings_of", "replay_warnings", "result",
]

RAY_INSTALL = "pip install 'reprsim[ray]' (ray==2.60.0)"
MAX_RETRIES = 3  # runs of a task (or restarts of an actor) after its worker died or it raised an OSError
RETRIED_EXCEPTIONS = [OSError]  # a shared file system's hiccup; any other error is the input's and is reported


def check_ray() -> None:
    """Fail with the install command when ray is not installed.

    Raises
    ------
    ValueError
        If the ``ray`` package cannot be imported.
    """
    if importlib.util.find_spec("ray") is None:
        raise ValueError(f"--backend ray needs Ray, which is not installed: {RAY_INSTALL}")


def connect(address: str | None) -> Any:
    """The ray module, connected to the cluster at `address` (or a local one) unless already connected.

    Parameters
    ----------
    address
        ``ray start --head`` prints it; ``"auto"`` finds a running cluster; ``None`` starts a local one
        (all of this machine's cores) unless this process is connected already.

    Returns
    -------
    module
        ``ray``.

    Raises
    ------
    ValueError
        If ray is not installed (with the install command).
    """
    check_ray()
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    return ray


def result(ray: Any, ref: Any, label: str) -> Any:
    """A task's result, its failure turned into a ``ValueError`` that names the task and the cause.

    Parameters
    ----------
    ray
        The ray module.
    ref
        The task's object reference.
    label
        What the task was (``"shard 2/8 (rows 5120..10240)"``, ``"model 'MiniLM'"``).

    Returns
    -------
    object
        The task's return value.

    Raises
    ------
    ValueError
        ``<label> failed on ray: <Cause>: <message>``.
    """
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        raise ValueError(f"{label} failed on ray: {type(cause).__name__}: {cause}") from cause
    except ray.exceptions.RayError as exc:
        raise ValueError(f"{label} failed on ray: {exc}") from exc


def checked_memory(ray: Any, need: int, what: str) -> int:
    """Bytes a task declares, checked against the largest live node's memory (else Ray waits forever).

    Parameters
    ----------
    ray
        The ray module, connected.
    need
        The bytes the task will hold.
    what
        What the task is, for the message.

    Returns
    -------
    int
        `need` (at least 1).

    Raises
    ------
    ValueError
        If no node of the cluster offers that much memory.
    """
    offered = [float(node.get("Resources", {}).get("memory", 0)) for node in ray.nodes() if node.get("Alive")]
    largest = max(offered, default=0.0)
    if largest and need > largest:
        raise ValueError(f"{what} needs {need / 2**30:,.2f} GiB, more than the largest node of the Ray cluster "
                         f"offers ({largest / 2**30:,.2f} GiB): lower --memory-per-task (memory_per_task), or "
                         "add larger nodes")
    return max(1, int(need))


def recording_warnings_of(task: Callable[..., Any], *args: Any) -> tuple[Any, list[tuple[type[Warning], str]]]:
    """Run a task on a worker, keeping reprsim's warnings it raises so that the driver can raise them again.

    Other libraries' warnings on a worker (torch's about its inputs, say) concern the worker, not the study,
    and are left out.

    Returns
    -------
    tuple
        The task's result, and (category, message) of every reprsim warning it raised.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = task(*args)
    return value, [(w.category, str(w.message)) for w in caught if w.category.__module__.startswith("reprsim")]


def replay_warnings(caught: Sequence[tuple[type[Warning], str]]) -> None:
    """Raise again on the driver the warnings a task raised on its worker (`recording_warnings_of`)."""
    for category, message in caught:
        warnings.warn(message, category, stacklevel=2)


def cancel_unfinished(ray: Any, refs: Sequence[Any]) -> None:
    """Cancel the tasks of `refs` that have not finished (force: their workers are stopped).

    Finished tasks are left alone: force-cancelling a task that has already returned can bring down the
    driver's own Ray process, which the tests saw.
    """
    refs = list(refs)
    if not refs:
        return
    _, unfinished = ray.wait(refs, num_returns=len(refs), timeout=0)
    for ref in unfinished:
        ray.cancel(ref, force=True)


def consecutive_groups(items: Sequence[Any], count: int) -> list[tuple[int, list[Any]]]:
    """The items cut into at most `count` runs of consecutive items of about equal size, each with its start."""
    items = list(items)
    size = -(-len(items) // max(1, min(count, len(items)))) if items else 1
    return [(start, items[start:start + size]) for start in range(0, len(items), size)]


def gathered(ray: Any, tasks: Sequence[tuple[Any, str]], also_cancel: Sequence[Any] = ()) -> list[Any]:
    """The results of tasks run under `recording_warnings_of`, in order, their warnings raised on the driver.

    Parameters
    ----------
    ray
        The ray module.
    tasks
        (reference, label) of each task; the label names it in an error (`result`).
    also_cancel
        Other references to cancel when one fails (the tasks these depend on).

    Returns
    -------
    list
        Each task's value.

    Raises
    ------
    ValueError
        As `result`, after the unfinished tasks are cancelled.
    """
    try:
        recorded = [result(ray, ref, label) for ref, label in tasks]
    except BaseException:
        cancel_unfinished(ray, [ref for ref, _ in tasks] + list(also_cancel))
        raise
    values = []
    for value, caught in recorded:
        replay_warnings(caught)
        values.append(value)
    return values
