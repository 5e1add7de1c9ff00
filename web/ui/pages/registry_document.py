"""The whole registry as one document: export it, or import one in its place."""

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import RegistryValidationError
from kernel.i18n import N_
from registry import reports
from registry.services.registry_document import (
    Preview,
    RegistryChangedSincePreview,
    apply_previewed_document,
    load_document_text,
    parse_document,
    preview_at_revision,
)
from web.auth import requires
from web.composition import Services
from web.ui import forms
from web.ui.pages.common import UiPages, current_user, page, read_form

MAX_IMPORT_BYTES = 20 * 1024 * 1024


class RegistryDocumentPages(UiPages):
    @get("/registry", opt=requires("registry:read"))
    async def registry_page(self, request: Request) -> Template:
        return page(request, "registry.html", result=None, import_errors=[])

    @get("/registry/export", opt=requires("registry:read"))
    async def export(
        self,
        services: NamedDependency[Services],
        format_: Annotated[str, QueryParameter(name="format", max_length=8)] = "yaml",
    ) -> Response[bytes]:
        """The whole registry, read and encoded in the report worker, off the event loop the guard answers on."""
        form = "json" if format_ == "json" else "yaml"
        body = await services.reports.run(reports.registry_text, services.settings.database_url, form)
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        media = "application/json" if form == "json" else "application/yaml"
        return Response(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="registry-{stamp}.{form}"'}
        )

    @post("/registry/import", opt=requires("registry:write"), status_code=200)
    async def import_document(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        """Two steps: a document is first previewed (its change set, nothing written); only the confirm of that
        preview imports it, and only while the registry is still at the revision the preview was computed
        against, so what the person approved is exactly what happens."""
        form = await read_form(request)
        upload = form.get("file")
        text = str(form.get("text") or "")
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(MAX_IMPORT_BYTES + 1)
            if len(raw) > MAX_IMPORT_BYTES:
                return import_failed(request, [("file", N_("The file is larger than 20 MB."))])
            text = raw.decode("utf-8", errors="replace")
        # A browser sends a textarea's lines back with CR LF: one spelling, so a preview's digest matches its confirm.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if not text.strip():
            return import_failed(request, [("file", N_("Choose a YAML or JSON file, or paste the document."))])
        try:
            document = parse_document(await asyncio.to_thread(load_document_text, text.encode(), "application/yaml"))
        except RegistryValidationError as exc:
            return import_failed(request, [(e.field, forms.plain_words(e)) for e in exc.errors])
        token = preview_token(form.get("preview"), text)
        actor = current_user(request).name
        if token is None or form.get("confirm") != "on":
            async with db_session.begin():
                preview = await preview_at_revision(db_session, document, actor)
            unconfirmed = token is not None  # they saw the preview but did not tick the box
            return preview_page(request, preview, text, unconfirmed=unconfirmed)
        try:
            async with db_session.begin():
                changes = await apply_previewed_document(db_session, document, actor, token)
        except RegistryChangedSincePreview:
            async with db_session.begin():
                preview = await preview_at_revision(db_session, document, actor)
            return preview_page(request, preview, text, outdated=True)
        return page(request, "registry.html", result=changes.counts(), changes=changes, import_errors=[])


def document_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def preview_token(raw: Any, text: str) -> int | None:
    """The revision a preview of exactly this text was computed against; None when there was no preview of it
    (no token, a malformed one, or a document edited after its preview)."""
    revision, _, digest = str(raw or "").partition(":")
    if not revision.isdigit() or len(revision) > 18 or not hmac.compare_digest(digest, document_digest(text)):
        return None
    return int(revision)


def preview_page(
    request: Request[Any, Any, Any], preview: Preview, text: str, *, unconfirmed: bool = False, outdated: bool = False
) -> Template:
    return page(
        request,
        "registry.html",
        status_code=409 if outdated else 200,
        result=None,
        import_errors=[("confirm", CONFIRM_PROBLEM)] if unconfirmed else [],
        preview=preview.changes,
        preview_counts=preview.changes.counts(),
        preview_token=f"{preview.revision}:{document_digest(text)}",
        document_text=text,
        outdated=outdated,
    )


CONFIRM_PROBLEM = N_("Tick the box to confirm that the import replaces the whole registry.")


def import_failed(request: Request[Any, Any, Any], problems: list[tuple[str, str]]) -> Template:
    return page(request, "registry.html", status_code=400, result=None, import_errors=problems)


route_handlers = [RegistryDocumentPages]
