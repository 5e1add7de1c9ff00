"""Counts derived from the sealed decision log, so that readers of a year of it read a few thousand rows.

The checkpoint writer (ledger/seal.py) counts the entries it seals, in the transaction that seals them:
`guard_decision_daily` (per UTC day, recipient, purpose, destination, outcome; trials aside),
`guard_decision_daily_category` (the categories of the allowed shares), `guard_log_hour` (per hour of
`decided_at`, the highest `seq` decided up to then) and `guard_rollup_head` (how far each writer's chain is
counted). A reader adds the entries past those heads (the unsealed tail, small while checkpoints run) counted
directly, so its figures are exact at any moment.

The tables are derived, never evidence: `rebuild_rollup` recounts them from the sealed entries and
`rollup_differences` compares them with a direct count (`registry guard rollup`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Arbitrary, fixed advisory-lock id (ledger/append.py uses ...003): one checkpoint writer (ledger/seal.py) at a
# time, and a rebuild of the rollup never interleaves with a seal.
CHECKPOINT_LOCK_ID = 7_411_028_004
REBUILD_BATCH = 100_000

# Each entry is counted twice: in its UTC day's row and in its month's (`whole_month`, `day` the month's first):
# a year is summed from twelve months' rows and the days of the months it covers in part.
_SPANS = "CROSS JOIN (VALUES (false), (true)) AS span(whole_month)"
_SPAN_DAY = (
    "CASE WHEN span.whole_month THEN date_trunc('month', d.decided_at AT TIME ZONE 'UTC')::date"
    " ELSE (d.decided_at AT TIME ZONE 'UTC')::date END"
)
# {chosen}: the condition that picks the entries to count into the tables, on `d` (guard_decision).
_DAILY = f"""
INSERT INTO guard_decision_daily AS t (day, whole_month, recipient, purpose, destination, allowed, decisions,
                                       last_seq, last_decided_at)
SELECT {_SPAN_DAY}, span.whole_month, d.recipient, coalesce(d.request->>'purpose', ''),
       d.request->>'destination', d.allowed, count(*), max(d.seq), max(d.decided_at)
  FROM guard_decision AS d {_SPANS}
 WHERE {{chosen}} AND NOT d.trial
 GROUP BY 1, 2, 3, 4, 5, 6
ON CONFLICT (day, whole_month, recipient, purpose, destination, allowed) DO UPDATE
   SET decisions = t.decisions + excluded.decisions,
       last_seq = greatest(t.last_seq, excluded.last_seq),
       last_decided_at = greatest(t.last_decided_at, excluded.last_decided_at)
"""
# The categories as the request lists them (an array of strings; anything else lists none).
_CATEGORIES_OF = (
    "jsonb_array_elements_text(CASE WHEN jsonb_typeof(d.request->'data_categories') = 'array'"
    " THEN d.request->'data_categories' ELSE '[]'::jsonb END) AS c(category)"
)
_DAILY_CATEGORY = f"""
INSERT INTO guard_decision_daily_category AS t (day, whole_month, recipient, category, decisions)
SELECT {_SPAN_DAY}, span.whole_month, d.recipient, c.category, count(*)
  FROM guard_decision AS d CROSS JOIN LATERAL {_CATEGORIES_OF} {_SPANS}
 WHERE {{chosen}} AND d.allowed AND NOT d.trial AND c.category IS NOT NULL
 GROUP BY 1, 2, 3, 4
ON CONFLICT (day, whole_month, recipient, category) DO UPDATE SET decisions = t.decisions + excluded.decisions
"""
_HOURS = """
INSERT INTO guard_log_hour AS t (hour, last_seq, seq_through)
SELECT date_trunc('hour', d.decided_at, 'UTC'), max(d.seq), max(d.seq)
  FROM guard_decision AS d
 WHERE {chosen}
 GROUP BY 1
ON CONFLICT (hour) DO UPDATE SET last_seq = greatest(t.last_seq, excluded.last_seq)
RETURNING hour
"""
# The running maximum from hour $1 on (usually the last hour or two: entries arrive in order but for minutes).
_HOURS_THROUGH = """
WITH before AS (
    SELECT coalesce((SELECT seq_through FROM guard_log_hour WHERE hour < $1 ORDER BY hour DESC LIMIT 1), 0) AS seq
), running AS (
    SELECT hour, greatest((SELECT seq FROM before), max(last_seq) OVER (ORDER BY hour)) AS through
      FROM guard_log_hour WHERE hour >= $1
)
UPDATE guard_log_hour AS t SET seq_through = running.through
  FROM running
 WHERE t.hour = running.hour AND t.seq_through IS DISTINCT FROM running.through
