"""The UI's data-subject pages: objections looked up by a person's identifier (recorded and withdrawn by legal
staff), and one person's recipients as a printable answer to an access request (Art. 15(1)(c)) and the list to
notify under Art. 19, in English or Swedish.

An identifier typed here is digested before any statement runs; pages show digests, never identifiers, except
the one the user has just typed, echoed back to them."""

from typing import Any

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from guard.views import OBJECTION_SCOPE_DIRECT_MARKETING
from kernel.calendar import controller_today
from kernel.errors import RegistryValidationError
from kernel.i18n import N_, gettext, use_locale
from registry.schemas import ObjectionIn
from registry.services.objections import (
    IMPORT_MAX_BYTES,
    import_unsubscribes,
    list_objections,
    parse_unsubscribes,
    record_objection,
    withdraw_objection,
)
from registry.services.subjects import subject_recipients
from web.auth import requires
from web.composition import services_of
from web.ui import forms
from web.ui.pages.common import UiPages, page
from web.ui.pages.common import parse_day as parse_day_field
from web.ui.pages.records import language

# What the pages say after a change (translated where shown, like every word of the templates).
RECORDED = N_("The objection was recorded; the guard obeys it now.")
WITHDRAWN = N_("The objection was withdrawn.")
IMPORTED = N_(
    "The list was imported: %(rows)s rows, %(recorded)s objections recorded, %(already)s already in force. "
    "The guard obeys them now."
)


def _form_errors(exc: RegistryValidationError | ValidationError) -> dict[str, list[str]]:
    """Messages by field, as the UI's macros show them, in the reader's words (forms.field_messages)."""
    if isinstance(exc, ValidationError):
        return forms.validation_messages(exc)
    return forms.field_messages(exc.errors)


class ObjectionsUiController(UiPages):
    async def _objections_page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        subject: str | None,
        *,
        status_code: int = 200,
        errors: dict[str, list[str]] | None = None,
        form: dict[str, str] | None = None,
        notice: str | None = None,
    ) -> Template:
        items: list[dict[str, Any]] = []
        errors = dict(errors or {})
        if subject:
            try:
                items, _ = await list_objections(
                    db_session,
                    services_of(request.app).subject_key,
                    subject=subject,
                    in_force=None,
                    limit=200,
                    offset=0,
                )
            except RegistryValidationError as exc:
                errors["lookup"] = [m for ms in forms.field_messages(exc.errors).values() for m in ms]
                status_code = 400
        return page(
            request,
            "objections.html",
            status_code=status_code,
            subject=subject or "",
            items=items,
            errors=errors,
            form=form
            or {
                "subject": subject or "",
                "scope": OBJECTION_SCOPE_DIRECT_MARKETING,
                "received_on": (await controller_today(db_session)).isoformat(),
            },
            notice=notice,
        )

    @get("/objections", opt=requires("registry:read"))
    async def objections(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        subject: FromQuery[str | None] = None,
        withdrawn: FromQuery[str | None] = None,
    ) -> Template:
        notice = WITHDRAWN if withdrawn else None
        return await self._objections_page(request, db_session, (subject or "")[:400] or None, notice=notice)

    @post("/objections", opt=requires("registry:write"))
    async def record(self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]) -> Template:
        form = {k: str(v) for k, v in (await request.form()).items() if k != "_csrf_token"}
        try:
            data = ObjectionIn.model_validate(
                {k: form.get(k, "") for k in ("subject", "scope", "received_on", "source")}
            )
        except ValidationError as exc:
            return await self._objections_page(
                request, db_session, None, status_code=400, errors=_form_errors(exc), form=form
            )
        async with db_session.begin():
            await record_objection(db_session, services_of(request.app).subject_key, data, request.user.name)
        await services_of(request.app).obey_subject_rights()
        # Rendered, not redirected: a redirect would put the identifier in a URL (history, logs).
        return await self._objections_page(request, db_session, form["subject"], notice=RECORDED)

    @post("/objections/import", opt=requires("registry:write"), request_max_body_size=IMPORT_MAX_BYTES, status_code=200)
    async def import_list(self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]) -> Template:
        """A mail tool's unsubscribe export (CSV, ',' or ';', with or without a byte order mark, English or
        Swedish headers) as objections: all rows or none, as `POST /api/objections/import`."""
        form = await request.form()
        upload = form.get("file")
        scope = str(form.get("import_scope") or "direct_marketing")
        source = str(form.get("import_source") or "").strip()[:200] or "unsubscribe list"
        errors: dict[str, list[str]] = {}
        if not isinstance(upload, UploadFile) or not upload.filename:
            errors["file"] = [gettext("Choose the CSV file to import.")]
        received = parse_day_field(str(form.get("import_received_on") or ""), "import_received_on", errors)
        if errors:
            return await self._objections_page(request, db_session, None, status_code=400, errors=errors)
        assert isinstance(upload, UploadFile)
        content = await upload.read()
        try:
            # One transaction: the controller's day is read in it too (a read before `begin` would start one).
            async with db_session.begin():
                rows = parse_unsubscribes(
                    content,
                    services_of(request.app).subject_key,
                    default_day=received or await controller_today(db_session),
                    scope=scope,
                )
                summary = await import_unsubscribes(
                    db_session, rows, scope=scope, source=source, actor=request.user.name
                )
        except RegistryValidationError as exc:
            problems = [m for messages in forms.field_messages(exc.errors).values() for m in messages]
            return await self._objections_page(request, db_session, None, status_code=400, errors={"file": problems})
        await services_of(request.app).obey_subject_rights()
        counts = {"rows": summary.rows, "recorded": summary.recorded, "already": summary.already_in_force}
        return await self._objections_page(request, db_session, None, notice=gettext(IMPORTED) % counts)

    @post("/objections/{objection_id:int}/withdraw", opt=requires("registry:write"))
    async def withdraw(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], objection_id: FromPath[int]
    ) -> Redirect:
        async with db_session.begin():
            await withdraw_objection(db_session, objection_id, request.user.name)
        await services_of(request.app).obey_subject_rights()
        return Redirect(f"/ui/objections?withdrawn={objection_id}", status_code=303)

    @get("/subjects/recipients", opt=requires("registry:read"))
    async def recipients(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        subject: FromQuery[str | None] = None,
        lang: FromQuery[str | None] = None,
    ) -> Template:
        code = language(request, lang)
        answer: dict[str, Any] | None = None
        errors: dict[str, list[str]] = {}
        if subject:
            try:
                with use_locale(code):  # (the statement of what the answer cannot know, in the page's language)
                    answer = await subject_recipients(db_session, services_of(request.app).subject_key, subject[:400])
            except RegistryValidationError as exc:
                errors = _form_errors(exc)
        return page(
            request,
            "subject_recipients.html",
            language=code,
            lang=code,
            status_code=400 if errors else 200,
            subject=(subject or "")[:400],
            answer=answer,
            errors=errors,
            generated=(await controller_today(db_session)).isoformat(),
        )


route_handlers: list[Any] = [ObjectionsUiController]
