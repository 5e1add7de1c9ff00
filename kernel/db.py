"""Database engine, sessions, and the schema upgrade run at start-up."""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# One arbitrary, fixed advisory-lock id: instances starting together take turns upgrading the schema.
SCHEMA_UPGRADE_LOCK_ID = 7_411_028_001
REGISTRY_CHANGED_CHANNEL = "registry_changed"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


# What a request meets when the database cannot be reached (down, restarting, refusing connections, the pool
# exhausted): answered as "unavailable" (the API's 503, the UI's error page) and logged as one line, not a
# traceback per request.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    ConnectionError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


# SQLSTATEs of a server that will not take connections: connection exceptions (08), the operator's shutdown and
# "cannot connect now" (57P), a database closed to connections (55000, ALLOW_CONNECTIONS false).
UNAVAILABLE_SQLSTATES = ("08", "57P", "55000")


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` says the database cannot be reached (not that a statement was wrong): `database_outage`."""
    return exc is not None and database_outage(exc) is not None


def _refuses_connections(exc: BaseException) -> bool:
    """A driver error whose SQLSTATE says the server will not take connections (UNAVAILABLE_SQLSTATES)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    original = getattr(exc, "orig", None) or exc
    sqlstate = str(getattr(original, "sqlstate", None) or getattr(original, "pgcode", None) or "")
    return isinstance(exc, DBAPIError | asyncpg.PostgresError) and sqlstate.startswith(UNAVAILABLE_SQLSTATES)


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (postgresql+asyncpg://…) as a DSN asyncpg.connect accepts, for the guard's own
    connections (the snapshot's listener, the decision-log writer)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# How many revisions' change rows stay in `registry_change`: an instance further behind than this reloads
# the whole registry anyway. Pruned every PRUNE_EVERY revisions by the write that reaches one.
CHANGES_KEPT = 1000
PRUNE_EVERY = 100
# Session info keys: the registry revision a session's open transaction raised, and the last one it committed
# (read-your-writes waits for that one: web/visibility.py).
PENDING_REVISION = "registry_pending_revision"
WRITTEN_REVISION = "registry_written_revision"


@event.listens_for(Session, "after_commit")
def _revision_committed(session: Session) -> None:
    pending = session.info.pop(PENDING_REVISION, None)
    if pending is not None:
        session.info[WRITTEN_REVISION] = pending


@event.listens_for(Session, "after_rollback")
def _revision_rolled_back(session: Session) -> None:
    session.info.pop(PENDING_REVISION, None)


async def notify_registry_changed(
    session: AsyncSession,
    what: str,
    *,
    parties: Iterable[str] = (),
    agreements: Iterable[str] = (),
    everything: bool = False,
) -> int:
    """Tell every instance (and this one) that the registry changed; the new revision.

    NOTIFY is delivered at commit, so a rolled-back write never announces itself. The revision moves in the
    same transaction, and `registry_change` records which parties and agreements it touched: each instance's
    guard reads only those rows (guard/snapshot.py), and a revision it finds no change row for (a notice lost,
    rows pruned) makes it reload everything. The notice carries the revision first (``r<n> <what>``): a notice
    without one (sent by hand) asks for a full reload."""
    revision = (
        await session.execute(
            text(
                "WITH bumped AS (INSERT INTO registry_revision (id, revision) VALUES (1, 1)"
                " ON CONFLICT (id) DO UPDATE SET revision = registry_revision.revision + 1 RETURNING revision)"
                " INSERT INTO registry_change (revision, parties, agreements, everything)"
                " SELECT revision, :parties, :agreements, :everything FROM bumped RETURNING revision"
            ),
            {"parties": sorted(set(parties)), "agreements": sorted(set(agreements)), "everything": everything},
        )
    ).scalar_one()
    if revision % PRUNE_EVERY == 0:
        await session.execute(
            text("DELETE FROM registry_change WHERE revision <= :oldest"), {"oldest": revision - CHANGES_KEPT}
        )
    await session.execute(
        # (marked as announced: the registry tables' triggers then send no notice of their own, migration 0018)
        text("SELECT pg_notify(:channel, :payload), set_config('registry.change_announced', 'on', true)"),
        {"channel": REGISTRY_CHANGED_CHANNEL, "payload": f"r{revision} {what}"[:1000]},
    )
    session.info[PENDING_REVISION] = revision
    return int(revision)


async def registry_revision(session: AsyncSession) -> int:
    """The registry's revision (0 before the first write)."""
    return int((await session.execute(text("SELECT revision FROM registry_revision WHERE id = 1"))).scalar() or 0)


def alembic_config(url: str) -> "object":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Upgrade under a PostgreSQL advisory lock so several instances can start at once."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)  # type: ignore[arg-type]


def downgrade_schema(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)  # type: ignore[arg-type]


# How long an app's shutdown waits for its pool's connections to close.
DISPOSE_TIMEOUT_SECONDS = 10.0


async def dispose_within(engine: AsyncEngine, within_seconds: float = DISPOSE_TIMEOUT_SECONDS) -> None:
    """Close the engine's pooled connections, waiting at most `within_seconds`.

    Closing an asyncpg connection waits, without a bound of its own, for the server to end it; a server that
    stopped answering (a network cut, a stopped or locked PostgreSQL) would otherwise hold the app's shutdown,
    and a test client's teardown, forever. Past the bound the connections are left to the operating system."""
    task = asyncio.create_task(engine.dispose(), name="engine-dispose")
    # asyncio.wait, unlike wait_for, does not itself wait for a cancellation that never completes.
    done, _ = await asyncio.wait({task}, timeout=within_seconds)
    if not done:
        task.cancel()
        log.warning("the database pool did not close within %.0f s; leaving its connections behind", within_seconds)


def database_outage(exc: BaseException) -> str | None:
    """A one-line reason when `exc` (or what caused it) means the database cannot be reached or used: an outage,
    which the CLI reports as one line and exit code 3, and the server as one log line and a 503, without a
    traceback (not a bug of the registry's)."""
    import asyncpg
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    unreachable = (
        OSError,
        TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.InvalidCatalogNameError,
        asyncpg.InvalidAuthorizationSpecificationError,
        OperationalError,
        InterfaceError,
        PoolTimeoutError,
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, unreachable) or _refuses_connections(current):
            original = getattr(current, "orig", None) or current
            text = str(original).strip().splitlines()[0] if str(original).strip() else ""
            return f"{type(original).__name__}: {text}" if text else type(original).__name__
        current = current.__cause__ or current.__context__
    return None
