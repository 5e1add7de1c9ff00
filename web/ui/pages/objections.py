"""The UI's data-subject pages: objections looked up by a person's identifier (recorded and withdrawn by legal
staff), and one person's recipients as a printable answer to an access request (Art. 15(1)(c)) and the list to
notify under Art. 19, in English or Swedish.

An identifier typed here is digested before any statement runs; pages show digests, never identifiers, except
the one the user has just typed, echoed back to them."""

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from guard.policy import OBJECTION_SCOPE_DIRECT_MARKETING
from kernel.calendar import controller_today
from kernel.errors import RegistryValidationError, pydantic_field_errors
from kernel.i18n import use_locale
from registry.schemas import ObjectionIn
from registry.services.objections import list_objections, record_objection, withdraw_objection
from registry.services.subjects import subject_recipients
from web.auth import requires
from web.composition import services_of
from web.ui.pages.common import UiPages, page
from web.ui.pages.records import language

# The pages' strings in Swedish, keyed by their English text (the templates write `{{ _("English") }}`).
SWEDISH: dict[str, str] = {
    "Objections and unsubscribes": "Invändningar och avregistreringar",
    "Look up a person": "Sök en person",
    "E-mail address or customer number": "E-postadress eller kundnummer",
    "Look up": "Sök",
    "Record an objection": "Registrera en invändning",
    "Scope": "Omfattning",
    "Direct marketing": "Direktmarknadsföring",
    "All processing": "All behandling",
    "Received on": "Mottagen",
    "Source": "Källa",
    "Record": "Registrera",
    "Withdraw": "Återkalla",
    "In force": "Gäller",
    "Withdrawn": "Återkallad",
    "Recorded": "Registrerad",
    "Status": "Status",
    "No objections recorded for this person.": "Inga invändningar registrerade för denna person.",
    "Recipients of one person's data": "Mottagare av en persons uppgifter",
    "Answer to an access request (Art. 15(1)(c) GDPR) and the recipients to notify (Art. 19 GDPR)": (
        "Svar på begäran om registerutdrag (art. 15.1 c dataskyddsförordningen) och mottagare att underrätta "
        "(art. 19 dataskyddsförordningen)"
    ),
    "Recipient": "Mottagare",
    "Role": "Roll",
    "Purposes": "Ändamål",
    "Categories of personal data": "Kategorier av personuppgifter",
    "First share": "Första delning",
    "Last share": "Senaste delning",
    "Shares": "Delningar",
    "Show": "Visa",
    "Print / save as PDF": "Skriv ut / spara som PDF",
    "Language": "Språk",
    "No recipient has received this person's data through the guard.": (
        "Ingen mottagare har fått denna persons uppgifter genom spärren."
    ),
    "Generated": "Skapad",
    "Reference (keyed digest)": "Referens (nyckelad kontrollsumma)",
    "Recipients of this person's data": "Mottagare av denna persons uppgifter",
    "processor": "personuppgiftsbiträde",
    "sub_processor": "underbiträde",
    "independent_controller": "självständigt personuppgiftsansvarig",
    "authority": "myndighet",
    "The objection was recorded; the guard obeys it now.": "Invändningen är registrerad; spärren följer den nu.",
    "The objection was withdrawn.": "Invändningen är återkallad.",
    "Period covered": "Period som omfattas",
    "Download as CSV": "Ladda ned som CSV",
    "Territories": "Territorier",
    "Sub-processors": "Underbiträden",
    "Contact": "Kontakt",
}


def _identity(text: str) -> str:
    return text


def _swedish(text: str) -> str:
    return SWEDISH.get(text, text)


def _page(request: Request[Any, Any, Any], name: str, lang: str = "en", **context: Any) -> Template:
    """A page whose `_` is this page's language; the Jinja environment gets an identity `_` when none is
    installed (the UI's own gettext, when there is one, stays in place for the other pages)."""
    engine = getattr(request.app.template_engine, "engine", None)
    if engine is not None:
        engine.globals.setdefault("_", _identity)
    return page(request, name, _=_swedish if lang == "sv" else _identity, lang=lang, **context)


def _form_errors(exc: RegistryValidationError | ValidationError) -> dict[str, list[str]]:
    """Messages by field, as the UI's macros show them."""
    errors = pydantic_field_errors(exc) if isinstance(exc, ValidationError) else exc.errors
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error.field, []).append(error.message)
    return found


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
                errors["lookup"] = [e.message for e in exc.errors]
                status_code = 400
        return _page(
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
        notice = "The objection was withdrawn." if withdrawn else None
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
        await services_of(request.app).objections.refresh_now()
        # Rendered, not redirected: a redirect would put the identifier in a URL (history, logs).
        return await self._objections_page(
            request, db_session, form["subject"], notice="The objection was recorded; the guard obeys it now."
        )

    @post("/objections/{objection_id:int}/withdraw", opt=requires("registry:write"))
    async def withdraw(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], objection_id: FromPath[int]
    ) -> Redirect:
        async with db_session.begin():
            await withdraw_objection(db_session, objection_id, request.user.name)
        await services_of(request.app).objections.refresh_now()
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
        return _page(
            request,
            "subject_recipients.html",
            lang=code,
            status_code=400 if errors else 200,
            subject=(subject or "")[:400],
            answer=answer,
            errors=errors,
            generated=(await controller_today(db_session)).isoformat(),
        )


route_handlers: list[Any] = [ObjectionsUiController]
