"""The web UI in Swedish and English in a real browser (Debian's Chromium driven by Playwright).

A Swedish browser gets Swedish pages; the switch in the header changes the language and the choice is
remembered for the user; a processor with a US sub-processor is outside the EEA everywhere the UI says so;
badges agree between list and page; axe-core finds no violations on the pages walked, in either language;
list tables fit a phone. Screenshots of the main pages in both languages go to
test-artifacts/screenshots/languages/ (not committed)."""

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import bearer, make_key
from tests.e2e.browsing import SCREENSHOTS, ServiceThread
from tests.ui_session import PASSWORD, add_user

MAIN_PAGES = {
    "dashboard": "/ui/",
    "parties": "/ui/parties",
    "party": "/ui/parties/nordmoln",
    "agreements": "/ui/agreements",
    "agreement": "/ui/agreements/nordfrakt-dpa-2024",
    "data-map": "/ui/data-map",
    "try-a-share": "/ui/guard",
    "decisions": "/ui/decisions",
    "renewals": "/ui/renewals",
    "agreement-form": "/ui/agreements/nordfrakt-dpa-2024/edit",
}
AXE = Axe()


@pytest.fixture
async def service(seeded_database: str) -> AsyncIterator[ServiceThread]:
    await add_user(seeded_database, "lena@offix.example", "legal")
    async with ServiceThread(seeded_database) as running:
        # A processor in Sweden whose sub-processor stores the data in the United States.
        key = await make_key(seeded_database, "setup", "registry:write")
        async with httpx.AsyncClient(base_url=running.url, headers=bearer(key)) as api:
            for party in (
                {"key": "usmoln", "name": "US Moln Inc", "role": "sub_processor", "category": "it_services",
                 "established_in": "US", "locations": [{"territory": "US", "kind": "storage"}]},
                {"key": "nordmoln", "name": "Nordmoln AB", "role": "processor", "category": "it_services",
                 "established_in": "SE", "locations": [{"territory": "SE", "kind": "processing"}],
                 "sub_processors": [{"party": "usmoln", "approved_on": "2026-01-15"}]},
            ):  # fmt: skip
                response = await api.post("/api/parties", json=party)
                assert response.status_code == 201, response.text
        yield running


@pytest.fixture
def screenshots() -> Iterator[Path]:
    folder = SCREENSHOTS / "languages"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder


async def log_in(page: Page, base: str, button: str) -> None:
    await page.goto(f"{base}/ui/")
    await page.locator("#email").fill("lena@offix.example")
    await page.locator("#password").fill(PASSWORD)
    await page.locator("form.stack").get_by_role("button", name=button).click()
    await expect(page.locator("h1")).to_be_visible()


async def no_axe_violations(page: Page, where: str) -> None:
    results = await AXE.run(page)
    assert results.violations_count == 0, f"{where}: {results.generate_report()}"


async def walk(page: Page, base: str, language: str, folder: Path) -> None:
    """Every main page: in the language, accessible, screenshotted."""
    for name, path in MAIN_PAGES.items():
        response = await page.goto(base + path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await no_axe_violations(page, f"{language} {path}")
        await page.screenshot(path=str(folder / f"{language}-{name}.png"), full_page=True)


async def new_context(browser: Browser, locale: str, **options: object) -> BrowserContext:
    return await browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}, **options)  # type: ignore[arg-type]


