"""No 500 for any input (issue 33, finding 9), on the real PostgreSQL through a real uvicorn server:
schemathesis with every check on a small budget finds no 5xx answer, and a PATCH with bad UTF-8 or deep
nesting is a 4xx naming the body."""

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn

from tests.conftest import free_port, make_key, test_settings
from web.app import create_app

# Small enough for the suite (a few minutes on a loaded machine), large enough to reach every operation.
MAX_EXAMPLES = 4
SCHEMATHESIS_TIMEOUT_SECONDS = 900


@asynccontextmanager
async def served(database: str) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(test_settings(database)), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started:
                break
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def server_errors(report: Path) -> list[str]:
    """The cases whose answer was a 5xx, from schemathesis's NDJSON event stream."""
    found = []
    for line in report.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        for failure in _failures(event):
            if failure.get("code") == "not_a_server_error" or str(failure.get("status_code", "")).startswith("5"):
                found.append(json.dumps(failure)[:500])
    return found


def _failures(value: object) -> list[dict]:
    """Every object under `value` that describes a failed check (it names the check as `code`)."""
    found: list[dict] = []
    if isinstance(value, dict):
        if value.get("code") == "not_a_server_error" or (
            "status_code" in value and str(value["status_code"]).startswith("5")
        ):
            found.append(value)
        for inner in value.values():
            found += _failures(inner)
    elif isinstance(value, list):
        for inner in value:
            found += _failures(inner)
    return found


async def test_schemathesis_with_every_check_finds_no_server_error(seeded_database, tmp_path):
    token = await make_key(seeded_database, "fuzzer", "admin")
    report = tmp_path / "events.ndjson"
    async with served(seeded_database) as url:
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{url}/schema/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                "33",
                "--header",
                f"Authorization: Bearer {token}",
                "--request-timeout",
                "30",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(report),
                "--continue-on-failure",
            ],
            capture_output=True,
            text=True,
            timeout=SCHEMATHESIS_TIMEOUT_SECONDS,
            cwd=tmp_path,  # (schemathesis keeps a cache of its findings in the working folder: not the repository)
        )
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    assert server_errors(report) == [], done.stdout[-5000:]


async def test_a_patch_with_bad_utf_8_or_deep_nesting_is_a_400_not_a_500(seeded_database):
    token = await make_key(seeded_database, "writer", "registry:read", "registry:write")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    async with served(seeded_database) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        nested = b'{"name": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}"
        for body in (b'{"name": "\xff\xfe"}', deep, b'{"name": ' + deep + b"}", nested):
            answer = await client.patch("/api/parties/kvarnberg", content=body, headers=headers)
            assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])


async def test_an_objection_number_past_the_databases_range_is_a_400_naming_it(seeded_database):
    """Found by the schemathesis run above: DELETE /api/objections/2668238378820003430400 was a 500."""
    token = await make_key(seeded_database, "writer", "registry:read", "registry:write")
    async with served(seeded_database) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.delete(
            "/api/objections/2668238378820003430400", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 400, answer.text
        assert "objection_id" in answer.text
