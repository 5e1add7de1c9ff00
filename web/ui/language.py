"""The UI's language: chosen per request (the user's remembered choice, this browser's switch, its
Accept-Language, else REGISTRY_DEFAULT_LANGUAGE), and the switch on every page that changes it."""

from typing import Any

from litestar import Request, post
from litestar.datastructures import Cookie
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from kernel import i18n
from registry.credentials import Principal
from registry.services.users import remember_language
from web.composition import services_of

LANGUAGE_COOKIE = "registry_lang"
ONE_YEAR = 365 * 24 * 3600


def request_language(request: Request[Any, Any, Any]) -> str:
    principal = request.scope.get("user")
    remembered = principal.language if isinstance(principal, Principal) else None
    return i18n.negotiate(
        remembered,
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
        services_of(request.app).settings.default_language,
    )


async def apply_language(request: Request[Any, Any, Any]) -> None:
    """before_request: the locale of the UI's pages, form errors and badges for this request. The API speaks
    codes, not prose, so its requests (the guard's hot path included) skip this."""
    path = request.scope.get("path", "")
    if path.startswith("/ui") or path == "/":
        i18n.set_locale(request_language(request))


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


@post("/ui/language", include_in_schema=False, status_code=303)
async def switch_language(request: Request[Any, Any, Any]) -> Redirect:
    """Remembered in a cookie for this browser and, when someone is signed in, for the user (the login page
    has the switch too, before anyone is signed in)."""
    form = await request.form()
    language = str(form.get("language") or "")
    target = _safe_next(str(form.get("next") or ""))
    if language not in i18n.LANGUAGES:
        return Redirect(target, status_code=303)
    principal = await services_of(request.app).resolve_session(request)
    if isinstance(principal, Principal) and principal.kind == "user":
        session: AsyncSession
        async with services_of(request.app).sessionmaker() as session, session.begin():
            await remember_language(session, principal.name, language)
    cookie = Cookie(
        key=LANGUAGE_COOKIE,
        value=language,
        path="/",
        max_age=ONE_YEAR,
        httponly=True,
        samesite="lax",
        secure=services_of(request.app).settings.secure_cookies,
    )
    return Redirect(target, status_code=303, cookies=[cookie])


route_handlers = [switch_language]
