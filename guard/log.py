"""The guard's decision log (DESIGN §4.4): append-only, hash-chained, group-committed.

Every answer is stored before it is returned. Entry n stores ``prev_hash`` (entry n-1's hash, or 64 zeros
for the first) and ``hash = sha256(canonical JSON of its content + prev_hash)``; ``seq`` numbers the
entries 1, 2, 3… without gaps, and ``guard_decision_head`` records the last ``seq`` and hash. Editing a
row breaks its hash, deleting one leaves a gap (or a head that points past the end), inserting one
breaks the sequence or the links: ``verify_log`` walks the chain in order and names the first bad entry.

Several instances append to the one chain: each append transaction takes a PostgreSQL advisory lock and
reads the head inside it. Within an instance, one writer task gathers the entries of concurrent requests
and appends them in one transaction (group commit), so durability costs one commit per batch, not per
request.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from registry.models.decision import GuardDecision, GuardDecisionHead

log = logging.getLogger(__name__)

# Arbitrary, fixed advisory-lock id (registry/db.py and registry/services/common.py use ...001, ...002).
DECISION_LOG_LOCK_ID = 7_411_028_003
GENESIS_HASH = "0" * 64
# A request waits at most this long for its entry to be durable; past it the guard answers 503.
APPEND_TIMEOUT_SECONDS = 10.0


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z: the form answers carry and hashes cover."""
    # The same string as strftime("%Y-%m-%dT%H:%M:%S.%fZ") (the hashes of logged entries cover it), faster.
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """One guard answer as it is logged (the content the hash covers, less seq and prev_hash)."""

    decision_id: uuid.UUID
    decided_at: datetime
    caller: str
    request: dict[str, Any]
    allowed: bool
    reasons: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    agreement: str | None
    ruleset: str

    @property
    def recipient(self) -> str:
        return str(self.request.get("recipient", ""))


def _canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(
    *,
    seq: int,
    decision_id: uuid.UUID | str,
    decided_at: datetime,
    caller: str,
    recipient: str,
    request: dict[str, Any],
    allowed: bool,
    reasons: list[dict[str, Any]],
    warnings: list[dict[str, Any]],
    agreement: str | None,
    ruleset: str,
    prev_hash: str,
) -> str:
    content = {
        "seq": seq,
        "decision_id": str(decision_id),
        "decided_at": format_timestamp(decided_at),
        "caller": caller,
        "recipient": recipient,
        "request": request,
        "allowed": allowed,
        "reasons": reasons,
        "warnings": warnings,
        "agreement": agreement,
        "ruleset": ruleset,
    }
    return hashlib.sha256(_canonical(content) + prev_hash.encode()).hexdigest()


def _row_hash(row: GuardDecision, prev_hash: str) -> str:
    return entry_hash(
        seq=row.seq,
        decision_id=row.decision_id,
        decided_at=row.decided_at,
        caller=row.caller,
        recipient=row.recipient,
        request=row.request,
        allowed=row.allowed,
        reasons=row.reasons,
        warnings=row.warnings,
        agreement=row.agreement,
        ruleset=row.ruleset,
        prev_hash=prev_hash,
    )


# --- Appending ---------------------------------------------------------------------------------------


_INSERT_ENTRY = (
    "INSERT INTO guard_decision (seq, decision_id, decided_at, caller, recipient, allowed, request, reasons,"
    " warnings, agreement, ruleset, prev_hash, hash)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9::text::jsonb, $10, $11, $12, $13)"
)
_MOVE_HEAD = (
    "INSERT INTO guard_decision_head (id, last_seq, last_hash) VALUES (1, $1, $2)"
    " ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash"
)


