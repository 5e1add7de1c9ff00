"""Verifying the decision log (`registry guard verify-log`): every leaf as the next of its writer's
chain, the chains' unsealed tails up to their heads, nothing outside every chain, and the log held
to each signed checkpoint's size, writers' heads and root."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.append import EMPTY_CHAIN, ChainHead, driver_connection
from ledger.checkpoint import LEGACY_WRITER, Checkpoint, heads_digest
from ledger.entries import (
    ENTRY_COLUMNS,
    WRITER_ENTRIES_BETWEEN,
    content_hash,
    decode_json,
    format_timestamp,
    record_content,
)
from ledger.merkle import CompactRange, leaf_hash

log = logging.getLogger(__name__)

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
    """The digest a checkpoint signs of the writers' heads (ledger/checkpoint.py `heads_digest`)."""
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
    heads = {writer: ChainHead(int(wseq), str(digest)) for writer, (wseq, digest) in decode_json(stored).items()}
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
    backdated = await connection.fetchrow(BACKDATED, BACKDATING_TOLERANCE)
    if backdated is not None:
        before = "its writer's registration" if backdated["before_writer"] else "the checkpoint before it was sealed"
        return VerifyResult(
            False,
            entries,
            backdated["seq"],
            str(backdated["decision_id"]),
            f"backdated: dated {format_timestamp(backdated['decided_at'])}, before {before}"
            f" ({format_timestamp(backdated['bound'])}) by more than {BACKDATING_TOLERANCE}",
            backdated["writer"],
            backdated["wseq"],
        )
    forged = await connection.fetchrow(FORGED_SUBJECT_LINKS)
    if forged["n"]:
        return VerifyResult(
            False,
            entries,
            forged["first"],
            None,
            f"{forged['n']} link(s) of a person to an entry (decision_subject) match no commitment in the hashed"
            " request (inserted or altered)",
        )
    return VerifyResult(True, entries)


# How far before its writer's registration, or before the last checkpoint, an entry may be dated: a queued batch's
# wait and the clocks' skew. Further back is a backdated entry, refused by a trigger (migration 0018) and flagged
# here.
BACKDATING_TOLERANCE = timedelta(minutes=5)

# The first entry dated before its writer's registration, or before the checkpoint preceding it: the last one
# signed before it was sealed (for an entry not sealed yet, the last one), by more than the tolerance ($1).
BACKDATED = """
SELECT d.seq, d.decision_id, d.writer, d.wseq, d.decided_at,
       d.decided_at < w.registered - $1::interval AS before_writer,
       CASE WHEN d.decided_at < w.registered - $1::interval THEN w.registered ELSE c.created_at END AS bound
FROM guard_decision d
-- (the single chain before migration 0014 was registered by the migration, after its entries)
JOIN (
    SELECT writer, CASE WHEN writer = 'legacy' THEN '-infinity' ELSE started_at END AS registered
    FROM guard_log_writer
) w ON w.writer = d.writer
LEFT JOIN guard_log_leaf l ON l.seq = d.seq
LEFT JOIN LATERAL (
    SELECT created_at FROM guard_checkpoint
    WHERE size <= coalesce(l.leaf_index, 9223372036854775807) ORDER BY size DESC LIMIT 1
) c ON true
WHERE d.decided_at < w.registered - $1::interval OR d.decided_at < c.created_at - $1::interval
ORDER BY d.seq
LIMIT 1
"""

# The people named beside the log (decision_subject, erasable) must each match the salted commitment the entry's
# hashed request holds (guard/subjects.py `subject_commitment`): a link inserted or altered to attribute a share to
# someone else is caught. A link deleted is what an erasure does, and is not an error.
FORGED_SUBJECT_LINKS = """
SELECT count(*) AS n, min(d.seq) AS first FROM decision_subject s LEFT JOIN guard_decision d USING (decision_id)
WHERE d.seq IS NULL OR d.request->>'subject_ref_commitment' IS DISTINCT FROM
    encode(sha256(convert_to(s.salt || ':' || s.subject_digest, 'UTF8')), 'hex')
"""


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
