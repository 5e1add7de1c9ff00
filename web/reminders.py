"""The reminder jobs in the app: their routes, and the scheduler started in the app's lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar

from web.controllers.renewals import CalendarFeedController, CalendarFeedFile, RenewalController

route_handlers: list[Any] = [RenewalController, CalendarFeedController, CalendarFeedFile]


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Start the reminder scheduler unless `REGISTRY_SCHEDULER_ENABLED` is off."""
    if not app.state.settings.scheduler_enabled:
        app.state.scheduler = None
        yield
        return
    from registry.jobs.scheduler import start_scheduler

    scheduler = await start_scheduler(app.state.sessionmaker, app.state.settings)
    app.state.scheduler = scheduler
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
