"""The composition root: every long-lived part of one app instance, built from the settings in one place,
started and stopped in order by the app's lifespan, and handed to handlers by dependency injection.

Handlers ask for `services: NamedDependency[Services]` (Litestar's `Provide`, see `dependencies`); middleware,
hooks and the check lane, which are not handlers, read the same object through `services_of(app)`. Nothing else
is kept on the app's state: one typed object instead of a dozen untyped attributes, so a reader and mypy can
follow every use to its definition. The CLI builds what it needs through `open_guard` with the same constructors.
"""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from guard.fairness import BatchAdmission
from guard.obedience import GuardRoleWatch, ObedienceAnnouncer, Positions
from guard.objections import RESTRICTIONS, ObjectionIndex
from guard.service import GuardRuntime
from guard.snapshot import SnapshotRefresher
from guard.subjects import SubjectKey, SubjectKeyError, shared_subject_key, subject_key_for
from kernel import counters
from kernel.db import asyncpg_dsn, dispose_within, make_engine, make_sessionmaker, session_scope
from kernel.settings import Settings
from ledger.append import DecisionLogWriter, writer_origin
from ledger.evidence import EvidenceWatch
from ledger.proofs import ProofService
from ledger.seal import CheckpointPublisher
from registry.credentials import Principal
from registry.jobs.scheduler import start_scheduler
from registry.reports import ReportWorker
from registry.services.users import principal_for_session, shared_secret
from registry.snapshot_source import RegistryTables
from web.api_keys import ApiKeyCache
from web.ui.first_view import FirstViews
from web.ui.oidc import OidcClient

log = logging.getLogger(__name__)

SERVICES = "services"  # the one key of the app's state
SESSION_COOKIE = "registry_session"  # the UI's sign-in cookie; web/auth.py re-exports it
UI_SESSION_SECRET = "ui_session_secret"  # the shared secret the UI's CSRF tokens are keyed with, when not set


