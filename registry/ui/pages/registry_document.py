"""The whole registry as one document: export it, or import one in its place."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import yaml
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from registry.auth import requires
from registry.errors import RegistryValidationError
from registry.services.documents import json_ready
from registry.services.registry_document import export_registry, import_registry, parse_document
from registry.ui import forms
from registry.ui.pages.common import UiPages, current_user, page, read_form

MAX_IMPORT_BYTES = 20 * 1024 * 1024


class RegistryDocumentPages(UiPages):
    @get("/registry", opt=requires("registry:read"))
    async def registry_page(self, request: Request) -> Template:
        return page(request, "registry.html", result=None, import_errors=[])

    @get("/registry/export", opt=requires("registry:read"))
    async def export(
        self,
        db_session: NamedDependency[AsyncSession],
        format_: Annotated[str, QueryParameter(name="format", max_length=8)] = "yaml",
    ) -> Response[str]:
        document = json_ready(await export_registry(db_session))
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        if format_ == "json":
            body, media, ext = json.dumps(document, indent=2, ensure_ascii=False), "application/json", "json"
        else:
            body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
            media, ext = "application/yaml", "yaml"
        return Response(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="registry-{stamp}.{ext}"'}
        )

    @post("/registry/import", opt=requires("registry:write"), status_code=200)
    async def import_document(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        form = await read_form(request)
        upload = form.get("file")
        text = str(form.get("text") or "")
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(MAX_IMPORT_BYTES + 1)
            if len(raw) > MAX_IMPORT_BYTES:
                return import_failed(request, [("file", "The file is larger than 20 MB.")])
            text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            return import_failed(request, [("file", "Choose a YAML or JSON file, or paste the document.")])
        if form.get("confirm") != "on":
            return import_failed(
                request, [("confirm", "Tick the box to confirm that the import replaces the whole registry.")]
            )
        try:
            raw_doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return import_failed(request, [("(document)", f"This is not valid YAML or JSON: {exc}")])
        try:
            document = parse_document(raw_doc)
            async with db_session.begin():
                counts = await import_registry(db_session, document, current_user(request).name)
        except RegistryValidationError as exc:
            return import_failed(request, [(e.field, forms.plain_words(e.message)) for e in exc.errors])
        return page(request, "registry.html", result=counts, import_errors=[])


def import_failed(request: Request[Any, Any, Any], problems: list[tuple[str, str]]) -> Template:
    return page(request, "registry.html", status_code=400, result=None, import_errors=problems)


route_handlers = [RegistryDocumentPages]
