"""The guard's decision log (DESIGN §4.4): append-only, hash-chained, group-committed.

Every answer is stored before it is returned. Entry n stores ``prev_hash`` (entry n-1's hash, or 64 zeros
for the first) and ``hash = sha256(canonical JSON of its content + prev_hash)``; ``seq`` numbers the
entries 1, 2, 3… without gaps, and ``guard_decision_head`` records the last ``seq`` and hash. Editing a
row breaks its hash, deleting one leaves a gap (or a head that points past the end), inserting one
breaks the sequence or the links: ``verify_log`` walks the chain in order and names the first bad entry.
The database refuses UPDATE, DELETE and TRUNCATE of the log and any move of the head backwards (migration
0007); what a superuser could still rewrite consistently, signed checkpoints kept outside the database catch
(guard/checkpoint.py, guard/audit.py): ``verify_log`` holds the chain to each one's size, chain hash and root.

Several instances append to the one chain. Within an instance, one writer task gathers the entries of
concurrent requests and appends them together (group commit), so durability costs one commit per batch, not
per request. The writer remembers the head it last wrote and appends in one statement that moves the head
only if it is still there; when another instance (or the CLI) has appended since, it appends under a
PostgreSQL advisory lock with the head row locked, reading the head inside that transaction.
"""

import asyncio
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from guard.checkpoint import Checkpoint
from guard.counters import COUNTERS
from guard.merkle import CompactRange, leaf_hash
from guard.tasks import cancel_and_wait
from registry.models.decision import GuardDecision, GuardDecisionHead

log = logging.getLogger(__name__)

# Arbitrary, fixed advisory-lock id (registry/db.py and registry/services/common.py use ...001, ...002).
DECISION_LOG_LOCK_ID = 7_411_028_003
GENESIS_HASH = "0" * 64
# A group commit may take at most this long; past it its requests are answered 503.
APPEND_TIMEOUT_SECONDS = 10.0


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z: the form answers carry and hashes cover."""
    # The same string as strftime("%Y-%m-%dT%H:%M:%S.%fZ") (the hashes of logged entries cover it), faster.
    if moment.tzinfo is not UTC:  # (the clock and the database both give UTC moments already)
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_decision_id() -> str:
    """A random (version 4) UUID in its text form, as str(uuid.uuid4()) gives it, without building the UUID
    object and formatting it back: on the guard's hot path that cost twice as much as this."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """One guard answer as it is logged (the content the hash covers, less seq and prev_hash)."""

    decision_id: uuid.UUID | str  # the text form as answered is kept, rather than formatting the UUID twice
    decided_at: datetime
    caller: str
    request: dict[str, Any]
    allowed: bool
    reasons: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    agreement: str | None
    ruleset: str
    decided_at_text: str | None = None  # `format_timestamp(decided_at)`, when the answer already carries it

    @property
    def recipient(self) -> str:
        return str(self.request.get("recipient", ""))


_CANONICAL = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """The form the hashes cover: json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    in UTF-8, byte for byte (tests/unit/test_decision_log_encoding.py holds msgspec to it, and to a pinned hash:
    a different form would stop the entries already logged from verifying). msgspec is ten times faster."""
    return _CANONICAL.encode(value)


def entry_content(
    *,
    seq: int,
    decision_id: uuid.UUID | str,
    decided_at: datetime | str,
    caller: str,
    recipient: str,
    request: dict[str, Any] | msgspec.Raw,
    allowed: bool,
    reasons: list[dict[str, Any]] | msgspec.Raw,
    warnings: list[dict[str, Any]] | msgspec.Raw,
    agreement: str | None,
    ruleset: str,
) -> dict[str, Any]:
    """What an entry's hash covers, by column name. `request`, `reasons` and `warnings` may come already in
    canonical JSON (as msgspec.Raw, written out as they are), and `decided_at` as `format_timestamp` gives it,
    so that the writer formats each only once."""
    return {
        "seq": seq,
        "decision_id": str(decision_id),
        "decided_at": decided_at if isinstance(decided_at, str) else format_timestamp(decided_at),
        "caller": caller,
        "recipient": recipient,
        "request": request,
        "allowed": allowed,
        "reasons": reasons,
        "warnings": warnings,
        "agreement": agreement,
        "ruleset": ruleset,
    }


