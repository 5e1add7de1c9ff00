"""Server-rendered web UI for legal and operations staff (filled by the UI work)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar

route_handlers: list[Any] = []
# Paths the UI serves without a login (its login page and its own static files).
public_path_patterns: list[str] = []


def app_options() -> dict[str, Any]:
    """Extra Litestar arguments the UI needs (template engine, static files)."""
    return {}


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    yield
