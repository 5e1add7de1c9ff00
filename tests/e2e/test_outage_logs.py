"""What `registry serve` logs while its database is down: one line per failed request, naming the failure and
carrying the request's id, no traceback for an outage it knows; the access line of each request with its
duration."""

import asyncio
import re
from pathlib import Path

import httpx

from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key
from tests.e2e.running_service import running_service
from tests.outage import relayed
from web.api_keys import KEY_CACHE_SECONDS


async def test_a_database_outage_is_one_line_per_request_with_its_id_and_no_traceback(
    seeded_service_database, tmp_path: Path
):
    guard = bearer(await make_key(seeded_service_database, "guard-outage-logs", "guard:check"))
    reader = bearer(await make_key(seeded_service_database, "reader-outage-logs", "registry:read"))
    with relayed(seeded_service_database) as relay, running_service(relay.url, tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            assert (await http.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard)).status_code == 200
            relay.cut()
            await asyncio.sleep(KEY_CACHE_SECONDS + 1)  # the keys must be looked up again: in the database
            answers = {
                "check-1": await http.post(
                    "/api/guard/check", json=SEED_ALLOWED_SHARE, headers={**guard, "X-Request-Id": "check-1"}
                ),
                "parties-1": await http.get("/api/parties", headers={**reader, "X-Request-Id": "parties-1"}),
                "wrong-type-1": await http.post(
                    "/api/parties",
                    content=b"<party/>",
                    headers={**reader, "Content-Type": "application/xml", "X-Request-Id": "wrong-type-1"},
                ),
            }
            relay.restore()
        log = service.stderr_path.read_text()
    assert all(answer.status_code == 503 for answer in answers.values()), {k: a.text for k, a in answers.items()}
    assert "Traceback" not in log, log
    for request_id in answers:
        lines = [line for line in log.splitlines() if f"[{request_id}]" in line]
        assert len(lines) == 1, (request_id, log)
        assert re.search(r"WARNING .*database.*unavailable", lines[0]), lines[0]
