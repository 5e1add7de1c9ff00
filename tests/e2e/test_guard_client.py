"""The hand-written client (clients/python, `registry_guard_client`) against the running service: it relays
allow and deny with their reasons, batches in order, and fails closed — a denial with GUARD_UNREACHABLE, never
an exception — when the service is down, the port is closed, the answer is a 5xx, late or not a decision."""

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from registry_guard_client import (
    GUARD_UNREACHABLE,
    SUBJECT_OBJECTED,
    SUBJECT_REF_MISSING,
    AsyncGuardClient,
    Decision,
    GuardClient,
    GuardRequestError,
)

from tests.conftest import (
    SEED_ALLOWED_SHARE,
    free_port,
    make_key,
)
from tests.e2e.running_service import running_service

DENIED_SHARE = {**SEED_ALLOWED_SHARE, "recipient": "no-such-party"}


@pytest.fixture(scope="module")
async def guard_key(seeded_service_database: str) -> str:
    return await make_key(seeded_service_database, "client-test", "guard:check")


def test_the_client_relays_an_allow_from_the_running_service(service, guard_key):
    with GuardClient(service.url, guard_key) as guard:
        decision = guard.check(**SEED_ALLOWED_SHARE)
    assert decision.allowed is True
    assert decision.reasons == ()
    assert decision.decision_id
    assert decision.agreement


def test_the_client_relays_a_denial_with_its_typed_reasons(service, guard_key):
    with GuardClient(service.url, guard_key) as guard:
        decision = guard.check(**DENIED_SHARE)
    assert decision.allowed is False
    assert decision.reason_codes == ("RECIPIENT_UNKNOWN",)
    assert decision.reasons[0].message
    assert decision.decision_id, "a denial the service decided is logged and carries its id"


def test_a_batch_comes_back_in_the_order_sent_over_one_connection(service, guard_key):
    with GuardClient(service.url, guard_key) as guard:
        decisions = guard.check_batch([SEED_ALLOWED_SHARE, DENIED_SHARE, SEED_ALLOWED_SHARE])
        again = guard.check(**SEED_ALLOWED_SHARE)
    assert [d.allowed for d in decisions] == [True, False, True]
    assert again.allowed is True


async def test_the_async_client_checks_and_batches_concurrently(service, guard_key):
    async with AsyncGuardClient(service.url, guard_key) as guard:
        one, many = await asyncio.gather(
            guard.check(**DENIED_SHARE), guard.check_batch([SEED_ALLOWED_SHARE, DENIED_SHARE])
        )
    assert one.reason_codes == ("RECIPIENT_UNKNOWN",)
    assert [d.allowed for d in many] == [True, False]


def test_a_malformed_request_raises_a_clear_error_instead_of_a_decision(service, guard_key):
    with GuardClient(service.url, guard_key) as guard, pytest.raises(GuardRequestError) as refused:
        guard.check(
            recipient="nordfrakt", purpose="essential.service.operations", data_categories=[], data_subject="customer"
        )
    assert refused.value.status_code == 400
    assert "data_categories" in str(refused.value)


def test_a_key_without_the_guard_scope_raises_instead_of_a_decision(service):
    with GuardClient(service.url, "ofx_not-a-key") as guard, pytest.raises(GuardRequestError) as refused:
        guard.check(**SEED_ALLOWED_SHARE)
    assert refused.value.status_code == 401


def _assert_unreachable(decision: Decision) -> None:
    assert decision.allowed is False
    assert decision.reason_codes == (GUARD_UNREACHABLE,)
    assert decision.decision_id is None


async def test_the_client_denies_once_the_service_is_down(seeded_service_database, guard_key, tmp_path):
    with running_service(seeded_service_database, tmp_path) as running:
        with GuardClient(running.url, guard_key, timeout=5) as guard:
            assert guard.check(**SEED_ALLOWED_SHARE).allowed is True
            running.stop()
            _assert_unreachable(guard.check(**SEED_ALLOWED_SHARE))
            assert [d.reason_codes for d in guard.check_batch([SEED_ALLOWED_SHARE] * 2)] == [(GUARD_UNREACHABLE,)] * 2
        async with AsyncGuardClient(running.url, guard_key, timeout=5) as async_guard:
            _assert_unreachable(await async_guard.check(**SEED_ALLOWED_SHARE))


