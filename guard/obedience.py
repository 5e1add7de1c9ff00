"""Read-your-writes across processes: what the guard role obeys, told through the database.

`registry serve` answers guard checks on processes of their own (the guard role) and everything else on another
(the web role), so that no page, export or report shares the guard's event loop. A registry write is made by
the web role, but it is the guard role that must obey it before the write is answered. The guard role's copies
(the registry snapshot, the objection and restriction indexes) are kept current as before, from the database's
notices; each guard-role worker then announces the positions it holds with a NOTIFY on `GUARD_OBEYS_CHANNEL`
(at once when a copy was confirmed, and every `heartbeat_seconds` besides, so that a listener that started or
reconnected late learns them within that). The web role listens and holds a write's answer until every
guard-role worker of its own `registry serve` (its instance) holds the written position, at most the bound.

No memory is shared: the positions travel as notices, and a guard-role worker that stops announcing (stopped,
hung, dead) is simply not counted, so a write waits its bound and says so rather than claim it is obeyed.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from kernel.tasks import cancel_and_wait, close_listening, open_listening, wait_as_waiter

log = logging.getLogger(__name__)

GUARD_OBEYS_CHANNEL = "registry_guard_obeys"
HEARTBEAT_SECONDS = 1.0
RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Positions:
    """How far a guard's copies have taken in the database's changes (None: not loaded)."""

    registry: int | None = None
    objections: int | None = None
    restrictions: int | None = None

    def covers(self, wanted: "Positions") -> bool:
        """Whether these copies hold every position `wanted` names (a None in `wanted` asks for nothing)."""
        pairs = (
            (self.registry, wanted.registry),
            (self.objections, wanted.objections),
            (self.restrictions, wanted.restrictions),
        )
        return all(want is None or (held is not None and held >= want) for held, want in pairs)


class ObedienceAnnouncer:
    """A guard-role worker's announcements of the positions it holds (its own connection and task, off the
    checks' path: a check never waits for it)."""

    def __init__(
        self,
        dsn: str,
        instance: str,
        worker: str,
        positions: Callable[[], Positions],
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._dsn = dsn
        self.instance = instance
        self.worker = worker
        self._positions = positions
        self.heartbeat_seconds = heartbeat_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None

    def poke(self) -> None:
        """A copy was confirmed: announce now (several pokes before the next announcement make one)."""
        self._wake.set()

    def payload(self) -> str:
        held = self._positions()
        return json.dumps(
            {
                "instance": self.instance,
                "worker": self.worker,
                "registry": held.registry,
                "objections": held.objections,
                "restrictions": held.restrictions,
            }
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="guard-obedience-announcer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)

    async def _run(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.heartbeat_seconds)
            self._wake.clear()
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(self._dsn, timeout=5)
                await self._connection.execute("SELECT pg_notify($1, $2)", GUARD_OBEYS_CHANNEL, self.payload())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the task die: the web role's writes would wait their bound
                if not failing:
                    log.warning("could not announce what the guard obeys: %s (retrying quietly)", exc)
                    failing = True
                if self._connection is not None:
                    self._connection.terminate()
                    self._connection = None
                await asyncio.sleep(RETRY_SECONDS)
            else:
                failing = False


class GuardRoleWatch:
    """The web role's view of what the guard role of its instance obeys: `workers` guard-role workers, each
    known by the last positions it announced."""

    def __init__(self, dsn: str, instance: str, workers: int) -> None:
        self._dsn = dsn
        self.instance = instance
        self.workers = workers
        self.held: dict[str, Positions] = {}
        self._waiters: list[tuple[Positions, asyncio.Future[None]]] = []
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- What the guard role obeys -----------------------------------------------------------------------

    def obeys(self, wanted: Positions) -> bool:
        """Whether every guard-role worker holds `wanted` (at least `workers` of those known do)."""
        return sum(1 for held in self.held.values() if held.covers(wanted)) >= self.workers

    def registry_revision(self) -> int | None:
        """The registry revision every guard-role worker obeys (None until `workers` of them said)."""
        revisions = sorted((h.registry for h in self.held.values() if h.registry is not None), reverse=True)
        return revisions[self.workers - 1] if len(revisions) >= self.workers else None

    async def wait_for(self, wanted: Positions, within_seconds: float) -> bool:
        """Wait until the guard role obeys `wanted`, at most `within_seconds`; whether it does then."""
        if self.obeys(wanted):
            return True
        if within_seconds <= 0:
            return False
        await wait_as_waiter(self._waiters, wanted, within_seconds)
        return self.obeys(wanted)

    def describe(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "listening": self._listener is not None and not self._listener.is_closed(),
            "registry_revision": self.registry_revision(),
        }

    # --- Listening ---------------------------------------------------------------------------------------

    def _on_notice(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            said = json.loads(payload)
            if said.get("instance") != self.instance:
                return  # another `registry serve` on the same database: its guard role is not ours
            self.held[str(said["worker"])] = Positions(said["registry"], said["objections"], said["restrictions"])
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignored a malformed notice on %s: %.200r", GUARD_OBEYS_CHANNEL, payload)
            return
        for wanted, waiter in self._waiters:
            if not waiter.done() and self.obeys(wanted):
                waiter.set_result(None)

    def _on_termination(self, *_: Any) -> None:
        log.warning("the listener for what the guard role obeys lost its connection")
        self._lost.set()

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            self._listener = await open_listening(self._dsn, GUARD_OBEYS_CHANNEL, self._on_notice, self._on_termination)
        if self._listener is None:
            self._lost.set()
        self._task = asyncio.create_task(self._run(), name="guard-role-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        connection, self._listener = self._listener, None
        await close_listening(connection, self._on_termination)

    async def _run(self) -> None:
        while True:
            await self._lost.wait()
            connection, self._listener = self._listener, None
            await close_listening(connection, self._on_termination)
            try:
                self._listener = await open_listening(
                    self._dsn, GUARD_OBEYS_CHANNEL, self._on_notice, self._on_termination
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self._lost.clear()
