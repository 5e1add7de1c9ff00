"""Background tasks' plumbing: opening and closing their LISTEN connections, and stopping a task within a
bound, so that an app's shutdown (and a test client's teardown) never waits forever on a task that does not
finish cancelling: a database call that no longer answers can hold a cancelled task's clean-up indefinitely,
and `await task` after `cancel()` would wait with it."""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

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


# A LISTEN connection's notices and loss, as asyncpg calls them back.
NoticeCallback = Callable[..., None]


async def open_listening(
    dsn: str,
    channel: str,
    on_notice: NoticeCallback,
    on_lost: NoticeCallback,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Connection:
    """A connection that LISTENs on `channel` (`on_notice` per notice) and calls `on_lost` if it drops; closed
    again if setting either up fails."""
    connection = await asyncpg.connect(dsn, timeout=5, server_settings=server_settings)
    try:
        await connection.add_listener(channel, on_notice)
        connection.add_termination_listener(on_lost)
    except BaseException:
        await connection.close()
        raise
    return connection


async def close_listening(connection: asyncpg.Connection | None, on_lost: NoticeCallback) -> None:
    """Close a connection `open_listening` gave, within 2 s, else cut it. asyncpg calls termination listeners
    on our own close too; closing on purpose is no lost connection, so `on_lost` is removed first."""
    if connection is None:
        return
    connection.remove_termination_listener(on_lost)
    if not connection.is_closed():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), timeout=2)
        if not connection.is_closed():
            connection.terminate()


async def wait_as_waiter(waiters: "list[tuple[Any, asyncio.Future[None]]]", wanted: Any, within_seconds: float) -> None:
    """Wait, at most `within_seconds`, for whoever keeps `waiters` to settle the future registered with `wanted`
    (it settles each one whose `wanted` it reaches); the entry is taken out again however the wait ends."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    entry = (wanted, waiter)
    waiters.append(entry)
    try:
        await asyncio.wait_for(waiter, within_seconds)
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(ValueError):
            waiters.remove(entry)
