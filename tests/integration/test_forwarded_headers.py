"""Forwarded headers believed only from configured proxies (issue 33, finding 7), through a real uvicorn server
on the real PostgreSQL: the sign-in throttle counts the address the connection came from, whatever
X-Forwarded-For a local client sends, unless that client is a proxy named in REGISTRY_TRUSTED_PROXIES."""

import asyncio

import asyncpg
import httpx
import pytest
import uvicorn

from cli.roles import forwarded_header_options
from tests.conftest import free_port, test_settings
from tests.integration.test_decision_log import plain_url
from tests.ui_session import csrf_token
from web.app import create_app


async def throttled_addresses(database: str, trusted_proxies: str) -> set[str]:
    """Sign in once with a wrong password, sending X-Forwarded-For, to a server trusting `trusted_proxies`; the
    addresses the throttle counted."""
    port = free_port()
    config = uvicorn.Config(
        create_app(test_settings(database)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **forwarded_header_options(trusted_proxies),
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started:
                break
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            page = await client.get("/ui/login")
            answer = await client.post(
                "/ui/login",
                data={
                    "email": "nobody@offix.example",
                    "password": "wrong",
                    "next": "/ui/",
                    "_csrf_token": csrf_token(page.text),
                },
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
            assert answer.status_code == 401, answer.text
    finally:
        server.should_exit = True
        await serving
    connection = await asyncpg.connect(plain_url(database))
    try:
        rows = await connection.fetch("SELECT key FROM ui_login_throttle WHERE key LIKE 'address:%'")
    finally:
        await connection.close()
    return {row["key"].removeprefix("address:") for row in rows}


async def test_a_local_client_cannot_name_another_address_when_no_proxy_is_trusted(seeded_database):
    assert await throttled_addresses(seeded_database, "") == {"127.0.0.1"}


async def test_the_address_a_trusted_proxy_forwards_is_the_one_counted(seeded_database):
    assert await throttled_addresses(seeded_database, "127.0.0.1") == {"203.0.113.9"}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", {"proxy_headers": False, "forwarded_allow_ips": "127.0.0.1"}),
        (" 10.0.0.5 , 10.0.1.0/24 ", {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.5,10.0.1.0/24"}),
    ],
)
def test_uvicorn_is_told_to_believe_forwarded_headers_only_from_the_proxies_configured(setting, expected):
    assert forwarded_header_options(setting) == expected
