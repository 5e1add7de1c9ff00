"""Every endpoint but health needs a key; scopes are least privilege; keys are stored hashed."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.db import make_engine, make_sessionmaker
from tests.conftest import SERVER_URL, bearer, make_key
from web.api_keys import ApiKeyCache

PROTECTED = [
    ("GET", "/api/parties", "registry:read"),
    ("GET", "/api/parties/acme", "registry:read"),
    ("GET", "/api/parties/acme/history", "registry:read"),
    ("POST", "/api/parties", "registry:write"),
    ("PUT", "/api/parties/acme", "registry:write"),
    ("DELETE", "/api/parties/acme?version=1", "registry:write"),
    ("GET", "/api/agreements", "registry:read"),
    ("POST", "/api/agreements", "registry:write"),
    ("GET", "/api/registry", "registry:read"),
    ("PUT", "/api/registry", "registry:write"),
    ("GET", "/api/keys", "admin"),
    ("POST", "/api/keys", "admin"),
]


@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
async def test_a_call_without_a_key_is_401(client, method, path, scope):
    response = await client.request(method, path, json={})
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
async def test_a_call_with_an_unknown_key_is_401(client, method, path, scope):
    response = await client.request(method, path, json={}, headers=bearer("ofx_not-a-real-key"))
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
async def test_a_key_without_the_needed_scope_is_403(client, database, method, path, scope):
    other_scopes = [s for s in ("registry:read", "registry:write", "guard:check") if s != scope]
    token = await make_key(database, "narrow", *other_scopes)
    response = await client.request(method, path, json={}, headers=bearer(token))
    assert response.status_code == 403, response.text


async def test_health_endpoints_need_no_key(client):
    assert (await client.get("/health/live")).status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_a_malformed_authorization_header_is_401(client):
    response = await client.get("/api/parties", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401


async def test_keys_are_stored_only_as_digests(client, database, admin_headers):
    created = await client.post("/api/keys", json={"name": "crm", "scopes": ["guard:check"]}, headers=admin_headers)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    conn = await asyncpg.connect(SERVER_URL.rsplit("/", 1)[0] + "/" + database.rsplit("/", 1)[1])
    try:
        stored = await conn.fetch("SELECT name, token_sha256 FROM api_key")
    finally:
        await conn.close()
    assert all(token not in (row["token_sha256"] or "") for row in stored)
    assert {row["name"] for row in stored} >= {"crm"}


async def test_a_revoked_key_stops_working(client, database, admin_headers):
    created = await client.post(
        "/api/keys", json={"name": "reader", "scopes": ["registry:read"]}, headers=admin_headers
    )
    token = created.json()["token"]
    assert (await client.get("/api/parties", headers=bearer(token))).status_code == 200
    assert (await client.delete("/api/keys/reader", headers=admin_headers)).status_code == 200
    assert (await client.get("/api/parties", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize(
    "body", [{"name": "x", "scopes": ["root"]}, {"name": "x", "scopes": []}, {"name": "bad name!", "scopes": ["admin"]}]
)
async def test_a_key_request_with_bad_name_or_scopes_is_a_400(client, admin_headers, body):
    assert (await client.post("/api/keys", json=body, headers=admin_headers)).status_code == 400


async def test_the_change_history_names_the_calling_key(client, database):
    token = await make_key(database, "legal-team", "registry:write", "registry:read")
    body = {"key": "acme", "name": "Acme AB", "role": "processor", "category": "it_services", "established_in": "SE"}
    await client.post("/api/parties", json=body, headers=bearer(token))
    history = (await client.get("/api/parties/acme/history", headers=bearer(token))).json()
    assert history["items"][0]["actor"] == "legal-team"


@pytest.fixture
async def webshop_key(database) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    """A `guard:check` key named webshop, and sessions on an engine of one connection for an ApiKeyCache."""
    token = await make_key(database, "webshop", "guard:check")
    engine = make_engine(database, pool_size=1)
    try:
        yield token, make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_concurrent_requests_with_an_expired_cache_entry_share_one_key_lookup(webshop_key):
    token, sessionmaker = webshop_key
    cache = ApiKeyCache(ttl=0.2)
    first = await asyncio.gather(*(cache.principal(token, sessionmaker) for _ in range(50)))
    assert {p.name for p in first} == {"webshop"}
    assert cache.lookups == 1
    await asyncio.sleep(0.3)  # expired: the next burst looks it up again, once
    second = await asyncio.gather(*(cache.principal(token, sessionmaker) for _ in range(50)))
    assert {p.name for p in second} == {"webshop"}
    assert cache.lookups == 2
    unknown = await asyncio.gather(*(cache.principal("ofx_unknown", sessionmaker) for _ in range(5)))
    assert unknown == [None] * 5
    assert cache.lookups == 3


async def test_a_key_revoked_while_its_lookup_is_in_flight_is_not_cached_as_valid(webshop_key):
    token, sessionmaker = webshop_key
    cache = ApiKeyCache(ttl=60.0)
    lookup = asyncio.ensure_future(cache.principal(token, sessionmaker))
    await asyncio.sleep(0)  # the lookup has started
    cache.clear()  # what revoking a key does
    assert (await lookup).name == "webshop"  # read before the revocation: this one answer stands
    assert cache.lookups == 1
    await cache.principal(token, sessionmaker)
    assert cache.lookups == 2  # but it was not cached for the next request


async def test_a_key_in_steady_use_is_looked_up_again_in_the_background_before_its_entry_expires(webshop_key):
    """Every request in flight would otherwise wait for the lookup once per cache period."""
    token, sessionmaker = webshop_key
    cache = ApiKeyCache(ttl=4.0)
    assert (await cache.principal(token, sessionmaker)).name == "webshop"
    assert cache.lookups == 1
    await asyncio.sleep(3.4)  # in the entry's last fifth
    assert (await cache.principal(token, sessionmaker)).name == "webshop"
    assert cache.lookups == 1  # answered from the entry: no lookup had run before the answer
    await asyncio.sleep(0.3)
    assert cache.lookups == 2  # the refresh ran meanwhile
    await asyncio.sleep(0.6)  # past the first entry's expiry
    assert (await cache.principal(token, sessionmaker)).name == "webshop"
    assert cache.lookups == 2  # the refreshed entry answered


async def test_a_key_revoked_elsewhere_stops_working_within_the_cache_period_even_while_in_steady_use(webshop_key):
    token, sessionmaker = webshop_key
    cache = ApiKeyCache(ttl=1.0)
    assert await cache.principal(token, sessionmaker) is not None
    async with sessionmaker() as session, session.begin():  # another instance revokes it
        await session.execute(text("UPDATE api_key SET revoked_at = now() WHERE name = 'webshop'"))
    for _ in range(12):  # in steady use for 1.2 cache periods
        await cache.principal(token, sessionmaker)
        await asyncio.sleep(0.1)
    assert await cache.principal(token, sessionmaker) is None
