"""Authentication (bearer API keys; the web UI adds its session login) and scope checks."""

import logging
from collections.abc import Iterable

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from registry.credentials import Principal
from registry.schemas import SCOPES
from web.composition import Services, services_of

REQUIRED_SCOPE = "required_scope"  # the key of a route's opt that names the scope it needs
# Paths anyone may call: health probes for load balancers, and the renewals calendar feed, whose secret
# token in the URL is its credential (calendar clients can't send headers). Everything else needs a key or a login.
# The OpenAPI document and its docs UI are public too: a client is generated from them (`generate --url`), and
# they describe the contract, not the data.
PUBLIC_PATH_PATTERNS: list[str] = ["^/health/", "^/calendar/", "^/schema(/|$)", "^/schema-assets/"]
# Routes of these scopes answer from what the process holds (and say when the database is down): a key the
# cache held before is still taken while its lookup fails, so that Prometheus keeps scraping through an outage.
SCOPES_READING_NO_DATABASE = frozenset({"metrics:read"})

log = logging.getLogger(__name__)


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The API key of a well-formed `Authorization: Bearer <key>` header, else None (no header, another scheme,
    no key): what `RegistryAuthenticationMiddleware` accepts, read the same way."""
    header = _authorization_header(headers)
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if token and scheme.lower() == "bearer" else None


def _authorization_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The Authorization header, read from the raw ASGI headers: `connection.headers` would build a whole
    case-insensitive multidict first, which on the guard's hot path cost more than the key lookup itself."""
    for name, value in headers:
        if name.lower() == b"authorization":
            return value.decode("latin-1")
    return None


class RegistryAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        result = await self._caller(connection)
        scope = required_scope(connection.route_handler)
        if scope is not None and not result.user.may(scope):
            # Known even when refused: the refusal's page shows who is signed in (and where they must go first).
            connection.scope["user"] = result.user
            raise PermissionDeniedException(f"this needs the {scope!r} scope")
        return result

    async def _caller(self, connection: ASGIConnection) -> AuthenticationResult:
        services = services_of(connection.app)
        header = _authorization_header(connection.scope["headers"])
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthorizedException("Authorization must be 'Bearer <API key>'")
            principal = await services.api_keys.principal(
                token.strip(),
                services.sessionmaker,
                stale_if_unreadable=required_scope(connection.route_handler) in SCOPES_READING_NO_DATABASE,
            )
            if principal is None:
                raise NotAuthorizedException("unknown or revoked API key")
            return AuthenticationResult(user=principal, auth="api_key")
        # The API takes bearer keys only: a browser's session cookie must not authorise /api calls, or any
        # page on the web could make a signed-in user's browser write to the registry (CSRF).
        if not connection.url.path.startswith("/api/"):
            principal = await services.resolve_session(connection)
            if principal is not None:
                return AuthenticationResult(user=principal, auth="session")
        raise NotAuthorizedException("an API key is required: send 'Authorization: Bearer <API key>'")


def cached_caller(services: Services, headers: Iterable[tuple[bytes, bytes]], scope: str) -> Principal | None:
    """The caller of a request whose bearer key the key cache holds with `scope`, without a database read; None
    whenever the full authentication must decide (no key, an unknown or uncached key, a missing scope). The guard's
    check lane answers its callers with this; everyone else goes through the middleware, which tells those apart."""
    token = bearer_token(headers)
    principal = services.api_keys.known(token, services.sessionmaker) if token else None
    return principal if principal is not None and principal.may(scope) else None


def requires(scope: str) -> dict[str, str]:
    """A route's `opt`: the caller must hold `scope` (or `admin`). Put on a handler or a controller.

    The authentication middleware enforces it, right after it has established who is calling, rather than a
    Litestar route guard: Litestar copies the route handler for every guard call, which on the guard's hot
    path cost more than the check itself. A route that names no scope is open to any authenticated caller."""
    assert scope in SCOPES
    return {REQUIRED_SCOPE: scope}


def required_scope(route_handler: BaseRouteHandler) -> str | None:
    return route_handler.opt.get(REQUIRED_SCOPE)
