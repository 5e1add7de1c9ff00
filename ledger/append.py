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
The order the RFC 6962 tree needs is assigned off the hot path: the checkpoint writer (ledger/seal.py) seals
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
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from kernel import counters
from kernel.tasks import cancel_and_wait
from ledger.entries import (
    APPEND_TIMEOUT_SECONDS,
    GENESIS_HASH,
    DecisionEntry,
    canonical_json,
    content_hash,
    entry_content,
)

log = logging.getLogger(__name__)

# --- Appending ---------------------------------------------------------------------------------------

# `seq` is left to its default (the sequence): taken in the INSERT, it costs no round trip and no lock.
_COLUMNS = (
    "writer, wseq, decision_id, decided_at, caller, recipient, allowed, request, reasons, warnings, agreement,"
    " ruleset, prev_hash, hash, request_id, trial"
)
# A batch travels as one JSON array of rows (objects keyed by column) in one parameter. Thirteen array
# parameters, one per column, cost the writer three times the CPU to encode, on the guard's hot path.
_BATCH_ROWS = f"""
SELECT {_COLUMNS}
FROM json_to_recordset($1::json) AS batch(
    writer text, wseq bigint, decision_id uuid, decided_at timestamptz, caller text, recipient text,
    allowed boolean, request jsonb, reasons jsonb, warnings jsonb, agreement text, ruleset text, prev_hash text,
    hash text, request_id text, trial boolean
)
"""
_INSERTED = "RETURNING wseq, seq"
# The people the batch's entries name, beside the log (erasable), in the same statement as the entries.
_BATCH_SUBJECTS = """
, subjects AS (
    INSERT INTO decision_subject (decision_id, subject_digest, salt)
    SELECT decision_id, subject_digest, subject_salt
    FROM json_to_recordset($1::json) AS batch(decision_id uuid, subject_digest text, subject_salt text)
    WHERE subject_digest IS NOT NULL AND EXISTS (SELECT FROM {gate})
)
"""
# A group commit in one statement, so one round trip (autocommitted): the writer's own head moves only if it
# still is where this writer last left it, and the entries go in only if it moved. No other writer touches
# this row, so it always has unless a lost COMMIT answer left the writer unsure (it then re-reads its head).
_APPEND_AFTER_OWN_HEAD = f"""
WITH moved AS (
    UPDATE guard_log_writer SET last_wseq = $3, last_hash = $4
    WHERE writer = $2 AND last_wseq = $5 AND last_hash = $6
    RETURNING writer
)
{{subjects}}
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
{{subjects}}
INSERT INTO guard_decision ({_COLUMNS}) {_BATCH_ROWS}
WHERE EXISTS (SELECT FROM started)
{_INSERTED}
"""
# Each statement without and with the subjects' insert (a batch naming no one does not read its rows twice).
_APPEND_AFTER_OWN_HEAD_FORMS = (
    _APPEND_AFTER_OWN_HEAD.format(subjects=""),
    _APPEND_AFTER_OWN_HEAD.format(subjects=_BATCH_SUBJECTS.format(gate="moved")),
)
_START_CHAIN_FORMS = (
    _START_CHAIN.format(subjects=""),
    _START_CHAIN.format(subjects=_BATCH_SUBJECTS.format(gate="started")),
)
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
            request_id=entry.request_id,
            trial=entry.trial,
        )
        digest = content_hash(row, prev_hash)
        row["prev_hash"], row["hash"] = prev_hash, digest
        row["trial"] = entry.trial
        if entry.subject_digest is not None:
            # Beside the log, outside the hash (the hashed request holds the salted commitment).
            row["subject_digest"], row["subject_salt"] = entry.subject_digest, entry.subject_salt
        rows.append(row)
        prev_hash = digest
    return _ROWS.encode(rows).decode(), ChainHead(wseq, prev_hash)


class ChainMoved(RuntimeError):
    """A writer's head is not where the writer left it: nothing was written (see `append_to_chain`)."""


class ChainTampered(RuntimeError):
    """The writer's own chain no longer extends what it wrote: evidence of tampering (ledger/evidence.py)."""


