"""Work that must not run on a server's event loop, in a worker process of its own.

A thread would not do: the work meant here (whole-registry reports, sealing the decision log) is pure Python,
and a thread holding the interpreter lock delays each of the loop's turns by up to the interpreter's switch
interval, several times per guard check. The worker process has its own interpreter and its own event loop; it
is started on first use (spawned: the server has threads and open connections a forked child must not
inherit), niced, kept for the next job, and replaced if it dies.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

WORKER_NICENESS = 10


def _lower_priority() -> None:
    # Where CPUs are short, the server's guard checks get them before a worker's job does.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


class WorkerProcess:
    """One worker process, for one job at a time (others queue behind it). `function` and its arguments and
    answer cross the process boundary: top-level functions and plain data."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ProcessPoolExecutor | None = None
        self._turn = asyncio.Lock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        async with self._turn:
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor(), function, *args)
            except BrokenProcessPool:
                # The worker died (killed, out of memory): start a new one for this job and the next.
                log.warning("the %s worker process died; starting another", self.name)
                self.close()
                return await asyncio.get_running_loop().run_in_executor(self._executor(), function, *args)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_lower_priority
            )
        return self._pool

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
