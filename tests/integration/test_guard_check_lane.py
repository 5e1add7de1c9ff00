"""A guard check by a key the cache holds is answered in front of Litestar's router (web/controllers/guard.py,
`CheckLane`), and answered exactly as the route answers it; everything else takes the route."""

import json
from typing import Any

import pytest

from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key
from web.composition import services_of
from web.controllers.guard import CheckLane

DENIED_SHARE = {**SEED_ALLOWED_SHARE, "recipient": "nobody-we-know"}


class Route:
    """Stands in for the app behind the lane: records what the lane passed on, answers 418."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _through_lane(
    client: Any, app: Any, headers: dict[str, str], body: bytes, *, method: str = "POST", path: str = "/api/guard/check"
) -> tuple[Route, int, Any]:
    """The request sent through the app with a `Route` in place of what is behind the lane."""
    lane = app.asgi_handler
    assert isinstance(lane, CheckLane)
    behind, route = lane.app, Route()
    lane.app = route
    try:
        response = await client.request(method, path, content=body, headers=headers)
    finally:
        lane.app = behind
    return route, response.status_code, response.json() if response.content else None


@pytest.fixture
async def warm_client(seeded_database, client, guard_headers, reader_headers):
    """The app with both keys in its key cache (each used once through the route)."""
    for headers in (guard_headers, reader_headers):
        await client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=headers)
    return client


async def test_a_check_by_a_cached_key_is_answered_by_the_lane_as_the_route_answers_it(warm_client, app, guard_headers):
    for share in (SEED_ALLOWED_SHARE, DENIED_SHARE):
        by_route = (await warm_client.post("/api/guard/check", json=share, headers=guard_headers)).json()
        route, status, by_lane = await _through_lane(warm_client, app, guard_headers, json.dumps(share).encode())
        assert (route.calls, status) == (0, 200)
        assert by_lane["sequence"] > by_route["sequence"]
        for varying in ("decision_id", "decided_at", "sequence"):
            del by_lane[varying], by_route[varying]
        assert by_lane == by_route


async def test_the_lane_logs_its_checks_under_the_callers_key(warm_client, app, guard_headers, admin_headers):
    _, status, answer = await _through_lane(warm_client, app, guard_headers, json.dumps(SEED_ALLOWED_SHARE).encode())
    assert status == 200
    entry = await warm_client.get(f"/api/guard/decisions/{answer['decision_id']}", headers=admin_headers)
    assert entry.status_code == 200, entry.text
    assert entry.text.count('"webshop"') >= 1


async def test_a_bad_request_through_the_lane_is_the_routes_400(warm_client, app, guard_headers):
    by_route = await warm_client.post("/api/guard/check", json={"recipient": 1}, headers=guard_headers)
    route, status, by_lane = await _through_lane(warm_client, app, guard_headers, b'{"recipient": 1}')
    assert (route.calls, status, by_route.status_code) == (0, 400, 400)
    assert by_lane == by_route.json()


@pytest.mark.parametrize(
    ("case", "method", "path"),
    [
        ("no key", "POST", "/api/guard/check"),
        ("another scheme", "POST", "/api/guard/check"),
        ("a key nobody looked up", "POST", "/api/guard/check"),
        ("a key without the guard scope", "POST", "/api/guard/check"),
        ("another method", "GET", "/api/guard/check"),
        ("another path", "POST", "/api/guard/check-batch"),
        ("a trailing slash", "POST", "/api/guard/check/"),
    ],
)
async def test_anything_but_a_check_by_a_cached_guard_key_takes_the_route(
    warm_client, app, database, guard_headers, reader_headers, case, method, path
):
    headers = {
        "no key": {},
        "another scheme": {"Authorization": guard_headers["Authorization"].replace("Bearer", "Basic")},
        "a key nobody looked up": bearer(await make_key(database, "fresh", "guard:check")),
        "a key without the guard scope": reader_headers,
    }.get(case, guard_headers)
    route, status, _ = await _through_lane(
        warm_client, app, headers, json.dumps(SEED_ALLOWED_SHARE).encode(), method=method, path=path
    )
    assert (route.calls, status) == (1, 418)


class BrokenRuntime:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def check_body(self, raw: bytes, caller: str, request_id: str | None = None) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (RuntimeError("a bug"), "the guard cannot decide: an unexpected error (RuntimeError)"),
        (
            ConnectionResetError("gone"),
            "the guard cannot decide: the registry database is unavailable (ConnectionResetError)",
        ),
    ],
)
async def test_an_error_the_check_cannot_answer_is_a_logged_fail_closed_503(
    warm_client, app, guard_headers, caplog, error, detail
):
    working = services_of(app).guard
    services_of(app).guard = BrokenRuntime(error)
    try:
        route, status, answer = await _through_lane(
            warm_client, app, guard_headers, json.dumps(SEED_ALLOWED_SHARE).encode()
        )
    finally:
        services_of(app).guard = working
    assert (route.calls, status) == (0, 503)
    assert answer == {"status_code": 503, "allowed": False, "detail": detail}
    lane = [r for r in caplog.records if r.name == "web.controllers.guard"]
    if isinstance(error, ConnectionResetError):  # a known outage: one line naming it, no traceback
        assert [(r.levelname, r.exc_info) for r in lane] == [("WARNING", None)]
        assert "the registry database is unavailable (ConnectionResetError: gone)" in lane[0].getMessage()
    else:  # a bug: its traceback is what its report needs
        assert any(r.exc_info and r.exc_info[1] is error for r in lane)