def content_hash(content: dict[str, Any], prev_hash: str) -> str:
    """The hash of an entry's content (`entry_content`), chained to the entry before."""
    return hashlib.sha256(canonical_json(content) + prev_hash.encode()).hexdigest()


_decode = msgspec.json.decode

# The walk reads rows with asyncpg, JSON columns as text: building ORM objects cost ten times the hashing.
ENTRIES_FROM = (
    "SELECT seq, decision_id, decided_at, caller, recipient, allowed, request::text AS request,"
    " reasons::text AS reasons, warnings::text AS warnings, agreement, ruleset, prev_hash, hash"
    " FROM guard_decision WHERE seq >= $1 AND seq <= $2 ORDER BY seq"
)


def record_content(record: asyncpg.Record) -> dict[str, Any]:
    """What an entry's hash covers, from its row as `ENTRIES_FROM` reads it."""
    return entry_content(
        seq=record["seq"],
        decision_id=record["decision_id"],
        decided_at=record["decided_at"],
        caller=record["caller"],
        recipient=record["recipient"],
        request=_decode(record["request"]),
        allowed=record["allowed"],
        reasons=_decode(record["reasons"]),
        warnings=_decode(record["warnings"]),
        agreement=record["agreement"],
        ruleset=record["ruleset"],
    )


# --- Appending ---------------------------------------------------------------------------------------

_COLUMNS = (
    "seq, decision_id, decided_at, caller, recipient, allowed, request, reasons, warnings, agreement, ruleset,"
    " prev_hash, hash, subject_digest"
)
# A batch travels as one JSON array of rows (objects keyed by column) in one parameter. Thirteen array
# parameters, one per column, cost the writer three times the CPU to encode, on the guard's hot path.
_BATCH_ROWS = f"""
SELECT {_COLUMNS}
FROM json_to_recordset($1::json) AS batch(
    seq bigint, decision_id uuid, decided_at timestamptz, caller text, recipient text, allowed boolean,
    request jsonb, reasons jsonb, warnings jsonb, agreement text, ruleset text, prev_hash text, hash text,
    subject_digest text
)
"""
_INSERT_BATCH = f"INSERT INTO guard_decision ({_COLUMNS}) {_BATCH_ROWS}"
_MOVE_HEAD = (
    "INSERT INTO guard_decision_head (id, last_seq, last_hash) VALUES (1, $1, $2)"
    " ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash"
)
# The head row is locked, not only read: the writer's one-statement append below moves it without the
# advisory lock, and must wait for (and then see) whatever a locked append committed.
_LOCK_HEAD = "SELECT last_seq, last_hash FROM guard_decision_head WHERE id = 1 FOR UPDATE"
# A whole group commit in one statement, so one round trip (autocommitted): the head moves only if it still
# is where this writer last left it, and the entries go in only if it moved. When another instance has
# appended since, nothing is written and the writer falls back to a locked append. Under READ COMMITTED a
# concurrent UPDATE of the head makes this one wait, then re-check `last_seq` against the committed row.
_APPEND_AFTER_KNOWN_HEAD = f"""
WITH moved AS (
    UPDATE guard_decision_head SET last_seq = $2, last_hash = $3
    WHERE id = 1 AND last_seq = $4 AND last_hash = $5
    RETURNING id
)
INSERT INTO guard_decision ({_COLUMNS}) {_BATCH_ROWS}
WHERE EXISTS (SELECT FROM moved)
"""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry of the chain: its sequence number and hash (0 and the genesis hash when empty)."""

    seq: int
    hash: str


EMPTY_CHAIN = ChainHead(0, GENESIS_HASH)


_ROWS = msgspec.json.Encoder()


def _chained_rows(entries: Sequence[DecisionEntry], head: ChainHead) -> tuple[str, ChainHead]:
    """The table rows that extend the chain from `head` by `entries`, as the JSON array `_BATCH_ROWS` reads,
    and the head after them."""
    seq, prev_hash = head.seq, head.hash
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        row = entry_content(
            seq=seq,
            decision_id=entry.decision_id,
            decided_at=entry.decided_at_text or entry.decided_at,
            caller=entry.caller,
            recipient=entry.recipient,
            request=msgspec.Raw(canonical_json(entry.request)),
            allowed=entry.allowed,
            reasons=msgspec.Raw(canonical_json(entry.reasons)),
            warnings=msgspec.Raw(canonical_json(entry.warnings)),
            agreement=entry.agreement,
            ruleset=entry.ruleset,
        )
        digest = content_hash(row, prev_hash)
        row["prev_hash"], row["hash"] = prev_hash, digest
        # Indexed beside the request, outside the hash: the hashed request holds the same digest.
        row["subject_digest"] = entry.request.get("subject_ref_digest")
        rows.append(row)
        prev_hash = digest
    return _ROWS.encode(rows).decode(), ChainHead(seq, prev_hash)


async def _append_holding_lock(connection: asyncpg.Connection, entries: Sequence[DecisionEntry]) -> ChainHead:
    """Extend the chain; the caller's transaction holds the decision-log lock. Returns the new head.

    Plain asyncpg rather than the ORM: the ORM's per-statement overhead would be most of the cost of an append.
    """
    row = await connection.fetchrow(_LOCK_HEAD)
    head = ChainHead(int(row["last_seq"]), str(row["last_hash"])) if row is not None else EMPTY_CHAIN
    rows, new_head = _chained_rows(entries, head)
    await connection.execute(_INSERT_BATCH, rows)
    await connection.execute(_MOVE_HEAD, new_head.seq, new_head.hash)
    return new_head


async def _append_locked(connection: asyncpg.Connection, entries: Sequence[DecisionEntry]) -> ChainHead:
    """Append in a transaction of its own on `connection`, taking the decision-log lock; committed on return."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", DECISION_LOG_LOCK_ID)
        return await _append_holding_lock(connection, entries)


