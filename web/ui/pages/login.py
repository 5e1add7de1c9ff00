"""Signing in and out of the web UI."""

import logging
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel import i18n
from kernel.i18n import gettext
from registry.services.users import log_in, log_out, sign_on
from web.composition import SESSION_COOKIE, Services, services_of
from web.ui.oidc import (
    FLOW_COOKIE,
    FLOW_COOKIE_PATH,
    FLOW_LIFETIME,
    SignOnError,
    email_from_claims,
    open_flow,
    role_from_claims,
    seal_flow,
)
from web.ui.pages.common import MESSAGES, PASSWORD_PAGE, UiPages, page, read_form, safe_next

log = logging.getLogger(__name__)

# What a refused single sign-on tells the user, by the refusal's reason (web/ui/oidc.py SignOnError); the
# reason's code is logged beside it for the administrator.
SIGN_ON_MESSAGES = {
    "no_flow": i18n.N_(
        "The sign-in could not be matched to this browser: it was started elsewhere or took more than ten minutes. "
        "Start again from the login page."
    ),
    "state_mismatch": i18n.N_(
        "The sign-in could not be matched to this browser: it was started elsewhere or took more than ten minutes. "
        "Start again from the login page."
    ),
    "provider_refused": i18n.N_("The identity provider did not sign you in."),
    "provider_unreachable": i18n.N_("The identity provider could not be reached. Try again in a moment."),
    "no_role": i18n.N_(
        "Your account at the identity provider gives you no role in the registry, so you were not signed in. "
        "Ask your administrator for the legal, ops or admin role."
    ),
    "no_email": i18n.N_(
        "The identity provider did not give your e-mail address, so the registry cannot tell who you are."
    ),
    "disabled": i18n.N_("Your registry account is disabled. Ask an administrator."),
}
# Any other reason: the provider's answer did not verify (signature, issuer, audience, nonce, expiry).
SIGN_ON_NOT_VERIFIED = i18n.N_("The identity provider's answer could not be verified, so you were not signed in.")
SIGN_ON_STATUS = {"no_role": 403, "disabled": 403, "provider_unreachable": 502}


def _session_cookie(request: Request[Any, Any, Any], token: str) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=services_of(request.app).settings.secure_cookies,
    )


def _sign_on_refused(request: Request[Any, Any, Any], error: SignOnError) -> Template:
    log.warning("single sign-on refused (%s): %s", error.reason, error.detail)
    message = SIGN_ON_MESSAGES.get(error.reason, SIGN_ON_NOT_VERIFIED)
    response = page(
        request,
        "error.html",
        status_code=SIGN_ON_STATUS.get(error.reason, 400),
        title=i18n.N_("Not signed in"),
        message=message,
        code=error.reason,
        login_again=True,
    )
    response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    return response


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/ui/", status_code=303)


class LoginPages(UiPages):
    @get("/login")
    async def login_form(
        self, request: Request, next_: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None
    ) -> Template:
        return page(request, "login.html", next=safe_next(next_), email="", message=None, **_login_options(request))

    @post("/login", status_code=200)
    async def login(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        if not services_of(request.app).settings.local_passwords:
            message = MESSAGES["local_passwords_off"]
            options = _login_options(request)
            return page(request, "login.html", status_code=403, next="", email="", message=message, **options)
        form = await read_form(request)
        email = str(form.get("email") or "").strip()
        password = str(form.get("password") or "")
        target = safe_next(str(form.get("next") or ""))
        errors: dict[str, list[str]] = {}
        if not email:
            errors["email"] = [gettext("Enter your e-mail address.")]
        if not password:
            errors["password"] = [gettext("Enter your password.")]
        options = _login_options(request)
        if errors:
            return page(
                request, "login.html", status_code=400, next=target, email=email, errors=errors, message=None, **options
            )
        address = request.client.host if request.client else "unknown"
        async with db_session.begin():
            result = await log_in(db_session, email, password, address)
        if result.wait_seconds:
            message = gettext(MESSAGES["login_throttled"]).format(seconds=result.wait_seconds)
            response = page(
                request, "login.html", status_code=429, next=target, email=email, message=message, **options
            )
            response.headers["Retry-After"] = str(result.wait_seconds)
            return response
        if result.token is None:
            message = MESSAGES["login_failed"]
            return page(request, "login.html", status_code=401, next=target, email=email, message=message, **options)
        if result.must_change_password:
            target = PASSWORD_PAGE
        return Redirect(target, status_code=303, cookies=[_session_cookie(request, result.token)])

    @get("/login/oidc")
    async def sign_on_start(
        self,
        request: Request,
        services: NamedDependency[Services],
        next_: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None,
    ) -> Response[Any]:
        """The login page's single sign-on button: off to the identity provider, the flow kept in a cookie."""
        sign_on_client = services.sign_on
        if sign_on_client is None or services.csrf_secret is None:
            return page(request, "error.html", status_code=404, title="Not found", message=MESSAGES["no_sign_on"])
        try:
            url, flow = await sign_on_client.start(safe_next(next_))
        except SignOnError as error:
            return _sign_on_refused(request, error)
        cookie = Cookie(
            key=FLOW_COOKIE,
            value=seal_flow(flow, services.csrf_secret),
            path=FLOW_COOKIE_PATH,
            max_age=FLOW_LIFETIME,
            httponly=True,
            samesite="lax",  # the provider's redirect back is a top-level GET: the cookie goes along
            secure=services.settings.secure_cookies,
        )
        return Redirect(url, status_code=303, cookies=[cookie])

    @get("/login/oidc/callback")
    async def sign_on_callback(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        services: NamedDependency[Services],
    ) -> Response[Any]:
        """The identity provider's answer: the code exchanged, the ID token verified, the role read, signed in."""
        sign_on_client = services.sign_on
        if sign_on_client is None or services.csrf_secret is None:
            return page(request, "error.html", status_code=404, title="Not found", message=MESSAGES["no_sign_on"])
        flow = open_flow(request.cookies.get(FLOW_COOKIE), services.csrf_secret)
        query = {key: value[:2000] for key, value in request.query_params.items() if isinstance(value, str)}
        settings = services.settings
        try:
            claims = await sign_on_client.finish(flow, query)
            email = email_from_claims(claims)
            if email is None:
                raise SignOnError("no_email", f"subject {claims.get('sub')!r} has no e-mail claim")
            role = role_from_claims(claims, settings.oidc_role_claim, settings.oidc_role_map)
            if role is None:
                raise SignOnError("no_role", f"{email}: claim {settings.oidc_role_claim!r} maps to no role")
            async with db_session.begin():
                result = await sign_on(db_session, email, role)
            if result.token is None:
                raise SignOnError("disabled", f"{email}: the account is disabled")
        except SignOnError as error:
            return _sign_on_refused(request, error)
        assert flow is not None
        log.info("single sign-on: %s signed in as %s%s", email, role, " (new user)" if result.created else "")
        response = Redirect(flow.next, status_code=303, cookies=[_session_cookie(request, result.token)])
        response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
        return response

    @post("/logout", status_code=303)
    async def logout(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            async with db_session.begin():
                await log_out(db_session, token)
        response = Redirect("/ui/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _login_options(
    request: Request[Any, Any, Any],
) -> dict[str, Any]:  # page context (page() takes keyword arguments of several types)
    settings = services_of(request.app).settings
    return {"sign_on": settings.oidc_enabled, "local_passwords": settings.local_passwords}


route_handlers = [root, LoginPages]
