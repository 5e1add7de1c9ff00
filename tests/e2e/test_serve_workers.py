"""`registry serve --workers 2` on a busy machine: every worker starts and stays up (uvicorn's health check
waits REGISTRY_WORKER_HEALTHCHECK_SECONDS for a worker that is still importing the app), both take
connections, and the port comes from REGISTRY_PORT when no --port is given."""

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SEED_ALLOWED_SHARE, bearer, free_port, make_key


def _worker_pids(log: str) -> set[int]:
    # uvicorn logs "Started server process [pid]" in each worker, and "Started parent process [pid]" once.
    return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log)}


def _holders_of_connections(pids: set[int], port: int) -> set[int]:
    """Which of the workers hold an established connection on the server's port."""
    holders = set()
    for pid in pids:
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.status == psutil.CONN_ESTABLISHED and connection.laddr and connection.laddr.port == port:
                holders.add(pid)
    return holders


def test_serve_with_two_workers_starts_both_and_each_takes_connections(seeded_service_database, tmp_path: Path):
    port = free_port()
    log_path = tmp_path / "serve.err"
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": seeded_service_database,
        "REGISTRY_SCHEDULER_ENABLED": "false",
        "REGISTRY_PORT": str(port),  # no --port: the setting says where to listen
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--workers", "2"], env=env, stdout=log, stderr=log
        )
    sockets: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 240  # generous: two app imports at once on a shared, busy machine
        while time.monotonic() < deadline:
            assert server.poll() is None, "the server exited:\n" + log_path.read_text()
            text = log_path.read_text()
            if text.count("Application startup complete.") >= 3:  # the web role's and both guard-role workers'
                break
            time.sleep(0.5)
        else:
            raise AssertionError("two workers did not both start:\n" + log_path.read_text())
        # The guard role's workers: the checks' processes on the public port (the web role sits behind them).
        roles = psutil.Process(server.pid).children()
        web = {child.pid for child in roles if child.cmdline()[2:4] == ["cli.roles", "web"]}
        workers = _worker_pids(log_path.read_text()) - web
        assert len(web) == 1 and len(workers) == 2, log_path.read_text()
        # (uvicorn's supervisor of the guard role between, and a resource tracker)
        assert workers <= {child.pid for child in psutil.Process(server.pid).children(recursive=True)}
        assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=30).status_code == 200

        # Connections kept open until both workers hold one: each worker accepts from the shared socket.
        for _ in range(200):
            held = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            assert b" 200 " in held.recv(4096).split(b"\r\n", 1)[0] + b" "
            sockets.append(held)
            if _holders_of_connections(workers, port) == workers:
                break
        assert _holders_of_connections(workers, port) == workers

        text = log_path.read_text()
        assert "died" not in text and "failed to start" not in text, text
        assert all(psutil.pid_exists(pid) for pid in workers)
    finally:
        for held in sockets:
            held.close()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def _scraped(text: str, name: str, labels: dict[str, str] | None = None) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and (labels is None or sample.labels == labels)
    ]


def test_with_two_workers_counters_add_up_within_a_second_and_never_go_back_over_30_scrapes(
    seeded_service_database, tmp_path: Path
):
    guard = bearer(asyncio.run(make_key(seeded_service_database, "workers-guard", "guard:check")))
    scraper = bearer(asyncio.run(make_key(seeded_service_database, "workers-prometheus", "metrics:read")))
    port = free_port()
    log_path = tmp_path / "serve.err"
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": seeded_service_database,
        "REGISTRY_SCHEDULER_ENABLED": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),  # an operator's own directory: emptied at start
    }
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"an earlier run's counts")
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 240
        while log_path.read_text().count("Application startup complete.") < 2:
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        workers = _worker_pids(log_path.read_text())
        allowed, checks, answered_by = [], [], set()
        for _ in range(30):
            # A new connection for every request: the two workers share the socket, either may answer.
            assert httpx.post(
                f"http://127.0.0.1:{port}/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard, timeout=30
            ).json()["allowed"]
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=scraper, timeout=30)
            assert scraped.status_code == 200, scraped.text
            allowed += [value for _, value in _scraped(scraped.text, "guard_decisions_total", {"outcome": "allowed"})]
            checks += [value for _, value in _scraped(scraped.text, "guard_check_duration_seconds_count")]
            answered_by |= {labels["pid"] for labels, _ in _scraped(scraped.text, "process_cpu_seconds_total")}
        # A worker tallies its counts and adds them to the shared files within a second (kernel/counters.py): a
        # scrape may not show the other worker's last checks yet, but a counter never goes back and never counts
        # a check that was not made, whichever worker took it and whichever answers the scrape.
        for series in (allowed, checks):
            assert series == sorted(series) and series[-1] <= 30.0
            assert all(value <= n for n, value in enumerate(series, start=1))
        assert answered_by == {str(pid) for pid in workers}  # both workers' process_* figures, by pid
        # Within a second every check is counted, whichever worker answers the scrape.
        deadline = time.monotonic() + 10
        while True:
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=scraper, timeout=30)
            settled = (
                [value for _, value in _scraped(scraped.text, "guard_decisions_total", {"outcome": "allowed"})],
                [value for _, value in _scraped(scraped.text, "guard_check_duration_seconds_count")],
            )
            if settled == ([30.0], [30.0]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert settled == ([30.0], [30.0])
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
