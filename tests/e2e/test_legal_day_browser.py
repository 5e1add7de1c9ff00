"""The legal team's day in Chromium with a Swedish browser (issue 28): add a processor and its US sub-processor,
see the party list's "refused" filter and the party page agree with the guard, a DPA with its checklist (the form
saying at once why the guard would refuse it), its signed PDF, the Art. 30 page and its downloads, an unsubscribe
list imported, a share tried and refused in Swedish sentences, a record an import removed restored from its page.
On every page walked, no English word a lawyer reads.

Screenshots go to test-artifacts/screenshots/ (not committed; the issue's note names copies under /work/notes/)."""

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import bearer, make_key
from tests.e2e.browsing import CHROMIUM_ARGS, SCREENSHOTS, ServiceThread, shot
from tests.e2e.test_ui_browser import ALL_CLAUSES, tick
from tests.ui_session import PASSWORD, add_user

# (<code>), keys, names and the language switch's "English" are not prose and are left out of the check.
ENGLISH = re.compile(
    r"\b(the|and|with|of|is|not|agreement|agreements|party|parties|guard|share|shares|refused|refuses|denied|"
    r"allowed|outside|inside|processor|sub-processor|approved|Save|Dashboard|Objections|Recipient|Employee|"
    r"Customer|Download|Removed|removed|records|Try|Log out|Sign|Unknown|found)\b"
)
PAGE_TEXT = """() => {
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll('code, script, style, [lang="en"], .long, option').forEach(e => e.remove());
  return copy.innerText;
}"""
SWEDISH_UNSUBSCRIBES = "\ufeffNamn;E-post;Avregistrerad\nAnna Bergström;anna@example.se;2026-01-02\n"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
async def legal_service(seeded_database: str) -> AsyncIterator[ServiceThread]:
    await add_user(seeded_database, "lena@offix.example", "legal")
    async with ServiceThread(seeded_database) as running:
        yield running


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def no_english(page: Page, where: str = "body") -> None:
    text = await page.evaluate(PAGE_TEXT) if where == "body" else await page.locator(where).inner_text()
    prose = re.sub(r"\S*/\S*|\S+@\S+", " ", text)  # addresses and paths are not prose
    found = sorted({m.group(0) for m in ENGLISH.finditer(prose)})
    assert not found, f"English on {page.url}: {found}\n{text[:3000]}"


async def add_party(page: Page, base: str, key: str, name: str, role: str, established_in: str, **extra: str) -> None:
    await page.goto(f"{base}/ui/parties/new")
    await no_english(page)
    await page.locator("#key").fill(key)
    await page.locator("#name").fill(name)
    await page.locator("#role").select_option(role)
    await page.locator("#category").select_option("it_services")
    await page.locator("#established_in").fill(established_in)
    if "location" in extra:
        await page.locator("#loc-0-territory").fill(extra["location"])
        await page.locator("#loc-0-kind").select_option("storage")
    if "sub_processor" in extra:
        await page.locator("#sub-0-party").select_option(extra["sub_processor"])
    await page.get_by_role("button", name="Spara").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    await no_english(page)


