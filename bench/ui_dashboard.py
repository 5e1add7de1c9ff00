"""Dashboard benchmark: the figures the UI issue names, measured on the real app and database.

Run from the repository root:

    uv run python bench/ui_dashboard.py [--denials 314]

It creates a scratch database on the local PostgreSQL (REGISTRY_BENCH_POSTGRES_URL, default the local
service with trust auth), migrates it, loads seed/offix.yaml, has the guard deny `--denials` shares today
(three kinds: an unpublished purpose, an unknown recipient, a destination outside the EEA), signs in a UI
user and prints, each beside its target:

1. the denials the dashboard counts (target: every one, not a page of them);
2. the rows of its denials table (target: one per recipient and reason, not one per denial);
3. the purposes the agreement form's picker offers before the whole taxonomy (target: the four Offix
   publishes);
4. the dashboard's median render time over 20 requests, in Swedish and English (no target: a figure to
   watch; taken on whatever else the machine is doing).

It drops the scratch database at the end.
"""

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import yaml
from litestar.testing import AsyncTestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel.db import make_engine, make_sessionmaker, upgrade_schema
from kernel.settings import Settings, normalise_database_url
from registry.services.apikeys import create_api_key
from registry.services.registry_document import import_registry, parse_document
from registry.services.users import create_user
from web.app import create_app

SERVER_URL = os.environ.get("REGISTRY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-long-enough"
SHARE = {
    "recipient": "nordfrakt",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name", "user.contact.address"],
    "destination": "SE",
    "data_subject": "customer",
}


async def prepare(url: str) -> str:
    await asyncio.to_thread(upgrade_schema, url)
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            document = yaml.safe_load((ROOT / "seed" / "offix.yaml").read_text(encoding="utf-8"))
            await import_registry(session, parse_document(document), "bench")
            await create_user(session, "bench@offix.example", "legal", PASSWORD, "bench")
            return await create_api_key(session, "bench", ["guard:check"], "bench")
    finally:
        await engine.dispose()


async def sign_in(client: AsyncTestClient) -> None:
    page = await client.get("/ui/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF field on the login page"
    response = await client.post(
        "/ui/login",
        data={"email": "bench@offix.example", "password": PASSWORD, "next": "/ui/", "_csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


async def measure(url: str, denials: int) -> None:
    key = await prepare(url)
    settings = Settings(database_url=url, seed_file=None, scheduler_enabled=False, secure_cookies=False)
    async with AsyncTestClient(create_app(settings)) as client:
        kinds = [
            {**SHARE, "purpose": "marketing.advertising"},
            {**SHARE, "recipient": "no-such-party"},
            {**SHARE, "destination": "US"},
        ]
        shares = [kinds[i % len(kinds)] for i in range(denials)]
        for start in range(0, len(shares), 1000):
            batch = await client.post(
                "/api/guard/check-batch", json=shares[start : start + 1000], headers={"Authorization": f"Bearer {key}"}
            )
            assert batch.status_code == 200, batch.text
        await sign_in(client)
        page = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
        counted = re.search(r'Shares denied today <span class="count">([\d,\s\xa0]+)</span>', page)
        section = page.split('id="h-denied"', 1)[1]
        rows = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0].count("<tr>") if "<tbody>" in section else 0
        form = (await client.get("/ui/agreements/new", headers={"Accept-Language": "en"})).text
        purposes = form.split('id="purposes"', 1)[1].split("</fieldset>", 1)[0]
        published = purposes.count("in our privacy policy")
        print(f"denials counted on the dashboard: {counted.group(1) if counted else '?'}  (target {denials:,})")
        print(f"rows in its denials table:        {rows}  (target: one per recipient and reason; was {denials})")
        print(f"purposes offered first:           {published}  (target 4, the purposes Offix publishes; was 0 of 57)")
        for language in ("sv", "en"):
            times = []
            for _ in range(20):
                started = time.perf_counter()
                response = await client.get("/ui/", headers={"Accept-Language": language})
                times.append(time.perf_counter() - started)
                assert response.status_code == 200
            print(f"dashboard render, {language}, median of 20: {statistics.median(times) * 1000:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--denials", type=int, default=314)
    args = parser.parse_args()
    name = f"registry_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(SERVER_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = normalise_database_url(SERVER_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        await measure(url, args.denials)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
