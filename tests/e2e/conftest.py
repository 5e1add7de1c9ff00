"""Fixtures for the end-to-end tests: `registry serve` over HTTP (one seeded database and one server per module), and
for the browser tests Chromium and the service in a thread (`ui_service`)."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import RUN_ID, create_database, database_url, drop_database, load_document, seed_document
from tests.e2e.browsing import CHROMIUM_ARGS, SCREENSHOTS, ServiceThread
from tests.e2e.running_service import RunningService, running_service
from tests.ui_session import add_user


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


@pytest.fixture
async def ui_service(seeded_database: str) -> AsyncIterator[ServiceThread]:
    await add_user(seeded_database, "lena@offix.example", "legal")
    async with ServiceThread(seeded_database) as running:
        yield running


@pytest.fixture
def screenshots() -> Iterator[Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield SCREENSHOTS


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
