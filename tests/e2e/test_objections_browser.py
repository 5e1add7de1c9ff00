"""The objections and recipients pages in a real browser (Debian's Chromium driven by Playwright): a legal
user records an unsubscribe the guard obeys at once, withdraws it, and prints one person's recipients in
Swedish. Screenshots go to test-artifacts/screenshots/ (not committed)."""

import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, expect

from tests.conftest import bearer, make_key
from tests.e2e.browsing import ServiceThread, shot
from tests.integration.test_objections import MARKETING
from tests.ui_session import PASSWORD

PERSON = "Maja.Lind@Example.SE"


async def test_legal_records_and_withdraws_an_objection_and_prints_the_recipients_in_swedish(
    ui_service: ServiceThread, browser: Browser, screenshots: Path, seeded_database: str
) -> None:
    base = ui_service.url
    guard = bearer(await make_key(seeded_database, "webshop-browser", "guard:check"))
    async with httpx.AsyncClient(base_url=base) as http:

        async def allowed() -> bool:
            answer = await http.post("/api/guard/check", json={**MARKETING, "subject_ref": PERSON}, headers=guard)
            assert answer.status_code == 200, answer.text
            return bool(answer.json()["allowed"])

        assert await allowed()
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await page.goto(base + "/ui/login")
        await page.get_by_label("E-mail").fill("lena@offix.example")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("heading", name="What needs attention")).to_be_visible()

        await page.get_by_role("link", name="Objections").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Objections and unsubscribes")
        await page.locator("#subject").fill(PERSON)
        await page.get_by_label("Scope").select_option("direct_marketing")
        await page.get_by_label("Source").fill("unsubscribe link in newsletter")
        await page.get_by_role("button", name="Record", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("the guard obeys it now")
        await shot(page, screenshots, "objections-recorded")
        assert not await allowed()

        await page.get_by_role("button", name=re.compile(r"^Withdraw")).click()
        await expect(page.get_by_role("status")).to_contain_text("withdrawn")
        assert await allowed()

        await page.goto(f"{base}/ui/subjects/recipients?lang=sv")
        await page.get_by_label("E-postadress eller kundnummer").fill(PERSON.lower())
        await page.get_by_role("button", name="Visa").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Mottagare av en persons uppgifter")
        await expect(page.get_by_role("cell", name=re.compile("^Kvarnberg"))).to_be_visible()
        await expect(page.get_by_role("cell", name=re.compile("dpo@kvarnberg"))).to_be_visible()  # its contact
        await page.emulate_media(media="print")
        await expect(page.locator("header.top")).to_be_hidden()
        await shot(page, screenshots, "subject-recipients-sv-print")
        await context.close()
