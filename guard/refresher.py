"""What the guard's in-memory copies of database state share (the registry snapshot, guard/snapshot.py; the
index of data subjects' objections, guard/objections.py): one LISTEN connection that wakes a background loop
on every notice, a poll as the safety net, reconnection after a lost connection, an age bound past which the
copy is not trusted, and one read-your-writes wait.

Each copy has a `position` that only grows as it takes in the database's changes (the registry's revision; the
newest objection change number). A writer that knows the position of its own write waits with
`wait_for(position, within)` until this instance's copy holds it; a reader trusts the copy only while it was
confirmed current (`confirmed_at`) less than `max_age_seconds` ago: a connected listener is no proof of
currency, only a successful read of the database is.
"""

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import asyncpg

from kernel.tasks import cancel_and_wait, close_listening, open_listening, wait_as_waiter

log = logging.getLogger(__name__)

# Reconnect and retry pauses while the database is away: often enough to recover fast, rarely enough to be quiet.
RETRY_SECONDS = 0.5
# Currency checks run at least this many times per age bound, so an unchanged copy keeps being usable however
# long the configured poll interval is.
CHECKS_PER_AGE_BOUND = 3


class ListeningRefresher(ABC):
    """A copy of database state kept current by LISTEN/NOTIFY and a poll, trusted only while young enough."""

    # What the copy is, for logs and error messages ("registry snapshot", "objection index").
    what = "copy"

    def __init__(
        self,
        dsn: str,
        channel: str,
        *,
        max_age_seconds: float,
        poll_seconds: float,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._server_settings = server_settings
        self.max_age_seconds = max_age_seconds
        self.poll_seconds = poll_seconds
        self.confirmed_at: float | None = None  # monotonic time of the last read that found the copy current
        self.last_error: str | None = None
        self._listener: asyncpg.Connection | None = None
        self._changed = asyncio.Event()
        self._listener_lost = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        # Called after every read that found the copy current (the guard role announces what it obeys).
        self.on_confirmed: list[Callable[[], None]] = []

    # --- What a copy defines -----------------------------------------------------------------------------

    @abstractmethod
    def position(self) -> int | None:
        """How far the copy has taken in the database's changes (None before its first load)."""

    @abstractmethod
    async def _load_first(self) -> None:
        """The first load, before serving."""

    @abstractmethod
    async def _refresh(self) -> None:
        """Catch up after a notice or at the poll: read what changed, or everything."""

    def _noticed(self, payload: str) -> None:  # noqa: B027  (a hook: most copies need nothing from the payload)
        """A notice arrived with `payload` (the loop is woken after this returns)."""

    def _lost(self) -> None:  # noqa: B027  (a hook)
        """The listening connection dropped: changes made meanwhile go unseen until the next read."""

    def _wait_seconds(self) -> float:
        """How long the loop sleeps when no notice wakes it."""
        return min(self.poll_seconds, self.max_age_seconds / CHECKS_PER_AGE_BOUND)

    # --- State -------------------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    def age_seconds(self) -> float | None:
        return None if self.confirmed_at is None else time.monotonic() - self.confirmed_at

    def staleness(self) -> str | None:
        """Why the copy may not be trusted now, or None: never loaded, or older than the bound."""
        if self.confirmed_at is None:
            return f"the guard has not loaded the {self.what} yet"
        age = time.monotonic() - self.confirmed_at
        if age > self.max_age_seconds:
            return (
                f"the {self.what} is {age:.1f} s old and could not be confirmed as current since "
                f"(bound: {self.max_age_seconds:g} s)"
            )
        return None

    # --- Read-your-writes --------------------------------------------------------------------------------

    async def wait_for(self, position: int, within_seconds: float) -> int | None:
        """Wait until the copy holds `position` (this instance obeys that write), at most `within_seconds`; the
        position it holds then (lower than `position` when it has not caught up)."""
        held = self.position()
        if held is not None and held >= position:
            return held
        if within_seconds > 0:
            self._changed.set()  # catch up now rather than when the write's notice arrives
            await wait_as_waiter(self._waiters, position, within_seconds)
        return self.position()

    def _confirmed_at(self, moment: float) -> None:
        """The copy matched the database as of `moment`: trusted again, and every writer it now covers released."""
        self.confirmed_at = moment
        self.last_error = None
        for listener in self.on_confirmed:
            listener()
        held = self.position()
        if held is None:
            return
        for position, waiter in self._waiters:
            if position <= held and not waiter.done():
                waiter.set_result(None)

    # --- Listening ---------------------------------------------------------------------------------------

    def _on_notice(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._noticed(payload)
        self._changed.set()

    def _on_termination(self, *_: Any) -> None:
        log.warning("%s change listener lost its connection", self.what)
        self._lost()
        self._listener_lost.set()
        self._changed.set()  # wake the loop so that it reconnects now

    async def _connect_listener(self) -> None:
        self._listener = await open_listening(
            self._dsn, self._channel, self._on_notice, self._on_termination, self._server_settings
        )
        self._listener_lost.clear()

    async def _close_listener(self) -> None:
        connection, self._listener = self._listener, None
        await close_listening(connection, self._on_termination)

    # --- Running -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then load once before serving (failing quietly: the loop keeps trying), then keep current."""
        with contextlib.suppress(Exception):
            await self._connect_listener()
        try:
            await self._load_first()
        except Exception:
            log.exception("could not load the %s at start-up; the guard fails closed until it can", self.what)
        self._task = asyncio.create_task(self._run(), name=f"guard-{self.what.replace(' ', '-')}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._close_listener()

    async def _run(self) -> None:
        failing: str | None = None  # the class of the failure last logged: an outage is one line, not one a retry
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the loop die: the copy would silently go stale
                if type(exc).__name__ != failing:
                    failing = type(exc).__name__
                    log.warning("%s refresh failed: %s (retrying quietly while it fails so)", self.what, exc)
                await asyncio.sleep(RETRY_SECONDS)
            else:
                if failing is not None:
                    log.info("%s refresh works again", self.what)
                    failing = None

    async def _step(self) -> None:
        if not self.listening or self._listener_lost.is_set():
            await self._close_listener()
            try:
                await self._connect_listener()
            except Exception as exc:
                self.last_error = f"listener: {type(exc).__name__}: {exc}"
                await asyncio.sleep(RETRY_SECONDS)
                return
            # Notices sent while no one listened are lost: catch up now.
            self._changed.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=self._wait_seconds())
        # Cleared before reading: a notice arriving during the read sets it again and causes one more read, so
        # a burst of writes costs at most two reads and the last write is always seen.
        self._changed.clear()
        if self._listener_lost.is_set():
            return  # reconnect first, then read
        await self._refresh()