"""
_HEADS = """
INSERT INTO guard_rollup_head AS t (writer, wseq)
SELECT d.writer, max(d.wseq) FROM guard_decision AS d WHERE {chosen} GROUP BY 1
ON CONFLICT (writer) DO UPDATE SET wseq = greatest(t.wseq, excluded.wseq)
"""
ROLLUP_TABLES = ("guard_decision_daily", "guard_decision_daily_category", "guard_log_hour", "guard_rollup_head")


async def _count_in(connection: asyncpg.Connection, chosen: str, *arguments: Any) -> None:
    for statement in (_DAILY, _DAILY_CATEGORY, _HEADS):
        await connection.execute(statement.format(chosen=chosen), *arguments)
    hours = await connection.fetch(_HOURS.format(chosen=chosen), *arguments)
    if hours:
        await connection.execute(_HOURS_THROUGH, min(row["hour"] for row in hours))


async def count_sealed(connection: asyncpg.Connection, seqs: Sequence[int]) -> None:
    """Count the entries just sealed (their `seq`) into the rollup, in the caller's (the seal's) transaction."""
    if seqs:
        await _count_in(connection, "d.seq = ANY($1::bigint[])", list(seqs))


async def rebuild_rollup(connection: asyncpg.Connection) -> int:
    """Recount the rollup from every sealed entry (those in the log's order, guard_log_leaf), in batches of
    leaves, in one transaction under the checkpoint writer's lock; the number of sealed entries."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", CHECKPOINT_LOCK_ID)
        await connection.execute("DELETE FROM " + "; DELETE FROM ".join(ROLLUP_TABLES))
        leaves = int(await connection.fetchval("SELECT coalesce(max(leaf_index) + 1, 0) FROM guard_log_leaf"))
        chosen = "d.seq IN (SELECT seq FROM guard_log_leaf WHERE leaf_index >= $1 AND leaf_index < $2)"
        for start in range(0, leaves, REBUILD_BATCH):
            await _count_in(connection, chosen, start, start + REBUILD_BATCH)
    return leaves


# --- Reading -------------------------------------------------------------------------------------------

# What a reader uses of an entry counted directly.
_COLUMNS = "seq, decided_at, recipient, allowed, trial, request"


def _unsealed(columns: str) -> str:
    """The entries past the rollup's heads (`columns` of them): each writer's chain after its counted head,
    through (writer, wseq). MATERIALIZED: read first, then filtered; PostgreSQL would otherwise push the period's
    condition in and read the whole period's (decided_at, seq) index to intersect it with the tail (33 ms for
    100,000 entries, 500 ms for half the log)."""
    return f"""
unsealed AS MATERIALIZED (
    SELECT {", ".join("d." + column for column in columns.split(", "))} FROM guard_log_writer AS w
      LEFT JOIN guard_rollup_head AS h ON h.writer = w.writer
      JOIN guard_decision AS d ON d.writer = w.writer AND d.wseq > coalesce(h.wseq, 0)
)"""


# How many entries that is (the heads alone: no entry read).
_UNSEALED_SIZE = """
SELECT coalesce(sum(w.last_wseq - coalesce(h.wseq, 0)), 0)
  FROM guard_log_writer AS w LEFT JOIN guard_rollup_head AS h ON h.writer = w.writer
"""


@dataclass(slots=True)
class RecipientCounts:
    allowed: int = 0
    denied: int = 0
    last_share_seq: int | None = None
    last_share_at: datetime | None = None
    last_share_id: str | None = None
    destinations: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class DecisionCounts:
    """A period's decisions (trials aside): per recipient, and allowed/denied per (recipient, purpose)."""

    recipients: dict[str, RecipientCounts]
    by_purpose: dict[tuple[str, str], tuple[int, int]]


def whole_utc_days(first: datetime, after: datetime) -> tuple[date, date] | None:
    """The UTC days wholly inside [first, after) (first day, past-the-last day), None if none is."""
    start = first.astimezone(UTC)
    day = start.date() if start.time() == time() else start.date() + timedelta(days=1)
    end = after.astimezone(UTC).date()
    return (day, end) if day < end else None


def _rolled(table: str, columns: str) -> str:
    """The rollup's rows of a period's whole UTC days: whole months from their months' rows, the days before the
    first whole month and from the last one's end from their days' rows (three ranges of the table's
    (whole_month, day, …) index)."""
    return (
        f"SELECT {columns} FROM {table} WHERE whole_month AND day >= :first_month AND day < :end_month"
        f" UNION ALL SELECT {columns} FROM {table} WHERE NOT whole_month AND day >= :first_date AND day < :first_month"
        f" UNION ALL SELECT {columns} FROM {table} WHERE NOT whole_month AND day >= :end_month AND day < :end_date"
    )


def _whole_months(first: date, end: date) -> tuple[date, date]:
    """The months wholly inside the days [first, end) (first month's first day, past-the-last month's first
    day); (end, end) if none is."""
    month = first if first.day == 1 else (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    past = end.replace(day=1)
    return (month, past) if month < past else (end, end)


def _period_sql(whole: tuple[date, date] | None) -> tuple[str, str]:
    """(rollup rows, log entries counted directly) for the period: the whole UTC days' rows from the rollup, the
    entries of the partial days at either end and the unsealed ones of the whole days from the log."""
    if whole is None:
        return "SELECT * FROM guard_decision_daily WHERE false", (
            f"SELECT {_COLUMNS} FROM guard_decision WHERE decided_at >= :start AND decided_at < :end AND NOT trial"
        )
    edges = (
        f"SELECT {_COLUMNS} FROM guard_decision WHERE decided_at >= :start AND decided_at < :first_day AND NOT trial"
        f" UNION ALL SELECT {_COLUMNS} FROM guard_decision"
        "  WHERE decided_at >= :end_day AND decided_at < :end AND NOT trial"
        " UNION ALL SELECT u.* FROM unsealed AS u"
        " WHERE u.decided_at >= :first_day AND u.decided_at < :end_day AND NOT u.trial"
    )
    return _rolled("guard_decision_daily", "*"), edges


async def decision_counts(session: AsyncSession, first: datetime, after: datetime) -> DecisionCounts:
    """The decisions (trials aside) with `first` <= decided_at < `after`, counted from the rollup and, for what it
    does not hold, from the log: each statement reads the rollup, its heads and the log at one snapshot."""
    whole = whole_utc_days(first, after)
    rolled, direct = _period_sql(whole)
    # The tail's row estimate (a third of the log, for want of statistics on it) makes these statements look
    # costly enough for PostgreSQL to compile them (JIT): 70 ms of a 150 ms statement that reads a few thousand rows.
    await session.execute(text("SET LOCAL jit = off"))
    bounds: dict[str, Any] = {"start": first, "end": after}
    if whole is not None:
        months = _whole_months(*whole)
        bounds |= {
            "first_date": whole[0],
            "end_date": whole[1],
            "first_month": months[0],
            "end_month": months[1],
            "first_day": datetime.combine(whole[0], time(), tzinfo=UTC),
            "end_day": datetime.combine(whole[1], time(), tzinfo=UTC),
        }
    groups = await session.execute(
        text(
            f"""
            WITH {_unsealed(_COLUMNS)}, direct AS ({direct}), facts AS (
                SELECT recipient, purpose, destination, allowed, decisions, last_seq, last_decided_at FROM ({rolled}) r
                UNION ALL
                SELECT recipient, coalesce(request->>'purpose', ''), request->>'destination', allowed, 1, seq,
                       decided_at
                  FROM direct
            )
            SELECT recipient, purpose, destination, allowed, sum(decisions) AS decisions,
                   max(last_seq) AS last_seq, max(last_decided_at) AS last_decided_at
              FROM facts GROUP BY 1, 2, 3, 4
            """
        ),
        bounds,
    )
    recipients: dict[str, RecipientCounts] = {}
    by_purpose: dict[tuple[str, str], tuple[int, int]] = {}
    for row in groups:
        counts = recipients.setdefault(row.recipient, RecipientCounts())
        allowed, denied = by_purpose.get((row.recipient, row.purpose), (0, 0))
        if row.allowed:
            counts.allowed += int(row.decisions)
            allowed += int(row.decisions)
            if row.destination is not None:
                counts.destinations.add(row.destination)
            if counts.last_share_seq is None or row.last_seq > counts.last_share_seq:
                counts.last_share_seq = int(row.last_seq)
            if counts.last_share_at is None or row.last_decided_at > counts.last_share_at:
                counts.last_share_at = row.last_decided_at
        else:
            counts.denied += int(row.decisions)
            denied += int(row.decisions)
        by_purpose[(row.recipient, row.purpose)] = (allowed, denied)
    rolled_categories = (
        _rolled("guard_decision_daily_category", "recipient, category")
        if whole is not None
        else "SELECT NULL::text AS recipient, NULL::text AS category WHERE false"
    )
    categories = await session.execute(
        text(
            f"""
            WITH {_unsealed(_COLUMNS)}, direct AS ({direct})
            SELECT DISTINCT recipient, category FROM (
                {rolled_categories}
                UNION ALL
                SELECT d.recipient, c.category FROM direct AS d CROSS JOIN LATERAL {_CATEGORIES_OF}
                 WHERE d.allowed AND c.category IS NOT NULL
            ) AS shared
            """
        ),
        bounds,
    )
    for row in categories:
        if row.recipient in recipients:
            recipients[row.recipient].categories.add(row.category)
    last = {c.last_share_seq: c for c in recipients.values() if c.last_share_seq is not None}
    if last:
        ids = await session.execute(
            text("SELECT seq, decision_id::text AS id FROM guard_decision WHERE seq = ANY(:seqs)"),
            {"seqs": list(last)},
        )
        for row in ids:
            last[row.seq].last_share_id = row.id
    return DecisionCounts(recipients, by_purpose)


async def decided_before_bound(session: AsyncSession, until: datetime, tail_limit: int) -> int | None:
    """A `seq` no entry decided before `until` exceeds (the sealed ones' from `guard_log_hour`, the unsealed
    ones' counted directly), or None when the unsealed tail is over `tail_limit` entries (checkpoints stalled:
    the caller pages another way)."""
    # One statement: the tail is read only when it is small (PostgreSQL runs a sub-select when its value is used).
    bound = await session.execute(
        text(
            f"""
            WITH {_unsealed("seq, decided_at")}
            SELECT CASE WHEN ({_UNSEALED_SIZE}) > :tail_limit THEN NULL ELSE greatest(
                (SELECT seq_through FROM guard_log_hour WHERE hour < :until ORDER BY hour DESC LIMIT 1),
                (SELECT max(u.seq) FROM unsealed AS u WHERE u.decided_at < :until), 0) END
            """
        ),
        {"until": until, "tail_limit": tail_limit},
    )
    found = bound.scalar_one()
    return None if found is None else int(found)


# --- Checking ----------------------------------------------------------------------------------------------


async def rollup_differences(connection: asyncpg.Connection) -> list[str]:
    """Where the rollup differs from a direct count of the sealed entries (empty when it agrees)."""
    problems: list[str] = []
    chosen = "d.seq IN (SELECT seq FROM guard_log_leaf)"
    checks = {
        "guard_decision_daily": (
            "SELECT day, whole_month, recipient, purpose, destination, allowed, decisions, last_seq, last_decided_at"
            " FROM guard_decision_daily",
            f"SELECT {_SPAN_DAY}, span.whole_month, d.recipient, coalesce(d.request->>'purpose', ''),"
            f" d.request->>'destination', d.allowed, count(*), max(d.seq), max(d.decided_at)"
            f" FROM guard_decision d {_SPANS} WHERE {chosen} AND NOT d.trial GROUP BY 1, 2, 3, 4, 5, 6",
        ),
        "guard_decision_daily_category": (
            "SELECT day, whole_month, recipient, category, decisions FROM guard_decision_daily_category",
            f"SELECT {_SPAN_DAY}, span.whole_month, d.recipient, c.category, count(*)"
            f" FROM guard_decision d CROSS JOIN LATERAL {_CATEGORIES_OF} {_SPANS}"
            f" WHERE {chosen} AND d.allowed AND NOT d.trial AND c.category IS NOT NULL GROUP BY 1, 2, 3, 4",
        ),
        "guard_log_hour": (
            "SELECT hour, last_seq, seq_through FROM guard_log_hour",
            "SELECT hour, last_seq, max(last_seq) OVER (ORDER BY hour) FROM (SELECT date_trunc('hour', d.decided_at,"
            f" 'UTC') AS hour, max(d.seq) AS last_seq FROM guard_decision d WHERE {chosen} GROUP BY 1) AS h",
        ),
        "guard_rollup_head": (
            "SELECT writer, wseq FROM guard_rollup_head",
            f"SELECT d.writer, max(d.wseq) FROM guard_decision d WHERE {chosen} GROUP BY 1",
        ),
    }
    for table, (stored, counted) in checks.items():
        extra = await connection.fetchval(f"SELECT count(*) FROM (({stored}) EXCEPT ALL ({counted})) AS x")
        missing = await connection.fetchval(f"SELECT count(*) FROM (({counted}) EXCEPT ALL ({stored})) AS x")
        if extra or missing:
            problems.append(f"{table}: {extra} rows not in a direct count of the sealed entries, {missing} missing")
    return problems
