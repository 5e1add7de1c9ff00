"""Upcoming expiries and notice deadlines: what operations need to renew, soonest first."""

from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from registry.jobs.schedule import EXPIRY, NOTICE_DEADLINE, AgreementFacts


async def renewal_agreements(
    session: AsyncSession, *, between: tuple[date, date] | None = None
) -> list[AgreementFacts]:
    """Agreements that can lapse: a dated, unterminated agreement of an active party. With `between` (first and
    last day), only those with an expiry or notice deadline in it: the deadline is never after the expiry, so
    the expiry is on or after the first day and the expiry less the notice days on or before the last."""
    window = (
        "" if between is None else "AND a.expires_on >= :first AND a.expires_on - COALESCE(a.notice_days, 0) <= :last"
    )
    rows = await session.execute(
        text(
            f"""SELECT a.id, a.key, a.kind, p.key, p.name, p.active, a.expires_on, a.terminated_on, a.renewal,
                a.notice_days, a.owner_email
            FROM agreement a JOIN party p ON p.id = a.party_id
            WHERE p.active AND a.terminated_on IS NULL AND a.expires_on IS NOT NULL {window}
            ORDER BY a.key"""
        ),
        {} if between is None else {"first": between[0], "last": between[1]},
    )
    return [AgreementFacts(*r) for r in rows]


def renewal_dates(agreements: list[AgreementFacts]) -> list[tuple[str, date, AgreementFacts]]:
    """Every expiry and notice deadline, as (kind, date, agreement), soonest first."""
    dates: list[tuple[str, date, AgreementFacts]] = []
    for a in agreements:
        if a.expires_on is not None:
            dates.append((EXPIRY, a.expires_on, a))
        if a.notice_deadline is not None:
            dates.append((NOTICE_DEADLINE, a.notice_deadline, a))
    dates.sort(key=lambda d: (d[1], d[2].key, d[0]))
    return dates


def renewal_entry(kind: str, day: date, a: AgreementFacts, today: date) -> dict[str, Any]:
    return {
        "date": day.isoformat(),
        "kind": kind,
        "days_left": (day - today).days,
        "agreement": a.key,
        "agreement_kind": a.kind,
        "party": a.party_key,
        "party_name": a.party_name,
        "renewal": a.renewal,
        "expires_on": a.expires_on.isoformat() if a.expires_on else None,
        "notice_days": a.notice_days,
        "owner_email": a.owner_email,
    }


async def upcoming_renewals(session: AsyncSession, *, today: date, within_days: int) -> list[dict[str, Any]]:
    """Expiries and notice deadlines from `today` to `today + within_days` (inclusive), soonest first."""
    until = today + timedelta(days=within_days)
    return [
        renewal_entry(kind, day, a, today)
        for kind, day, a in renewal_dates(await renewal_agreements(session, between=(today, until)))
        if today <= day <= until
    ]
