"""Each API key gets a fair share of the guard: a key with a batch in flight is told 429 with Retry-After for
one more, other keys and single checks go on, and a batch decided in slices still decides and logs every item.
The throughput it buys is measured in bench/guard_fairness.py, not here."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar

from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key, test_settings
from web.app import create_app


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run in this test's own loop, and an httpx client that sends bodies as they
    come (Litestar's test client runs the app in another loop, which a request held open here cannot reach)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 60))["type"] == "lifespan.startup.complete"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(outbox.get(), 60)
        await lifespan


class HeldBatch:
    """A check-batch request whose body arrives only once `answer` is awaited: the batch is admitted (its key
    counted) and then waits for its body, in flight for as long as the test wants."""

    def __init__(self, client: httpx.AsyncClient, key: str, shares: list[dict[str, Any]]) -> None:
        self.release = asyncio.Event()
        self.waiting_for_body = asyncio.Event()
        self.body = json.dumps(shares).encode()
        self.task = asyncio.create_task(
            client.post(
                "/api/guard/check-batch",
                content=self._body(),
                headers={**bearer(key), "content-type": "application/json"},
            )
        )

    async def _body(self) -> AsyncIterator[bytes]:
        self.waiting_for_body.set()
        await self.release.wait()
        yield self.body

    async def answer(self) -> httpx.Response:
        self.release.set()
        return await self.task


async def test_a_second_batch_of_a_key_with_one_in_flight_is_a_429_with_retry_after_and_not_allowed(
    seeded_database,
):
    app = create_app(test_settings(seeded_database, guard_batches_per_key=1))
    key = await make_key(seeded_database, "batcher", "guard:check")
    other = await make_key(seeded_database, "other-integration", "guard:check")
    async with serving(app) as client:
        held = HeldBatch(client, key, [SEED_ALLOWED_SHARE] * 3)
        await asyncio.wait_for(held.waiting_for_body.wait(), 30)

        refused = await client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE], headers=bearer(key))
        single = await client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=bearer(key))
        other_key = await client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE], headers=bearer(other))
        answered = await held.answer()
        after = await client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE], headers=bearer(key))

    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["allowed"] is False
    assert "fair share" in refused.json()["detail"]
    assert single.status_code == 200 and single.json()["allowed"] is True, "single checks have no batch limit"
    assert other_key.status_code == 200, "another key's share is its own"
    assert answered.status_code == 200 and [a["allowed"] for a in answered.json()] == [True] * 3
    assert after.status_code == 200, "the share is given back when the batch is answered"


async def test_the_limit_per_key_is_a_setting(seeded_database):
    app = create_app(test_settings(seeded_database, guard_batches_per_key=2))
    key = await make_key(seeded_database, "batcher", "guard:check")
    async with serving(app) as client:
        first = HeldBatch(client, key, [SEED_ALLOWED_SHARE])
        second = HeldBatch(client, key, [SEED_ALLOWED_SHARE])
        await asyncio.wait_for(asyncio.gather(first.waiting_for_body.wait(), second.waiting_for_body.wait()), 30)
        third = await client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE], headers=bearer(key))
        answers = [await first.answer(), await second.answer()]
    assert [a.status_code for a in answers] + [third.status_code] == [200, 200, 429]


async def test_a_batch_decided_in_slices_answers_and_logs_every_request_in_order(seeded_database):
    app = create_app(test_settings(seeded_database))
    key = await make_key(seeded_database, "batcher", "guard:check")
    reader = await make_key(seeded_database, "reader", "registry:read")
    denied = {**SEED_ALLOWED_SHARE, "recipient": "no-such-party"}
    shares = [SEED_ALLOWED_SHARE if i % 3 else denied for i in range(1000)]
    async with serving(app) as client:
        batch, *singles = await asyncio.gather(
            client.post("/api/guard/check-batch", json=shares, headers=bearer(key)),
            *(client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=bearer(key)) for _ in range(20)),
        )
        logged = (await client.get("/api/guard/decisions?limit=1", headers=bearer(reader))).json()

    assert batch.status_code == 200, batch.text
    answers = batch.json()
    assert [a["allowed"] for a in answers] == [bool(i % 3) for i in range(1000)]
    assert len({a["decision_id"] for a in answers}) == 1000
    sequences = [a["sequence"] for a in answers]
    assert sequences == sorted(sequences) and len(set(sequences)) == 1000, "logged in the order sent"
    assert all(s.status_code == 200 for s in singles)
    assert logged["total"] == 1020, "every decision of the batch and of the single checks is in the log"
