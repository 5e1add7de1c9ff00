"""`/api/registry`: the whole registry as one document (export, replace-all import, import preview), and the
records imports removed (listed, to be restored)."""

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromQuery
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import FieldError, RegistryValidationError
from registry import reports
from registry.schemas import RegistryDocument
from registry.services.registry_document import (
    JSON_MEDIA_TYPES,
    YAML_MEDIA_TYPES,
    apply_document,
    load_document_text,
    parse_document,
    preview_document,
)
from registry.services.removed import removed_records
from web.auth import requires
from web.composition import Services, services_of
from web.contract import ImportAnswer, RemovedList, answers


class DocumentTooLarge(ClientException):
    status_code = 413


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The body, refused with a 413 past `limit` bytes (the route lifts Litestar's own, smaller, limit)."""
    if request.content_length is not None and request.content_length > limit:
        raise DocumentTooLarge(_too_large(limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DocumentTooLarge(_too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return (
        f"the registry document is larger than {limit} bytes (REGISTRY_IMPORT_MAX_BYTES); "
        "raise that setting to import a larger registry"
    )


class RegistryDocumentController(Controller):
    path = "/api/registry"
    tags = ["registry"]

    @get(
        "/",
        opt=requires("registry:read"),
        responses=answers(200, RegistryDocument, "The whole registry as one document", 401, 403),
    )
    async def export_document(self, services: NamedDependency[Services]) -> Response[dict[str, Any]]:
        """The whole registry as one document, read in one transaction (one snapshot of every table) and encoded
        in the report worker, off the event loop the guard answers on."""
        return reports.json_response(await services.reports.run(reports.registry_json, services.settings.database_url))

    @put(
        "/",
        opt=requires("registry:write"),
        request_max_body_size=None,
        responses=answers(200, ImportAnswer, "The change set (a preview with dry_run=true)", 400, 401, 403, 413),
    )
    async def replace_document(
        self, request: Request, db_session: NamedDependency[AsyncSession], dry_run: FromQuery[bool] = False
    ) -> dict[str, Any]:
        """Replace the registry with a JSON or YAML document: all or nothing; every error comes back with its
        path. The answer is the change set; with `dry_run=true` it is a preview and nothing is written."""
        media_type = request.content_type[0] or "application/json"
        if media_type not in JSON_MEDIA_TYPES | YAML_MEDIA_TYPES:
            raise RegistryValidationError(
                [
                    FieldError(
                        "Content-Type", f"send the document as application/json or application/yaml, not {media_type}"
                    )
                ]
            )
        body = await read_body(request, services_of(request.app).settings.registry_import_max_bytes)
        # Parsing and validating a large registry takes seconds: not on the event loop.
        raw = await anyio.to_thread.run_sync(load_document_text, body, media_type)
        document = await anyio.to_thread.run_sync(parse_document, raw)
        async with db_session.begin():
            if dry_run:
                changes = await preview_document(db_session, document, request.user.name)
            else:
                changes = await apply_document(db_session, document, request.user.name)
        return {"status": "preview" if dry_run else "imported", **changes.counts(), "changes": changes.as_dict()}

    @get("/removed", opt=requires("registry:read"), responses=answers(200, RemovedList, "Removed records", 401, 403))
    async def removed(self, db_session: NamedDependency[AsyncSession]) -> dict[str, Any]:
        """Parties and agreements an import removed, with when, by whom, and their URLs to restore them."""
        return {"items": await removed_records(db_session)}
