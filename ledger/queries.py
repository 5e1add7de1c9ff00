"""Reading the decision log: one entry as a document, pages filtered by recipient, outcome and period,
denial summaries (GET /api/guard/decisions and the UI)."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from ledger.append import driver_connection
from ledger.entries import format_timestamp
from ledger.rollup import decided_before_bound
from ledger.tables import GuardDecision, GuardLogWriter

log = logging.getLogger(__name__)

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
        "request_id": row.request_id,
    }


# A filtered listing counts its matches exactly up to this many (through the filter's index); past it, the
# total is PostgreSQL's estimate and the answer says so. An exact count of a large log cost a page ten times over.
COUNT_EXACTLY_UP_TO = 1000


@dataclass(frozen=True, slots=True)
class FoundDecisions:
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


# The unsealed tail (entries since the last checkpoint) a period's bound is computed over, at most; past it
# (checkpoints stalled) a period that ended in the past is paged as one that has not.
BOUND_TAIL_LIMIT = 50_000


async def _period_page(
    session: AsyncSession, conditions: list[Any], before: int | None, count: int, until: datetime | None
) -> list[int]:
    """The `count` highest sequence numbers below `before` of the entries in a period (and other filters).

    decided_at rises with seq only roughly (answers logged in batches, instances' clocks), so a period is not a
    range of seq, and PostgreSQL, walking the primary key backwards until enough entries match, would read every
    entry after the period first. Instead: a period that ends at `until` starts below the highest seq of an entry
    decided before it (ledger/rollup.py: the sealed entries' hour buckets and the unsealed ones directly), then the
    PERIOD_PROBE_ROWS values of seq just below that (seq rises with few gaps) are one short primary-key range;
    when they hold the whole page (any page after the first, and the first of a period that ended within an hour
    of an entry's), it is exact, as every other match lies below them. Otherwise the rest comes from the period's
    (decided_at, seq) index alone, the page's highest seq picked from it (index-only: no rows read)."""
    seq = col(GuardDecision.seq)
    top = before if before is not None else await _last_seq(session) + 1
    # (Only for the first page: a cursor lies inside the period already, just above the next matches.)
    if until is not None and before is None and top > PERIOD_PROBE_ROWS:
        bound = await decided_before_bound(session, until, BOUND_TAIL_LIMIT)
        if bound is not None:
            top = min(top, bound + 1)
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
) -> FoundDecisions:
    """Decisions newest first (by seq), filtered (`decision_filters`).

    Keyset paging: `before` (a page's `next_cursor`) starts below that sequence number, through an index,
    however deep the page; entries logged meanwhile have higher numbers, so paging on never repeats or skips
    one. `offset` still works (it reads and skips its rows, so deep offsets cost what they skip)."""
    conditions = decision_filters(recipient=recipient, outcome=outcome, since=since, until=until, reason=reason)
    seq = col(GuardDecision.seq)
    if (since is not None or until is not None) and offset == 0:
        wanted = await _period_page(session, conditions, before, limit + 1, until)
        query = select(GuardDecision).where(seq.in_(wanted))
    else:
        query = select(GuardDecision).where(*conditions, *([seq < before] if before is not None else []))
        query = query.limit(limit + 1).offset(offset)
    rows = list((await session.execute(query.order_by(seq.desc()))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    total, exact = await _total(session, conditions, since is not None or until is not None)
    return FoundDecisions(
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
