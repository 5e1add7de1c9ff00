"""Each decision-log entry records the id of the request it answered (the caller's X-Request-Id, or the one the
server gave it), hashed with the entry: the log still verifies, and an entry's receipt shows it."""

import asyncio

import httpx
from click.testing import CliRunner

from cli.main import main
from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key


def _verify_log(database_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["guard", "verify-log"], env={"REGISTRY_DATABASE_URL": database_url})
    return result.exit_code, result.output


async def test_a_decision_records_the_callers_request_id_and_the_log_still_verifies(service, seeded_service_database):
    guard = bearer(await make_key(seeded_service_database, "request-id-guard", "guard:check"))
    reader = bearer(await make_key(seeded_service_database, "request-id-reader", "registry:read"))
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        single = await http.post(
            "/api/guard/check", json=SEED_ALLOWED_SHARE, headers={**guard, "X-Request-Id": "order-4711.check"}
        )
        batch = await http.post(
            "/api/guard/check-batch",
            json=[SEED_ALLOWED_SHARE, SEED_ALLOWED_SHARE],
            headers={**guard, "X-Request-Id": "order-4711.batch"},
        )
        unnamed = await http.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard)
        page = await http.get("/api/guard/decisions", params={"limit": 10}, headers=reader)
        receipt = await http.get(f"/api/guard/decisions/{single.json()['decision_id']}", headers=reader)
    by_id = {item["decision_id"]: item["request_id"] for item in page.json()["items"]}
    assert by_id[single.json()["decision_id"]] == "order-4711.check"
    assert [by_id[answer["decision_id"]] for answer in batch.json()] == ["order-4711.batch"] * 2
    # Without one of the caller's, the entry holds the id the server gave the request (and answered with).
    assert by_id[unnamed.json()["decision_id"]] == unnamed.headers["x-request-id"]
    assert receipt.json()["content"]["request_id"] == "order-4711.check"  # covered by the entry's hash
    exit_code, output = await asyncio.to_thread(_verify_log, seeded_service_database)
    assert exit_code == 0, output
