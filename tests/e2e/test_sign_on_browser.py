"""Single sign-on in a real browser (Debian's Chromium driven by Playwright): the login page's button, the
identity provider's own sign-in page (oidc-provider-mock on 127.0.0.1), and back to the registry signed in;
a user whose claim gives no role sees the refusal page in the browser's language."""

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, expect

from tests.conftest import free_port
from tests.conftest import test_settings as settings_for
from tests.e2e.browsing import ServiceThread
from tests.integration.test_sign_on import CLIENT_ID, CLIENT_SECRET, Provider
from tests.integration.test_sign_on import provider as provider  # a fixture, shared
from web.app import create_app


class SignOnService(ServiceThread):
    """The real service under uvicorn in a thread, with single sign-on at the test's provider."""

    def __init__(self, database: str, issuer: str) -> None:
        self.port = free_port()
        settings = settings_for(
            database,
            public_url=f"http://127.0.0.1:{self.port}",
            oidc_issuer=issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_role_map=(("legal", "legal"), ("ops", "ops"), ("admin", "admin"), ("Registry.Ops", "ops")),
        )
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.fixture
async def service(seeded_database: str, provider: Provider) -> AsyncIterator[SignOnService]:
    provider.reset()
    async with SignOnService(seeded_database, provider.issuer) as running:
        yield running


async def test_a_user_signs_in_with_the_button_at_the_provider_and_comes_back_signed_in(
    browser: Browser, service: Any
) -> None:
    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    await page.goto(f"{service.url}/ui/login")
    await page.get_by_role("link", name="Sign in with single sign-on").click()
    await expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    await page.get_by_role("button", name="lena", exact=True).click()
    await page.wait_for_url(f"{service.url}/ui/")
    await expect(page.locator("body")).to_contain_text("lena@offix.example")
    await context.close()


async def test_a_user_without_a_role_sees_the_refusal_in_swedish(browser: Browser, service: Any) -> None:
    context = await browser.new_context(locale="sv-SE", extra_http_headers={"Accept-Language": "sv-SE,sv;q=0.9"})
    page = await context.new_page()
    await page.goto(f"{service.url}/ui/login")
    await page.get_by_role("link", name="Logga in med enkel inloggning").click()
    await page.get_by_role("button", name="nils", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Inte inloggad")
    await expect(page.locator("main")).to_contain_text("ingen roll i registret")
    await expect(page.get_by_role("link", name="Tillbaka till inloggningssidan")).to_be_visible()
    await context.close()
