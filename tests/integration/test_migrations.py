"""The schema is built by the Alembic migrations, and they can be walked down and up again."""

import asyncpg

from kernel.db import downgrade_schema, upgrade_schema
from tests.conftest import SERVER_URL


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(SERVER_URL.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1])
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_downgrade_to_base_and_upgrade_to_head_again(private_database):
    database = private_database
    import asyncio

    from sqlmodel import SQLModel

    import registry.models  # noqa: F401

    expected = set(SQLModel.metadata.tables)
    assert expected <= await _tables(database)
    await asyncio.to_thread(downgrade_schema, database, "base")
    assert await _tables(database) <= {"alembic_version"}
    await asyncio.to_thread(upgrade_schema, database)
    assert expected <= await _tables(database)


def test_the_migrations_match_the_models(template_database):
    """Autogenerate finds nothing to add: models and migrations agree."""
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlmodel import SQLModel

    from tests.conftest import database_url

    async def diff() -> list:
        engine = create_async_engine(database_url(template_database))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
