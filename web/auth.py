"""Authentication (bearer API keys; the web UI adds its session login) and scope checks."""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from registry.credentials import Principal, token_digest
from registry.models import ApiKey
from registry.schemas import SCOPES

REQUIRED_SCOPE = "required_scope"  # the key of a route's opt that names the scope it needs
# Paths anyone may call: health probes for load balancers, and the renewals calendar feed, whose secret
# token in the URL is its credential (calendar clients can't send headers). Everything else needs a key or a login.
PUBLIC_PATH_PATTERNS: list[str] = ["^/health/", "^/calendar/"]
# Revocation reaches every instance within this many seconds, without a database read per request.
KEY_CACHE_SECONDS = 5.0
REFRESH_AHEAD_FRACTION = 0.2

log = logging.getLogger(__name__)


class ApiKeyCache:
    """Principals by key digest for `ttl` seconds, so that a request costs no database read.

    One lookup per key at a time: when an entry expires under load, every request in flight with that key
    waits for the same query instead of each taking a pooled connection (a burst of concurrent misses would
    otherwise exhaust the pool and open overflow connections every `ttl` seconds).
    """

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[Principal | None, float]] = {}
        self._lookups: dict[str, asyncio.Task[Principal | None]] = {}
        self._generation = 0  # bumped by clear(): a lookup begun before a revocation must not cache its result
        self.lookups = 0

    async def principal(self, token: str, sessionmaker: async_sessionmaker[AsyncSession]) -> Principal | None:
        digest = token_digest(token)
        hit = self._entries.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            # Refreshed ahead, in the background, in the entry's last fifth: a key in steady use never makes its
            # requests wait for the lookup (every request in flight would, once per `ttl`). Revocation still
            # reaches this instance within `ttl`: the entry served meanwhile expires when it always did.
            if hit[1] - now < self.ttl * REFRESH_AHEAD_FRACTION and digest not in self._lookups:
                self._start_lookup(digest, sessionmaker)
            return hit[0]
        lookup = self._lookups.get(digest) or self._start_lookup(digest, sessionmaker)
        # Shielded: one caller going away (a client disconnect) must not cancel the others' lookup.
        return await asyncio.shield(lookup)

    def known(self, token: str, sessionmaker: async_sessionmaker[AsyncSession]) -> Principal | None:
        """The live key's principal when this cache holds it (fresh), without waiting for anything; None when
        it does not (never looked up, expired, unknown, revoked): the caller then takes `principal`'s way, which
        looks the key up and tells an unknown key from a database failure. Refreshes ahead as `principal` does."""
        digest = token_digest(token)
        hit = self._entries.get(digest)
        if hit is None:
            return None
        principal, expires = hit
        now = time.monotonic()
        if expires <= now:
            return None
        if expires - now < self.ttl * REFRESH_AHEAD_FRACTION and digest not in self._lookups:
            self._start_lookup(digest, sessionmaker)
        return principal

    def _start_lookup(
        self, digest: str, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> "asyncio.Task[Principal | None]":
        lookup = asyncio.ensure_future(self._look_up(digest, sessionmaker, self._generation))
        self._lookups[digest] = lookup
        lookup.add_done_callback(functools.partial(self._forget_lookup, digest))
        return lookup

    def _forget_lookup(self, digest: str, done: "asyncio.Task[Principal | None]") -> None:
        if self._lookups.get(digest) is done:  # not a newer lookup begun after a clear()
            del self._lookups[digest]
        if not done.cancelled() and done.exception() is not None:
            # A refresh ahead that failed has nobody awaiting it; the entry expires and the next request's own
            # lookup meets (and reports) the error.
            log.debug("API key lookup failed: %s", done.exception())

    async def _look_up(
        self, digest: str, sessionmaker: async_sessionmaker[AsyncSession], generation: int
    ) -> Principal | None:
        self.lookups += 1
        async with sessionmaker() as session:
            row = (
                await session.execute(
                    select(col(ApiKey.name), col(ApiKey.scopes)).where(
                        col(ApiKey.token_sha256) == digest,
                        col(ApiKey.revoked_at).is_(None),
                    )
                )
            ).first()
        principal = Principal(row[0], frozenset(row[1])) if row else None
        if generation == self._generation:
            if len(self._entries) > 10_000:  # unknown tokens must not grow memory without bound
                self._entries.clear()
            self._entries[digest] = (principal, time.monotonic() + self.ttl)
        return principal

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._lookups.clear()


# The web UI registers a resolver that reads its session cookie; the API needs none.
SessionResolver = Callable[[ASGIConnection], Awaitable[Principal | None]]


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
        state = connection.app.state
        header = _authorization_header(connection.scope["headers"])
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthorizedException("Authorization must be 'Bearer <API key>'")
            principal = await state.api_keys.principal(token.strip(), state.sessionmaker)
            if principal is None:
                raise NotAuthorizedException("unknown or revoked API key")
            return AuthenticationResult(user=principal, auth="api_key")
        resolver: SessionResolver | None = getattr(state, "session_resolver", None)
        # The API takes bearer keys only: a browser's session cookie must not authorise /api calls, or any
        # page on the web could make a signed-in user's browser write to the registry (CSRF).
        if resolver is not None and not connection.url.path.startswith("/api/"):
            principal = await resolver(connection)
            if principal is not None:
                return AuthenticationResult(user=principal, auth="session")
        raise NotAuthorizedException("an API key is required: send 'Authorization: Bearer <API key>'")


def requires(scope: str) -> dict[str, str]:
    """A route's `opt`: the caller must hold `scope` (or `admin`). Put on a handler or a controller.

    The authentication middleware enforces it, right after it has established who is calling, rather than a
    Litestar route guard: Litestar copies the route handler for every guard call, which on the guard's hot
    path cost more than the check itself. A route that names no scope is open to any authenticated caller."""
    assert scope in SCOPES
    return {REQUIRED_SCOPE: scope}


def required_scope(route_handler: BaseRouteHandler) -> str | None:
    return route_handler.opt.get(REQUIRED_SCOPE)
