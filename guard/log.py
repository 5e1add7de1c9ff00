"""The guard's decision log (DESIGN §4.4): append-only, hash-chained per writer, group-committed, sealed into
one order that signed checkpoints cover.

Every answer is stored before it is returned. Each writer (an instance's writer task, a new one each start,
or one CLI command) keeps a chain of its own: its entry n (``wseq``) stores ``prev_hash`` (its entry n-1's
hash, or 64 zeros for the first) and ``hash = sha256(canonical JSON of its content + prev_hash)``, the content
naming the writer and n; ``guard_log_writer`` records each writer's last ``wseq`` and hash. Editing a row
breaks its hash, deleting one leaves a gap in its writer's chain (or a head that points past the end),
inserting one breaks the numbering or the links. ``seq`` (from a sequence, unique and rising, not hashed)
locates an entry in the whole log.

Writers share no row, so instances append side by side without waiting for each other (bench/instances.py).
The order the RFC 6962 tree needs is assigned off the hot path: the checkpoint writer (guard/audit.py) seals
the entries committed since the last checkpoint into ``guard_log_leaf`` (in each writer's order) and signs
the tree's size and root and a digest of every writer's head. ``verify_log`` walks the leaves in order, each
entry checked as the next of its writer's chain, then the chains' unsealed tails up to their head rows, and
holds the log to each checkpoint's size, writers' heads and root. The database refuses UPDATE, DELETE and
TRUNCATE of the log and its leaves and any move of a head backwards (migrations 0007, 0014); what a superuser
could still rewrite consistently, signed checkpoints kept outside the database catch.

Within an instance, one writer task gathers the entries of concurrent requests and appends them together
(group commit), so durability costs one commit per batch, not per request: one statement that moves the
writer's head only if it is still where the writer left it, and inserts the entries.
"""

