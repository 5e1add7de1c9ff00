"""The UI's defences and its administration against the real service under uvicorn: a real HTTP client forging
a cross-session CSRF request and reading the security headers, and Chromium walking an admin's password reset
through to the user's forced change, with the content security policy in force (no violation reported)."""

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.browsing import ServiceThread
from tests.ui_session import PASSWORD, add_user, csrf_token
from web.ui.security import CONTENT_SECURITY_POLICY


@pytest.fixture
async def service(seeded_database: str) -> AsyncIterator[ServiceThread]:
    await add_user(seeded_database, "lena@offix.example", "legal")
    await add_user(seeded_database, "ada@offix.example", "admin")
    async with ServiceThread(seeded_database) as running:
        yield running


async def sign_in(client: httpx.AsyncClient, email: str) -> None:
    form = await client.get("/ui/login")
    response = await client.post(
        "/ui/login", data={"email": email, "password": PASSWORD, "next": "/ui/", "_csrf_token": csrf_token(form.text)}
    )
    assert response.status_code == 303, response.text


async def test_a_forged_form_with_an_anonymous_token_and_an_admins_cookie_is_refused_over_http(
    service: ServiceThread,
) -> None:
    async with httpx.AsyncClient(base_url=service.url) as attacker, httpx.AsyncClient(base_url=service.url) as admin:
        login_page = await attacker.get("/ui/login")
        token, anonymous_cookie = csrf_token(login_page.text), attacker.cookies["registry_csrf"]
        await sign_in(admin, "ada@offix.example")
        # Both cookies as the victim's browser would send them; the token the attacker fetched anonymously.
        cookie = f"registry_session={admin.cookies['registry_session']}; registry_csrf={anonymous_cookie}"
        async with httpx.AsyncClient(base_url=service.url, headers={"Cookie": cookie}) as forger:
            forged = await forger.post(
                "/ui/admin/users",
                data={
                    "email": "mallory@evil.example",
                    "role": "admin",
                    "password": "long enough password",
                    "_csrf_token": token,
                },
            )
        assert forged.status_code == 403
        assert forged.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        users = await admin.get("/ui/admin")
        assert "mallory@evil.example" not in users.text
        legit = await admin.post(
            "/ui/admin/users",
            data={
                "email": "nils@offix.example",
                "role": "ops",
                "password": PASSWORD,
                "_csrf_token": csrf_token(users.text),
            },
        )
        assert legit.status_code == 303


@pytest.mark.parametrize("path", ["/ui/login", "/ui/", "/ui/no-such-page", "/ui/static/registry.js"])
async def test_the_running_service_sends_the_security_headers_on_ui_answers(service: ServiceThread, path: str) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get(path)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def log_in(page: Page, base: str, email: str, password: str) -> None:
    await page.goto(f"{base}/ui/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def test_an_admin_resets_a_password_in_the_browser_and_the_user_must_choose_a_new_one(
    service: ServiceThread, browser: Browser
) -> None:
    base = service.url
    context = await browser.new_context()
    page = await context.new_page()
    violations: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(message.text)

    page.on("console", on_console)

    await log_in(page, base, "ada@offix.example", PASSWORD)
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await page.goto(f"{base}/ui/admin")
    await page.get_by_role("button", name="Reset the password of lena@offix.example").click()
    temporary = (await page.locator("#temporary-password").inner_text()).strip()
    assert len(temporary) >= 12
    await expect(page.locator("#h-admin-history").locator("..")).to_contain_text("reset password")
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/ui/login"))

    await log_in(page, base, "lena@offix.example", temporary)
    await expect(page).to_have_url(re.compile(r"/ui/account/password$"))
    await expect(page.get_by_role("alert")).to_contain_text("An administrator reset your password")
    await page.goto(f"{base}/ui/parties")
    await expect(page).to_have_url(re.compile(r"/ui/account/password$"))
    await page.get_by_label("Current password").fill(temporary)
    await page.get_by_label("New password (at least 12 characters)").fill("lenas own new password")
    await page.get_by_label("New password again").fill("lenas own new password")
    await page.get_by_role("button", name="Change password").click()
    await expect(page).to_have_url(re.compile(r"/ui/$"))
    await expect(page.get_by_role("heading", level=1)).to_be_visible()

    # The page's script still runs under the policy: the record's print button is shown by it.
    await page.goto(f"{base}/ui/records/article-30")
    await expect(page.get_by_role("button", name="Print / save as PDF")).to_be_visible()
    assert violations == [], violations
    await context.close()
