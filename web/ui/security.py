"""The browser-facing defences of the web UI: security headers on every UI answer, and CSRF tokens bound to
the signed-in session.

Headers are added by a `before_send` hook, which sees every answer the app sends, including those made
outside the route's own handling (an unknown /ui/ address, a CSRF refusal, the login redirect, a 500).

A CSRF token is an HMAC of the caller's session id: a token taken from one session (or from an anonymous
visit to the login page) is worthless with another session's cookie, and a login rotates it (the session id
is new). Before login the token is bound to a random anonymous cookie, so that the login form itself cannot
be posted from another site."""

import hashlib
import hmac
import re
import secrets
from typing import Any

from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from web.composition import SESSION_COOKIE, started_services

# Anonymous visitors' binding (before login); the session cookie takes its place once signed in.
ANONYMOUS_COOKIE = "registry_csrf"
CSRF_FIELD = "_csrf_token"
CSRF_HEADER = "x-csrftoken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_COOKIE_LENGTH = 200

# Self only: the UI loads its own stylesheet and script and nothing else, runs no inline script or style, and
# may not be framed (clickjacking); forms post only to the app.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    # Addresses can hold secrets (a calendar feed's address is shown on the renewals page): send none away.
    ("referrer-policy", "no-referrer"),
)


# Bearer- and token-authenticated endpoints: a browser cannot be tricked into sending those.
NOT_FOR_BROWSERS = re.compile(r"^/(api|health|calendar|schema|metrics)(/|$)")


def _not_for_browsers(scope: Scope) -> bool:
    return bool(NOT_FOR_BROWSERS.match(scope["path"]))


def is_ui_path(path: str) -> bool:
    return path == "/" or path == "/ui" or path.startswith("/ui/")


async def add_security_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: the security headers on every answer under /ui/ (and the root's redirect to it)."""
    if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
        return
    if not is_ui_path(scope["path"]):
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in SECURITY_HEADERS:
        headers[name] = value


def csrf_token(secret: str, binding: str) -> str:
    return hmac.new(secret.encode(), b"csrf\x00" + binding.encode(), hashlib.sha256).hexdigest()


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                cookie_name, _, cookie_value = part.strip().partition("=")
                if cookie_name == name and 0 < len(cookie_value) <= MAX_COOKIE_LENGTH:
                    return cookie_value
    return None


class SessionBoundCsrfMiddleware(ASGIMiddleware):
    """Every unsafe request to the UI must carry the token of its own session (or anonymous binding)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        self.should_bypass_for_scope = _not_for_browsers

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        services = started_services(scope["litestar_app"])
        secret = services.csrf_secret if services is not None else None
        if services is None or secret is None:  # the lifespan has not run: refuse rather than accept unchecked
            raise PermissionDeniedException("CSRF token verification failed: the UI is not ready")
        session_id = _cookie(scope, SESSION_COOKIE)
        anonymous = _cookie(scope, ANONYMOUS_COOKIE)
        binding = f"session:{session_id}" if session_id else (f"anonymous:{anonymous}" if anonymous else None)
        method = str(scope.get("method", ""))
        if method in SAFE_METHODS:
            new_anonymous = None
            if binding is None:
                new_anonymous = secrets.token_urlsafe(32)
                binding = f"anonymous:{new_anonymous}"
            ScopeState.from_scope(scope).csrf_token = csrf_token(secret, binding)
            if new_anonymous is not None:
                send = _setting_cookie(send, new_anonymous, secure=bool(services.settings.secure_cookies))
            await next_app(scope, receive, send)
            return
        sent = await _sent_token(scope, receive)
        if binding is None or sent is None or not hmac.compare_digest(sent, csrf_token(secret, binding)):
            raise PermissionDeniedException("CSRF token verification failed")
        ScopeState.from_scope(scope).csrf_token = sent
        await next_app(scope, receive, send)


async def _sent_token(scope: Scope, receive: Receive) -> str | None:
    for key, value in scope["headers"]:
        if key == CSRF_HEADER.encode():
            return value.decode("latin-1")
    request: Any = scope["litestar_app"].request_class(scope=scope, receive=receive)
    content_type, _ = request.content_type
    if content_type not in {RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART}:
        return None
    # The form is parsed once and kept on the request's scope; the handler reads the same parsed form.
    token = (await request.form()).get(CSRF_FIELD)
    return token if isinstance(token, str) else None


def _setting_cookie(send: Send, value: str, *, secure: bool) -> Send:
    cookie = Cookie(key=ANONYMOUS_COOKIE, value=value, path="/", httponly=True, samesite="lax", secure=secure)

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableScopeHeaders.from_message(message).add("set-cookie", cookie.to_header(header=""))
        await send(message)

    return wrapped
