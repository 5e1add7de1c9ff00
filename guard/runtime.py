"""Guard runtime inside the app: the snapshot refresher, the objection index, the decision-log writer and the
checkpoint publisher, one of each per instance, started before the app serves and stopped after it stops."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from litestar import Litestar

from guard.audit import CheckpointPublisher, ProofService
from guard.evidence import EvidenceWatch
from guard.fairness import BatchAdmission
from guard.log import DecisionLogWriter, writer_origin
from guard.objections import ObjectionIndex
from guard.service import GuardRuntime
from guard.snapshot import SnapshotRefresher
from guard.subjects import SubjectKey, SubjectKeyError, shared_subject_key, subject_key_for
from registry.db import asyncpg_dsn
from registry.settings import Settings

log = logging.getLogger(__name__)


async def _registry_subject_key(settings: Settings, dsn: str) -> SubjectKey:
    """This instance's subject key once the database's fingerprint has confirmed it (SubjectKeyError otherwise).
    With the database out of reach, the key that is here is used (never one made now): checks naming a subject
    answer 503 until the objections can be read anyway."""
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("the subject key could not be held to the registry's fingerprint (%s): using the key here", exc)
        return subject_key_for(settings, create=False)
    try:
        return await shared_subject_key(connection, settings, writer_origin("guard"))
    except SubjectKeyError as exc:
        log.error("this instance does not start: %s", exc)
        raise
    finally:
        await connection.close(timeout=5)


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
    )
    # Evidence of tampering found here or by another instance makes this guard fail closed until resolved.
    evidence = EvidenceWatch(asyncpg_dsn(settings.database_url), writer_origin("guard"), settings.snapshot_poll_seconds)
    writer.on_tampering = evidence.raise_
    evidence.on_resolved.append(writer.start_afresh)
    # Off the guard's hot path: its own task and connection, every `checkpoint_seconds`.
    publisher = (
        CheckpointPublisher(asyncpg_dsn(settings.database_url), settings, settings.checkpoint_seconds, evidence)
        if settings.checkpoint_seconds > 0
        else None
    )
    objections = ObjectionIndex(
        asyncpg_dsn(settings.database_url),
        max_age_seconds=settings.snapshot_max_age_seconds,
        poll_seconds=settings.snapshot_poll_seconds,
    )
    # The subject key is read (or, for a new registry, created) before serving, and held to the fingerprint the
    # database records: a guard without the registry's key would allow what the others deny; it must not start.
    subject_key = await _registry_subject_key(settings, asyncpg_dsn(settings.database_url))
    app.state.subject_key = subject_key
    proofs = ProofService(asyncpg_dsn(settings.database_url))
    await evidence.start()
    writer.start()
    await refresher.start()
    await objections.start()
    if publisher is not None:
        publisher.start()
    app.state.guard = GuardRuntime(
        snapshots=refresher,
        log=writer,
        settings=settings,
        objections=objections,
        subject_key=subject_key,
        evidence=evidence,
        proofs=proofs,
    )
    # Health and metrics read the refresher's state here; the objection API catches the index up after a write.
    app.state.guard_snapshots = refresher
    app.state.guard_batches = BatchAdmission(settings.guard_batches_per_key)
    app.state.guard_objections = objections
    app.state.guard_evidence = evidence
    try:
        yield
    finally:
        if publisher is not None:
            await publisher.stop()
        await objections.stop()
        await refresher.stop()
        await writer.stop()
        await evidence.stop()
        proofs.close()