async def _driver_connection(session: AsyncSession) -> asyncpg.Connection:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def _append_holding_lock(connection: asyncpg.Connection, entries: Sequence[DecisionEntry]) -> None:
    """Extend the chain; the caller's transaction holds the decision-log lock.

    Plain asyncpg (one pipelined executemany) rather than the ORM: this runs once per group commit on the
    guard's hot path, and the ORM's per-statement overhead would be most of its cost.
    """
    head = await connection.fetchrow("SELECT last_seq, last_hash FROM guard_decision_head WHERE id = 1")
    seq, prev_hash = (int(head["last_seq"]), str(head["last_hash"])) if head is not None else (0, GENESIS_HASH)
    rows: list[tuple[Any, ...]] = []
    for entry in entries:
        seq += 1
        digest = entry_hash(
            seq=seq,
            decision_id=entry.decision_id,
            decided_at=entry.decided_at,
            caller=entry.caller,
            recipient=entry.recipient,
            request=entry.request,
            allowed=entry.allowed,
            reasons=entry.reasons,
            warnings=entry.warnings,
            agreement=entry.agreement,
            ruleset=entry.ruleset,
            prev_hash=prev_hash,
        )
        rows.append(
            (
                seq,
                entry.decision_id,
                entry.decided_at,
                entry.caller,
                entry.recipient,
                entry.allowed,
                json.dumps(entry.request),
                json.dumps(entry.reasons),
                json.dumps(entry.warnings),
                entry.agreement,
                entry.ruleset,
                prev_hash,
                digest,
            )
        )
        prev_hash = digest
    await connection.executemany(_INSERT_ENTRY, rows)
    await connection.execute(_MOVE_HEAD, seq, prev_hash)


async def append_decisions(session: AsyncSession, entries: Sequence[DecisionEntry]) -> None:
    """Append entries to the chain inside the caller's transaction; durable when it commits."""
    if not entries:
        return
    # Through the session first: this also opens the session's transaction on the connection.
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": DECISION_LOG_LOCK_ID})
    await _append_holding_lock(await _driver_connection(session), entries)


async def append_decisions_committed(
    sessionmaker: async_sessionmaker[AsyncSession], entries: Sequence[DecisionEntry]
) -> None:
    """Append entries in a transaction of their own, committed on return (the group-commit writer's path)."""
    async with sessionmaker() as session:
        connection = await _driver_connection(session)
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", DECISION_LOG_LOCK_ID)
            await _append_holding_lock(connection, entries)


@dataclass
class _Pending:
    entry: DecisionEntry
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DecisionLogWriter:
    """One task per instance that appends whatever entries are waiting, up to `batch_max` per commit."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, batch_max: int) -> None:
        self._sessionmaker = sessionmaker
        self.batch_max = batch_max
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.entries_written = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="guard-decision-log-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():  # nobody will write these: their requests must not wait forever
            pending = self._queue.get_nowait()
            if not pending.done.done():
                pending.done.set_exception(RuntimeError("the decision log writer stopped"))

    async def append(self, entries: Sequence[DecisionEntry]) -> None:
        """Return once every entry is committed; raise if the log could not be written."""
        if self._task is None or self._task.done():
            raise RuntimeError("the decision log writer is not running")
        pendings = [_Pending(entry) for entry in entries]
        for pending in pendings:
            self._queue.put_nowait(pending)
        async with asyncio.timeout(APPEND_TIMEOUT_SECONDS):
            await asyncio.gather(*(p.done for p in pendings))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Everything that arrived while the previous commit was in flight goes into this one.
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [p for p in batch if not p.done.done()]  # a timed-out request's entry is still written
            try:
                await append_decisions_committed(self._sessionmaker, [p.entry for p in batch])
            except asyncio.CancelledError:
                for pending in live:
                    if not pending.done.done():
                        pending.done.set_exception(RuntimeError("the decision log writer stopped"))
                raise
            except Exception as exc:
                log.warning("decision log append of %d entries failed: %s", len(batch), exc)
                for pending in live:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            self.commits += 1
            self.entries_written += len(batch)
            for pending in live:
                if not pending.done.done():
                    pending.done.set_result(None)


# --- Reading -------------------------------------------------------------------------------------------


def decision_document(row: GuardDecision) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "decision_id": str(row.decision_id),
        "decided_at": format_timestamp(row.decided_at),
        "caller": row.caller,
        "recipient": row.recipient,
        "allowed": row.allowed,
        "outcome": "allowed" if row.allowed else "denied",
        "request": row.request,
        "reasons": row.reasons,
        "warnings": row.warnings,
        "agreement": row.agreement,
        "ruleset": row.ruleset,
    }


async def list_decisions(
    session: AsyncSession,
    *,
    recipient: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Decisions newest first, filtered; `outcome` is 'allowed' or 'denied'; `since` ≤ decided_at < `until`.

    Returns the page and the total number of matching decisions.
    """
    conditions: list[Any] = []
    if recipient is not None:
        conditions.append(GuardDecision.recipient == recipient)
    if outcome is not None:
        if outcome not in {"allowed", "denied"}:
            raise ValueError("outcome must be 'allowed' or 'denied'")
        conditions.append(GuardDecision.allowed.is_(outcome == "allowed"))  # type: ignore[attr-defined]
    if since is not None:
        conditions.append(GuardDecision.decided_at >= since)
    if until is not None:
        conditions.append(GuardDecision.decided_at < until)
    total = (await session.execute(select(func.count()).select_from(GuardDecision).where(*conditions))).scalar_one()
    rows = (
        await session.execute(
            select(GuardDecision)
            .where(*conditions)
            .order_by(GuardDecision.seq.desc())  # type: ignore[attr-defined]
            .limit(limit)
            .offset(offset)
        )
    ).scalars()
    return [decision_document(row) for row in rows], int(total)


