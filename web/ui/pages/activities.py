"""Processing activities (the privacy policy as code): the list, the create and edit form, and the privacy
notice's recipients and transfers section generated from them, with the action that marks it published."""

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import NotFoundError, RegistryValidationError
from kernel.i18n import current, set_locale
from registry import reports
from registry.schemas import LEGAL_BASES
from registry.services.processing_activities import (
    LEGAL_BASIS_LABELS,
    delete_activity,
    save_activity,
    text_in,
    translate,
    validated_activity,
)
from web.auth import requires
from web.composition import Services
from web.ui import forms
from web.ui.pages.common import UiPages, current_user, page, read_form
from web.ui.pages.records import language
from web.ui.registry_view import read_controller

LOCAL_TEXTS = ("name", "retention", "security_measures")
LISTS = ("purposes", "data_subjects", "data_categories")


def _one_line(text: str) -> str:
    """A text area's lines as one line: the registry keeps every text on one line (no control characters)."""
    return " ".join(text.split())


def activity_from_form(form: Any) -> dict[str, Any]:
    """An activity as typed in the form (fields named as the document's paths: `name.sv`, `purposes`, ...)."""
    activity: dict[str, Any] = {
        "key": str(form.get("key") or "").strip(),
        "legal_basis": str(form.get("legal_basis") or ""),
        "direct_marketing": form.get("direct_marketing") == "on",
    }
    for name in LOCAL_TEXTS:
        activity[name] = {code: _one_line(str(form.get(f"{name}.{code}") or "")) for code in ("sv", "en")}
    for name in LISTS:
        activity[name] = [str(v).strip() for v in form.getall(name, []) if str(v).strip()]
    return activity


def _legal_bases() -> list[tuple[str, str]]:
    return [(key, translate(LEGAL_BASIS_LABELS[key])) for key in LEGAL_BASES]


def _activity(controller: dict[str, Any] | None, key: str) -> dict[str, Any]:
    for activity in (controller or {}).get("processing_activities") or ():
        if activity["key"] == key:
            return dict(activity)
    raise NotFoundError(f"no processing activity with key {key!r}")


class ActivityPages(UiPages):
    @get("/activities", opt=requires("registry:read"))
    async def activities(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], saved: FromQuery[str] = ""
    ) -> Template:
        controller = await read_controller(db_session)
        lang = current()
        rows = [
            {
                **a,
                "title": text_in(a["name"], lang),
                "legal_basis_text": translate(LEGAL_BASIS_LABELS.get(a["legal_basis"], a["legal_basis"])),
            }
            for a in (controller or {}).get("processing_activities") or ()
        ]
        return page(request, "activities.html", activities=rows, saved=saved[:64], controller=controller)

    @get("/activities/new", opt=requires("registry:write"))
    async def new(self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]) -> Template:
        empty = {"key": "", "name": {}, "retention": {}, "security_measures": {}, "legal_basis": "",
                 "purposes": [], "data_subjects": [], "data_categories": [], "direct_marketing": False}  # fmt: skip
        return await self._form(request, db_session, empty, editing=None)

    @get("/activities/{key:str}", opt=requires("registry:write"))
    async def edit(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Template:
        activity = _activity(await read_controller(db_session), key)
        return await self._form(request, db_session, activity, editing=key)

    @post("/activities", opt=requires("registry:write"))
    async def create(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
    ) -> Template | Redirect:
        return await self._save(request, db_session, None)

    @post("/activities/{key:str}", opt=requires("registry:write"))
    async def update(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Template | Redirect:
        return await self._save(request, db_session, key)

    @post("/activities/{key:str}/delete", opt=requires("registry:write"))
    async def delete(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Redirect:
        async with db_session.begin():
            await delete_activity(db_session, key, current_user(request).name)
        return Redirect("/ui/activities?saved=deleted", status_code=303)

    async def _save(
        self, request: Request[Any, Any, Any], session: AsyncSession, replacing: str | None
    ) -> Template | Redirect:
        typed = activity_from_form(await read_form(request))
        try:
            activity = validated_activity(typed)
            async with session.begin():
                await save_activity(session, activity, current_user(request).name, replacing)
        except RegistryValidationError as exc:
            errors = forms.field_messages(exc.errors)
            return await self._form(request, session, typed, editing=replacing, errors=errors, status_code=400)
        return Redirect(f"/ui/activities?saved={activity['key']}", status_code=303)

    async def _form(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        activity: dict[str, Any],
        *,
        editing: str | None,
        errors: dict[str, list[str]] | None = None,
        status_code: int = 200,
    ) -> Template:
        controller = await read_controller(session)
        return page(
            request,
            "activity_form.html",
            status_code=status_code,
            activity=activity,
            editing=editing,
            legal_bases=_legal_bases(),
            taxonomy=forms.taxonomy_for(controller),
            errors=errors or {},
            controller=controller,
        )

    # The notice walks the whole registry (in both languages, to compare with what was published): built in the
    # report worker, off the event loop the guard answers on.
    @get("/records/privacy-notice", opt=requires("registry:read"))
    async def privacy_notice(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        lang: FromQuery[str | None] = None,
        published: FromQuery[str] = "",
    ) -> Template:
        code = language(request, lang)
        notice = await services.reports.run(reports.privacy_notice, services.settings.database_url, code)
        template = page(request, "privacy_notice.html", notice=notice, lang=code, just_published=bool(published))
        set_locale(code)  # the page in the notice's language (page() set the reader's)
        return template

    @post("/records/privacy-notice/published", opt=requires("registry:write"))
    async def mark_published(self, request: Request[Any, Any, Any], services: NamedDependency[Services]) -> Redirect:
        await services.reports.run(
            reports.mark_privacy_notice_published, services.settings.database_url, current_user(request).name
        )
        return Redirect("/ui/records/privacy-notice?published=1", status_code=303)


route_handlers: list[Any] = [ActivityPages]
