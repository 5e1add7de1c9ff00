"""The UI against a hostile browser, over HTTP: security headers on every UI answer (error answers included),
HTML error pages under /ui/, and CSRF tokens that belong to one session only."""

from typing import Any

import pytest

from tests.ui_session import as_user, csrf_token, post_form
from web.ui.security import CONTENT_SECURITY_POLICY

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def assert_secured(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers.get(name))


def test_the_policy_allows_only_the_apps_own_files_and_no_framing() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(
    "path",
    ["/", "/ui/login", "/ui/", "/ui/parties", "/ui/no-such-page", "/ui/static/registry.css", "/ui/static/nothing.css"],
)
async def test_every_anonymous_ui_answer_carries_the_security_headers(ui_client: Any, path: str) -> None:
    response = await ui_client.get(path, follow_redirects=False)
    assert response.status_code in {200, 303, 404}, response.text
    assert_secured(response)


async def test_signed_in_pages_error_pages_and_refusals_carry_the_security_headers(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    answers = [
        await ui_client.get("/ui/"),
        await ui_client.get("/ui/parties/nordfrakt"),
        await ui_client.get("/ui/parties/no-such-party"),  # the UI's 404 page
        await ui_client.get("/ui/parties/new"),  # ops may not edit: the UI's 403 page
        await ui_client.post("/ui/parties/new", data={"key": "x"}),  # no CSRF token: refused by the middleware
        await ui_client.delete("/ui/parties"),  # a method no page takes: 405
        await ui_client.get("/ui/records/article-30"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 404, 403, 403, 405, 200]
    for answer in answers:
        assert_secured(answer)


async def test_an_unknown_ui_address_is_an_html_page_and_an_unknown_api_address_stays_json(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    page = await ui_client.get("/ui/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in page.text and "Back to the dashboard" in page.text
    api = await ui_client.get("/api/no-such-thing", headers={"Authorization": "Bearer nope"})
    assert api.headers["content-type"].startswith("application/json")
    assert "content-security-policy" not in api.headers


async def test_a_token_from_an_anonymous_login_page_is_refused_with_an_admins_session_cookie(
    ui_client: Any,
) -> None:
    # The attacker's half: an anonymous visit to the login page yields a token and its cookie.
    anonymous = await ui_client.get("/ui/login")
    stolen_token = csrf_token(anonymous.text)
    anonymous_cookie = ui_client.cookies.get("registry_csrf")
    assert anonymous_cookie
    # The victim's half: an admin's session cookie (the browser sends it along with any request to the app).
    await as_user(ui_client, "ada@offix.example")
    admin_session = ui_client.cookies.get("registry_session")
    assert admin_session
    ui_client.cookies.clear()
    ui_client.cookies.set("registry_session", admin_session)
    ui_client.cookies.set("registry_csrf", anonymous_cookie)
    forged = await ui_client.post(
        "/ui/admin/users",
        data={
            "email": "mallory@evil.example",
            "role": "admin",
            "password": "a long enough password",
            "_csrf_token": stolen_token,
        },
        follow_redirects=False,
    )
    assert forged.status_code == 403 and "security token" in forged.text
    assert_secured(forged)
    # The admin's own token, from a page of their own session, works.
    listing = await ui_client.get("/ui/admin")
    assert "mallory@evil.example" not in listing.text
    created = await post_form(
        ui_client,
        "/ui/admin",
        "/ui/admin/users",
        {"email": "nils@offix.example", "role": "ops", "password": "a long enough password"},
    )
    assert created.status_code == 303


async def test_signing_in_rotates_the_token_and_the_old_one_no_longer_works(ui_client: Any) -> None:
    before = csrf_token((await ui_client.get("/ui/login")).text)
    await as_user(ui_client, "lena@offix.example")
    after = csrf_token((await ui_client.get("/ui/parties/new")).text)
    assert before != after
    refused = await ui_client.post(
        "/ui/parties/new", data={"key": "x", "name": "X", "_csrf_token": before}, follow_redirects=False
    )
    assert refused.status_code == 403
    accepted = await ui_client.post("/ui/logout", data={"_csrf_token": after}, follow_redirects=False)
    assert accepted.status_code == 303


async def test_a_token_of_one_session_is_refused_in_another_session_of_the_same_user(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    first_token = csrf_token((await ui_client.get("/ui/parties/new")).text)
    ui_client.cookies.clear()
    await as_user(ui_client, "lena@offix.example")
    response = await ui_client.post(
        "/ui/parties/new", data={"key": "x", "name": "X", "_csrf_token": first_token}, follow_redirects=False
    )
    assert response.status_code == 403
