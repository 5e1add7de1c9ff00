"""Scheduled jobs: renewal reminders (filled by the reminders work)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar

route_handlers: list[Any] = []


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    yield
