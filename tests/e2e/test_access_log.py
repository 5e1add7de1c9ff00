"""`registry serve` leaves answered guard checks out of its access log: the decision log holds each one
already (web/access_log.py). Everything else, a refused or failed guard request included, is logged."""

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import SERVER_URL, free_port
from web.access_log import ACCESS_LOGGER_NAME, AccessLog, is_answered_guard_check

SHARE = {
    "recipient": "nordfrakt",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name"],
    "data_subject": "customer",
}


def _start(database_url: str, stdout: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`registry serve` writing its stdout (the access log) to `stdout`, its stderr beside it (`.err`)."""
    port = free_port()
    env = {**os.environ, "REGISTRY_DATABASE_URL": database_url, "REGISTRY_SCHEDULER_ENABLED": "false"}
    with stdout.open("wb") as out, stdout.with_suffix(".err").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
        )
    return process, f"http://127.0.0.1:{port}"


async def _serve(database_url: str, stdout: Path) -> tuple[subprocess.Popen[bytes], str]:
    process, base = _start(database_url, stdout)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited"
            try:
                if (await http.get("/health/ready")).status_code == 200:
                    return process, base
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not become ready")


async def _logged_decisions(database: str) -> int:
    connection = await asyncpg.connect(SERVER_URL.rsplit("/", 1)[0] + "/" + database.rsplit("/", 1)[1])
    try:
        return int(await connection.fetchval("SELECT count(*) FROM guard_decision"))
    finally:
        await connection.close()


async def test_an_answered_guard_check_is_in_the_decision_log_and_not_in_the_access_log(
    seeded_database, guard_headers, tmp_path
):
    stdout = tmp_path / "serve.out"
    process, base = await _serve(seeded_database, stdout)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            answered = await http.post("/api/guard/check", json=SHARE, headers=guard_headers)
            batch = await http.post("/api/guard/check-batch", json=[SHARE], headers=guard_headers)
            malformed = await http.post("/api/guard/check", json={"recipient": 1}, headers=guard_headers)
            anonymous = await http.post("/api/guard/check", json=SHARE)
            live = await http.get("/health/live")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert [r.status_code for r in (answered, batch, malformed, anonymous, live)] == [200, 200, 400, 401, 200]
    assert await _logged_decisions(seeded_database) == 2

    access_log = [line for line in stdout.read_text().splitlines() if '"' in line]
    assert not [line for line in access_log if '/api/guard/check HTTP/1.1" 200' in line], access_log
    assert not [line for line in access_log if '/api/guard/check-batch HTTP/1.1" 200' in line], access_log
    assert any('"POST /api/guard/check HTTP/1.1" 400' in line for line in access_log), access_log
    assert any('"POST /api/guard/check HTTP/1.1" 401' in line for line in access_log), access_log
    assert any('"GET /health/live HTTP/1.1" 200' in line for line in access_log), access_log


# A key used before is in the key cache, and its checks take the guard's lane in front of the router
# (web/controllers/guard.py, CheckLane): the first check of a key takes the route.
@pytest.mark.parametrize("key_used_before", [False, True], ids=["through the route", "through the lane"])
async def test_a_client_gone_before_its_body_arrived_is_a_400_line_with_no_traceback_and_no_decision(
    seeded_database, guard_headers, tmp_path, key_used_before
):
    stdout = tmp_path / "serve.out"
    process, base = await _serve(seeded_database, stdout)
    host, port = base.removeprefix("http://").split(":")
    try:
        if key_used_before:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                answered = await http.post("/api/guard/check", json=SHARE, headers=guard_headers)
                assert answered.status_code == 200, answered.text
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/guard/check HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\n"
            + f"Authorization: {guard_headers['Authorization']}\r\nContent-Length: 200\r\n\r\n".encode()
            + b'{"recipient": "nordfrakt",'
        )
        await writer.drain()
        await asyncio.sleep(0.3)  # the server has the headers and part of the body when the client goes
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # up to 10 s for the server to notice and log it
            if '"POST /api/guard/check HTTP/1.1" 400' in stdout.read_text():
                break
            await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert '"POST /api/guard/check HTTP/1.1" 400' in stdout.read_text()
    errors = stdout.with_suffix(".err").read_text()
    assert "Traceback" not in errors, errors
    assert await _logged_decisions(seeded_database) == (1 if key_used_before else 0)


@pytest.mark.parametrize(
    ("method", "path", "status", "logged"),
    [
        ("POST", "/api/guard/check", 200, False),
        ("POST", "/api/guard/check-batch", 200, False),
        ("POST", "/api/guard/check", 400, True),
        ("POST", "/api/guard/check", 503, True),
        ("GET", "/api/guard/check", 200, True),
        ("GET", "/api/guard/decisions", 200, True),
        ("POST", "/api/guard/checks", 200, True),
        ("POST", "/api/parties", 200, True),
    ],
)
def test_only_an_answered_guard_check_is_left_out(method, path, status, logged):
    assert is_answered_guard_check(method, path, status) is not logged


async def test_a_request_the_app_fails_before_answering_is_logged_as_a_500(caplog):
    async def failing_app(scope, receive, send):
        raise RuntimeError("boom")

    scope = {
        "type": "http", "method": "POST", "path": "/api/guard/check", "query_string": b"trace=1",
        "http_version": "1.1", "client": ("127.0.0.1", 5000), "headers": [],
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER_NAME), pytest.raises(RuntimeError):
        await AccessLog(failing_app)(scope, None, None)
    assert [re.sub(r" \d+\.\dms$", "", r.getMessage()) for r in caplog.records] == [
        '127.0.0.1:5000 - "POST /api/guard/check?trace=1 HTTP/1.1" 500'
    ]
    assert re.search(r" 500 \d+\.\dms$", caplog.records[0].getMessage())  # with its duration


async def test_the_calendar_feed_secret_and_secret_query_parameters_never_reach_the_access_log(
    seeded_database, admin_headers, tmp_path
):
    stdout = tmp_path / "serve.out"
    process, base = await _serve(seeded_database, stdout)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            created = await http.post("/api/calendar-feeds", json={"name": "legal"}, headers=admin_headers)
            assert created.status_code == 201, created.text
            feed_path = httpx.URL(created.json()["url"]).path
            secret = feed_path.removeprefix("/calendar/").removesuffix(".ics")
            assert (await http.get(feed_path)).status_code == 200
            await http.get("/calendar/ofxcal_guessed-wrong.ics")
            await http.get("/health/live", params={"token": "query-secret-1", "limit": "5"})
        for _ in range(50):  # the lines are written as the answers start; allow the stream to flush
            if "/health/live" in stdout.read_text():
                break
            await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    logged = stdout.read_text() + stdout.with_suffix(".err").read_text()
    assert secret not in logged
    assert "ofxcal_guessed-wrong" not in logged
    assert "query-secret-1" not in logged
    assert '"GET /calendar/[redacted].ics HTTP/1.1" 200' in logged, logged
    assert '"GET /health/live?token=[redacted]&limit=5 HTTP/1.1" 200' in logged, logged


@pytest.mark.parametrize(
    ("request_line", "content_type"),
    [
        ("POST /ui/login", "application/x-www-form-urlencoded"),
        ("PUT /api/parties/nordfrakt", "application/json"),
        ("POST /api/parties", "application/json"),
    ],
)
async def test_a_client_gone_mid_body_is_a_400_with_no_traceback_on_any_route(
    seeded_database, admin_headers, tmp_path, request_line, content_type
):
    stdout = tmp_path / "serve.out"
    process, base = await _serve(seeded_database, stdout)
    host, port = base.removeprefix("http://").split(":")
    expected = f'"{request_line} HTTP/1.1" 400'
    try:
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"{request_line} HTTP/1.1\r\nHost: registry\r\nContent-Type: {content_type}\r\n".encode()
            + f"Authorization: {admin_headers['Authorization']}\r\nContent-Length: 500\r\n\r\n".encode()
            + b"email=someone%40offix.example&pass"
        )
        await writer.drain()
        await asyncio.sleep(0.3)  # the server has the headers and part of the body when the client goes
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # up to 10 s for the server to notice and log it
            if expected in stdout.read_text():
                break
            await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert expected in stdout.read_text(), stdout.read_text()
    errors = stdout.with_suffix(".err").read_text()
    assert "Traceback" not in errors, errors
    assert "ERROR" not in errors, errors
