"""Every line `registry serve` writes is in one format, JSON when REGISTRY_LOG_FORMAT=json, and carries the id of
the request it was written for; the same id comes back in the answer's X-Request-Id header (the client's own
when it sent a sane one). Secrets stay out of the access log in either format."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kernel.logs import RequestIds
from tests.conftest import free_port


def serve(database_url: str, tmp_path: Path, **environment: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = {**os.environ, "REGISTRY_DATABASE_URL": database_url, "REGISTRY_SCHEDULER_ENABLED": "false", **environment}
    out = tmp_path / "serve.out"
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env, stdout=stdout, stderr=stderr
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, out.with_suffix(".err").read_text()
        try:
            if httpx.get(base + "/health/ready", timeout=2).status_code == 200:
                return process, base, out
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def lines(out: Path) -> list[str]:
    return [line for path in (out, out.with_suffix(".err")) for line in path.read_text().splitlines() if line]


# What `serve` tells its operator before it serves (the admin key it created for a new registry) is the
# command's output, not a log line.
BANNER = ("An admin API key was created", "  ofx_", "Use it as 'Authorization")


def log_lines(out: Path) -> list[str]:
    return [line for line in lines(out) if not line.startswith(BANNER)]


def test_in_json_every_line_is_an_object_with_the_request_id_the_answer_carries(seeded_database, tmp_path):
    process, base, out = serve(seeded_database, tmp_path, REGISTRY_LOG_FORMAT="json")
    try:
        generated = httpx.get(base + "/health/live", timeout=10)
        chosen = httpx.get(base + "/api/parties", headers={"X-Request-Id": "trace-4711.a"}, timeout=10)
        forged = httpx.get(base + "/health/live", headers={"X-Request-Id": "x" * 200}, timeout=10)
        secret = httpx.get(base + "/calendar/very-secret-token.ics", timeout=10)
    finally:
        stop(process)
    assert chosen.headers["x-request-id"] == "trace-4711.a", "a sane incoming id is kept"
    assert generated.headers["x-request-id"] and generated.headers["x-request-id"] != forged.headers["x-request-id"]
    assert len(forged.headers["x-request-id"]) < 40, "an insane incoming id is replaced"

    # Every log line parses: one format.
    logged = [json.loads(line) for line in log_lines(out)]
    assert logged and all({"time", "level", "logger", "request_id", "message"} <= set(entry) for entry in logged)
    access = {entry["request_id"]: entry for entry in logged if entry["logger"] == "registry.access"}
    assert access[chosen.headers["x-request-id"]]["status"] == 401
    assert access[generated.headers["x-request-id"]]["path"] == "/health/live"
    assert access[secret.headers["x-request-id"]]["path"] == "/calendar/[redacted].ics"
    assert "very-secret-token" not in out.read_text() + out.with_suffix(".err").read_text()
    assert any(entry["request_id"] == "-" for entry in logged), "lines outside a request say so"


def test_in_text_each_line_carries_the_request_id(seeded_database, tmp_path):
    process, base, out = serve(seeded_database, tmp_path)
    try:
        answer = httpx.get(base + "/health/live", timeout=10)
    finally:
        stop(process)
    request_id = answer.headers["x-request-id"]
    access = [line for line in lines(out) if '"GET /health/live HTTP/1.1" 200' in line]
    assert access and all(f"[{request_id}]" in line for line in access[-1:]), access
    assert all(re.match(r"\S+ \S+ (INFO|WARNING|ERROR) \S+ \[[^\]]+\] ", line) for line in log_lines(out))


def test_a_bad_log_format_stops_the_service_at_start_naming_the_variable(database, tmp_path):
    env = {**os.environ, "REGISTRY_DATABASE_URL": database, "REGISTRY_LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "REGISTRY_LOG_FORMAT" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("sent", "kept"),
    [(b"abc-123", True), (b"a b", False), (b"", False), (b"x\nInjected: 1", False), (b"a" * 129, False)],
)
async def test_only_a_sane_incoming_request_id_is_kept(sent, kept):
    answered: list[dict] = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message):
        answered.append(message)

    scope = {"type": "http", "headers": [(b"x-request-id", sent)]}
    await RequestIds(app)(scope, None, send)  # type: ignore[arg-type]
    returned = dict(answered[0]["headers"])[b"x-request-id"]
    assert (returned == sent) is kept