async def _append_after(
    connection: asyncpg.Connection, entries: Sequence[DecisionEntry], head: ChainHead
) -> ChainHead | None:
    """Append in one autocommitted statement if the chain still ends at `head`; None (nothing written) if not."""
    rows, new_head = _chained_rows(entries, head)
    status = await connection.execute(_APPEND_AFTER_KNOWN_HEAD, rows, new_head.seq, new_head.hash, head.seq, head.hash)
    return new_head if status == f"INSERT 0 {len(entries)}" else None


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def append_decisions(session: AsyncSession, entries: Sequence[DecisionEntry]) -> list[int]:
    """Append entries to the chain inside the caller's transaction; durable when it commits. Returns their
    sequence numbers, in order."""
    if not entries:
        return []
    # Through the session first: this also opens the session's transaction on the connection.
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": DECISION_LOG_LOCK_ID})
    head = await _append_holding_lock(await driver_connection(session), entries)
    return list(range(head.seq - len(entries) + 1, head.seq + 1))


class _Pending(NamedTuple):
    entry: DecisionEntry
    # Settled with the entry's sequence number once it is durable, or with the error that kept it from being.
    done: asyncio.Future[int]


def _settle(pendings: Sequence[_Pending], error: BaseException | None, last_seq: int = 0) -> None:
    """Tell each request still waiting that its entry is durable (error None; the batch's entries end at
    `last_seq`) or that it is not."""
    seq = last_seq - len(pendings)
    for pending in pendings:
        seq += 1
        if pending.done.done():
            continue
        if error is None:
            pending.done.set_result(seq)
        else:
            pending.done.set_exception(error)


