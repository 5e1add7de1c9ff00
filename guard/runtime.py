"""Guard runtime inside the app: snapshot refresh and decision-log writer (filled by the guard work)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    yield
