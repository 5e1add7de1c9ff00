"""Every route the app serves, found by walking the app rather than listed by hand, refuses a caller without a
key (the API with 401, the web UI with a redirect to its login) and a key without the route's scope (403).
OPTIONS is a route like the others: Litestar lets it past authentication unless told otherwise."""

import re
from typing import Any

from litestar import Litestar

from tests.conftest import bearer, make_key
from web.auth import SCOPES, required_scope

# Paths anyone may call: health probes, the UI's login page, its language switch (it sets a cookie, and stores
# the choice only for a valid session) and static files, the root redirect, and the calendar feed (its secret
# token is the credential).
PUBLIC_PATHS = {
    "/health/live",
    "/health/ready",
    "/",
    "/ui/login",
    # single sign-on's start and the identity provider's return (the signed flow cookie is the credential)
    "/ui/login/oidc",
    "/ui/login/oidc/callback",
    "/ui/language",
    "/ui/static/{file_path:path}",
    "/calendar/{filename:str}",
}
SAMPLE_PATH_VALUES = {"{key:str}": "acme", "{name:str}": "nobody", "{path:str}": "nothing"}


def protected_calls(app: Litestar) -> list[tuple[str, str, set[str]]]:
    """(method, path, the scopes the route requires) for every route outside PUBLIC_PATHS."""
    calls = []
    for route in app.routes:
        if route.path in PUBLIC_PATHS or route.path.startswith("/schema"):
            continue  # the OpenAPI document, its docs UI and their files: the contract is public
        path = route.path
        for placeholder, value in SAMPLE_PATH_VALUES.items():
            path = path.replace(placeholder, value)
        path = re.sub(r"\{\w+:int\}", "1", path)
        for handler in getattr(route, "route_handlers", []):
            scope = required_scope(handler)
            scopes = {scope} if scope is not None else set()
            calls += [(method, path, scopes) for method in sorted(handler.http_methods) if method != "HEAD"]
    return calls


def refused_without_a_caller(path: str, response: Any) -> bool:
    if path.startswith("/ui"):
        return response.status_code == 303 and response.headers["location"].startswith("/ui/login")
    return response.status_code == 401


async def test_every_route_but_the_public_ones_refuses_a_call_without_a_key(app, client):
    calls = protected_calls(app)
    assert len(calls) > 50  # the walk found the app's routes, OPTIONS included
    assert any(method == "OPTIONS" and path == "/api/keys" for method, path, _ in calls)
    let_through = []
    for method, path, _ in calls:
        response = await client.request(method, path, follow_redirects=False)
        if not refused_without_a_caller(path, response):
            let_through.append(f"{method} {path} → {response.status_code}")
    assert let_through == []


async def test_every_route_refuses_an_unknown_key(app, client):
    let_through = []
    for method, path, _ in protected_calls(app):
        response = await client.request(method, path, headers=bearer("ofx_not-a-real-key"), follow_redirects=False)
        if not refused_without_a_caller(path, response):
            let_through.append(f"{method} {path} → {response.status_code}")
    assert let_through == []


async def test_every_guarded_route_refuses_a_key_without_its_scope_with_403(app, client, database):
    narrow_keys = {}
    for scope in SCOPES:
        others = [s for s in SCOPES if s not in (scope, "admin")]
        narrow_keys[scope] = bearer(await make_key(database, f"all-but-{scope.replace(':', '-')}", *others))
    let_through = []
    for method, path, scopes in protected_calls(app):
        for scope in scopes:
            response = await client.request(method, path, headers=narrow_keys[scope], follow_redirects=False)
            if response.status_code != 403:
                let_through.append(f"{method} {path} without {scope} → {response.status_code}")
    assert let_through == []


async def test_options_on_an_admin_route_is_a_401_without_a_key_and_a_403_without_the_admin_scope(
    client, reader_headers, admin_headers
):
    for path in ("/api/keys", "/api/keys/nobody", "/api/calendar-feeds", "/api/calendar-feeds/nobody"):
        assert (await client.options(path)).status_code == 401, path
        assert (await client.options(path, headers=reader_headers)).status_code == 403, path
        assert (await client.options(path, headers=admin_headers)).status_code == 204, path
