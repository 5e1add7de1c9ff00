"""The web UI in a real browser (Debian's Chromium driven by Playwright) against the real service.

Scenario of issue 5: log in, add a processor with a US sub-processor and watch the guard deny, fix the
location and watch it allow, edit an agreement, see a conflict, log out. Screenshots of the main pages go
to test-artifacts/screenshots/ (not committed)."""

import asyncio
import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from tests.conftest import bearer, make_key
from tests.e2e.browsing import ServiceThread, shot
from tests.ui_session import PASSWORD

ALL_CLAUSES = ("(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)", "(h)")


async def add_party(page: Page, base: str, key: str, name: str, role: str, established_in: str, **extra: str) -> None:
    await page.goto(f"{base}/ui/parties/new")
    await page.get_by_label("Key").fill(key)
    await page.locator("#name").fill(name)
    await page.get_by_label("Role").select_option(role)
    await page.get_by_label("Category").select_option(extra.get("category", "it_services"))
    await page.get_by_label("Established in").fill(established_in)
    if "location" in extra:
        await page.get_by_label("Territory of location 1").fill(extra["location"])
        await page.get_by_label("Kind of location 1").select_option("storage")
    if "sub_processor" in extra:
        await page.get_by_label("Sub-processor 1", exact=True).select_option(extra["sub_processor"])
        await page.get_by_label("Approved on, sub-processor 1").fill("2026-01-15")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("heading", level=1), await _errors(page)).to_have_text(name)


async def _errors(page: Page) -> str:
    """The form's error messages, for the failure message when a save was refused."""
    await page.wait_for_load_state()
    return " | ".join(await page.locator(".field-error, .alert").all_inner_texts())


async def tick(page: Page, field: str, keys: list[str]) -> None:
    """Tick taxonomy entries in a picker (a list of checkboxes, one per key)."""
    for key in keys:
        await page.locator(f'input[type="checkbox"][name="{field}"][value="{key}"]').check()


async def try_share(page: Page, base: str, recipient: str) -> str:
    await page.goto(f"{base}/ui/guard?recipient={recipient}")
    await page.get_by_label("Purpose").select_option("essential.service.operations")
    await page.get_by_label("Data subject").select_option("customer")
    await tick(page, "data_categories", ["user.name", "user.contact.address"])
    await page.get_by_role("button", name="Ask the guard").click()
    return await page.locator("#h-result").inner_text()


