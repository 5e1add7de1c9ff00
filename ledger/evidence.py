"""Evidence of tampering with the decision log, acted on: while an alarm is open, the guard fails closed.

An alarm is raised when this instance's log writer finds its own chain no longer where it left it (entries cut
off its end, its head moved back or deleted: guard/log.py), when the log does not extend its last checkpoint
(ledger/seal.py `CheckpointRefused`), or when a checkpoint is not consistent with what a witness already holds.
It is stored in `guard_evidence_alarm` (append-only but for its resolution, migration 0018), which NOTIFYs
`guard_evidence`: every instance's `EvidenceWatch` LISTENs, reads the open alarms, and its guard answers 503
with `"allowed": false` (and /health/ready says not ready) until an operator resolves them
(`registry guard resolve-alarms`). The instance that found the evidence fails closed at once, before the alarm
is even stored.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from kernel.counters import EVIDENCE_ALARMS
from kernel.tasks import cancel_and_wait, close_listening, open_listening

log = logging.getLogger(__name__)

EVIDENCE_CHANNEL = "guard_evidence"
RETRY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class EvidenceAlarm:
    id: int
    raised_at: datetime
    raised_by: str
    problem: str


async def raise_alarm(connection: asyncpg.Connection, problem: str, raised_by: str) -> None:
    """Store an alarm (every instance's watch hears of it)."""
    await connection.execute(
        "INSERT INTO guard_evidence_alarm (raised_at, raised_by, problem) VALUES (now(), $1, $2)",
        raised_by[:200],
        problem,
    )


async def open_alarms(connection: asyncpg.Connection) -> list[EvidenceAlarm]:
    rows = await connection.fetch(
        "SELECT id, raised_at, raised_by, problem FROM guard_evidence_alarm WHERE resolved_at IS NULL ORDER BY id"
    )
    return [EvidenceAlarm(r["id"], r["raised_at"], r["raised_by"], r["problem"]) for r in rows]


async def resolve_alarms(connection: asyncpg.Connection, resolved_by: str, resolution: str) -> list[EvidenceAlarm]:
    """Mark every open alarm resolved by `resolved_by` (an operator, having looked into it); the alarms resolved."""
    rows = await connection.fetch(
        "UPDATE guard_evidence_alarm SET resolved_at = now(), resolved_by = $1, resolution = $2"
        " WHERE resolved_at IS NULL RETURNING id, raised_at, raised_by, problem",
        resolved_by[:200],
        resolution,
    )
    return sorted(
        (EvidenceAlarm(r["id"], r["raised_at"], r["raised_by"], r["problem"]) for r in rows), key=lambda a: a.id
    )


class EvidenceWatch:
    """This instance's view of the alarms: `problem` is the first open one (None: none is known). Alarms raised
    here (`raise_`) count at once and are stored by the watch's task; others arrive by NOTIFY, or by the poll
    every `poll_seconds` should the LISTEN connection be down."""

    def __init__(self, dsn: str, raised_by: str, poll_seconds: float = 5.0) -> None:
        self._dsn = dsn
        self._raised_by = raised_by
        self.poll_seconds = poll_seconds
        self.problem: str | None = None
        self._unsaved: list[str] = []
        self._wake = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        # Called when every alarm has been resolved (the log writer then starts a chain afresh).
        self.on_resolved: list[Callable[[], None]] = []

    def raise_(self, problem: str, *, stored: bool = False) -> None:
        """Evidence found here: fail closed now, and store the alarm (unless `stored` already) as soon as the
        database takes it."""
        log.error("decision log tampering evidence: %s; the guard fails closed until an operator resolves it", problem)
        EVIDENCE_ALARMS.inc()
        if self.problem is None:
            self.problem = problem
        if not stored:
            self._unsaved.append(problem)
        self._wake.set()

    def describe(self) -> dict[str, str]:
        return {"status": "ok"} if self.problem is None else {"status": "tampering evidence", "problem": self.problem}

    def _on_notice(self, *_: object) -> None:
        self._wake.set()

    def _on_lost(self, *_: object) -> None:
        self._wake.set()

    async def sync(self) -> None:
        """Store the alarms raised here, then read the open ones."""
        if self._connection is None or self._connection.is_closed():
            self._connection = None
            self._connection = await open_listening(
                self._dsn,
                EVIDENCE_CHANNEL,
                self._on_notice,
                self._on_lost,
                {"application_name": "guard-evidence", "statement_timeout": "10000"},
            )
        while self._unsaved:
            await raise_alarm(self._connection, self._unsaved[0], self._raised_by)
            self._unsaved.pop(0)
        alarms = await open_alarms(self._connection)
        before, self.problem = self.problem, (alarms[0].problem if alarms else None)
        if before is not None and self.problem is None:
            log.warning("decision log tampering alarms resolved: the guard answers again")
            for callback in self.on_resolved:
                callback()

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            await self.sync()
        self._task = asyncio.create_task(self._run(), name="guard-evidence-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        connection, self._connection = self._connection, None
        await close_listening(connection, self._on_lost)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                await self.sync()
            except Exception as exc:
                log.warning("could not read or store the evidence alarms: %s", exc)
                connection, self._connection = self._connection, None
                await close_listening(connection, self._on_lost)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()