def test_the_client_denies_when_nothing_listens_on_the_port():
    with GuardClient(f"http://127.0.0.1:{free_port()}", "ofx_any", timeout=5) as guard:
        _assert_unreachable(guard.check(**SEED_ALLOWED_SHARE))


class _Scripted(BaseHTTPRequestHandler):
    """Answers every POST with the status and body for its path; /slow answers after the client gave up."""

    answers: dict[str, tuple[int, bytes]] = {
        "/503/api/guard/check": (503, b'{"status_code": 503, "allowed": false, "detail": "the guard cannot decide"}'),
        "/html/api/guard/check": (200, b"<html>proxy error</html>"),
        "/allow-with-reasons/api/guard/check": (
            200,
            b'{"decision_id": "x", "allowed": true, "reasons": [{"code": "NO_AGREEMENT", "message": "m"}]}',
        ),
        "/no-id/api/guard/check": (200, b'{"allowed": true, "reasons": []}'),
        "/short-batch/api/guard/check-batch": (200, b'[{"decision_id": "x", "allowed": true, "reasons": []}]'),
    }
    release = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.startswith("/slow/"):
            self.release.wait(10)
        status, body = self.answers.get(self.path, (404, b"{}"))
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client timed out and left

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def scripted_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Scripted.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
        _Scripted.release.clear()


@pytest.mark.parametrize("prefix", ["503", "html", "allow-with-reasons", "no-id", "slow"])
def test_the_client_denies_on_a_5xx_a_late_or_an_untrustworthy_answer(scripted_server, prefix):
    with GuardClient(f"{scripted_server}/{prefix}", "ofx_any", timeout=0.5) as guard:
        _assert_unreachable(guard.check(**SEED_ALLOWED_SHARE))


def test_a_batch_answer_of_the_wrong_length_denies_every_request(scripted_server):
    with GuardClient(f"{scripted_server}/short-batch", "ofx_any", timeout=5) as guard:
        decisions = guard.check_batch([SEED_ALLOWED_SHARE, SEED_ALLOWED_SHARE])
    assert [d.reason_codes for d in decisions] == [(GUARD_UNREACHABLE,)] * 2


async def test_the_async_client_denies_on_a_503(scripted_server):
    async with AsyncGuardClient(f"{scripted_server}/503", "ofx_any", timeout=5) as guard:
        _assert_unreachable(await guard.check(**SEED_ALLOWED_SHARE))


def test_the_client_package_sits_in_clients_python():
    import registry_guard_client

    assert Path(registry_guard_client.__file__).parent.parts[-4:] == (
        "clients",
        "python",
        "src",
        "registry_guard_client",
    )


MARKETING_SHARE = {
    "recipient": "kvarnberg",
    "purpose": "marketing.communications.email",
    "data_categories": ["user.name", "user.contact.email"],
    "data_subject": "customer",
    "destination": "SE",
}


async def test_the_client_names_the_person_and_relays_their_objection(service, guard_key, seeded_service_database):
    writer = await make_key(seeded_service_database, "client-legal", "registry:write")
    objection = {"subject": "kim@example.se", "scope": "direct_marketing", "received_on": "2026-11-02", "source": "web"}
    async with httpx.AsyncClient() as http:
        recorded = await http.post(
            f"{service.url}/api/objections", json=objection, headers={"Authorization": f"Bearer {writer}"}
        )
    assert recorded.status_code == 201, recorded.text
    async with AsyncGuardClient(service.url, guard_key) as guard:
        unnamed = await guard.check(**MARKETING_SHARE)
        objected = await guard.check(**MARKETING_SHARE, subject_ref="Kim@Example.se")
        batch = await guard.check_batch(
            [{**MARKETING_SHARE, "subject_ref": "kim@example.se"}, {**MARKETING_SHARE, "subject_ref": "lo@example.se"}]
        )
    assert unnamed.reason_codes == (SUBJECT_REF_MISSING,)
    assert objected.reason_codes == (SUBJECT_OBJECTED,)
    assert [d.reason_codes for d in batch] == [(SUBJECT_OBJECTED,), ()]