async def test_legal_keeps_the_registry_in_the_browser_and_the_guard_follows(
    ui_service: ServiceThread, browser: Browser, screenshots: Path, seeded_database: str
) -> None:
    base = ui_service.url
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(base) else None)
    script_errors: list[str] = []
    page.on("pageerror", lambda e: script_errors.append(str(e)))

    # Log in: the login page is where an anonymous visitor lands.
    await page.goto(base + "/")
    await expect(page).to_have_url(re.compile(r"/ui/login"))
    await shot(page, screenshots, "01-login")
    await page.get_by_label("E-mail").fill("lena@offix.example")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="What needs attention")).to_be_visible()
    await shot(page, screenshots, "02-dashboard")

    # A processor with a sub-processor in the US, under a complete DPA.
    await add_party(page, base, "stratus", "Stratus Cloud Inc.", "sub_processor", "US")
    await add_party(
        page,
        base,
        "paketexpress",
        "Paketexpress AB",
        "processor",
        "SE",
        category="transport",
        location="SE",
        sub_processor="stratus",
    )
    await page.goto(f"{base}/ui/agreements/new?party=paketexpress")
    await page.get_by_label("Key").fill("paketexpress-dpa-2026")
    await page.get_by_label("Signed on").fill("2026-01-10")
    await page.get_by_label("Effective from").fill("2026-01-10")
    await page.get_by_label("Expires on").fill("2028-01-09")
    await page.get_by_label("Owner e-mail").fill("legal@offix.example")
    for letter in ALL_CLAUSES:
        await page.get_by_label(re.compile(re.escape(letter))).check()
    # The taxonomy pickers: a filter narrows the long list, and the summary shows what is ticked.
    categories = page.get_by_role("group", name=re.compile("^Data categories"))
    await categories.get_by_label("Find in the list").fill("contact")
    await expect(categories.locator('input[value="system.operations"]')).to_be_hidden()
    await tick(page, "data_categories", ["user.contact"])
    await categories.get_by_label("Find in the list").fill("")
    await tick(page, "data_categories", ["user.name"])
    await expect(categories.locator(".chosen")).to_contain_text("user.contact, user.name")
    await tick(page, "purposes", ["essential.service.operations"])
    await tick(page, "data_subjects", ["customer"])
    await shot(page, screenshots, "03-agreement-form")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await shot(page, screenshots, "04-agreement")

    # The guard denies, naming the US sub-processor.
    assert await try_share(page, base, "paketexpress") == "Denied"
    await expect(page.locator(".reasons")).to_contain_text("SUBPROCESSOR_OUTSIDE_EEA")
    await shot(page, screenshots, "05-guard-denied")

    # Fix the location: the sub-processor moves its establishment to Ireland.
    await page.goto(f"{base}/ui/parties/stratus/edit")
    await page.get_by_label("Established in").fill("IE")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    # The guard's snapshot follows the change through PostgreSQL NOTIFY; ask until it has (bounded).
    outcome = ""
    for _ in range(20):
        outcome = await try_share(page, base, "paketexpress")
        if outcome == "Allowed":
            break
        await asyncio.sleep(0.25)
    assert outcome == "Allowed"
    await shot(page, screenshots, "06-guard-allowed")

    # More locations than the form's spare rows: "Add a location row" adds one in place.
    await page.goto(f"{base}/ui/parties/paketexpress/edit")
    await page.get_by_role("button", name="Add a location row").click()
    await page.get_by_label("Territory of location 5").fill("FI")
    await page.get_by_label("Kind of location 5").select_option("backup")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.locator("ul.places")).to_contain_text("Finland (FI)")

    await page.goto(f"{base}/ui/parties/paketexpress")
    await expect(page.locator("#h-chain")).to_be_visible()
    await shot(page, screenshots, "07-party")
    await page.goto(f"{base}/ui/parties")
    await shot(page, screenshots, "08-parties")
    await page.goto(f"{base}/ui/decisions?recipient=paketexpress")
    await expect(page.locator("table")).to_contain_text("denied")
    await shot(page, screenshots, "09-decisions")
    await page.goto(f"{base}/ui/renewals")
    await shot(page, screenshots, "10-renewals")

    # Edit an agreement.
    await page.goto(f"{base}/ui/agreements/paketexpress-dpa-2026/edit")
    await page.get_by_label("Notice period (days)").fill("90")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.locator("dl.facts")).to_contain_text("90 days' notice")

    # Someone else saves while this user edits: the conflict is shown and nothing typed is lost.
    await page.goto(f"{base}/ui/agreements/paketexpress-dpa-2026/edit")
    await page.get_by_label("Owner e-mail").fill("lena@offix.example")
    token = await make_key(seeded_database, "other-editor", "registry:read", "registry:write")
    async with httpx.AsyncClient(base_url=base, headers=bearer(token)) as api:
        current = (await api.get("/api/agreements/paketexpress-dpa-2026")).json()
        change = {k: v for k, v in current.items() if k not in {"key", "created_at", "updated_at"}}
        change["expires_on"] = "2029-01-09"
        assert (await api.put("/api/agreements/paketexpress-dpa-2026", json=change)).status_code == 200
    await page.get_by_role("button", name="Save").click()
    conflict = page.locator("#conflict")
    await expect(conflict).to_contain_text("saved this record while you were editing")
    await expect(conflict).to_contain_text("2029-01-09")
    await expect(page.get_by_label("Owner e-mail")).to_have_value("lena@offix.example")
    await shot(page, screenshots, "11-conflict")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    # Saving again after seeing the differences applies this user's whole form, expiry included.
    await expect(page.locator("dl.facts")).to_contain_text("lena@offix.example")
    # Dates are shown in the page's language (this browser asks for English).
    await expect(page.locator("dl.facts")).to_contain_text("Jan 9, 2028")

    # Log out: the session ends and pages lead back to the login.
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/ui/login"))
    await page.goto(f"{base}/ui/parties")
    await expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    assert external == [], f"the pages fetched from elsewhere: {external}"
    assert script_errors == [], f"the pages' script failed: {script_errors}"
    await context.close()