class DecisionLogWriter:
    """One task per instance that appends whatever entries are waiting, up to `batch_max` per commit.

    It holds one connection of its own (not a pooled session: a group commit is then a single round trip,
    see `_APPEND_AFTER_KNOWN_HEAD`) and remembers the head it last wrote. When another writer has moved the
    head since, or the writer has just (re)connected, it appends under the lock instead and learns the head.
    A failed append is never retried: it may have committed (a lost COMMIT answer), and a retry could log
    the same decisions twice. Its requests get an error (503); the next batch starts on a fresh connection.
    """

    def __init__(
        self,
        dsn: str,
        *,
        batch_max: int,
        connect_timeout: float = 5.0,
        append_timeout: float = APPEND_TIMEOUT_SECONDS,
    ) -> None:
        self._dsn = dsn
        self.batch_max = batch_max
        self.connect_timeout = connect_timeout
        self.append_timeout = append_timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._head: ChainHead | None = None  # the head this writer last wrote, if it is still the last writer
        self.commits = 0
        self.entries_written = 0
        self.locked_appends = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="guard-decision-log-writer")
        self._task.add_done_callback(self._fail_waiting)

    def _fail_waiting(self, _: "asyncio.Task[None] | None") -> None:
        """Nobody will write what is still queued once the task has ended: its requests must not wait forever."""
        waiting = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        _settle(waiting, RuntimeError("the decision log writer stopped"))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._fail_waiting(None)
        await self._disconnect()
        if self.commits:
            log.info(
                "decision log writer stopped: %d entries in %d group commits (%.1f a commit), %d under the lock",
                self.entries_written,
                self.commits,
                self.entries_written / self.commits,
                self.locked_appends,
            )

    async def append(self, entries: Sequence[DecisionEntry]) -> list[int]:
        """Return the entries' sequence numbers once every one is committed; raise if the log could not be
        written. The writer learns them at commit, so answers carry them (receipts) at no extra round trip."""
        if self._task is None or self._task.done():
            raise RuntimeError("the decision log writer is not running")
        loop = asyncio.get_running_loop()
        pendings = [_Pending(entry, loop.create_future()) for entry in entries]
        for pending in pendings:
            self._queue.put_nowait(pending)
        # No timer per request (it would cost as much as the rest of the wait): the writer bounds every batch
        # by `append_timeout` and settles each future, written or failed, or fails them all if it ends.
        if len(pendings) == 1:
            return [await pendings[0].done]
        return list(await asyncio.gather(*(p.done for p in pendings)))

    async def _connected(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = None
            self._head = None
            self._connection = await asyncpg.connect(
                self._dsn, timeout=self.connect_timeout, server_settings={"application_name": "guard-decision-log"}
            )
        return self._connection

    async def _disconnect(self) -> None:
        connection, self._connection, self._head = self._connection, None, None
        if connection is not None:
            connection.terminate()

    async def _write(self, entries: Sequence[DecisionEntry]) -> ChainHead:
        connection = await self._connected()
        head = await _append_after(connection, entries, self._head) if self._head is not None else None
        if head is None:
            head = await _append_locked(connection, entries)
            self.locked_appends += 1
        self._head = head
        return head

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Everything that arrived while the previous commit was in flight goes into this one.
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # A request that went away meanwhile (its future cancelled) still has its entry written.
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.append_timeout):
                    head = await self._write([p.entry for p in batch])
            except asyncio.CancelledError:
                _settle(batch, RuntimeError("the decision log writer stopped"))
                raise
            except Exception as exc:
                COUNTERS.failed_appends += 1
                log.warning("decision log append of %d entries failed: %s", len(batch), exc)
                await self._disconnect()  # its state is unknown: the next batch reconnects and re-reads the head
                _settle(batch, exc)
                continue
            self.commits += 1
            self.entries_written += len(batch)
            _settle(batch, None, head.seq)
            # Counted once durable, after the waiting checks were released: /metrics counts logged decisions.
            COUNTERS.committed([(p.entry.allowed, p.entry.reasons) for p in batch], time.perf_counter() - started)


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


# A filtered listing counts its matches exactly up to this many (through the filter's index); past it, the
# total is PostgreSQL's estimate and the answer says so. An exact count of a large log cost a page ten times over.
COUNT_EXACTLY_UP_TO = 1000