class _Busy(BaseHTTPRequestHandler):
    """Answers each path's POSTs in turn from its script (the last answer repeats), and counts them."""

    ALLOW = (
        b'{"decision_id": "7d4f4c1e-5a2b-4c2f-9d3e-1f0a2b3c4d5e", "allowed": true, "reasons": [], "warnings": [],'
        b' "agreement": "nordfrakt-dpa", "ruleset": "r", "decided_at": "2026-12-06T20:00:00+00:00", "sequence": 7}'
    )
    scripts: dict[str, list[tuple[int, dict[str, str], bytes]]] = {
        "/busy-once/api/guard/check": [(503, {"Retry-After": "0"}, b'{"allowed": false}'), (200, {}, ALLOW)],
        "/too-many-once/api/guard/check-batch": [
            (429, {"Retry-After": "1"}, b'{"allowed": false}'),
            (200, {}, b"[" + ALLOW + b"," + ALLOW + b"]"),
        ],
        "/busy-long/api/guard/check": [(429, {"Retry-After": "3600"}, b'{"allowed": false}'), (200, {}, ALLOW)],
        "/down/api/guard/check": [(503, {}, b'{"allowed": false}')],
    }
    seen: dict[str, int] = {}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        count = self.seen[self.path] = self.seen.get(self.path, 0) + 1
        script = self.scripts.get(self.path, [(404, {}, b"{}")])
        status, headers, body = script[min(count, len(script)) - 1]
        self.send_response(status)
        for name, value in {**headers, "content-type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def busy_server() -> Iterator[str]:
    _Busy.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_503_with_a_short_retry_after_is_asked_once_more_and_its_answer_obeyed(busy_server):
    with GuardClient(f"{busy_server}/busy-once", "ofx_any") as guard:
        decision = guard.check(**SEED_ALLOWED_SHARE)
    assert decision.allowed is True
    assert decision.sequence == 7 and decision.decided_at is not None and decision.decided_at.year == 2026
    assert _Busy.seen == {"/busy-once/api/guard/check": 2}


async def test_a_batch_refused_429_is_retried_after_its_retry_after_by_the_async_client(busy_server):
    async with AsyncGuardClient(f"{busy_server}/too-many-once", "ofx_any") as guard:
        decisions = await guard.check_batch([SEED_ALLOWED_SHARE, SEED_ALLOWED_SHARE])
    assert [d.allowed for d in decisions] == [True, True]
    assert _Busy.seen == {"/too-many-once/api/guard/check-batch": 2}


def test_a_retry_after_longer_than_the_client_waits_is_a_denial_at_once(busy_server):
    with GuardClient(f"{busy_server}/busy-long", "ofx_any", max_retry_wait=2.0) as guard:
        _assert_unreachable(guard.check(**SEED_ALLOWED_SHARE))
    assert _Busy.seen == {"/busy-long/api/guard/check": 1}


def test_the_retry_is_one_retry_and_can_be_switched_off(busy_server):
    with GuardClient(f"{busy_server}/down", "ofx_any") as guard:
        _assert_unreachable(guard.check(**SEED_ALLOWED_SHARE))
    assert _Busy.seen == {"/down/api/guard/check": 2}
    with GuardClient(f"{busy_server}/down", "ofx_any", max_retry_wait=0) as guard:
        _assert_unreachable(guard.check(**SEED_ALLOWED_SHARE))
    assert _Busy.seen == {"/down/api/guard/check": 3}
