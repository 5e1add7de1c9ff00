"""The processing activities in a real browser (Debian's Chromium driven by Playwright): a legal user finds the
activities from the menu, opens the Art. 30 record the legal team prints (in Swedish, each activity with its
record fields) and the privacy notice generated from them. Screenshots go to test-artifacts/screenshots/ (not
committed)."""

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.e2e.browsing import ServiceThread, shot
from tests.ui_session import PASSWORD


async def test_legal_prints_the_art30_record_per_activity_in_swedish_and_reads_the_notice(
    ui_service: ServiceThread, browser: Browser, screenshots: Path
) -> None:
    base = ui_service.url
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(base + "/ui/login")
    await page.get_by_label("E-mail").fill("lena@offix.example")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="What needs attention")).to_be_visible()

    await page.get_by_role("link", name="Processing activities").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Processing activities")
    await expect(page.get_by_role("cell", name="Managing customer relationships (kundrelationer)")).to_be_visible()
    await shot(page, screenshots, "activities")

    await page.goto(f"{base}/ui/records/article-30?lang=sv")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Register över behandlingar")
    activity = page.locator("section.activity", has=page.get_by_role("heading", name="Skötsel av kundrelationer"))
    await expect(activity.get_by_role("row", name="Rättslig grund berättigat intresse (art. 6.1 f)")).to_be_visible()
    await expect(activity.get_by_text("Kontorsgrossen Danmark ApS")).to_be_visible()
    await expect(activity.get_by_role("row", name="Gallringsfrister")).to_contain_text("slutligt reglerade")
    await expect(activity.get_by_role("row", name="Säkerhetsåtgärder")).to_contain_text("brandväggar, lösenord")
    await page.emulate_media(media="print")
    await expect(page.locator("header.top")).to_be_hidden()
    await shot(page, screenshots, "article-30-activities-sv-print")
    await page.screenshot(
        path=str(screenshots / "article-30-head-sv.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 1400}
    )
    await page.emulate_media(media="screen")

    await page.goto(f"{base}/ui/records/privacy-notice?lang=sv")
    await expect(page.get_by_role("heading", level=2).first).to_have_text(
        "Till vem överlåter vi uppgifter och överlåter vi uppgifter utanför EU eller EES?"
    )
    await expect(page.get_by_text("Vi överlåter inga personuppgifter utanför EU/EES-området.")).to_be_visible()
    await shot(page, screenshots, "privacy-notice-sv")
    await context.close()
