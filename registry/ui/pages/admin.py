"""Administration: UI users and API keys (admins only)."""

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from registry.auth import SCOPES, requires
from registry.errors import ConflictError, FieldError, RegistryValidationError
from registry.i18n import gettext
from registry.services.apikeys import create_api_key, list_api_keys, revoke_api_key
from registry.services.users import ROLES, create_user, disable_user, list_users
from registry.ui import forms
from registry.ui.pages.common import UiPages, current_user, page, read_form


class AdminPages(UiPages):
    @get("/admin", opt=requires("admin"))
    async def admin(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        return await admin_page(request, db_session)

    @post("/admin/users", opt=requires("admin"), status_code=200)
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

    @post("/admin/users/disable", opt=requires("admin"), status_code=303)
    async def disable(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        form = await read_form(request)
        async with db_session.begin():
            await disable_user(db_session, str(form.get("email") or ""), current_user(request).name)
        return Redirect("/ui/admin?done=disabled", status_code=303)

    @post("/admin/api-keys", opt=requires("admin"), status_code=200)
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

    @post("/admin/api-keys/revoke", opt=requires("admin"), status_code=303)
    async def revoke_key(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        form = await read_form(request)
        async with db_session.begin():
            await revoke_api_key(db_session, str(form.get("name") or ""), current_user(request).name)
        request.app.state.api_keys.clear()
        return Redirect("/ui/admin?done=revoked", status_code=303)


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
        user_roles=ROLES,
        scopes=SCOPES,
        **context,
    )


route_handlers = [AdminPages]
