"""Guard HTTP endpoints (filled by the guard work)."""

from typing import Any

route_handlers: list[Any] = []
