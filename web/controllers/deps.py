"""Dependencies shared by controllers."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from litestar.params import QueryParameter
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncSession

from web.composition import services_of
from web.visibility import track_writes

T = TypeVar("T")

# Text query parameters reach SQL; PostgreSQL text cannot hold NUL, so they refuse it with a 400 naming them.
WITHOUT_NUL = r"^[^\x00]*$"

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size")]
Offset = Annotated[int, QueryParameter(ge=0, le=10_000_000, description="items to skip")]
SearchText = Annotated[
    str | None, QueryParameter(max_length=200, pattern=WITHOUT_NUL, description="text search on key and name")
]


async def provide_db_session(scope: Scope) -> AsyncIterator[AsyncSession]:
    """A session per request; handlers open their own transaction with `async with db_session.begin()`. A
    registry write it commits is answered once this instance's guard obeys it (web/visibility.py)."""
    async with services_of(scope["litestar_app"]).sessionmaker() as session:
        track_writes(scope, session)
        yield session


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def page(items: list[Any], total: int, limit: int, offset: int) -> Page[Any]:
    return Page(items=items, total=total, limit=limit, offset=offset)
