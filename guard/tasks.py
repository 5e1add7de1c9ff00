"""Stopping a background task within a bound, so that an app's shutdown (and a test client's teardown) never
waits forever on a task that does not finish cancelling: a database call that no longer answers can hold a
cancelled task's clean-up indefinitely, and `await task` after `cancel()` would wait with it."""

import asyncio
import logging

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10.0


async def cancel_and_wait(task: asyncio.Task[object] | None, within_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
    """Cancel `task` and wait for it to end, at most `within_seconds`; past that, leave it and say so."""
    if task is None or task.done():
        return
    task.cancel()
    # asyncio.wait, unlike wait_for, does not itself wait for a cancellation that never completes.
    done, _ = await asyncio.wait({task}, timeout=within_seconds)
    if not done:
        log.warning("background task %s did not stop within %.0f s; leaving it behind", task.get_name(), within_seconds)