@dataclass(frozen=True, slots=True)
class DecisionPage:
    """A page of the log, newest first. `next_cursor` (None on the last page) continues after its last entry:
    the sequence number it is below. `total` counts every matching entry when `total_exact`, else it is an
    estimate above COUNT_EXACTLY_UP_TO."""

    items: list[dict[str, Any]]
    total: int
    total_exact: bool
    next_cursor: str | None


def decision_filters(
    *,
    recipient: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reason: str | None = None,
) -> list[Any]:
    """The WHERE conditions of a listing; `outcome` is 'allowed' or 'denied'; `since` <= decided_at < `until`.
    Each is served by an index (migration 0013): (recipient, seq), denials only (seq) and (recipient, seq),
    (decided_at, seq); 'allowed', most of the log, by the primary key."""
    conditions: list[Any] = []
    if reason is not None:  # a reason code the decision gave
        conditions.append(col(GuardDecision.reasons).contains([{"code": reason}]))
    if recipient is not None:
        conditions.append(col(GuardDecision.recipient) == recipient)
    if outcome is not None:
        if outcome not in {"allowed", "denied"}:
            raise ValueError("outcome must be 'allowed' or 'denied'")
        # Spelled as the partial indexes' predicate (NOT allowed), or PostgreSQL would not use them.
        conditions.append(col(GuardDecision.allowed) if outcome == "allowed" else ~col(GuardDecision.allowed))
    if since is not None:
        conditions.append(col(GuardDecision.decided_at) >= since)
    if until is not None:
        conditions.append(col(GuardDecision.decided_at) < until)
    return conditions


async def _total(session: AsyncSession, conditions: list[Any], period: bool) -> tuple[int, bool]:
    """(matching entries, exact?) without counting the whole table."""
    if not conditions:
        # The log is gapless from 1 to the head's seq (verify-log proves it): its size is one row read.
        return await _last_seq(session), True
    bounded_rows = select(col(GuardDecision.seq)).where(*conditions).limit(COUNT_EXACTLY_UP_TO + 1)
    if period:
        # Through the period's index: left to itself, PostgreSQL may read the table from its oldest rows on,
        # looking for a recent period's first matches.
        bounded_rows = bounded_rows.order_by(col(GuardDecision.decided_at).desc())
    bounded = bounded_rows.subquery()
    counted = int((await session.execute(select(func.count()).select_from(bounded))).scalar_one())
    if counted <= COUNT_EXACTLY_UP_TO:
        return counted, True
    # The planner's row estimate for the filter (from the table's statistics; no rows read), asked through the
    # driver: the statement compiled for asyncpg, with its parameters in their positions.
    compiled = select(col(GuardDecision.seq)).where(*conditions).compile(dialect=session.get_bind().dialect)
    arguments = [compiled.params[name] for name in compiled.positiontup or ()]
    plan = await (await driver_connection(session)).fetchval(f"EXPLAIN (FORMAT JSON) {compiled}", *arguments)
    document = plan if isinstance(plan, list) else msgspec.json.decode(plan)  # (decoded when a codec is set)
    estimate = int(document[0]["Plan"]["Plan Rows"])
    return max(estimate, counted), False


# How many entries below the cursor a period's page first looks at, in order, before asking the time index.
PERIOD_PROBE_ROWS = 2000


async def _last_seq(session: AsyncSession) -> int:
    last = (
        await session.execute(select(col(GuardDecisionHead.last_seq)).where(col(GuardDecisionHead.id) == 1))
    ).scalar_one_or_none()
    return int(last or 0)