# --- Verifying -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    first_bad_decision_id: str | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"log intact: {self.entries} entries"
        where = f"entry {self.first_bad_seq}"
        if self.first_bad_decision_id:
            where += f" (decision {self.first_bad_decision_id})"
        return f"log broken at {where}: {self.problem}"


async def verify_log(session: AsyncSession) -> VerifyResult:
    """Walk the chain in order and report the first entry that is edited, missing, or out of place."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    result = await session.stream(
        select(GuardDecision).order_by(GuardDecision.seq).execution_options(yield_per=2000)  # type: ignore[arg-type]
    )
    async for row in result.scalars():
        decision_id = str(row.decision_id)
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                problem = (
                    f"entries {expected_seq}…{row.seq - 1} are missing (deleted)"
                    if row.seq - 1 > expected_seq
                    else f"entry {expected_seq} is missing (deleted)"
                )
                return VerifyResult(False, checked, expected_seq, None, problem + f"; the chain resumes at {row.seq}")
            return VerifyResult(False, checked, row.seq, decision_id, "sequence number out of order (inserted)")
        if row.prev_hash != prev_hash:
            return VerifyResult(
                False,
                checked,
                row.seq,
                decision_id,
                "its link to the previous entry is broken (an entry was inserted, deleted or replaced)",
            )
        if _row_hash(row, prev_hash) != row.hash:
            return VerifyResult(False, checked, row.seq, decision_id, "its content does not match its hash (edited)")
        prev_hash = row.hash
        expected_seq += 1
        checked += 1
    await result.close()
    head = (
        await session.execute(
            select(col(GuardDecisionHead.last_seq), col(GuardDecisionHead.last_hash)).where(
                col(GuardDecisionHead.id) == 1
            )
        )
    ).first()
    last_seq, last_hash = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
    if last_seq != checked or last_hash != prev_hash:
        if last_seq > checked:
            return VerifyResult(
                False,
                checked,
                checked + 1,
                None,
                f"entries {checked + 1}…{last_seq} at the end of the log are missing (deleted)"
                if last_seq > checked + 1
                else f"entry {checked + 1}, the last one, is missing (deleted)",
            )
        return VerifyResult(
            False,
            checked,
            last_seq + 1 if last_seq < checked else checked,
            None,
            "the log does not end where its head records (an entry was inserted or the head altered)",
        )
    return VerifyResult(True, checked)
