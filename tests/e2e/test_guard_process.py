"""`registry serve` answers guard checks on processes of their own (the guard role) and pages, the registry API and
exports on another (the web role, behind the guard role's relay): a page that holds its process does not delay a
check, a write is answered once every guard-role process obeys it (told through the database), the metrics of
every process add up at /metrics, and the roles stop together."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import bearer, free_port, make_key
from tests.e2e.test_serve_workers import _scraped

MARKETING = {
    "recipient": "kvarnberg",
    "purpose": "marketing.communications.email",
    "data_categories": ["user.name", "user.contact.email"],
    "destination": "SE",
    "data_subject": "customer",
}
PERSON = "karin.lund@example.se"
SLOW_PAGE_HOOK = Path(__file__).parent / "slow_page"
SOMEONE_ELSE = "olle@example.se"  # (marketing needs a person named)


class Serve:
    """`registry serve` as a subprocess (its arguments given), its roles found among its children."""

    def __init__(self, database_url: str, log_path: Path, *arguments: str, **environment: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {
            **os.environ,
            "REGISTRY_DATABASE_URL": database_url,
            "REGISTRY_SCHEDULER_ENABLED": "false",
            "REGISTRY_WORKER_HEALTHCHECK_SECONDS": "120",
            **environment,
        }
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--port", str(self.port), *arguments],
                env=env,
                stdout=log,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, within: float = 180.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited:\n" + self.log()
            try:
                if httpx.get(self.url + "/health/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not become ready:\n" + self.log())

    def role_processes(self, role: str) -> list[psutil.Process]:
        """The processes of `role`: the web role's one; the guard role's uvicorn workers, or its one process."""
        (top,) = [c for c in psutil.Process(self.process.pid).children() if c.cmdline()[2:4] == ["cli.roles", role]]
        workers = [c for c in top.children() if "spawn_main" in " ".join(c.cmdline())]
        return workers or [top]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def serving(database_url: str, log_path: Path, *arguments: str, **environment: str) -> Iterator[Serve]:
    serve = Serve(database_url, log_path, *arguments, **environment)
    try:
        serve.wait_ready()
        yield serve
    finally:
        serve.stop()


@contextmanager
def held(process: psutil.Process) -> Iterator[None]:
    """The process stopped (SIGSTOP) as long as the block runs: a page that blocks its event loop, and more."""
    process.suspend()
    try:
        yield
    finally:
        process.resume()


@pytest.fixture(scope="module")
def two_guard_workers(seeded_service_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    log = tmp_path_factory.mktemp("guard-process") / "serve.log"
    with serving(
        seeded_service_database, log, "--workers", "2", REGISTRY_WRITE_VISIBILITY_TIMEOUT_SECONDS="3"
    ) as serve:
        yield serve


@pytest.fixture(scope="module")
async def keys(seeded_service_database: str) -> dict[str, dict[str, str]]:
    return {
        "guard": bearer(await make_key(seeded_service_database, "webshop", "guard:check")),
        "writer": bearer(await make_key(seeded_service_database, "writer", "registry:read", "registry:write")),
        "admin": bearer(await make_key(seeded_service_database, "admin", "admin")),
    }


def check(serve: Serve, headers: dict[str, str], subject: str = SOMEONE_ELSE) -> httpx.Response:
    body = {**MARKETING, "subject_ref": subject}
    # A new connection each time, so that the checks are spread over the guard role's workers.
    return httpx.post(serve.url + "/api/guard/check", json=body, headers=headers, timeout=60)


def test_serve_starts_a_web_role_and_as_many_guard_role_workers_as_asked(two_guard_workers):
    (web,) = two_guard_workers.role_processes("web")
    guard = two_guard_workers.role_processes("guard")
    assert len(guard) == 2
    # On a contended core the guard's checks come before the web role's pages and exports.
    assert all(web.nice() > worker.nice() for worker in guard)


def test_a_check_is_answered_while_a_page_holds_the_web_role(two_guard_workers, keys):
    serve = two_guard_workers
    (web,) = serve.role_processes("web")
    page: dict[str, httpx.Response] = {}

    def open_page() -> None:
        page["answer"] = httpx.get(serve.url + "/api/parties", headers=keys["writer"], timeout=120)

    with held(web):
        browsing = threading.Thread(target=open_page, daemon=True)
        browsing.start()
        answers = [check(serve, keys["guard"]) for _ in range(5)]
        # The page is still held (its process does not run), and the checks were answered all the same.
        assert browsing.is_alive()
        assert "answer" not in page
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert all(a.json()["allowed"] is True for a in answers)
    browsing.join(timeout=120)
    assert page["answer"].status_code == 200, page["answer"].text


def test_a_page_that_blocks_its_event_loop_with_time_sleep_does_not_delay_a_check(
    seeded_service_database, keys, tmp_path: Path
):
    # tests/e2e/slow_page/sitecustomize.py adds GET /ui/slow-page to the app of the processes that serve pages:
    # its handler calls time.sleep until `release` exists, after writing its pid to `started`.
    started, release = tmp_path / "started", tmp_path / "release"
    python_path = os.pathsep.join(filter(None, [str(SLOW_PAGE_HOOK), os.environ.get("PYTHONPATH")]))
    serve = Serve(
        seeded_service_database,
        tmp_path / "serve.log",
        PYTHONPATH=python_path,
        SLOW_PAGE_STARTED=str(started),
        SLOW_PAGE_RELEASE=str(release),
    )
    page: dict[str, httpx.Response] = {}
    browsing = threading.Thread(
        target=lambda: page.update(answer=httpx.get(serve.url + "/ui/slow-page", timeout=180)), daemon=True
    )
    try:
        serve.wait_ready()
        browsing.start()
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the slow page did not start:\n" + serve.log()
            time.sleep(0.05)
        (web,) = serve.role_processes("web")
        assert started.read_text() == str(web.pid)  # the web role's loop is the one held

        answers = [check(serve, keys["guard"]) for _ in range(5)]

        assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
        assert all(a.json()["allowed"] is True for a in answers)
        assert browsing.is_alive() and "answer" not in page, "the page was still sleeping meanwhile"
    finally:
        release.touch()
        if browsing.is_alive():
            browsing.join(timeout=180)
        serve.stop()
    assert page["answer"].status_code == 200 and page["answer"].text == "slow page"


def test_a_page_is_relayed_with_its_query_body_and_headers_and_the_web_role_sees_the_clients_address(
    two_guard_workers, keys
):
    serve = two_guard_workers
    listed = httpx.get(serve.url + "/api/parties", params={"limit": 2}, headers=keys["writer"], timeout=60)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == 2
    assert listed.headers["x-request-id"]
    # A body the client streams in chunks reaches the web role whole, and its refusal names the field.
    refused = httpx.post(
        serve.url + "/api/parties",
        content=iter([b'{"key": "half', b'-written", "name": 7}']),
        headers={**keys["writer"], "content-type": "application/json"},
        timeout=60,
    )
    assert refused.status_code == 400, refused.text
    assert "name" in refused.text
    # Nobody without a key gets past the web role's authentication, however the relay carries the request.
    assert httpx.get(serve.url + "/api/parties", timeout=60).status_code == 401
    # A client cannot name another address to the sign-in throttle: X-Forwarded-For is the relay's to set.
    forged = httpx.get(serve.url + "/ui/login", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=60)
    assert forged.status_code == 200
    assert "203.0.113.9" not in serve.log()


def test_a_write_is_answered_once_every_guard_role_worker_obeys_it(two_guard_workers, keys):
    serve = two_guard_workers
    assert check(serve, keys["guard"], PERSON).json()["allowed"] is True

    recorded = httpx.post(
        serve.url + "/api/objections",
        json={"subject": PERSON, "scope": "direct_marketing", "received_on": "2026-11-01", "source": "e-mail"},
        headers=keys["writer"],
        timeout=60,
    )

    assert recorded.status_code == 201, recorded.text
    # Whichever worker answers, the very next checks obey it.
    answers = [check(serve, keys["guard"], PERSON).json() for _ in range(8)]
    assert [a["allowed"] for a in answers] == [False] * 8, answers
    assert all({r["code"] for r in a["reasons"]} == {"SUBJECT_OBJECTED"} for a in answers)

    party = httpx.get(serve.url + "/api/parties/kvarnberg", headers=keys["writer"], timeout=60).json()
    written = httpx.delete(
        serve.url + "/api/parties/kvarnberg", params={"version": party["version"]}, headers=keys["writer"], timeout=60
    )
    assert written.status_code == 200, written.text
    assert written.headers["Registry-Guard-Revision"] == written.headers["Registry-Revision"]
    answers = [check(serve, keys["guard"]).json() for _ in range(8)]
    assert all("RECIPIENT_INACTIVE" in {r["code"] for r in a["reasons"]} for a in answers), answers


def test_a_write_while_one_guard_role_worker_is_held_says_the_guard_role_has_not_caught_up(two_guard_workers, keys):
    serve = two_guard_workers
    first, _second = serve.role_processes("guard")
    with held(first):
        # The held worker accepts no connection: the other relays the write, which waits for both (3 s bound).
        written = httpx.post(
            serve.url + "/api/parties",
            json={
                "key": "held-worker-party",
                "name": "Held Worker AB",
                "role": "processor",
                "category": "it_services",
                "established_in": "SE",
            },
            headers=keys["writer"],
            timeout=60,
        )
    assert written.status_code == 201, written.text
    assert int(written.headers["Registry-Guard-Revision"]) < int(written.headers["Registry-Revision"])
    # Resumed, it catches up; the next write is obeyed by both again.
    again = httpx.delete(
        serve.url + "/api/parties/held-worker-party",
        params={"version": written.json()["version"]},
        headers=keys["writer"],
        timeout=60,
    )
    assert again.status_code == 200, again.text
    assert again.headers["Registry-Guard-Revision"] == again.headers["Registry-Revision"]


def test_the_metrics_of_every_role_process_add_up_at_metrics(two_guard_workers, keys):
    serve = two_guard_workers
    pids = {str(p.pid) for p in serve.role_processes("guard") + serve.role_processes("web")}
    before = _scraped(
        httpx.get(serve.url + "/metrics", headers=keys["admin"], timeout=60).text, "guard_decisions_total"
    )
    for _ in range(6):
        assert check(serve, keys["guard"]).status_code == 200
    # Each worker adds its checks to the shared files within a second (kernel/counters.py): scraped until the
    # other worker's are in too, for at most half a minute.
    deadline = time.monotonic() + 30
    while True:
        scraped = httpx.get(serve.url + "/metrics", headers=keys["admin"], timeout=60).text
        after = _scraped(scraped, "guard_decisions_total")
        if sum(v for _, v in after) - sum(v for _, v in before) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sum(v for _, v in after) - sum(v for _, v in before) >= 6
    cpu = _scraped(scraped, "process_cpu_seconds_total")
    assert {labels["pid"] for labels, _ in cpu} == pids  # each role's process once, not the supervisor


def test_a_web_role_that_dies_stops_the_guard_role_and_serve_exits_with_an_error(
    seeded_service_database, tmp_path: Path
):
    serve = Serve(seeded_service_database, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        guard = serve.role_processes("guard")
        (web,) = serve.role_processes("web")
        web.kill()
        assert serve.process.wait(timeout=90) == 1
        assert "the web role exited" in serve.log()
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in guard)
    finally:
        serve.stop()


def test_sigterm_stops_both_roles_and_serve_exits_cleanly(seeded_service_database, tmp_path: Path):
    serve = Serve(seeded_service_database, tmp_path / "serve.log")
    try:
        serve.wait_ready()
        roles = serve.role_processes("guard") + serve.role_processes("web")
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=90) == 0, serve.log()
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in roles)
    finally:
        serve.stop()
