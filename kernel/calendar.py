"""The controller's calendar (DESIGN §4.3): agreements start, end and are checked on its days, not UTC's.

The one home of the default zone and of "today". `calendar_today` is pure; `controller_timezone` is the
one read of the controller's zone, at the models' level so the guard's snapshot and CLI (which may not
import registry services) and the registry's jobs, services and pages all share it.
"""

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

# A registry whose controller has not named its zone yet keeps the calendar of the controller it was built for.
DEFAULT_TIMEZONE = "Europe/Stockholm"


def zone_or_default(name: str | None) -> ZoneInfo:
    """The named zone; the default when none is named or the name is unknown (a registry stays usable)."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown controller timezone %r; using %s", name, DEFAULT_TIMEZONE)
        return ZoneInfo(DEFAULT_TIMEZONE)


def calendar_today(zone: str | ZoneInfo | None, now: datetime | None = None) -> date:
    """The date `now` (default: this moment) falls on in `zone` (a name, or the default when None)."""
    tz = zone if isinstance(zone, ZoneInfo) else zone_or_default(zone)
    return (now or datetime.now(tz)).astimezone(tz).date()


async def controller_timezone(session: AsyncSession) -> ZoneInfo:
    """The controller's zone as the registry holds it; the default if unset."""
    # Plain SQL: the tables' model and the input schemas take their default zone from this module.
    name = (await session.execute(text("SELECT timezone FROM controller_profile WHERE id = 1"))).scalar()
    return zone_or_default(name)


async def controller_today(session: AsyncSession, now: datetime | None = None) -> date:
    """Today on the controller's calendar, as the registry holds its zone."""
    return calendar_today(await controller_timezone(session), now)
