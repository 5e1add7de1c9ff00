"""Exports auditors take: the registry as CSV/XLSX, the decision log as streamed CSV."""

from datetime import datetime
from urllib.parse import quote

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Response, Stream
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from registry import reports
from registry.services.exports import stream_decision_csv
from web.auth import requires
from web.composition import Services

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def content_disposition(filename: str, kind: str = "attachment") -> str:
    """RFC 6266: an ASCII `filename` for old clients (letters outside it as '_') and `filename*` (RFC 8187,
    UTF-8) with the whole name, so "Bergström-avtal.pdf" downloads as that."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename) or "download"
    encoded = quote(filename, safe="")
    if encoded == filename:
        return f'{kind}; filename="{fallback}"'
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def attachment(body: bytes, media_type: str, filename: str) -> Response[bytes]:
    return Response(body, media_type=media_type, headers={"Content-Disposition": content_disposition(filename)})


def decision_csv_response(session: AsyncSession, since: datetime | None, until: datetime | None) -> Stream:
    """The decision log of [since, until) as a CSV download, streamed (see stream_decision_csv). The rows are
    read through a session of the stream's own on the request session's engine: the body is sent after the
    handler has returned and its session is closed."""
    sessionmaker = async_sessionmaker(session.bind, expire_on_commit=False)
    return Stream(
        stream_decision_csv(sessionmaker, since, until),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition("guard-decisions.csv")},
    )


class RegistryExportController(Controller):
    """`GET /api/records/registry.xlsx` and `/api/records/registry-csv.zip`: the registry, one table a sheet/file."""

    path = "/api/records"
    tags = ["records"]

    # Both walk the whole registry: built in the report worker, off the event loop the guard answers on.
    @get("/registry.xlsx", opt=requires("registry:read"), media_type=XLSX)
    async def registry_xlsx(self, services: NamedDependency[Services]) -> Response[bytes]:
        body = await services.reports.run(reports.registry_xlsx, services.settings.database_url)
        return attachment(body, XLSX, "registry.xlsx")

    @get("/registry-csv.zip", opt=requires("registry:read"), media_type="application/zip")
    async def registry_csv(self, services: NamedDependency[Services]) -> Response[bytes]:
        body = await services.reports.run(reports.registry_csv_zip, services.settings.database_url)
        return attachment(body, "application/zip", "registry-csv.zip")
