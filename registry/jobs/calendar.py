"""The renewals calendar: an iCalendar feed behind a secret, revocable URL for calendar clients.

A calendar client cannot send a bearer header, so the token in the URL is the credential. Only its
SHA-256 is stored; the URL is shown once, when the feed is created."""

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from icalendar import Calendar, Event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.columns import utcnow
from kernel.errors import ConflictError, FieldError, NotFoundError, RegistryValidationError
from kernel.i18n import _, use_locale
from registry.credentials import token_digest
from registry.jobs.renewals import renewal_agreements, renewal_dates
from registry.jobs.schedule import EXPIRY
from registry.models.reminder import CalendarFeed
from registry.services.common import change_record

FEED_TOKEN_PREFIX = "ofxcal_"
FEED_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
UID_DOMAIN = "renewals.offix-registry"


def feed_url(public_url: str, token: str) -> str:
    return f"{public_url}/calendar/{token}.ics"


async def create_feed(session: AsyncSession, name: str, actor: str) -> str:
    """Create a feed; returns its secret token (shown once)."""
    if not FEED_NAME.match(name):
        raise RegistryValidationError(
            [FieldError("name", "1-64 characters: lower-case letters, digits, '-', '_' or '.', starting alphanumeric")]
        )
    if (await session.execute(text("SELECT 1 FROM calendar_feed WHERE name = :name"), {"name": name})).first():
        raise ConflictError(f"a calendar feed named {name!r} exists already (revoked feeds keep their name)")
    token = FEED_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(CalendarFeed(name=name, token_sha256=token_digest(token), created_by=actor))
    session.add(change_record("calendar_feed", name, "create", actor, None, {"name": name}))
    await session.flush()
    return token


async def list_feeds(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT name, created_by, created_at, revoked_at FROM calendar_feed ORDER BY name")
    )
    return [dict(r._mapping) for r in rows]


async def revoke_feed(session: AsyncSession, name: str, actor: str) -> None:
    if not FEED_NAME.fullmatch(name):  # feeds are created with such names only
        raise NotFoundError(f"no active calendar feed named {name!r}")
    result = await session.execute(
        text("UPDATE calendar_feed SET revoked_at = :now WHERE name = :name AND revoked_at IS NULL"),
        {"now": utcnow(), "name": name},
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"no active calendar feed named {name!r}")
    session.add(change_record("calendar_feed", name, "revoke", actor, {"revoked": False}, {"revoked": True}))
    await session.flush()


async def feed_for_token(session: AsyncSession, token: str) -> str | None:
    """The name of the live feed this token opens, or None (unknown and revoked look the same)."""
    name: str | None = (
        await session.execute(
            text("SELECT name FROM calendar_feed WHERE token_sha256 = :digest AND revoked_at IS NULL"),
            {"digest": token_digest(token)},
        )
    ).scalar()
    return name


def event_uid(kind: str, agreement_key: str) -> str:
    """Stable across feed fetches, so a client updates the event in place when a date moves."""
    return f"{kind}-{agreement_key}@{UID_DOMAIN}"


async def renewals_calendar(
    session: AsyncSession, *, public_url: str, now: datetime | None = None, language: str = "en"
) -> bytes:
    """One all-day event per expiry and per notice deadline of every agreement that can lapse; its words in
    `language` (a feed has no browser: REGISTRY_DEFAULT_LANGUAGE)."""
    with use_locale(language):
        return _calendar(await renewal_agreements(session), public_url, now or utcnow())


def _calendar(agreements: Any, public_url: str, stamp: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Offix AB//Processor and recipient registry//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", _("Agreement renewals"))
    for kind, day, a in renewal_dates(agreements):
        event = Event()
        event.add("uid", event_uid(kind, a.key))
        event.add("dtstamp", stamp)
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=1))
        event.add("transp", "TRANSPARENT")
        if kind == EXPIRY:
            event.add("summary", _("Expires: %(key)s (%(party)s)") % {"key": a.key, "party": a.party_name})
            what = _("The agreement expires at the end of this day; after it the guard denies shares with the party.")
        else:
            event.add("summary", _("Notice deadline: %(key)s (%(party)s)") % {"key": a.key, "party": a.party_name})
            what = _("Last day to give notice; otherwise the agreement renews automatically at %(day)s.") % {
                "day": a.expires_on
            }
        party = _("Party: %(name)s (%(key)s)") % {"name": a.party_name, "key": a.party_key}
        owner = _("Owner: %(email)s") % {"email": a.owner_email}
        event.add("description", f"{what}\n{party}\n{owner}")
        event.add("url", f"{public_url}/ui/agreements/{a.key}")
        event.add("categories", ["agreement-" + kind.replace("_", "-")])
        calendar.add_component(event)
    return calendar.to_ical()
