"""APScheduler in every instance: the daily reminder scan at the controller's local time, and a frequent
retry of failed sends (reminders and Art. 19 notifications). Running in several instances is safe: see
registry/jobs/reminders.py."""

import logging
import re
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.calendar import controller_timezone, controller_today
from kernel.settings import Settings, SettingsError
from registry.jobs.reminders import run_reminders, send_pending

log = logging.getLogger(__name__)
SCAN_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_scan_time(value: str) -> tuple[int, int]:
    match = SCAN_TIME.match(value.strip())
    if not match:
        raise SettingsError(f"REGISTRY_REMINDER_SCAN_TIME must be HH:MM (24-hour), not {value!r}")
    return int(match.group(1)), int(match.group(2))


async def daily_reminders(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    async with sessionmaker() as session:
        today = await controller_today(session)
    result, outcomes = await run_reminders(sessionmaker, settings, today=today)
    sent = sum(o.status == "sent" for o in outcomes)
    log.info("reminder scan for %s: %d due, %d new rows, %d sent", today, len(result.due), result.written, sent)


async def retry_reminders(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    async with sessionmaker() as session:
        today = await controller_today(session)
    await send_pending(sessionmaker, settings, today=today)


async def retry_notifications(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Art. 19 notifications that failed are retried like reminders (registry/services/notifications.py)."""
    from registry.services.notifications import send_pending_notifications  # (the service imports the jobs)

    await send_pending_notifications(sessionmaker, settings)


async def start_scheduler(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> AsyncIOScheduler:
    hour, minute = parse_scan_time(settings.reminder_scan_time)
    async with sessionmaker() as session:
        zone = await controller_timezone(session)
    scheduler = AsyncIOScheduler(timezone=zone)
    common: dict[str, Any] = {
        "args": [sessionmaker, settings],
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": 6 * 3600,
    }
    # Also run once at start: an instance that was down at scan time catches up (the scan is idempotent).
    scheduler.add_job(
        daily_reminders,
        CronTrigger(hour=hour, minute=minute, timezone=zone),
        id="reminders-daily",
        next_run_time=datetime.now(zone),
        **common,
    )
    scheduler.add_job(
        retry_reminders,
        IntervalTrigger(seconds=max(settings.reminder_retry_seconds, 30.0), timezone=zone),
        id="reminders-retry",
        **common,
    )
    scheduler.add_job(
        retry_notifications,
        IntervalTrigger(seconds=max(settings.reminder_retry_seconds, 30.0), timezone=zone),
        id="notifications-retry",
        **common,
    )
    scheduler.start()
    return scheduler