async def _period_page(session: AsyncSession, conditions: list[Any], before: int | None, count: int) -> list[int]:
    """The `count` highest sequence numbers below `before` of the entries in a period (and other filters).

    decided_at rises with seq only roughly (answers logged in batches, instances' clocks), so a period is not a
    range of seq, and PostgreSQL, walking the primary key backwards until enough entries match, would read every
    entry after the period first. Instead: seq is gapless, so the PERIOD_PROBE_ROWS entries just below the
    cursor are one short primary-key range; when they hold the whole page (any page after the first, inside the
    period), it is exact, as every other match lies below them. Otherwise the rest comes from the period's
    (decided_at, seq) index alone, the page's highest seq picked from it (index-only: no rows read)."""
    seq = col(GuardDecision.seq)
    top = before if before is not None else await _last_seq(session) + 1
    floor = max(top - PERIOD_PROBE_ROWS, 1)
    probe = select(seq).where(*conditions, seq < top, seq >= floor).order_by(seq.desc()).limit(count)
    found = list((await session.execute(probe)).scalars())
    if len(found) < count and floor > 1:
        # `seq + 0`: ordered by an expression, so that the period's index, not the primary key, finds the rows.
        rest = select(seq).where(*conditions, seq < floor).order_by((seq + 0).desc()).limit(count - len(found))
        found += list((await session.execute(rest)).scalars())
    return found


