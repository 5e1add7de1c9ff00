"""The page of a person's rights in a real browser (Debian's Chromium driven by Playwright): a legal user
restricts a person's processing (the guard refuses at once), lifts it, and erases the person; the recipients page
then lists nobody. Screenshots go to test-artifacts/screenshots/ (not committed)."""

import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, expect

from tests.conftest import bearer, make_key
from tests.e2e.browsing import ServiceThread, shot
from tests.integration.test_objections import DELIVERY
from tests.ui_session import PASSWORD

PERSON = "Nils.Ek@Example.SE"


async def test_legal_restricts_lifts_and_erases_a_person_from_the_rights_page(
    ui_service: ServiceThread, browser: Browser, screenshots: Path, seeded_database: str
) -> None:
    base = ui_service.url
    guard = bearer(await make_key(seeded_database, "webshop-browser", "guard:check"))
    async with httpx.AsyncClient(base_url=base) as http:

        async def answer() -> dict:
            response = await http.post("/api/guard/check", json={**DELIVERY, "subject_ref": PERSON}, headers=guard)
            assert response.status_code == 200, response.text
            return response.json()

        assert (await answer())["allowed"] is True
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await page.goto(base + "/ui/login")
        await page.get_by_label("E-mail").fill("lena@offix.example")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("heading", name="What needs attention")).to_be_visible()

        await page.get_by_role("link", name="A person's rights").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("A person's rights")
        await page.locator("#subject").fill(PERSON)
        await page.locator("#source").fill("letter")
        await page.get_by_role("button", name="Restrict processing").click()
        await expect(page.get_by_role("status")).to_contain_text("refuses every share of this person now")
        await shot(page, screenshots, "restriction-recorded")
        assert [r["code"] for r in (await answer())["reasons"]] == ["SUBJECT_RESTRICTED"]

        await page.get_by_role("button", name=re.compile(r"^Lift")).click()
        await expect(page.get_by_role("status")).to_contain_text("lifted")
        assert (await answer())["allowed"] is True

        await page.locator("#erase_subject").fill(PERSON.lower())
        await page.get_by_role("button", name="Erase this person").click()
        await expect(page.get_by_role("status")).to_contain_text("nothing the registry keeps links to them")
        await expect(page.locator("#erasure-outcome")).to_be_visible()
        await shot(page, screenshots, "subject-erased")

        await page.goto(f"{base}/ui/subjects/recipients")
        await page.locator("#subject").fill(PERSON)
        await page.get_by_role("button", name="Show").click()
        await expect(
            page.get_by_text("No recipient has received this person's data through the guard.")
        ).to_be_visible()
        await context.close()
