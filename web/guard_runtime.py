"""Guard runtime inside the app: the snapshot refresher, the objection index, the decision-log writer and the
checkpoint publisher, one of each per instance, started before the app serves and stopped after it stops."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from guard.fairness import BatchAdmission
from guard.objections import RESTRICTIONS, ObjectionIndex
from guard.service import GuardRuntime
from guard.snapshot import SnapshotRefresher
from guard.subjects import subject_key_for
from kernel.db import asyncpg_dsn
from ledger.append import DecisionLogWriter
from ledger.seal import CheckpointPublisher
from registry.snapshot_source import RegistryTables


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    settings = app.state.settings
    writer = DecisionLogWriter(asyncpg_dsn(settings.database_url), batch_max=settings.decision_log_batch_max)
    refresher = SnapshotRefresher(
        app.state.sessionmaker,
        settings.database_url,
        max_age_seconds=settings.snapshot_max_age_seconds,
        poll_seconds=settings.snapshot_poll_seconds,
        full_reload_seconds=settings.snapshot_full_reload_seconds,
        source=RegistryTables(),
    )
    # Off the guard's hot path: its own task and connection, every `checkpoint_seconds`.
    publisher = (
        CheckpointPublisher(asyncpg_dsn(settings.database_url), settings, settings.checkpoint_seconds)
        if settings.checkpoint_seconds > 0
        else None
    )
    objections = ObjectionIndex(
        asyncpg_dsn(settings.database_url),
        max_age_seconds=settings.snapshot_max_age_seconds,
        poll_seconds=settings.snapshot_poll_seconds,
    )
    restrictions = ObjectionIndex(
        asyncpg_dsn(settings.database_url),
        max_age_seconds=settings.snapshot_max_age_seconds,
        poll_seconds=settings.snapshot_poll_seconds,
        table=RESTRICTIONS,
    )
    # The subject key is read (or created) before serving: a guard that cannot digest a subject must not start.
    subject_key = subject_key_for(settings)
    app.state.subject_key = subject_key
    writer.start()
    await refresher.start()
    await objections.start()
    await restrictions.start()
    if publisher is not None:
        publisher.start()
    app.state.guard = GuardRuntime(
        snapshots=refresher,
        log=writer,
        settings=settings,
        objections=objections,
        subject_key=subject_key,
        restrictions=restrictions,
    )
    # Health and metrics read the refresher's state here; the objection and restriction APIs catch the indexes up
    # after a write (through `app.state.guard`).
    app.state.guard_snapshots = refresher
    app.state.guard_batches = BatchAdmission(settings.guard_batches_per_key)
    app.state.guard_objections = objections
    app.state.guard_restrictions = restrictions
    try:
        yield
    finally:
        if publisher is not None:
            await publisher.stop()
        await restrictions.stop()
        await objections.stop()
        await refresher.stop()
        await writer.stop()
