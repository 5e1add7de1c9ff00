"""Administration (admins only): UI users (create, role, disable and enable, password reset, unlock), API keys and
calendar feeds, with the history of every such change."""

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import ConflictError, FieldError, RegistryValidationError
from kernel.i18n import gettext
from registry.jobs.calendar import list_feeds, revoke_feed
from registry.services.apikeys import create_api_key, list_api_keys, revoke_api_key
from registry.services.users import (
    ROLES,
    admin_history,
    change_role,
    create_user,
    disable_user,
    enable_user,
    list_users,
    reset_password,
    unlock_user,
)
from web.auth import SCOPES, requires
from web.composition import services_of
from web.ui import forms
from web.ui.pages.common import UiPages, current_user, page, read_form

ADMIN = requires("admin")
# What the page says after a redirect (?done=...); an unknown value says nothing.
DONE_MESSAGES = {
    "user": "The user was added.",
    "disabled": "The user was disabled and their sessions ended.",
    "enabled": "The user was enabled.",
    "role": "The role was changed.",
    "unlocked": "The account's sign-in throttle was lifted.",
    "revoked": "The API key was revoked.",
    "feed_revoked": "The calendar feed was revoked.",
}


class AdminPages(UiPages):
    @get("/admin", opt=ADMIN)
    async def admin(
        self, request: Request, db_session: NamedDependency[AsyncSession], done: FromQuery[str | None] = None
    ) -> Template:
        return await admin_page(request, db_session, done=DONE_MESSAGES.get(done or ""))

    @post("/admin/users", opt=ADMIN, status_code=200)
    async def add_user(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        form = await read_form(request)
        email, role = str(form.get("email") or ""), str(form.get("role") or "")
        new_user = {"email": email, "role": role}
        try:
            async with db_session.begin():
                await create_user(db_session, email, role, str(form.get("password") or ""), current_user(request).name)
        except RegistryValidationError as exc:
            errors = forms.field_messages(exc.errors)
            return await admin_page(request, db_session, 400, errors=errors, new_user=new_user)
        except ConflictError:
            errors = {"email": [gettext("This user exists already.")]}
            return await admin_page(request, db_session, 409, errors=errors, new_user=new_user)
        return Redirect("/ui/admin?done=user", status_code=303)

    @post("/admin/users/disable", opt=ADMIN, status_code=303)
    async def disable(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        return await self._user_action(request, db_session, disable_user, "disabled")

    @post("/admin/users/enable", opt=ADMIN, status_code=303)
    async def enable(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        return await self._user_action(request, db_session, enable_user, "enabled")

    @post("/admin/users/unlock", opt=ADMIN, status_code=303)
    async def unlock(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        return await self._user_action(request, db_session, unlock_user, "unlocked")

    @post("/admin/users/role", opt=ADMIN, status_code=303)
    async def role(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        role = str((await read_form(request)).get("role") or "")

        async def to_role(session: AsyncSession, email: str, actor: str) -> None:
            await change_role(session, email, role, actor)

        return await self._user_action(request, db_session, to_role, "role")

    @post("/admin/users/reset-password", opt=ADMIN, status_code=200)
    async def reset(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        """The temporary password is shown once, here, for the admin to pass on by a channel of their choice."""
        email = str((await read_form(request)).get("email") or "")
        async with db_session.begin():
            temporary = await reset_password(db_session, email, current_user(request).name)
        return await admin_page(request, db_session, temporary_password=temporary, reset_email=email.strip().lower())

    async def _user_action(
        self, request: Request[Any, Any, Any], session: AsyncSession, action: Any, done: str
    ) -> Response[Any]:
        form = await read_form(request)
        try:
            async with session.begin():
                await action(session, str(form.get("email") or ""), current_user(request).name)
        except RegistryValidationError as exc:
            errors = {"": [forms.plain_words(e.message) for e in exc.errors]}
            return await admin_page(request, session, 400, errors=errors)
        return Redirect(f"/ui/admin?done={done}", status_code=303)

    @post("/admin/api-keys", opt=ADMIN, status_code=200)
    async def add_key(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        form = await read_form(request)
        name = str(form.get("name") or "").strip()
        scopes = [str(s) for s in form.getall("scopes", [])]
        errors: dict[str, list[str]] = {}
        token = None
        try:
            if not name:
                raise RegistryValidationError([FieldError("name", gettext("Give the key a name, such as webshop."))])
            async with db_session.begin():
                token = await create_api_key(db_session, name, scopes, current_user(request).name)
        except RegistryValidationError as exc:
            errors = forms.field_messages(exc.errors)
        except ConflictError:
            errors = {"name": [gettext("An API key with this name exists already.")]}
        return await admin_page(
            request, db_session, 400 if errors else 200, errors=errors, new_token=token, new_token_name=name
        )

    @post("/admin/api-keys/revoke", opt=ADMIN, status_code=303)
    async def revoke_key(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        form = await read_form(request)
        async with db_session.begin():
            await revoke_api_key(db_session, str(form.get("name") or ""), current_user(request).name)
        services_of(request.app).api_keys.clear()
        return Redirect("/ui/admin?done=revoked", status_code=303)

    @post("/admin/calendar-feeds/revoke", opt=ADMIN, status_code=303)
    async def revoke_feed(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        form = await read_form(request)
        async with db_session.begin():
            await revoke_feed(db_session, str(form.get("name") or ""), current_user(request).name)
        return Redirect("/ui/admin?done=feed_revoked", status_code=303)


async def admin_page(
    request: Request[Any, Any, Any], session: AsyncSession, status_code: int = 200, **context: Any
) -> Template:
    context.setdefault("new_user", {"email": "", "role": "legal"})
    return page(
        request,
        "admin.html",
        status_code=status_code,
        users=await list_users(session),
        keys=await list_api_keys(session),
        feeds=await list_feeds(session),
        history=await admin_history(session),
        user_roles=ROLES,
        scopes=SCOPES,
        **context,
    )


route_handlers = [AdminPages]
