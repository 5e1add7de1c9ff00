"""Reports that walk the whole registry (findings, exports) run in a worker process (guard/workers.py), never
on the server's event loop: there they held the loop for seconds at 10,000 parties and every guard check
waited behind them. The worker has its own database connection; its answers come back as plain data (or
bytes, already encoded).
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

import msgspec
from litestar import MediaType, Response
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from guard.workers import WorkerProcess

T = TypeVar("T")


class ReportWorker(WorkerProcess):
    """One worker process per server process, for one report at a time (others queue behind it)."""

    def __init__(self) -> None:
        super().__init__("report")


def json_response(body: bytes) -> Response[Any]:
    """A JSON answer already encoded by the worker (Litestar sends bytes as they are). Typed Any so that a
    handler declares the document's real shape (`Response[dict[str, Any]]`) for the OpenAPI document."""
    return Response(body, media_type=MediaType.JSON)


# --- What runs in the worker ------------------------------------------------------------------------


def _in_registry(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def findings_report(database_url: str, today: date | None) -> bytes:
    """`GET /api/registry/findings` as JSON, encoded in the worker: thousands of findings at 10,000 parties, whose
    encoding on the loop would hold it as long as a guard check's whole budget."""
    from registry.services.findings import registry_findings_report

    return msgspec.json.encode(
        _in_registry(database_url, lambda session: registry_findings_report(session, today=today))
    )


def _document(database_url: str) -> dict[str, Any]:
    from registry.services.registry_document import export_registry

    async def read(session: AsyncSession) -> dict[str, Any]:
        async with session.begin():
            return await export_registry(session)

    return _in_registry(database_url, read)


def registry_json(database_url: str) -> bytes:
    """The registry document as JSON, encoded in the worker (10 MB at 10,000 parties)."""
    return msgspec.json.encode(_document(database_url))


def registry_xlsx(database_url: str) -> bytes:
    from registry.services import exports

    return exports.registry_xlsx(_document(database_url))


def registry_csv_zip(database_url: str) -> bytes:
    from registry.services import exports

    return exports.registry_csv_zip(_document(database_url))
