"""Fixtures for tests that talk to `registry serve` over HTTP: one seeded database and one server per module."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import RUN_ID, create_database, database_url, drop_database, load_document, seed_document
from tests.e2e.running_service import RunningService, running_service


@pytest.fixture(scope="module")
async def seeded_service_database(template_database: str) -> AsyncIterator[str]:
    name = f"registry_test_{RUN_ID}_serve_{uuid.uuid4().hex[:6]}"
    await create_database(name, template=template_database)
    try:
        url = database_url(name)
        await load_document(url, seed_document(), actor="seed")
        yield url
    finally:
        await drop_database(name)


@pytest.fixture(scope="module")
def service(seeded_service_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(seeded_service_database, tmp_path_factory.mktemp("serve")) as running:
        yield running