@dataclass
class Services:
    """One app instance's running parts."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    api_keys: ApiKeyCache
    reports: ReportWorker
    subject_key: SubjectKey
    log_writer: DecisionLogWriter
    snapshots: SnapshotRefresher
    objections: ObjectionIndex
    restrictions: ObjectionIndex  # (the same machinery over the restrictions, Art. 18)
    checkpoints: CheckpointPublisher | None
    guard: GuardRuntime
    batches: BatchAdmission
    # Evidence of tampering with the decision log (every check fails closed while an alarm is open), and the
    # worker that builds receipts and consistency proofs off the event loop.
    evidence: EvidenceWatch
    proofs: ProofService
    scheduler: AsyncIOScheduler | None = None
    # Single sign-on's client at the issuer (web/ui/oidc.py), None without REGISTRY_OIDC_ISSUER.
    sign_on: OidcClient | None = None
    # The UI's CSRF key: from the settings, else the secret every instance shares in the database (read at start).
    csrf_secret: str | None = None
    # Under `registry serve`, where the guard role answers checks on processes of its own: a guard-role worker
    # announces what it obeys, and the web role holds a write's answer until every guard-role worker obeys it
    # (guard/obedience.py). Both None where one process plays both roles.
    announcer: ObedienceAnnouncer | None = None
    guard_role: GuardRoleWatch | None = None
    # The pages' first view of each snapshot, prepared in a worker process (web/ui/first_view.py); None on the
    # guard role, which serves no pages and must start no such work.
    first_views: FirstViews | None = None

    async def obey_subject_rights(self) -> None:
        """A committed objection or restriction is obeyed by the guard before it is answered: this process's
        indexes catch up now, and the guard role's (other processes under `registry serve`) within the bound
        (`write_visibility_timeout_seconds`); past it the change has still been made, and is answered so."""
        await self.objections.refresh_now()
        await self.restrictions.refresh_now()
        if self.guard_role is None:
            return
        wanted = Positions(objections=self.objections.position(), restrictions=self.restrictions.position())
        if not await self.guard_role.wait_for(wanted, self.settings.write_visibility_timeout_seconds):
            log.warning("answered a data subject's objection or restriction before the guard role obeyed it")

    async def resolve_session(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
        """The user its session cookie signs in, if any (the UI's login; the API takes bearer keys only)."""
        token = connection.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 200:
            return None
        async with self.sessionmaker() as session:
            return await principal_for_session(session, token)


async def registry_subject_key(settings: Settings, role: str = "guard") -> SubjectKey:
    """This instance's subject key once the fingerprint the database records has confirmed it (SubjectKeyError
    otherwise: an instance without the registry's key must not start, and makes none of its own). With the
    database out of reach, the key that is here is used, never one made now: checks naming a subject answer
    503 until the objections can be read anyway."""
    assert settings.database_url, "REGISTRY_DATABASE_URL is not set"
    try:
        connection = await asyncpg.connect(asyncpg_dsn(settings.database_url), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("the subject key could not be held to the registry's fingerprint (%s): using the key here", exc)
        return subject_key_for(settings, create=False)
    try:
        return await shared_subject_key(connection, settings, writer_origin(role))
    except SubjectKeyError as exc:
        log.error("this instance does not start: %s", exc)
        raise
    finally:
        await connection.close(timeout=5)


def build_services(settings: Settings, subject_key: SubjectKey, *, role: str = "guard") -> Services:
    """Every part constructed, none started. The subject key is read before (`registry_subject_key`): a guard
    that cannot digest a subject as the registry's other instances do must not start. `role` names who writes
    to the decision log."""
    assert settings.database_url, "REGISTRY_DATABASE_URL is not set"
    dsn = asyncpg_dsn(settings.database_url)
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    log_writer = DecisionLogWriter(
        dsn, batch_max=settings.decision_log_batch_max, chains=settings.decision_log_chains, role=role
    )
    # Evidence of tampering found here or by another instance makes this guard fail closed until resolved.
    evidence = EvidenceWatch(dsn, writer_origin(role), settings.snapshot_poll_seconds)
    log_writer.on_tampering = evidence.raise_
    evidence.on_resolved.append(log_writer.start_afresh)
    proofs = ProofService(dsn)
    snapshots = SnapshotRefresher(
        sessionmaker,
        settings.database_url,
        max_age_seconds=settings.snapshot_max_age_seconds,
        poll_seconds=settings.snapshot_poll_seconds,
        full_reload_seconds=settings.snapshot_full_reload_seconds,
        source=RegistryTables(),
    )
    objections = ObjectionIndex(
        dsn, max_age_seconds=settings.snapshot_max_age_seconds, poll_seconds=settings.snapshot_poll_seconds
    )
    restrictions = ObjectionIndex(
        dsn,
        max_age_seconds=settings.snapshot_max_age_seconds,
        poll_seconds=settings.snapshot_poll_seconds,
        table=RESTRICTIONS,
    )
    # Off the guard's hot path: its own task and connection, every `checkpoint_seconds`; under `registry serve`
    # on the web role (a refused checkpoint raises its alarm through the database, which the guard role watches).
    checkpoints = (
        CheckpointPublisher(dsn, settings, settings.checkpoint_seconds, evidence)
        if settings.checkpoint_seconds > 0 and settings.process_role != "guard"
        else None
    )
    announcer = guard_role = None
    if settings.process_role == "guard":
        announcer = ObedienceAnnouncer(
            dsn,
            settings.guard_role_instance,
            writer_origin(role),
            lambda: Positions(snapshots.position(), objections.position(), restrictions.position()),
        )
        for copy in (snapshots, objections, restrictions):
            copy.on_confirmed.append(announcer.poke)
    elif settings.process_role == "web":
        guard_role = GuardRoleWatch(dsn, settings.guard_role_instance, settings.guard_role_workers)
    first_views = (
        FirstViews(settings.database_url, int(settings.expiring_warning_days), lambda: snapshots.current)
        if settings.process_role != "guard"
        else None
    )
    return Services(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        api_keys=ApiKeyCache(),
        reports=ReportWorker(),
        subject_key=subject_key,
        log_writer=log_writer,
        snapshots=snapshots,
        objections=objections,
        restrictions=restrictions,
        checkpoints=checkpoints,
        guard=GuardRuntime(
            snapshots=snapshots,
            log=log_writer,
            settings=settings,
            objections=objections,
            subject_key=subject_key,
            evidence=evidence,
            proofs=proofs,
            restrictions=restrictions,
        ),
        batches=BatchAdmission(settings.guard_batches_per_key),
        evidence=evidence,
        proofs=proofs,
        sign_on=OidcClient(settings) if settings.oidc_enabled else None,
        announcer=announcer,
        guard_role=guard_role,
        first_views=first_views,
    )


@asynccontextmanager
async def running(services: Services) -> AsyncIterator[Services]:
    """Start the parts in order (the log writer before the guard answers, the snapshot before it decides) and
    stop them in reverse, whatever failed in between."""
    settings = services.settings
    try:
        services.csrf_secret = settings.session_secret.get_secret_value() if settings.session_secret else None
        if not services.csrf_secret:
            async with session_scope(services.sessionmaker) as session:
                services.csrf_secret = await shared_secret(session, UI_SESSION_SECRET)
        await services.evidence.start()
        services.log_writer.start()
        if services.guard_role is not None:  # listening before the first write can wait on it
            await services.guard_role.start()
        if services.first_views is not None:  # each new snapshot's first view prepared as it comes
            services.snapshots.on_confirmed.append(services.first_views.snapshot_confirmed)
        await services.snapshots.start()
        await services.objections.start()
        await services.restrictions.start()
        if services.announcer is not None:
            await services.announcer.start()
        if services.checkpoints is not None:
            services.checkpoints.start()
        # The reminders' scheduler runs on the web role: a job's queries and e-mails stay off the guard's loop.
        if settings.scheduler_enabled and settings.process_role != "guard":
            services.scheduler = await start_scheduler(services.sessionmaker, settings)
        yield services
    finally:
        if services.scheduler is not None:
            services.scheduler.shutdown(wait=False)
            services.scheduler = None
        if services.checkpoints is not None:
            await services.checkpoints.stop()
        if services.announcer is not None:
            await services.announcer.stop()
        await services.restrictions.stop()
        await services.objections.stop()
        await services.snapshots.stop()
        if services.guard_role is not None:
            await services.guard_role.stop()
        await services.log_writer.stop()
        await services.evidence.stop()
        counters.flush()  # (the last second's checks, before the process goes)
        services.proofs.close()
        services.reports.close()
        if services.first_views is not None:
            services.first_views.close()
        if services.sign_on is not None:
            await services.sign_on.aclose()
        await dispose_within(services.engine)


@asynccontextmanager
async def open_guard(settings: Settings) -> AsyncIterator[GuardRuntime]:
    """The guard alone, for one command (`registry guard check`): the same parts a serving instance decides
    with (snapshot, objection index, decision-log writer, evidence watch), started for the command and stopped
    after it. SubjectKeyError when this host has not the registry's subject key."""
    services = build_services(settings, await registry_subject_key(settings, "cli"), role="cli")
    await services.evidence.start()
    services.log_writer.start()
    try:
        await services.snapshots.start()
        await services.objections.start()
        await services.restrictions.start()
        yield services.guard
    finally:
        await services.restrictions.stop()
        await services.objections.stop()
        await services.snapshots.stop()
        await services.log_writer.stop()
        await services.evidence.stop()
        counters.flush()  # (the last second's checks, before the process goes)
        services.proofs.close()
        await dispose_within(services.engine)


def lifespan(settings: Settings) -> Callable[[Litestar], Any]:
    """The app's lifespan: build the services, keep them as the app's one piece of state, run them."""

    @asynccontextmanager
    async def composition_root(app: Litestar) -> AsyncIterator[None]:
        # The decision log names who wrote each chain: a guard-role worker, the web role (its "try a share" page)
        # or the one process playing both.
        role = "web" if settings.process_role == "web" else "guard"
        subject_key = await registry_subject_key(settings, role)
        async with running(build_services(settings, subject_key, role=role)) as services:
            app.state[SERVICES] = services
            try:
                yield
            finally:
                del app.state[SERVICES]

    return composition_root


class ServicesNotStarted(RuntimeError):
    """A request arrived before the lifespan built the services, or after it stopped them."""


def services_of(app: Litestar) -> Services:
    services = app.state.get(SERVICES)
    if not isinstance(services, Services):
        raise ServicesNotStarted("the app's services are not running")
    return services


def started_services(app: Litestar) -> Services | None:
    """The services when they run, else None (health and the check lane answer without them)."""
    services = app.state.get(SERVICES)
    return services if isinstance(services, Services) else None


def _provide_services(request: Request[Any, Any, Any]) -> Services:
    # The request, not an injected `state`: Litestar copies the app's state for each injection of it.
    return services_of(request.app)


dependencies: dict[str, Provide] = {"services": Provide(_provide_services, sync_to_thread=False)}
