"""API keys as the app checks them: principals by key digest, cached so that a request costs no database
read, and revocation still reaching every instance within KEY_CACHE_SECONDS."""

import asyncio
import functools
import logging
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from registry.credentials import Principal, token_digest
from registry.models import ApiKey

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

    async def principal(
        self, token: str, sessionmaker: async_sessionmaker[AsyncSession], *, stale_if_unreadable: bool = False
    ) -> Principal | None:
        """The key's principal, None for an unknown or revoked key. With `stale_if_unreadable`, a key this cache
        held before is still taken while the lookup fails (the database is down): for routes that only read
        figures the process holds itself (/metrics), so that they answer through an outage."""
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
        try:
            return await asyncio.shield(lookup)
        except Exception:
            if stale_if_unreadable and hit is not None and hit[0] is not None:
                return hit[0]
            raise

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
