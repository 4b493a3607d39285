"""What every Ray backend shares: the install check, the connection, the retry policy and named errors.

Nothing here imports ray until a backend asks for it, so the local paths never do.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["MAX_RETRIES", "RAY_INSTALL", "RETRIED_EXCEPTIONS", "check_ray", "connect", "result"]

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