import asyncio
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from guard.checkpoint import LEGACY_WRITER, Checkpoint, heads_digest
from guard.counters import COUNTERS
from guard.merkle import CompactRange, leaf_hash
from guard.tasks import cancel_and_wait
from registry.models.decision import GuardDecision, GuardLogWriter

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64  # what a chain's first entry links to
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
    writer: str,
    wseq: int,
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
    """What an entry's hash covers, by column name: entry `wseq` of `writer`'s chain. (The single chain before
    migration 0014, the writer LEGACY_WRITER, named its entries by `seq` alone, and their hashes cover that.)

    `request`, `reasons` and `warnings` may come already in canonical JSON (as msgspec.Raw, written out as they
    are), and `decided_at` as `format_timestamp` gives it, so that the writer formats each only once."""
    content: dict[str, Any] = {
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
    if writer == LEGACY_WRITER:
        content["seq"] = wseq
    else:
        content["writer"], content["wseq"] = writer, wseq
    return content


def content_hash(content: dict[str, Any], prev_hash: str) -> str:
    """The hash of an entry's content (`entry_content`), chained to the entry before."""
    return hashlib.sha256(canonical_json(content) + prev_hash.encode()).hexdigest()


_decode = msgspec.json.decode

# The walks read rows with asyncpg, JSON columns as text: building ORM objects cost ten times the hashing.
ENTRY_COLUMNS = (
    "seq, writer, wseq, decision_id, decided_at, caller, recipient, allowed, request::text AS request,"
    " reasons::text AS reasons, warnings::text AS warnings, agreement, ruleset, prev_hash, hash"
)
# A writer's entries from `wseq` $2 on, in its chain's order.
WRITER_ENTRIES_BETWEEN = (
    f"SELECT {ENTRY_COLUMNS} FROM guard_decision WHERE writer = $1 AND wseq BETWEEN $2 AND $3 ORDER BY wseq"
)
# The same entries' places and links only (no content): what sealing them needs.
WRITER_LINKS_BETWEEN = (
    "SELECT seq, writer, wseq, decision_id, prev_hash, hash FROM guard_decision"
    " WHERE writer = $1 AND wseq BETWEEN $2 AND $3 ORDER BY wseq"
)


def record_content(record: asyncpg.Record) -> dict[str, Any]:
    """What an entry's hash covers, from its row as `ENTRY_COLUMNS` reads it."""
    return entry_content(
        writer=record["writer"],
        wseq=record["wseq"],
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

# `seq` is left to its default (the sequence): taken in the INSERT, it costs no round trip and no lock.
_COLUMNS = (
    "writer, wseq, decision_id, decided_at, caller, recipient, allowed, request, reasons, warnings, agreement,"
    " ruleset, prev_hash, hash, subject_digest"
)
# A batch travels as one JSON array of rows (objects keyed by column) in one parameter. Thirteen array
# parameters, one per column, cost the writer three times the CPU to encode, on the guard's hot path.
_BATCH_ROWS = f"""
SELECT {_COLUMNS}
FROM json_to_recordset($1::json) AS batch(
    writer text, wseq bigint, decision_id uuid, decided_at timestamptz, caller text, recipient text,
    allowed boolean, request jsonb, reasons jsonb, warnings jsonb, agreement text, ruleset text, prev_hash text,
    hash text, subject_digest text
)
"""
_INSERTED = "RETURNING wseq, seq"
# A group commit in one statement, so one round trip (autocommitted): the writer's own head moves only if it
# still is where this writer last left it, and the entries go in only if it moved. No other writer touches
# this row, so it always has unless a lost COMMIT answer left the writer unsure (it then re-reads its head).
_APPEND_AFTER_OWN_HEAD = f"""
WITH moved AS (
    UPDATE guard_log_writer SET last_wseq = $3, last_hash = $4
    WHERE writer = $2 AND last_wseq = $5 AND last_hash = $6
    RETURNING writer
)
INSERT INTO guard_decision ({_COLUMNS}) {_BATCH_ROWS}
WHERE EXISTS (SELECT FROM moved)
{_INSERTED}
"""
# A writer's first append registers it, in the same statement.
_START_CHAIN = f"""
WITH started AS (
    INSERT INTO guard_log_writer (writer, last_wseq, last_hash, started_at, started_by)
    VALUES ($2, $3, $4, now(), $5)
    ON CONFLICT (writer) DO NOTHING
    RETURNING writer
)
INSERT INTO guard_decision ({_COLUMNS}) {_BATCH_ROWS}
WHERE EXISTS (SELECT FROM started)
{_INSERTED}
"""
_OWN_HEAD = "SELECT last_wseq, last_hash FROM guard_log_writer WHERE writer = $1"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry of a writer's chain: its `wseq` and hash (0 and the genesis hash when empty)."""

    wseq: int
    hash: str


EMPTY_CHAIN = ChainHead(0, GENESIS_HASH)


def new_writer_id() -> str:
    """A writer's name in the log: random, so that no two writers (instances, restarts, CLI runs) share one."""
    return os.urandom(8).hex()


def writer_origin(role: str) -> str:
    """Who started a writer, for the auditor reading `guard_log_writer`: the role, host and process."""
    return f"{role} on {socket.gethostname()} pid {os.getpid()}"[:200]


_ROWS = msgspec.json.Encoder()


def chained_rows(writer: str, entries: Sequence[DecisionEntry], head: ChainHead) -> tuple[str, ChainHead]:
    """The table rows that extend `writer`'s chain from `head` by `entries`, as the JSON array `_BATCH_ROWS`
    reads, and the head after them."""
    wseq, prev_hash = head.wseq, head.hash
    rows: list[dict[str, Any]] = []
    for entry in entries:
        wseq += 1
        row = entry_content(
            writer=writer,
            wseq=wseq,
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
    return _ROWS.encode(rows).decode(), ChainHead(wseq, prev_hash)


class ChainMoved(RuntimeError):
    """A writer's head is not where the writer left it: nothing was written (see `append_to_chain`)."""


async def append_to_chain(
    connection: asyncpg.Connection, writer: str, entries: Sequence[DecisionEntry], head: ChainHead, origin: str
) -> tuple[ChainHead, list[int]]:
    """Extend `writer`'s chain, which ends at `head` (EMPTY_CHAIN: the writer's first append registers it), in
    one statement; the new head and the entries' `seq`, in order. ChainMoved (nothing written) if the chain
    does not end at `head`.

    Plain asyncpg rather than the ORM: the ORM's per-statement overhead would be most of the cost of an append.
    """
    rows, new_head = chained_rows(writer, entries, head)
    if head.wseq == 0:
        inserted = await connection.fetch(_START_CHAIN, rows, writer, new_head.wseq, new_head.hash, origin)
    else:
        inserted = await connection.fetch(
            _APPEND_AFTER_OWN_HEAD, rows, writer, new_head.wseq, new_head.hash, head.wseq, head.hash
        )
    if len(inserted) != len(entries):
        raise ChainMoved(f"the chain of writer {writer} does not end at entry {head.wseq}")
    return new_head, [seq for _, seq in sorted((int(r["wseq"]), int(r["seq"])) for r in inserted)]


async def own_head(connection: asyncpg.Connection, writer: str) -> ChainHead:
    row = await connection.fetchrow(_OWN_HEAD, writer)
    return ChainHead(int(row["last_wseq"]), str(row["last_hash"])) if row is not None else EMPTY_CHAIN


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def append_decisions(session: AsyncSession, entries: Sequence[DecisionEntry], *, role: str = "cli") -> list[int]:
    """Append entries inside the caller's transaction, as a writer of their own; durable when it commits.
    Returns their `seq`, in order."""
    if not entries:
        return []
    await session.connection()  # (opens the session's transaction on the connection)
    _, sequences = await append_to_chain(
        await driver_connection(session), new_writer_id(), entries, EMPTY_CHAIN, writer_origin(role)
    )
    return sequences


class _Pending(NamedTuple):
    entry: DecisionEntry
    # Settled with the entry's `seq` once it is durable, or with the error that kept it from being.
    done: asyncio.Future[int]


def _settle(pendings: Sequence[_Pending], error: BaseException | None, sequences: Sequence[int] = ()) -> None:
    """Tell each request still waiting that its entry is durable (error None; `sequences` are the batch's
    entries' `seq`, in order) or that it is not."""
    for index, pending in enumerate(pendings):
        if pending.done.done():
            continue
        if error is None:
            pending.done.set_result(sequences[index])
        else:
            pending.done.set_exception(error)


class DecisionLogWriter:
    """One task per instance that appends whatever entries are waiting, up to `batch_max` per commit, to a
    chain of its own (a new writer id each start): appends of several instances touch no common row, so none
    waits for another (bench/instances.py).

    It holds one connection of its own (not a pooled session: a group commit is then a single round trip,
    see `_APPEND_AFTER_OWN_HEAD`) and remembers the head it last wrote. A failed append is never retried: it
    may have committed (a lost COMMIT answer), and a retry could log the same decisions twice. Its requests get
    an error (503); the next batch starts on a fresh connection and re-reads the writer's head first.
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
        self.writer = new_writer_id()
        self._origin = writer_origin("guard")
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._head: ChainHead | None = None  # the head this writer last wrote; None: read it before appending
        self.commits = 0
        self.entries_written = 0
        self.head_reads = 0

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
                "decision log writer %s stopped: %d entries in %d group commits (%.1f a commit)",
                self.writer,
                self.entries_written,
                self.commits,
                self.entries_written / self.commits,
            )

    async def append(self, entries: Sequence[DecisionEntry]) -> list[int]:
        """Return the entries' `seq` once every one is committed; raise if the log could not be written. The
        writer learns them at commit, so answers carry them (receipts) at no extra round trip."""
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

    async def _write(self, entries: Sequence[DecisionEntry]) -> list[int]:
        connection = await self._connected()
        if self._head is None:  # (a fresh writer, or one whose last append's outcome is unknown)
            self._head = await own_head(connection, self.writer)
            self.head_reads += 1
        self._head, sequences = await append_to_chain(connection, self.writer, entries, self._head, self._origin)
        return sequences

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
                    sequences = await self._write([p.entry for p in batch])
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
            _settle(batch, None, sequences)
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
        # Every writer's chain is gapless from 1 to its head's wseq (verify-log proves it): the log's size is
        # the sum of the heads, one row a writer.
        size = (await session.execute(select(func.coalesce(func.sum(col(GuardLogWriter.last_wseq)), 0)))).scalar_one()
        return int(size), True
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
    last = (await session.execute(select(func.max(col(GuardDecision.seq))))).scalar_one_or_none()
    return int(last or 0)


async def _period_page(session: AsyncSession, conditions: list[Any], before: int | None, count: int) -> list[int]:
    """The `count` highest sequence numbers below `before` of the entries in a period (and other filters).

    decided_at rises with seq only roughly (answers logged in batches, instances' clocks), so a period is not a
    range of seq, and PostgreSQL, walking the primary key backwards until enough entries match, would read every
    entry after the period first. Instead: the PERIOD_PROBE_ROWS values of seq just below the cursor (seq rises
    with few gaps) are one short primary-key range; when they hold the whole page (any page after the first, inside the
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
    in both of its groups, and once in a group however often its code is among its reasons: a group's count is
    the number of decisions its link to the decision log lists), most frequent first; and the number of denials."""
    conditions: list[Any] = [col(GuardDecision.allowed).is_(False), col(GuardDecision.decided_at) >= since]
    if until is not None:
        conditions.append(col(GuardDecision.decided_at) < until)
    total = (await session.execute(select(func.count()).select_from(GuardDecision).where(*conditions))).scalar_one()
    reason = func.jsonb_array_elements(col(GuardDecision.reasons)).table_valued("value").render_derived("r")
    code = func.coalesce(reason.c.value.op("->>")("code"), "").label("reason")
    n = func.count(func.distinct(col(GuardDecision.seq))).label("n")
    rows = await session.execute(
        select(col(GuardDecision.recipient), code, n)
        .select_from(GuardDecision)
        .join(reason, text("true"), isouter=True)
        .where(*conditions)
        .group_by(col(GuardDecision.recipient), code)
        .order_by(n.desc(), col(GuardDecision.recipient), code)
    )
    return [DenialGroup(r[0], r[1], int(r[2])) for r in rows], int(total)


# --- Verifying -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None  # the bad entry's `seq`, when it is there to have one
    first_bad_decision_id: str | None = None
    problem: str | None = None
    writer: str | None = None  # the chain the problem is in, and the entry's place in it
    wseq: int | None = None

    def describe(self) -> str:
        if self.ok:
            return f"log intact: {self.entries} entries"
        where = []
        if self.writer is not None:
            where.append(f"entry {self.wseq} of writer {self.writer}")
        if self.first_bad_seq is not None:
            where.append(f"log entry {self.first_bad_seq}")
        if self.first_bad_decision_id:
            where.append(f"decision {self.first_bad_decision_id}")
        return f"log broken at {', '.join(where)}: {self.problem}" if where else f"log broken: {self.problem}"


@dataclass(frozen=True, slots=True)
class KnownCheckpoint:
    """A checkpoint whose signature has verified, and where it came from (for the report)."""

    checkpoint: Checkpoint
    source: str


Heads = dict[str, ChainHead]


def signed_heads(heads: Heads) -> str:
    """The digest a checkpoint signs of the writers' heads (guard/checkpoint.py `heads_digest`)."""
    return heads_digest({writer: (head.wseq, head.hash) for writer, head in heads.items()})


def _checkpoint_contradiction(
    known: KnownCheckpoint, heads: Heads, compact: CompactRange | None, entries: int
) -> VerifyResult | None:
    """The log at the checkpoint's size against the checkpoint: None when they agree."""
    size = known.checkpoint.size
    rewritten = f"rewritten at or before leaf {size}: "
    if signed_heads(heads) != known.checkpoint.heads_digest:
        return VerifyResult(False, entries, None, None, rewritten + f"its writers' heads differ from {known.source}'s")
    if compact is not None and compact.root() != known.checkpoint.root_hash:
        return VerifyResult(False, entries, None, None, rewritten + f"its Merkle root differs from {known.source}'s")
    return None


class BrokenChain(Exception):
    """Where a walk found the log broken (the entry's row, when there is one) and how."""

    def __init__(self, row: Any, problem: str, *, writer: str | None = None, wseq: int | None = None) -> None:
        self.row, self.problem = row, problem
        self.writer = writer if writer is not None else (row["writer"] if row is not None else None)
        self.wseq = wseq if wseq is not None else (row["wseq"] if row is not None else None)

    def result(self, entries: int) -> VerifyResult:
        row = self.row
        return VerifyResult(
            False,
            entries,
            row["seq"] if row is not None else None,
            str(row["decision_id"]) if row is not None else None,
            self.problem,
            self.writer,
            self.wseq,
        )


def extend_chain(heads: Heads, row: Any, *, content: bool = True) -> str:
    """Check that `row` is the next entry of its writer's chain (as far as `heads` has walked it), and move
    the writer's head to it; its hash. BrokenChain naming what is wrong otherwise.

    `content=False` checks the place and the link only (the row then needs only seq, writer, wseq, prev_hash
    and hash): what the checkpoint writer needs, as a checkpoint commits to the stored hashes."""
    writer, wseq = row["writer"], row["wseq"]
    head = heads.get(writer, EMPTY_CHAIN)
    if wseq != head.wseq + 1:
        if wseq > head.wseq + 1:
            missing = f"entries {head.wseq + 1}…{wseq - 1}" if wseq - 1 > head.wseq + 1 else f"entry {head.wseq + 1}"
            raise BrokenChain(
                None,
                f"{missing} of writer {writer} are missing (deleted); its chain resumes at {wseq}",
                writer=writer,
                wseq=head.wseq + 1,
            )
        raise BrokenChain(row, "out of its writer's order (inserted, or placed in the log twice)")
    if row["prev_hash"] != head.hash:
        raise BrokenChain(
            row, "its link to its writer's previous entry is broken (an entry was inserted, deleted or replaced)"
        )
    if content and content_hash(record_content(row), head.hash) != row["hash"]:
        raise BrokenChain(row, "its content does not match its hash (edited)")
    heads[writer] = ChainHead(wseq, row["hash"])
    return str(row["hash"])


class _Contradiction(Exception):
    def __init__(self, result: VerifyResult) -> None:
        self.result = result


def _entry_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in ENTRY_COLUMNS.split(","))


# The log in its global order: each leaf with its entry (NULL columns when the entry is gone).
LEAVES_FROM = (
    f"SELECT l.leaf_index, l.seq AS leaf_seq, {_entry_columns('d')} FROM guard_log_leaf l"
    " LEFT JOIN guard_decision d ON d.seq = l.seq WHERE l.leaf_index >= $1 ORDER BY l.leaf_index"
)


async def walk_leaves(
    connection: asyncpg.Connection, heads: Heads, start: int, on_leaf: Callable[[int, str], None]
) -> int:
    """Walk the sealed log from leaf `start` on, each entry checked as the next of its writer's chain
    (`extend_chain`, moving `heads`); `on_leaf(leaves so far, entry hash)` after each. Returns the number of
    leaves; BrokenChain at the first bad one."""
    leaves = start
    async with connection.transaction():  # (a cursor needs one; a savepoint inside the caller's)
        async for row in connection.cursor(LEAVES_FROM, start, prefetch=2000):
            if row["leaf_index"] != leaves:
                raise BrokenChain(
                    None, f"leaves {leaves}…{row['leaf_index'] - 1} of the log's order are missing (deleted)"
                )
            if row["seq"] is None:
                problem = f"the entry sealed as leaf {leaves} is missing (deleted)"
                raise BrokenChain({"seq": row["leaf_seq"], "decision_id": None, "writer": None, "wseq": None}, problem)
            digest = extend_chain(heads, row)
            leaves += 1
            on_leaf(leaves, digest)
    return leaves


async def walk_unsealed(connection: asyncpg.Connection, heads: Heads) -> int:
    """Walk every writer's entries after its sealed ones (`heads`) up to its head row, and check that the head
    rows and the chains agree; the number of entries walked. BrokenChain at the first problem."""
    walked = 0
    recorded = {
        row["writer"]: ChainHead(int(row["last_wseq"]), str(row["last_hash"]))
        for row in await connection.fetch("SELECT writer, last_wseq, last_hash FROM guard_log_writer")
    }
    for writer in sorted(set(heads) - set(recorded)):
        raise BrokenChain(
            None, f"writer {writer} has entries but no head (its head was deleted)", writer=writer, wseq=1
        )
    for writer, head in sorted(recorded.items()):
        start = heads.get(writer, EMPTY_CHAIN).wseq + 1
        async with connection.transaction():
            # (up to the head read above: what the writer appends meanwhile is for the next walk)
            async for row in connection.cursor(WRITER_ENTRIES_BETWEEN, writer, start, head.wseq, prefetch=2000):
                extend_chain(heads, row)
                walked += 1
        reached = heads.get(writer, EMPTY_CHAIN)
        if reached.wseq < head.wseq:
            missing = (
                f"entries {reached.wseq + 1}…{head.wseq}" if head.wseq > reached.wseq + 1 else f"entry {head.wseq}"
            )
            raise BrokenChain(
                None,
                f"{missing} of writer {writer}, at its end, are missing (deleted)",
                writer=writer,
                wseq=reached.wseq + 1,
            )
        if reached != head:
            raise BrokenChain(
                None,
                f"writer {writer}'s chain does not end where its head records"
                " (an entry was inserted or the head altered)",
                writer=writer,
                wseq=head.wseq,
            )
    return walked


async def heads_at(connection: asyncpg.Connection, known: KnownCheckpoint) -> Heads | None:
    """The writers' heads a checkpoint signed: read off a checkpoint of the single chain itself, else stored
    beside it (and held to its signed digest). None when they are not to be had."""
    checkpoint = known.checkpoint
    if checkpoint.chain_hash is not None:
        return {LEGACY_WRITER: ChainHead(checkpoint.size, checkpoint.chain_hash)} if checkpoint.size else {}
    stored = await connection.fetchval("SELECT heads::text FROM guard_checkpoint WHERE size = $1", checkpoint.size)
    if stored is None:
        return None
    heads = {writer: ChainHead(int(wseq), str(digest)) for writer, (wseq, digest) in _decode(stored).items()}
    return heads if signed_heads(heads) == checkpoint.heads_digest else None


# The entries outside every writer's chain: of a writer with no head row, or numbered outside 1…its head. Found
# through the (writer, wseq) index, a few probes a writer (the distinct writers by a recursive skip along it),
# so that `--since-checkpoint` does not read the whole log for it.
OUTSIDE_EVERY_CHAIN = """
WITH RECURSIVE writers(writer) AS (
    SELECT min(writer) FROM guard_decision
    UNION ALL
    SELECT (SELECT min(d.writer) FROM guard_decision d WHERE d.writer > w.writer) FROM writers w
    WHERE w.writer IS NOT NULL
)
SELECT count(*) AS n, min(outside.seq) AS first
FROM writers w
LEFT JOIN guard_log_writer h ON h.writer = w.writer
CROSS JOIN LATERAL (
    -- (OFFSET 0 keeps each writer's probes apart: flattened, PostgreSQL would scan the whole log instead)
    SELECT d.seq FROM guard_decision d WHERE d.writer = w.writer AND d.wseq > coalesce(h.last_wseq, 0)
    UNION ALL
    SELECT d.seq FROM guard_decision d WHERE d.writer = w.writer AND d.wseq < 1
    OFFSET 0
) AS outside
WHERE w.writer IS NOT NULL
"""


async def verify_log(
    session: AsyncSession,
    checkpoints: Sequence[KnownCheckpoint] = (),
    *,
    since: KnownCheckpoint | None = None,
) -> VerifyResult:
    """Walk the log and report the first entry that is edited, missing, or out of place, or the first
    checkpoint (already signature-checked) the log contradicts: shorter than it (truncated) or with other
    writers' heads or another Merkle root at its size (rewritten).

    The sealed log is walked in its global order (the Merkle leaves), each entry checked as the next of its
    writer's chain; then each writer's entries not sealed yet, up to the head its row records; then that no
    entry stands outside every chain. With `since`, only what follows that checkpoint is walked: each
    writer's entry at the checkpoint must carry the hash it signed, and the chains continue from there (Merkle
    roots are then not recomputed; the heads bind).
    """
    connection = await driver_connection(session)
    heads: Heads = {}
    start = 0
    # Full walks rebuild the Merkle tree as they go, to check each checkpoint's root too.
    compact: CompactRange | None = CompactRange() if since is None else None
    # Incremental walks hold the log only to checkpoints from `since` on (at its size, they must agree with it).
    pending = sorted(
        (k for k in checkpoints if since is None or (k.checkpoint.size >= since.checkpoint.size and k is not since)),
        key=lambda k: k.checkpoint.size,
    )
    if since is not None:
        signed = await heads_at(connection, since)
        if signed is None:
            leaves = int(await connection.fetchval("SELECT coalesce(max(leaf_index) + 1, 0) FROM guard_log_leaf"))
            if leaves < since.checkpoint.size:
                return _truncated(since, leaves)
            return VerifyResult(
                False,
                0,
                None,
                None,
                f"cannot start at {since.source}: the writers' heads it signed are not stored (the stored checkpoint"
                " is gone or altered); verify the whole log",
            )
        truncated = await _missing_heads(connection, since, signed)
        if truncated is not None:
            return truncated
        heads, start = dict(signed), since.checkpoint.size

    def check_checkpoints(leaves: int, digest: str | None) -> None:
        if compact is not None and digest is not None:
            compact.append(leaf_hash(bytes.fromhex(digest)))
        while pending and pending[0].checkpoint.size == leaves:
            bad = _checkpoint_contradiction(pending.pop(0), heads, compact, leaves)
            if bad is not None:
                raise _Contradiction(bad)

    leaves = start
    try:
        check_checkpoints(start, None)  # checkpoints of the empty log (or at `since`)
        leaves = await walk_leaves(connection, heads, start, check_checkpoints)
        if pending:  # the log's order ends before a size a checkpoint signed: leaves were cut off its end
            return _truncated(pending[0], leaves)
        unsealed = await walk_unsealed(connection, heads)
    except _Contradiction as contradiction:
        return contradiction.result
    except BrokenChain as broken:
        return broken.result(leaves)
    entries = leaves + unsealed
    # One statement, one snapshot, in which every committed entry is within its writer's head (both move in the
    # same transaction), however the guard appends meanwhile: what is not, stands in no chain.
    async with connection.transaction():
        # The planner sizes each probe at a third of the log, and would compile the statement (JIT) for
        # longer than the probes take.
        await connection.execute("SET LOCAL jit = off")
        outside = await connection.fetchrow(OUTSIDE_EVERY_CHAIN)
    if outside["n"]:
        stand = "entry stands" if outside["n"] == 1 else "entries stand"
        return VerifyResult(
            False,
            entries,
            outside["first"],
            None,
            f"{outside['n']} {stand} in no writer's chain (inserted)",
        )
    return VerifyResult(True, entries)


async def _missing_heads(connection: asyncpg.Connection, since: KnownCheckpoint, heads: Heads) -> VerifyResult | None:
    """Each writer's entry at `since` must be there with the hash it signed: None when they all are."""
    if not heads:
        return None
    writers = sorted(heads)
    rows = await connection.fetch(
        "SELECT h.writer, d.hash FROM unnest($1::text[], $2::bigint[]) AS h(writer, wseq)"
        " LEFT JOIN guard_decision d ON d.writer = h.writer AND d.wseq = h.wseq",
        writers,
        [heads[w].wseq for w in writers],
    )
    for row in sorted(rows, key=lambda r: r["writer"]):
        head = heads[row["writer"]]
        if row["hash"] is None:
            return _truncated(since, None, f"entry {head.wseq} of writer {row['writer']} is gone")
        if row["hash"] != head.hash:
            return VerifyResult(
                False,
                0,
                None,
                None,
                f"rewritten at or before leaf {since.checkpoint.size}: entry {head.wseq} of writer {row['writer']}"
                f" differs from {since.source}'s",
                row["writer"],
                head.wseq,
            )
    return None


def _truncated(known: KnownCheckpoint, leaves: int | None, what: str | None = None) -> VerifyResult:
    what = what or f"the log's order ends at leaf {leaves}"
    return VerifyResult(
        False,
        leaves or 0,
        None,
        None,
        f"truncated: {what}, but {known.source} was signed at size {known.checkpoint.size}",
    )
