"""The UI's page for a person's other rights: restrictions (Art. 18) looked up by identifier, recorded and lifted;
erasure (Art. 17); notifying the recipients of their data (Art. 19), with the evidence of each delivery.

Like the objections page, an identifier typed here is digested before any statement runs, and an answer is
rendered rather than redirected to, so that no identifier ends up in a URL."""

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from guard.subjects import SubjectKey
from kernel.calendar import controller_today
from kernel.errors import RegistryValidationError
from kernel.i18n import N_
from registry.schemas import ErasureIn, NotificationIn, RestrictionIn
from registry.services.notifications import list_notifications, notify_recipients
from registry.services.subjects import erase_subject, lift_restriction, list_restrictions, record_restriction
from web.auth import requires
from web.composition import services_of
from web.ui.pages.common import UiPages, current_user, page, read_form
from web.ui.pages.objections import _form_errors

NOTICES = {
    "recorded": N_("The restriction was recorded; the guard refuses every share of this person now."),
    "lifted": N_("The restriction was lifted."),
    "erased": N_("The person was erased: nothing the registry keeps links to them any more."),
    "notified": N_("The recipients were notified; see each delivery below."),
}


def _subject_key(request: Request[Any, Any, Any]) -> SubjectKey:
    return services_of(request.app).subject_key


class SubjectRightsPages(UiPages):
    async def _page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        subject: str | None,
        *,
        status_code: int = 200,
        errors: dict[str, list[str]] | None = None,
        form: dict[str, str] | None = None,
        notice: str | None = None,
        erasure: dict[str, Any] | None = None,
        notified: dict[str, Any] | None = None,
    ) -> Template:
        items: list[dict[str, Any]] = []
        errors = dict(errors or {})
        if subject:
            try:
                items, _ = await list_restrictions(
                    db_session,
                    _subject_key(request),
                    subject=subject,
                    in_force=None,
                    limit=200,
                    offset=0,
                )
            except RegistryValidationError as exc:
                errors["lookup"] = [e.message for e in exc.errors]
                status_code = 400
        return page(
            request,
            "subject_rights.html",
            status_code=status_code,
            subject=subject or "",
            items=items,
            errors=errors,
            form=form
            or {
                "subject": subject or "",
                "received_on": (await controller_today(db_session)).isoformat(),
                "action": "erasure",
            },
            notice=NOTICES.get(notice or ""),
            erasure=erasure,
            notified=notified,
            notifications=await list_notifications(db_session, limit=50),
        )

    async def _form(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        return {k: str(v) for k, v in (await read_form(request)).items() if k != "_csrf_token"}

    async def _obeyed_here(self, request: Request[Any, Any, Any]) -> None:
        await services_of(request.app).obey_subject_rights()

    @get("/subjects", opt=requires("registry:read"))
    async def rights(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        subject: FromQuery[str | None] = None,
        done: FromQuery[str | None] = None,
    ) -> Template:
        return await self._page(request, db_session, (subject or "")[:400] or None, notice=done)

    @post("/subjects/restrictions", opt=requires("registry:write"))
    async def restrict(self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]) -> Template:
        form = await self._form(request)
        try:
            data = RestrictionIn.model_validate({k: form.get(k, "") for k in ("subject", "received_on", "source")})
        except ValidationError as exc:
            return await self._page(request, db_session, None, status_code=400, errors=_form_errors(exc), form=form)
        async with db_session.begin():
            await record_restriction(db_session, _subject_key(request), data, current_user(request).name)
        await self._obeyed_here(request)
        return await self._page(request, db_session, form["subject"], notice="recorded")

    @post("/subjects/restrictions/{restriction_id:int}/lift", opt=requires("registry:write"))
    async def lift(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        restriction_id: FromPath[int],
    ) -> Redirect:
        async with db_session.begin():
            await lift_restriction(db_session, restriction_id, current_user(request).name)
        await self._obeyed_here(request)
        return Redirect("/ui/subjects?done=lifted", status_code=303)

    @post("/subjects/erasure", opt=requires("registry:write"))
    async def erase(self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]) -> Template:
        form = await self._form(request)
        try:
            data = ErasureIn.model_validate({"subject": form.get("erase_subject", "")})
        except ValidationError as exc:
            errors = {"erase_subject": [m for messages in _form_errors(exc).values() for m in messages]}
            return await self._page(request, db_session, None, status_code=400, errors=errors, form=form)
        async with db_session.begin():
            outcome = await erase_subject(db_session, _subject_key(request), data.subject, current_user(request).name)
        await self._obeyed_here(request)
        return await self._page(request, db_session, None, notice="erased", erasure=outcome)

    @post("/subjects/notifications", opt=requires("registry:write"))
    async def notify(self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]) -> Template:
        form = await self._form(request)
        try:
            data = NotificationIn.model_validate(
                {"subject": form.get("notify_subject", ""), "action": form.get("action", "")}
            )
        except ValidationError as exc:
            errors = {
                ("notify_subject" if field == "subject" else field): messages
                for field, messages in _form_errors(exc).items()
            }
            return await self._page(request, db_session, None, status_code=400, errors=errors, form=form)
        state = services_of(request.app)
        notified = await notify_recipients(
            state.sessionmaker, state.settings, state.subject_key, data, current_user(request).name
        )
        return await self._page(request, db_session, None, notice="notified", notified=notified)


route_handlers = [SubjectRightsPages]
