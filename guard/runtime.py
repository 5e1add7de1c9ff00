"""Guard runtime inside the app: the snapshot refresher and the decision-log writer, one of each per
instance, started before the app serves and stopped after it stops."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from guard.log import DecisionLogWriter
from guard.snapshot import SnapshotRefresher
from registry.db import asyncpg_dsn


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings = app.state.settings
    writer = DecisionLogWriter(asyncpg_dsn(settings.database_url), batch_max=settings.decision_log_batch_max)
    refresher = SnapshotRefresher(
        app.state.sessionmaker,
        settings.database_url,
        max_age_seconds=settings.snapshot_max_age_seconds,
        poll_seconds=settings.snapshot_poll_seconds,
    )
    writer.start()
    await refresher.start()
    app.state.guard_log = writer
    app.state.guard_snapshots = refresher
    try:
        yield
    finally:
        await refresher.stop()
        await writer.stop()
