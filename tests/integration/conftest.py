"""Fixtures the integration tests share (the database ones are in tests/conftest.py)."""

from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import test_settings
from tests.integration.mail import SmtpServer
from tests.ui_session import add_user
from web.app import create_app

UI_USERS = (("lena@offix.example", "legal"), ("olle@offix.example", "ops"), ("ada@offix.example", "admin"))


@pytest.fixture
async def ui_client(seeded_database: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A client of an app over the seeded registry with a user of each role (sign in with `as_user`)."""
    for email, role in UI_USERS:
        await add_user(seeded_database, email, role)
    async with AsyncTestClient(create_app(test_settings(seeded_database))) as client:
        yield client


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