async def test_a_swedish_browser_reads_swedish_and_the_switch_remembers_english_for_the_user(
    service: ServiceThread, browser: Browser, screenshots: Path
) -> None:
    base = service.url
    swedish = await new_context(browser, "sv-SE")
    page = await swedish.new_page()
    await page.goto(f"{base}/ui/login")
    await expect(page.locator("html")).to_have_attribute("lang", "sv")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Logga in")
    await no_axe_violations(page, "sv login")
    await page.screenshot(path=str(screenshots / "sv-login.png"), full_page=True)
    await log_in(page, base, "Logga in")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Det här behöver åtgärdas")
    await walk(page, base, "sv", screenshots)

    # The switch: English on this and every later page, for this user in any browser.
    await page.goto(f"{base}/ui/parties")
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page).to_have_url(re.compile(r"/ui/parties$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Parties")
    await walk(page, base, "en", screenshots)
    await swedish.close()

    another = await new_context(browser, "sv-SE")
    page = await another.new_page()
    await page.goto(f"{base}/ui/login")
    await expect(page.locator("html")).to_have_attribute("lang", "sv")  # no one signed in yet: the browser's
    await log_in(page, base, "Logga in")
    await expect(page.locator("html")).to_have_attribute("lang", "en")  # the user's remembered choice
    await page.get_by_role("button", name="Svenska").click()
    await expect(page.locator("html")).to_have_attribute("lang", "sv")
    await another.close()


async def test_a_processor_with_a_us_sub_processor_is_outside_the_eea_on_every_page(
    service: ServiceThread, browser: Browser, screenshots: Path
) -> None:
    base = service.url
    context = await new_context(browser, "en-GB")
    page = await context.new_page()
    await log_in(page, base, "Log in")

    await page.goto(f"{base}/ui/parties?eea=outside")
    row = page.locator("tbody tr", has=page.get_by_role("link", name="Nordmoln AB"))
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("outside EEA")
    await expect(row).to_contain_text("through US Moln Inc")
    list_badge = (await row.locator("td").nth(4).inner_text()).strip()

    await page.goto(f"{base}/ui/parties?eea=inside")
    await expect(page.get_by_role("link", name="Nordmoln AB")).to_have_count(0)
    await expect(page.get_by_role("link", name="Nordfrakt Logistik AB")).to_have_count(1)

    # The party's page shows the same agreement badge as the list, and its chain reaches the US.
    await page.goto(f"{base}/ui/parties/nordmoln")
    await expect(page.locator("p.meta .badge").last).to_have_text(list_badge)
    await expect(page.locator("ul.chain")).to_contain_text("US Moln Inc")
    await expect(page.locator("ul.chain")).to_contain_text("outside EEA")

    # Where our data goes: the United States, held by Nordmoln through US Moln.
    await page.goto(f"{base}/ui/data-map")
    us = page.locator("section.outside", has=page.get_by_role("heading", name=re.compile(r"United States")))
    await expect(us).to_contain_text("Nordmoln AB")
    await expect(us).to_contain_text("through US Moln Inc")
    await no_axe_violations(page, "en data map")

    # A denied share shows up on the dashboard, grouped by recipient and reason, linked to the log.
    await page.goto(f"{base}/ui/guard?recipient=nordmoln")
    await page.get_by_label("Purpose").select_option("essential.service.operations")
    await page.get_by_label("Data subject").select_option("customer")
    await page.locator('input[name="data_categories"][value="user.name"]').check()
    await page.get_by_role("button", name="Ask the guard").click()
    await expect(page.locator("#h-result")).to_have_text("Denied")
    await page.goto(f"{base}/ui/")
    denied = page.locator("section[aria-labelledby='h-denied']")
    await expect(denied.locator("h2 .count")).to_have_text("1")
    group = denied.locator("tbody tr").first
    await expect(group).to_contain_text("Nordmoln AB")
    await group.get_by_role("link", name=re.compile("Show these denials")).click()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("denied")
    await page.screenshot(path=str(screenshots / "en-dashboard-denials.png"), full_page=True)
    await context.close()


async def test_list_pages_fit_a_phone_and_sort_by_their_columns(
    service: ServiceThread, browser: Browser, screenshots: Path
) -> None:
    base = service.url
    context = await browser.new_context(locale="sv-SE", viewport={"width": 375, "height": 800}, is_mobile=True)
    page = await context.new_page()
    await log_in(page, base, "Logga in")
    for name in ("parties", "agreements", "decisions", "dashboard", "data-map"):
        await page.goto(base + MAIN_PAGES[name])
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow}px wider than the phone"
        await no_axe_violations(page, f"phone {name}")
        await page.screenshot(path=str(screenshots / f"phone-sv-{name}.png"), full_page=True)
    await context.close()

    context = await new_context(browser, "en-GB")
    page = await context.new_page()
    await log_in(page, base, "Log in")
    await page.goto(f"{base}/ui/parties")
    await page.get_by_role("columnheader", name="Name").get_by_role("link").click()
    await expect(page.get_by_role("columnheader", name=re.compile("Name"))).to_have_attribute("aria-sort", "descending")
    names = await page.locator("tbody tr td:first-child a").all_inner_texts()
    assert len(names) > 3 and names[0].lower() > names[-1].lower(), names
    await context.close()
