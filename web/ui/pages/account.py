"""The signed-in user's own account: changing their password (required after an admin reset it)."""

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import RegistryValidationError
from registry.credentials import Principal
from registry.services.users import PASSWORD_EXPIRED, change_own_password
from web.composition import SESSION_COOKIE
from web.ui import forms
from web.ui.pages.common import MESSAGES, PASSWORD_PAGE, UiPages, current_user, page, read_form


def _signed_in_user(request: Request[Any, Any, Any]) -> Principal:
    """Open to every signed-in user whatever their role (no scope is needed), but not to API keys."""
    principal = current_user(request)
    if principal.kind not in {"user", PASSWORD_EXPIRED}:
        raise PermissionDeniedException(MESSAGES["not_a_user"])
    return principal


class AccountPages(UiPages):
    @get(PASSWORD_PAGE.removeprefix("/ui"))
    async def password_form(self, request: Request) -> Template:
        principal = _signed_in_user(request)
        return page(request, "account_password.html", expired=principal.kind == PASSWORD_EXPIRED, done=False)

    @post(PASSWORD_PAGE.removeprefix("/ui"), status_code=200)
    async def change_password(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        principal = _signed_in_user(request)
        form = await read_form(request)
        try:
            async with db_session.begin():
                await change_own_password(
                    db_session,
                    principal.name,
                    str(form.get("current_password") or ""),
                    str(form.get("new_password") or ""),
                    str(form.get("confirm_password") or ""),
                    request.cookies.get(SESSION_COOKIE),
                )
        except RegistryValidationError as exc:
            expired = principal.kind == PASSWORD_EXPIRED
            errors = forms.field_messages(exc.errors)
            return page(request, "account_password.html", status_code=400, expired=expired, errors=errors, done=False)
        if principal.kind == PASSWORD_EXPIRED:
            return Redirect("/ui/", status_code=303)
        return page(request, "account_password.html", expired=False, done=True)


route_handlers = [AccountPages]
