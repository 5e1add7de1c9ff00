"""An app's shutdown never waits forever on its database pool."""

import asyncio
import logging
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.db import dispose_within


class PoolThatNeverCloses:
    """Stands in for an engine whose connections wait on a server that no longer answers."""

    def __init__(self) -> None:
        self.cancelled = False

    async def dispose(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


@pytest.mark.timeout(60)
async def test_closing_a_pool_whose_server_never_answers_gives_up_and_says_so(caplog: Any) -> None:
    engine = PoolThatNeverCloses()
    with caplog.at_level(logging.WARNING, logger="kernel.db"):
        await dispose_within(cast(AsyncEngine, engine), within_seconds=0.05)
    await asyncio.sleep(0)  # let the cancelled close run its clean-up
    assert engine.cancelled
    assert "did not close" in caplog.text
