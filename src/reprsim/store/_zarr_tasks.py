"""Finishing the chunk reads that zarr leaves running on its event loop when one chunk of a read fails.

zarr (3.1) runs every read as asyncio tasks on one event loop in a daemon thread (`zarr.core.sync`). A read
of many chunks gathers one task per batch of chunks; when one chunk fails (a damaged chunk's crc32c), the
gather raises at once while the other tasks are still queued or running. If the process then exits, zarr's
atexit hook stops and closes the loop under them and Python prints "Task was destroyed but it is pending!"
for each: hundreds of lines after a one-line error. Waiting for those tasks right after the failure keeps
the error the only output, and costs no more than the rest of the failed read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

# The rest of one failed read is local chunk reads: seconds at most. Past this, what is left is cancelled.
SETTLE_TIMEOUT_S = 30.0


async def _settle(timeout: float) -> None:
    """Wait for every other task of the running loop (tasks may start others), then cancel what is left."""
    current = asyncio.current_task()
    deadline = time.monotonic() + timeout
    while True:
        others = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
        if not others:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            for task in others:
                task.cancel()
            # Retrieve every outcome, so that none is reported as "exception was never retrieved".
            await asyncio.gather(*others, return_exceptions=True)
            return
        await asyncio.wait(others, timeout=left)
        for task in others:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a sibling chunk's error is the same damage, already reported


def settle_pending_reads(timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Let zarr's still-running read tasks finish (or cancel them after `timeout`) before an error goes on.

    Safe from any thread but zarr's own: tasks of reads running in other threads are only waited for, not
    cancelled, unless `timeout` passes.

    Parameters
    ----------
    timeout : float, default SETTLE_TIMEOUT_S
        Seconds to wait before the remaining tasks are cancelled.
    """
    from zarr.core import sync as zarr_sync

    loop = zarr_sync.loop[0]
    if loop is None or loop.is_closed() or not loop.is_running():
        return
    try:
        if asyncio.get_running_loop() is loop:
            return  # called from zarr's own thread: waiting here would block the tasks it waits for
    except RuntimeError:
        pass  # no loop in this thread: the usual case
    future = asyncio.run_coroutine_threadsafe(_settle(timeout), loop)
    with contextlib.suppress(TimeoutError):  # never in place of the error that the caller is raising
        future.result(timeout + 5)
