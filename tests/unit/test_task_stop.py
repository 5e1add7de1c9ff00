"""A background task that will not finish cancelling must not hold an app's shutdown for ever."""

import asyncio

from kernel.tasks import cancel_and_wait


async def test_a_task_that_ignores_its_cancellation_is_left_behind_after_the_bound():
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # as a clean-up blocked on a database that no longer answers would

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(task, within_seconds=0.2)
    assert not task.done()
    release.set()
    await asyncio.wait({task}, timeout=5)
    assert task.done()


async def test_a_task_that_honours_its_cancellation_is_cancelled_and_awaited():
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await cancel_and_wait(task, within_seconds=5)
    assert task.cancelled()


async def test_no_task_or_a_finished_one_is_nothing_to_stop():
    finished = asyncio.create_task(asyncio.sleep(0))
    await finished
    await cancel_and_wait(None)
    await cancel_and_wait(finished)
    assert finished.done() and not finished.cancelled()
