"""Signing in and out of the web UI."""

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.i18n import gettext
from registry.services.users import log_in, log_out
from web.composition import SESSION_COOKIE, services_of
from web.ui.pages.common import MESSAGES, PASSWORD_PAGE, UiPages, page, read_form, safe_next


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/ui/", status_code=303)


class LoginPages(UiPages):
    @get("/login")
    async def login_form(
        self, request: Request, next_: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None
    ) -> Template:
        return page(request, "login.html", next=safe_next(next_), email="", message=None)

    @post("/login", status_code=200)
    async def login(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        form = await read_form(request)
        email = str(form.get("email") or "").strip()
        password = str(form.get("password") or "")
        target = safe_next(str(form.get("next") or ""))
        errors: dict[str, list[str]] = {}
        if not email:
            errors["email"] = [gettext("Enter your e-mail address.")]
        if not password:
            errors["password"] = [gettext("Enter your password.")]
        if errors:
            return page(request, "login.html", status_code=400, next=target, email=email, errors=errors, message=None)
        address = request.client.host if request.client else "unknown"
        async with db_session.begin():
            result = await log_in(db_session, email, password, address)
        if result.wait_seconds:
            message = gettext(MESSAGES["login_throttled"]).format(seconds=result.wait_seconds)
            response = page(request, "login.html", status_code=429, next=target, email=email, message=message)
            response.headers["Retry-After"] = str(result.wait_seconds)
            return response
        if result.token is None:
            message = MESSAGES["login_failed"]
            return page(request, "login.html", status_code=401, next=target, email=email, message=message)
        if result.must_change_password:
            target = PASSWORD_PAGE
        settings = services_of(request.app).settings
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=result.token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        return Redirect(target, status_code=303, cookies=[cookie])

    @post("/logout", status_code=303)
    async def logout(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            async with db_session.begin():
                await log_out(db_session, token)
        response = Redirect("/ui/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


route_handlers = [root, LoginPages]
