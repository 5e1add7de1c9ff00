"""Shared fixtures. Each test run builds its databases with the Alembic migrations under names unique to the
run, and drops them at the end, so parallel runs and leftovers never matter: a template at head, a shared
database emptied before every test (`database`), and private clones for tests that need one
(`private_database`). The server is REGISTRY_TEST_POSTGRES_URL (default: the local service, trust auth)."""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient

from kernel.db import make_engine, make_sessionmaker, upgrade_schema
from kernel.settings import Settings
from registry.services.apikeys import create_api_key
from registry.services.registry_document import import_registry, parse_document
from web.app import create_app

SERVER_URL = os.environ.get("REGISTRY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED_FILE = Path(__file__).resolve().parent.parent / "seed" / "offix.yaml"
RUN_ID = uuid.uuid4().hex[:8]


def database_url(name: str) -> str:
    """The asyncpg URL of database `name` on the test server."""
    base, _, _ = SERVER_URL.rpartition("/")
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(name: str, template: str | None = None) -> None:
    await _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def own_registry_record(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and every command it runs) has its own record of the embedded registries created
    (kernel/embedded.py, under XDG_STATE_HOME): one test's registry is not another's "existing one"."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database at the head of the migrations; never connected to after, so that it can be cloned."""
    name = f"registry_test_{RUN_ID}_template"
    asyncio.run(create_database(name))
    try:
        upgrade_schema(database_url(name))
        yield name
    finally:
        asyncio.run(drop_database(name))


@pytest.fixture(scope="session")
def shared_database(template_database: str) -> Iterator[str]:
    """This run's working database, emptied before each test that uses it (creating a database per test
    costs more than a second; emptying one costs milliseconds)."""
    name = f"registry_test_{RUN_ID}_shared"
    asyncio.run(create_database(name, template=template_database))
    try:
        yield name
    finally:
        asyncio.run(drop_database(name))


async def _empty_all_tables(name: str) -> None:
    conn = await asyncpg.connect(SERVER_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        names = [r["t"] for r in tables]
        # The decision log's triggers refuse TRUNCATE (migration 0007): the owner lifts them for the cleanup
        # only, in the one transaction, so no test ever sees them off.
        guarded = await conn.fetch(
            "SELECT DISTINCT quote_ident(c.relname) AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid"
            " WHERE NOT g.tgisinternal AND c.relnamespace = 'public'::regnamespace"
        )
        async with conn.transaction():
            for row in guarded:
                await conn.execute(f"ALTER TABLE {row['t']} DISABLE TRIGGER USER")
            await conn.execute("TRUNCATE " + ", ".join(names) + " RESTART IDENTITY CASCADE")
            for row in guarded:
                await conn.execute(f"ALTER TABLE {row['t']} ENABLE TRIGGER USER")
    finally:
        await conn.close()


@pytest.fixture
async def database(shared_database: str) -> str:
    """An empty, migrated registry database for this test; yields its URL."""
    await _empty_all_tables(shared_database)
    return database_url(shared_database)


@pytest.fixture
async def private_database(template_database: str) -> AsyncIterator[str]:
    """A migrated database of this test's own (for tests that change the schema or must be alone)."""
    name = f"registry_test_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    await create_database(name, template=template_database)
    try:
        yield database_url(name)
    finally:
        await drop_database(name)


def test_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "seed_file": None,
        "scheduler_enabled": False,
        "secure_cookies": False,
        "session_secret": "test-session-secret-" + RUN_ID,
        # Tests name their language; the ones written in English read English pages and e-mails.
        "default_language": "en",
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


async def load_document(url: str, document: dict[str, Any], actor: str = "test") -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await import_registry(session, parse_document(document), actor)
    finally:
        await engine.dispose()


# A share the seed registry allows, every field given: customer name and address to Nordfrakt, Offix's carrier,
# under its DPA, delivered in Sweden.
SEED_ALLOWED_SHARE: dict[str, Any] = {
    "recipient": "nordfrakt",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name", "user.contact.address"],
    "destination": "SE",
    "data_subject": "customer",
}


def seed_document() -> dict[str, Any]:
    return yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))


async def make_key(url: str, name: str, *scopes: str) -> str:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await create_api_key(session, name, list(scopes), "test")
    finally:
        await engine.dispose()


@pytest.fixture
async def seeded_database(database: str) -> str:
    """A database holding the Offix seed registry."""
    await load_document(database, seed_document(), actor="seed")
    return database


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(database: str) -> Litestar:
    return create_app(test_settings(database))


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture
async def seeded_client(seeded_database: str, client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    """A client of an app over the seeded registry (the API's tests; the UI's use `ui_client`)."""
    return client


@pytest.fixture
async def admin_headers(database: str) -> dict[str, str]:
    return bearer(await make_key(database, "admin-test", "admin"))


@pytest.fixture
async def writer_headers(database: str) -> dict[str, str]:
    return bearer(await make_key(database, "writer-test", "registry:read", "registry:write"))


@pytest.fixture
async def reader_headers(database: str) -> dict[str, str]:
    return bearer(await make_key(database, "reader-test", "registry:read"))


@pytest.fixture
async def guard_headers(database: str) -> dict[str, str]:
    return bearer(await make_key(database, "webshop", "guard:check"))