async def append_to_chain(
    connection: asyncpg.Connection, writer: str, entries: Sequence[DecisionEntry], head: ChainHead, origin: str
) -> tuple[ChainHead, list[int]]:
    """Extend `writer`'s chain, which ends at `head` (EMPTY_CHAIN: the writer's first append registers it), in
    one statement; the new head and the entries' `seq`, in order. ChainMoved (nothing written) if the chain
    does not end at `head`.

    Plain asyncpg rather than the ORM: the ORM's per-statement overhead would be most of the cost of an append.
    """
    rows, new_head = chained_rows(writer, entries, head)
    naming = any(entry.subject_digest is not None for entry in entries)
    if head.wseq == 0:
        inserted = await connection.fetch(
            _START_CHAIN_FORMS[naming], rows, writer, new_head.wseq, new_head.hash, origin
        )
    else:
        inserted = await connection.fetch(
            _APPEND_AFTER_OWN_HEAD_FORMS[naming], rows, writer, new_head.wseq, new_head.hash, head.wseq, head.hash
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


class _Chain:
    """One chain of a writer: its id in the log, its own connection, and the head it last wrote."""

    __slots__ = ("connection", "durable", "fresh", "head", "id", "tampered")

    def __init__(self) -> None:
        self.id = new_writer_id()
        self.connection: asyncpg.Connection | None = None
        self.head: ChainHead | None = None  # the head this chain last wrote; None: read it before appending
        # The head this chain knows it durably wrote: it must never be found behind it.
        self.durable = EMPTY_CHAIN
        self.tampered: str | None = None  # evidence found: nothing more is appended to this chain
        self.fresh = False  # after an operator resolved the evidence: start a new chain (a new id) next time

    def disconnect(self) -> None:
        connection, self.connection, self.head = self.connection, None, None
        if connection is not None:
            connection.terminate()


class DecisionLogWriter:
    """One task per instance that appends whatever entries are waiting, up to `batch_max` per commit, to chains
    of its own (new writer ids each start): appends of several instances touch no common row, so none waits for
    another (bench/instances.py).

    With `chains` above one, a second group commit goes out while the first is in flight, each on a chain (and
    a connection) of its own. With one chain, a check arriving just after a commit left waited for that commit
    and then for its own: about two commits a check under load (issue 27). With two, it waits for at most the
    one it is in; entries of both chains are sealed into one order by the checkpoint writer, as those of two
    instances are.

    Each chain holds one connection of its own (not a pooled session: a group commit is then a single round
    trip, see `_APPEND_AFTER_OWN_HEAD`) and remembers the head it last wrote. A failed append is never retried:
    it may have committed (a lost COMMIT answer), and a retry could log the same decisions twice. Its requests
    get an error (503); that chain's next batch starts on a fresh connection and re-reads its head first.
    """

    def __init__(
        self,
        dsn: str,
        *,
        batch_max: int,
        chains: int = 1,
        connect_timeout: float = 5.0,
        append_timeout: float = APPEND_TIMEOUT_SECONDS,
        role: str = "guard",
    ) -> None:
        if chains < 1:
            raise ValueError("a decision log writer needs at least one chain")
        self._dsn = dsn
        self.batch_max = batch_max
        self.connect_timeout = connect_timeout
        self.append_timeout = append_timeout
        self._chains = [_Chain() for _ in range(chains)]
        self._origin = writer_origin(role)  # "guard" for a serving instance, "cli" for one command
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._commits_in_flight: set[asyncio.Task[None]] = set()
        self._idle = list(self._chains)  # chains with no commit in flight, in their order
        self._chain_freed = asyncio.Event()
        self.commits = 0
        self.entries_written = 0
        self.head_reads = 0
        self.most_in_flight = 0  # the most group commits ever in flight at once (tests read it)
        # Told of evidence of tampering (ledger/evidence.py EvidenceWatch.raise_).
        self.on_tampering: Callable[[str], None] | None = None

    @property
    def writer(self) -> str:
        """The id of this writer's first chain: the one a lone check is appended to."""
        return self._chains[0].id

    @property
    def writers(self) -> list[str]:
        return [chain.id for chain in self._chains]

    def start_afresh(self) -> None:
        """After an operator resolved the evidence: each chain's next append starts a new chain (a new id)."""
        for chain in self._chains:
            chain.fresh = True

    def _evidence(self, chain: _Chain, problem: str) -> ChainTampered:
        chain.tampered = problem
        if self.on_tampering is not None:
            self.on_tampering(problem)
        return ChainTampered(problem)

    def start(self) -> None:
        self._idle = list(self._chains)  # (a commit cancelled by an earlier stop never gave its chain back)
        self._task = asyncio.create_task(self._run(), name="guard-decision-log-writer")
        self._task.add_done_callback(self._fail_waiting)

    def _fail_waiting(self, _: "asyncio.Task[None] | None") -> None:
        """Nobody will write what is still queued once the task has ended: its requests must not wait forever."""
        waiting = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        _settle(waiting, RuntimeError("the decision log writer stopped"))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for commit in list(self._commits_in_flight):
            await cancel_and_wait(commit)
        self._fail_waiting(None)
        await self._disconnect()
        if self.commits:
            log.info(
                "decision log writer %s stopped: %d entries in %d group commits (%.1f a commit)",
                ", ".join(self.writers),
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

    async def _connected(self, chain: _Chain) -> asyncpg.Connection:
        if chain.connection is None or chain.connection.is_closed():
            chain.connection = None
            chain.head = None
            chain.connection = await asyncpg.connect(
                self._dsn, timeout=self.connect_timeout, server_settings={"application_name": "guard-decision-log"}
            )
        return chain.connection

    async def _disconnect(self) -> None:
        for chain in self._chains:
            chain.disconnect()

    async def _write(self, chain: _Chain, entries: Sequence[DecisionEntry]) -> list[int]:
        if chain.fresh:
            chain.fresh, chain.tampered = False, None
            chain.id, chain.head, chain.durable = new_writer_id(), None, EMPTY_CHAIN
        if chain.tampered is not None:
            raise ChainTampered(chain.tampered)
        connection = await self._connected(chain)
        if chain.head is None:  # (a fresh chain, or one whose last append's outcome is unknown)
            head = await own_head(connection, chain.id)
            self.head_reads += 1
            durable = chain.durable
            if head.wseq < durable.wseq or (head.wseq == durable.wseq and head != durable):
                raise self._evidence(
                    chain,
                    f"the chain of writer {chain.id} was cut back: this instance wrote {durable.wseq} entries,"
                    f" its head now records {head.wseq}" + (" (a different hash)" if head.wseq == durable.wseq else ""),
                )
            chain.head = head
        try:
            chain.head, sequences = await append_to_chain(connection, chain.id, entries, chain.head, self._origin)
        except ChainMoved:
            # Nobody else moves this chain's head: it was moved under it.
            raise self._evidence(
                chain,
                f"the head of writer {chain.id} is no longer at entry {chain.head.wseq}, where this instance"
                " left it (entries cut off its end, or its head moved)",
            ) from None
        chain.durable = chain.head
        return sequences

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            try:
                chain = await self._idle_chain()
            except asyncio.CancelledError:
                _settle([first], RuntimeError("the decision log writer stopped"))
                raise
            batch = [first]
            # Everything that arrived while every chain was busy goes into this commit.
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self.most_in_flight = max(self.most_in_flight, len(self._chains) - len(self._idle))
            commit = asyncio.create_task(self._commit(chain, batch), name="guard-decision-log-commit")
            self._commits_in_flight.add(commit)
            commit.add_done_callback(self._commits_in_flight.discard)

    async def _idle_chain(self) -> _Chain:
        """The first chain with no commit in flight, once there is one: the first chain whenever it is idle, so
        that checks one at a time all go to one chain."""
        while not self._idle:
            self._chain_freed.clear()
            await self._chain_freed.wait()
        return self._idle.pop(0)

    def _release(self, chain: _Chain) -> None:
        self._idle.append(chain)
        self._idle.sort(key=self._chains.index)
        self._chain_freed.set()

    async def _commit(self, chain: _Chain, batch: list[_Pending]) -> None:
        # A request that went away meanwhile (its future cancelled) still has its entry written.
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.append_timeout):
                sequences = await self._write(chain, [p.entry for p in batch])
        except asyncio.CancelledError:
            _settle(batch, RuntimeError("the decision log writer stopped"))
            raise
        except Exception as exc:
            counters.FAILED_COMMITS.inc()
            log.warning("decision log append of %d entries failed: %s", len(batch), exc)
            chain.disconnect()  # its state is unknown: its next batch reconnects and re-reads the head
            self._release(chain)
            _settle(batch, exc)
            return
        self._release(chain)
        self.commits += 1
        self.entries_written += len(batch)
        _settle(batch, None, sequences)
        # Counted once durable, after the waiting checks were released: /metrics counts logged decisions.
        counters.committed([(p.entry.allowed, p.entry.reasons) for p in batch], time.perf_counter() - started)
