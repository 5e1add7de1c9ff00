"""Reports that walk the whole registry (findings, exports) run in a worker process (kernel/workers.py), never
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

from kernel.workers import WorkerProcess

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


def in_registry(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
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
        in_registry(database_url, lambda session: registry_findings_report(session, today=today))
    )


def _document(database_url: str) -> dict[str, Any]:
    from registry.services.registry_document import export_registry

    async def read(session: AsyncSession) -> dict[str, Any]:
        async with session.begin():
            return await export_registry(session)

    return in_registry(database_url, read)


def registry_json(database_url: str) -> bytes:
    """The registry document as JSON, encoded in the worker (10 MB at 10,000 parties)."""
    return msgspec.json.encode(_document(database_url))


def registry_xlsx(database_url: str) -> bytes:
    from registry.services import exports

    return exports.registry_xlsx(_document(database_url))


def registry_csv_zip(database_url: str, language: str | None = None) -> bytes:
    from registry.services import exports

    return exports.registry_csv_zip(_document(database_url), delimiter=exports.csv_delimiter(language))


def article_30(
    database_url: str, start: date | None, end: date | None, form: str, language: str = "en"
) -> tuple[str, bytes]:
    """The Art. 30 record (`/api/records/article-30`) in `form` (json, csv or xlsx) and `language`, with its file
    name: it walks the whole registry and the period's decision log, so it is built and encoded here."""
    from kernel.i18n import set_locale
    from registry.services.records import article_30_record, record_csv, record_xlsx

    set_locale(language)  # this worker task's own context: the record's words and the exports' headers
    record = in_registry(database_url, lambda session: article_30_record(session, start, end))
    name = f"article-30-{record['period']['from']}-{record['period']['to']}"
    if form == "csv":
        from registry.services.exports import csv_delimiter

        return name, record_csv(record, delimiter=csv_delimiter(language))
    if form == "xlsx":
        return name, record_xlsx(record)
    return name, msgspec.json.encode(record)


def article_30_data(
    database_url: str, start: date | None, end: date | None, offset: int, limit: int, language: str = "en"
) -> dict[str, Any]:
    """The Art. 30 record for the UI's page: everything but the recipients, and a page of those (`recipients` from
    `offset`, at most `limit`; `recipients_total` all of them). The whole record, thousands of recipients at
    10,000 parties, would take seconds to send back and render on the server's loop."""
    from kernel.i18n import set_locale
    from registry.services.records import article_30_record

    set_locale(language)
    record = in_registry(database_url, lambda session: article_30_record(session, start, end))
    recipients = record["recipients"]
    return {**record, "recipients": recipients[offset : offset + limit], "recipients_total": len(recipients)}


def privacy_notice(database_url: str, language: str) -> dict[str, Any]:
    """The privacy notice's recipients and transfers section (`/api/records/privacy-notice`): generated from the
    whole registry, in both languages (to compare with what was published), so built here."""
    from registry.services.privacy_notice import privacy_notice as notice

    return in_registry(database_url, lambda session: notice(session, language))


def mark_privacy_notice_published(database_url: str, actor: str) -> dict[str, Any]:
    from registry.services.privacy_notice import mark_published

    return in_registry(database_url, lambda session: mark_published(session, actor))


def evidence_zip(database_url: str, start: date | None, end: date | None) -> bytes:
    """The evidence bundle: the record, the registry, the signed copies, the period's log and its verification
    (every entry of the decision log rehashed)."""
    from registry.services.evidence import evidence_bytes

    return in_registry(database_url, lambda session: evidence_bytes(session, start, end))


def registry_text(database_url: str, form: str) -> bytes:
    """The registry document as the UI downloads it: YAML, or indented JSON."""
    import json

    import yaml

    from registry.services.documents import json_ready

    document = json_ready(_document(database_url))
    if form == "json":
        return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode("utf-8")
