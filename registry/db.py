"""Database engine, sessions, and the schema upgrade run at start-up."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

# One arbitrary, fixed advisory-lock id: instances starting together take turns upgrading the schema.
SCHEMA_UPGRADE_LOCK_ID = 7_411_028_001
REGISTRY_CHANGED_CHANNEL = "registry_changed"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


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


async def notify_registry_changed(session: AsyncSession, what: str) -> None:
    """Tell every instance (and this one) that the registry changed. NOTIFY is delivered at commit, so a
    rolled-back write never announces itself. The revision moves in the same transaction: it is how a
    snapshot's periodic check sees a change whose notice was lost, without reloading the registry."""
    await session.execute(
        text(
            "INSERT INTO registry_revision (id, revision) VALUES (1, 1)"
            " ON CONFLICT (id) DO UPDATE SET revision = registry_revision.revision + 1"
        )
    )
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": REGISTRY_CHANGED_CHANNEL, "payload": what}
    )


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
