"""The dashboard's first view after a registry change, and the event-loop time it takes (issue 27, item 1).

Run from the repository root:

    uv run python bench/ui_first_view.py [--parties 10000] [--agreements 30000] [--rounds 2]

It creates a scratch database on the local PostgreSQL (REGISTRY_BENCH_POSTGRES_URL, default the local service with
trust auth), grows the registry with guard_load.py's generator, signs a legal user in to the app (in this process,
one role: the loop that serves pages is the loop measured), and, `--rounds` times each, renames a party through the
API (a registry change: a new snapshot) and asks for the dashboard:

1. on the loop: the first view worked out by the page itself, in slices (the layout before the first-view worker);
2. at once: the page asks right after the change, while the worker prepares it; it does not wait for the worker
   but works its view out on the loop (the worker's work, in another process, competes for the cores);
3. prepared: the page asks once the worker has prepared it (the web role asks for it as the snapshot changes).

For each it prints the page's wall time, the CPU time of the loop's thread while it was answered (what every
other request on that loop competes with), the longest the loop went without a turn (a 5 ms ticker's worst gap
beyond its sleep) and whether the worker prepared the view, beside the figure before the worker: 3.7 s of loop
time at 10,000 parties. No targets: figures to watch, taken on whatever else the machine is doing (the load
average is printed). It drops the scratch database.
"""

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import guard_load as gl

from kernel.db import upgrade_schema
from kernel.settings import Settings, normalise_database_url
from registry.services.apikeys import create_api_key
from registry.services.registry_document import import_registry, parse_document
from registry.services.users import create_user
from web.app import create_app
from web.composition import services_of
from web.ui import first_view, registry_view

SERVER_URL = os.environ.get("REGISTRY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
EMAIL = "bench@offix.example"
PASSWORD = "bench-password-long-enough"
TICK = 0.005  # (the ticker's own cost on the loop: about 10 ms a second)
BEFORE = "3.7 s of loop time at 10,000 parties (before the first-view worker)"


class LoopWatch:
    """The serving loop's thread (its CPU clock) and a ticker on it (every TICK s) that keeps the worst gap between
    turns beyond its sleep."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self.worst = 0.0
        self._ticker: asyncio.Task[None] | None = None

    async def start(self, _app: Litestar) -> None:
        self.thread = threading.get_ident()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            self.worst = max(self.worst, time.perf_counter() - started - TICK)

    def cpu(self) -> float:
        assert self.thread is not None
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread))


async def prepare(url: str, parties: int, agreements: int) -> str:
    await asyncio.to_thread(upgrade_schema, url)
    document = gl.large_document(gl.seed_document(), parties, agreements, random.Random(27))
    await gl.run_in_registry(url, lambda s: import_registry(s, parse_document(document), "bench"))
    await gl.run_in_registry(url, lambda s: create_user(s, EMAIL, "legal", PASSWORD, "bench"))
    key: str = await gl.run_in_registry(url, lambda s: create_api_key(s, "bench-writer", ["admin"], "bench"))
    return key


async def sign_in(client: AsyncTestClient[Litestar]) -> None:
    page = await client.get("/ui/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF field on the login page"
    response = await client.post(
        "/ui/login",
        data={"email": EMAIL, "password": PASSWORD, "next": "/ui/", "_csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


async def change(client: AsyncTestClient[Litestar], headers: dict[str, str], n: int) -> int:
    """Rename a party through the API; the registry revision the guard's snapshot holds after it."""
    party = (await client.get("/api/parties/nordfrakt", headers=headers)).json()
    body = {k: v for k, v in party.items() if k not in ("key", "created_at", "updated_at")}
    saved = await client.put("/api/parties/nordfrakt", json={**body, "name": f"Nordfrakt {n}"}, headers=headers)
    assert saved.status_code == 200, saved.text
    return int(saved.headers["Registry-Revision"])


async def dashboard(client: AsyncTestClient[Litestar], watch: LoopWatch) -> tuple[float, float, float, bool]:
    """The page's wall time, the loop's CPU time meanwhile, its worst gap, and whether the worker prepared it."""
    watch.worst = 0.0
    cpu, started = watch.cpu(), time.perf_counter()
    response = await client.get("/ui/", headers={"Accept-Language": "en"})
    wall, used = time.perf_counter() - started, watch.cpu() - cpu
    assert response.status_code == 200, response.text
    ((_, view),) = registry_view._views.values()
    return wall, used, watch.worst, view.prepared_revision is not None


async def measure(url: str, args: argparse.Namespace) -> None:
    key = await prepare(url, args.parties, args.agreements)
    headers = {"Authorization": f"Bearer {key}"}
    watch = LoopWatch()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            database_url=url, seed_file=None, scheduler_enabled=False, secure_cookies=False, data_dir=Path(data_dir)
        )
        app = create_app(settings)
        app.on_startup.append(watch.start)
        async with AsyncTestClient(app) as client:
            await sign_in(client)
            services = services_of(client.app)
            first_views = services.first_views
            assert first_views is not None and first_views.worth_it(services.snapshots.usable().snapshot), (
                f"a registry this small is worked out on the loop (from {first_view.MIN_PARTIES} parties)"
            )
            await dashboard(client, watch)  # the process's first page: its imports and caches
            rows: dict[str, list[tuple[float, float, float, bool]]] = {
                "on the loop": [],
                "at once": [],
                "prepared": [],
            }
            n = 0
            for _ in range(args.rounds):
                # 1. The layout before: no worker, the page works the view out on the loop.
                services.first_views = None
                n += 1
                await change(client, headers, n)
                rows["on the loop"].append(await dashboard(client, watch))
                services.first_views = first_views
                for _ in range(1200):  # the preparation that change asked for, done
                    if first_views._job is None or first_views._job.done():
                        break
                    await asyncio.sleep(0.1)
                # 2. At once after a change: the page works it out while the preparation it started runs.
                n += 1
                await change(client, headers, n)
                rows["at once"].append(await dashboard(client, watch))
                for _ in range(1200):
                    if first_views._job is None or first_views._job.done():
                        break
                    await asyncio.sleep(0.1)
                # 3. Once prepared.
                n += 1
                revision = await change(client, headers, n)
                for _ in range(1200):
                    if first_views.ready is not None and first_views.ready.revision >= revision:
                        break
                    await asyncio.sleep(0.1)
                rows["prepared"].append(await dashboard(client, watch))
            unpickled = first_views.unpickle_seconds
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    print(f"{args.parties:,} parties, {args.agreements:,} agreements; the dashboard's first view after a change")
    print(f"{'':<16}{'wall (median)':>14}{'loop CPU (median)':>19}{'worst loop gap':>16}{'from the worker':>17}")
    for name, found in rows.items():
        wall = statistics.median(r[0] for r in found)
        cpu = statistics.median(r[1] for r in found)
        gap = max(r[2] for r in found)
        worker = sum(r[3] for r in found)
        print(f"{name:<16}{wall:>12.3f} s{cpu:>17.3f} s{gap * 1000:>13.1f} ms{worker:>11} of {len(found)}")
    print(f"before: {BEFORE}")
    print(f"the last answer unpickled in {unpickled * 1000:.0f} ms, in pieces of {first_view.PIECE} documents")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=10_000)
    parser.add_argument("--agreements", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    name = f"registry_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(SERVER_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = normalise_database_url(SERVER_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        await measure(url, args)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