async def test_the_legal_teams_day_in_swedish(
    legal_service: ServiceThread, chromium: Browser, seeded_database: str, tmp_path: Path
) -> None:
    base, screenshots = legal_service.url, SCREENSHOTS
    await asyncio.to_thread(screenshots.mkdir, parents=True, exist_ok=True)
    context = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE", accept_downloads=True)
    page = await context.new_page()

    await page.goto(base + "/ui/login")
    await no_english(page)
    await page.locator("#email").fill("lena@offix.example")
    await page.locator("#password").fill(PASSWORD)
    await page.get_by_role("button", name="Logga in").click()
    await expect(page.locator("html")).to_have_attribute("lang", "sv")
    await no_english(page)

    # A processor engaging a US sub-processor nobody has approved.
    await add_party(page, base, "usmoln", "US Moln Inc", "sub_processor", "US")
    await add_party(
        page, base, "paketexpress", "Paketexpress AB", "processor", "SE", location="SE", sub_processor="usmoln"
    )
    await expect(page.locator('[aria-label="Iakttagelser"]')).to_contain_text("Underbiträdet US Moln Inc (usmoln)")

    # A DPA with its whole checklist; ticking "permits transfers outside the EEA" is refused at the field.
    await page.goto(f"{base}/ui/agreements/new?party=paketexpress")
    await no_english(page)
    await page.locator("#key").fill("paketexpress-dpa-2026")
    await page.locator("#signed_on").fill("2026-01-10")
    await page.locator("#effective_from").fill("2026-01-10")
    await page.locator("#expires_on").fill("2028-01-09")
    await page.locator("#owner_email").fill("legal@offix.example")
    for letter in ALL_CLAUSES:
        await page.get_by_label(re.compile(re.escape(letter))).check()
    await tick(page, "data_categories", ["user.name", "user.contact.address"])
    await tick(page, "purposes", ["essential.service.operations"])
    await tick(page, "data_subjects", ["customer"])
    await page.locator("#transfers_outside_eea_permitted").check()
    await page.get_by_role("button", name="Spara").click()
    await expect(page.locator("#transfers_outside_eea_permitted-error")).to_contain_text("utanför EES")
    await no_english(page)
    await page.locator("#transfers_outside_eea_permitted").uncheck()
    await page.get_by_role("button", name="Spara").click()
    await expect(page.get_by_role("status").first).to_have_text("Sparat.")
    await no_english(page)

    # The signed PDF, its name's Swedish letters kept.
    pdf = tmp_path / "Personuppgiftsbiträdesavtal Bergström.pdf"
    await asyncio.to_thread(pdf.write_bytes, PDF)
    await page.locator("#document-file").set_input_files(str(pdf))
    await page.get_by_role("button", name="Arkivera").click()
    await no_english(page)
    async with page.expect_download() as pdf_download:
        await page.locator('a[href="/ui/agreements/paketexpress-dpa-2026/document"]').first.click()
    assert (await pdf_download.value).suggested_filename == "Personuppgiftsbiträdesavtal-Bergström.pdf"

    # The party list's "refused" filter and the party's badge agree with the guard.
    await page.goto(f"{base}/ui/parties?status=refused")
    await expect(page.locator("table")).to_contain_text("Paketexpress AB")
    await no_english(page)
    await shot(page, screenshots, "h28-parties-refused-filter")
    await page.goto(f"{base}/ui/parties/paketexpress")
    await expect(page.locator("p.meta .badge.bad")).to_contain_text("avtal som kontrollen nekar")

    # The Art. 30 page and its downloads, with the browser's session.
    await page.goto(f"{base}/ui/records/article-30")
    await no_english(page, "header")
    await no_english(page, "form.no-print")
    async with page.expect_download() as csv_download:
        await page.get_by_role("link", name="Ladda ned som CSV").click()
    body = await asyncio.to_thread(Path(await (await csv_download.value).path()).read_bytes)
    assert body.startswith(b"\xef\xbb\xbf") and b";" in body.split(b"\n")[0]
    async with page.expect_download() as xlsx_download:
        await page.get_by_role("link", name="Ladda ned som Excel (XLSX)").click()
    workbook = await asyncio.to_thread(Path(await (await xlsx_download.value).path()).read_bytes)
    assert workbook.startswith(b"PK")

    # A Swedish unsubscribe export imported on the Objections page.
    await page.goto(f"{base}/ui/objections")
    await no_english(page)
    export = tmp_path / "avregistrerade.csv"
    await asyncio.to_thread(export.write_text, SWEDISH_UNSUBSCRIBES, encoding="utf-8")
    await page.locator("#import-file").set_input_files(str(export))
    await page.get_by_role("button", name="Importera listan").click()
    await expect(page.get_by_role("status")).to_contain_text("1 invändningar registrerade")
    await no_english(page)

    # A share tried: refused, in Swedish sentences with the codes beside them.
    await page.goto(f"{base}/ui/guard?recipient=paketexpress")
    await page.locator("#purpose").select_option("essential.service.operations")
    await page.locator("#data_subject").select_option("customer")
    await tick(page, "data_categories", ["user.name", "user.contact.address"])
    await page.get_by_role("button", name="Fråga kontrollen").click()
    await expect(page.locator("#h-result")).to_have_text("Nekad")
    reasons = page.locator(".reasons")
    await expect(reasons).to_contain_text("har eller når uppgifterna i USA (US), utanför EU/EES.")
    await expect(reasons).to_contain_text("SUBPROCESSOR_UNAPPROVED")
    await no_english(page)
    await shot(page, screenshots, "h28-try-a-share-refused")

    # An import removes the processor; its page still opens, with its history, and restores it.
    token = await make_key(seeded_database, "importer", "registry:read", "registry:write")
    async with httpx.AsyncClient(base_url=base, headers=bearer(token)) as api:
        document = (await api.get("/api/registry")).json()
        document["parties"] = [p for p in document["parties"] if p["key"] != "paketexpress"]
        document["agreements"] = [a for a in document["agreements"] if a["party"] != "paketexpress"]
        assert (await api.put("/api/registry", json=document)).status_code == 200
    await page.goto(f"{base}/ui/removed")
    await expect(page.locator("table")).to_contain_text("paketexpress")
    await no_english(page)
    await page.goto(f"{base}/ui/parties/paketexpress")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Paketexpress AB")
    await no_english(page)
    await page.get_by_role("button", name="Återställ som den var när den togs bort").click()
    await expect(page.locator("p.meta")).to_contain_text("paketexpress")
    await no_english(page)
    await context.close()
