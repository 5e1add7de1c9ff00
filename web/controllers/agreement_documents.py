"""`/api/agreements/{key}/document`: the signed agreement on file."""

from typing import Any

from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Response
from sqlalchemy.ext.asyncio import AsyncSession

from registry.services.agreement_documents import (
    DocumentTooLarge,
    NotAPdf,
    read_document,
    read_limited,
    store_document,
)
from web.auth import requires
from web.composition import services_of
from web.contract import AgreementAnswer, answers
from web.controllers.exports import content_disposition

PDF = "application/pdf"


class AgreementDocumentController(Controller):
    path = "/api/agreements/{key:str}/document"
    tags = ["agreements"]

    # Litestar's own body limit (10 MB) is lifted: the configured REGISTRY_AGREEMENT_DOCUMENT_MAX_BYTES applies.
    @put(
        "/",
        opt=requires("registry:write"),
        request_max_body_size=None,
        status_code=200,
        responses=answers(200, AgreementAnswer, "The agreement with its document on file", 401, 403, 404, 413, 415),
    )
    async def upload(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> dict[str, Any]:
        """The signed PDF as the body (`Content-Type: application/pdf`); `X-Filename` names it (optional)."""
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != PDF:
            raise HTTPException(
                status_code=415, detail=f"the document must be sent as {PDF}, not {media_type or 'no content type'}"
            )
        limit = services_of(request.app).settings.agreement_document_max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(status_code=413, detail=f"the document is larger than the limit of {limit} bytes")
        try:
            content = await read_limited(request.stream(), limit)
            async with db_session.begin():
                return await store_document(
                    db_session, key, content, request.headers.get("x-filename"), request.user.name
                )
        except DocumentTooLarge as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from None
        except NotAPdf as exc:
            raise HTTPException(status_code=415, detail=str(exc)) from None

    @get("/", opt=requires("registry:read"), media_type=PDF)
    async def download(self, db_session: NamedDependency[AsyncSession], key: FromPath[str]) -> Response[bytes]:
        """The signed PDF exactly as stored; its SHA-256 in `X-Content-SHA256`."""
        stored = await read_document(db_session, key)
        return Response(
            stored.content,
            media_type=PDF,
            headers={
                "Content-Disposition": content_disposition(stored.filename),
                "X-Content-SHA256": stored.sha256,
                "X-Content-Type-Options": "nosniff",
            },
        )