async def list_decisions(
    session: AsyncSession,
    *,
    recipient: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reason: str | None = None,
    limit: int = 50,
    offset: int = 0,
    before: int | None = None,
) -> DecisionPage:
    """Decisions newest first (by seq), filtered (`decision_filters`).

    Keyset paging: `before` (a page's `next_cursor`) starts below that sequence number, through an index,
    however deep the page; entries logged meanwhile have higher numbers, so paging on never repeats or skips
    one. `offset` still works (it reads and skips its rows, so deep offsets cost what they skip)."""
    conditions = decision_filters(recipient=recipient, outcome=outcome, since=since, until=until, reason=reason)
    seq = col(GuardDecision.seq)
    if (since is not None or until is not None) and offset == 0:
        wanted = await _period_page(session, conditions, before, limit + 1)
        query = select(GuardDecision).where(seq.in_(wanted))
    else:
        query = select(GuardDecision).where(*conditions, *([seq < before] if before is not None else []))
        query = query.limit(limit + 1).offset(offset)
    rows = list((await session.execute(query.order_by(seq.desc()))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    total, exact = await _total(session, conditions, since is not None or until is not None)
    return DecisionPage(
        items=[decision_document(row) for row in rows],
        total=total,
        total_exact=exact,
        next_cursor=str(rows[-1].seq) if more else None,
    )


@dataclass(frozen=True, slots=True)
class DenialGroup:
    recipient: str
    reason: str
    count: int


async def denial_summary(
    session: AsyncSession, *, since: datetime, until: datetime | None = None
) -> tuple[list[DenialGroup], int]:
    """Denials since `since`, counted in SQL by recipient and reason code (a denial with two reasons counts
    in both of its groups), most frequent first; and the number of denials."""
    conditions: list[Any] = [col(GuardDecision.allowed).is_(False), col(GuardDecision.decided_at) >= since]
    if until is not None:
        conditions.append(col(GuardDecision.decided_at) < until)
    total = (await session.execute(select(func.count()).select_from(GuardDecision).where(*conditions))).scalar_one()
    reason = func.jsonb_array_elements(col(GuardDecision.reasons)).table_valued("value").render_derived("r")
    code = func.coalesce(reason.c.value.op("->>")("code"), "").label("reason")
    rows = await session.execute(
        select(col(GuardDecision.recipient), code, func.count().label("n"))
        .select_from(GuardDecision)
        .join(reason, text("true"), isouter=True)
        .where(*conditions)
        .group_by(col(GuardDecision.recipient), code)
        .order_by(func.count().desc(), col(GuardDecision.recipient), code)
    )
    return [DenialGroup(r[0], r[1], int(r[2])) for r in rows], int(total)


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


@dataclass(frozen=True, slots=True)
class KnownCheckpoint:
    """A checkpoint whose signature has verified, and where it came from (for the report)."""

    checkpoint: Checkpoint
    source: str


def _checkpoint_contradiction(
    known: KnownCheckpoint, chain_hash: str, compact: CompactRange | None, entries: int
) -> VerifyResult | None:
    """The log at the checkpoint's size against the checkpoint: None when they agree."""
    size = known.checkpoint.size
    rewritten = f"rewritten at or before entry {size}: "
    if chain_hash != known.checkpoint.chain_hash:
        return VerifyResult(False, entries, size, None, rewritten + f"its chain hash differs from {known.source}'s")
    if compact is not None and compact.root() != known.checkpoint.root_hash:
        return VerifyResult(False, entries, size, None, rewritten + f"its Merkle root differs from {known.source}'s")
    return None


async def verify_log(
    session: AsyncSession,
    checkpoints: Sequence[KnownCheckpoint] = (),
    *,
    since: KnownCheckpoint | None = None,
) -> VerifyResult:
    """Walk the chain in order and report the first entry that is edited, missing, or out of place, or the
    first checkpoint (already signature-checked) the log contradicts: shorter than it (truncated) or with
    another chain hash or Merkle root at its size (rewritten).

    With `since`, only what follows that checkpoint is walked: the entry at its size must carry its chain
    hash, and the chain continues from there (Merkle roots are then not recomputed; the chain hash binds).
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    # Full walks rebuild the Merkle tree as they go, to check each checkpoint's root too.
    compact: CompactRange | None = CompactRange() if since is None else None
    # Incremental walks hold the log only to checkpoints from `since` on (at its size, they must agree with it).
    pending = sorted(
        (k for k in checkpoints if since is None or (k.checkpoint.size >= since.checkpoint.size and k is not since)),
        key=lambda k: k.checkpoint.size,
    )
    if since is not None:
        size = since.checkpoint.size
        if size > 0:
            anchor = (
                await session.execute(select(col(GuardDecision.hash)).where(col(GuardDecision.seq) == size))
            ).scalar_one_or_none()
            if anchor is None:
                last = (await session.execute(select(func.max(col(GuardDecision.seq))))).scalar_one_or_none() or 0
                return _truncated(since, int(last))
            bad = _checkpoint_contradiction(since, anchor, None, size)
            if bad is not None:
                return bad
        expected_seq, prev_hash, checked = size + 1, since.checkpoint.chain_hash, size
    while pending and pending[0].checkpoint.size == checked:  # checkpoints of the empty log (or at `since`)
        bad = _checkpoint_contradiction(pending.pop(0), prev_hash, compact, checked)
        if bad is not None:
            return bad
    connection = await driver_connection(session)
    async with connection.transaction():  # (a cursor needs one; a savepoint inside the session's)
        async for row in connection.cursor(ENTRIES_FROM, expected_seq, 2**63 - 1, prefetch=2000):
            seq = row["seq"]
            if seq != expected_seq:
                if seq > expected_seq:
                    problem = (
                        f"entries {expected_seq}…{seq - 1} are missing (deleted)"
                        if seq - 1 > expected_seq
                        else f"entry {expected_seq} is missing (deleted)"
                    )
                    return VerifyResult(False, checked, expected_seq, None, problem + f"; the chain resumes at {seq}")
                return VerifyResult(
                    False, checked, seq, str(row["decision_id"]), "sequence number out of order (inserted)"
                )
            if row["prev_hash"] != prev_hash:
                return VerifyResult(
                    False,
                    checked,
                    seq,
                    str(row["decision_id"]),
                    "its link to the previous entry is broken (an entry was inserted, deleted or replaced)",
                )
            if content_hash(record_content(row), prev_hash) != row["hash"]:
                return VerifyResult(
                    False, checked, seq, str(row["decision_id"]), "its content does not match its hash (edited)"
                )
            prev_hash = row["hash"]
            expected_seq += 1
            checked += 1
            if compact is not None:
                compact.append(leaf_hash(bytes.fromhex(prev_hash)))
            while pending and pending[0].checkpoint.size == checked:
                bad = _checkpoint_contradiction(pending.pop(0), prev_hash, compact, checked)
                if bad is not None:
                    return bad
    if pending:  # the log ends before a size a checkpoint signed: entries were cut off its end
        return _truncated(pending[0], checked)
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


def _truncated(known: KnownCheckpoint, entries: int) -> VerifyResult:
    return VerifyResult(
        False,
        entries,
        entries + 1,
        None,
        f"truncated: the log ends at entry {entries}, but {known.source} was signed at size {known.checkpoint.size}",
    )
