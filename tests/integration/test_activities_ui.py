"""The UI's processing activities: the list, the form (a bad entry answered on its field, in the reader's
language), the guard obeying a saved activity at once, the Art. 30 page showing the activities, and the privacy
notice page with its publish action, in Swedish and English."""

import re
from typing import Any

from tests.ui_session import as_user, csrf_token

NEW_ACTIVITY = {
    "key": "garanti",
    "name.sv": "Garanti- och reklamationsärenden",
    "name.en": "Warranty and complaint cases",
    "legal_basis": "contract",
    "purposes": ["essential.service.operations.support"],
    "data_subjects": ["customer"],
    "data_categories": ["user.name", "user.contact.email"],
    "retention.sv": "Till dess att ärendet\r\när avslutat.",
    "retention.en": "Until the case is closed.",
    "security_measures.sv": "Brandväggar och lösenord.",
    "security_measures.en": "Firewalls and passwords.",
}

# A share the seed allows for its customer service activity.
SUPPORT_SHARE = {
    "recipient": "tibro-kontorsmobler",
    "purpose": "essential.service.operations.support",
    "data_categories": ["user.name"],
    "data_subject": "customer",
}


async def test_the_activities_page_lists_the_seeds_four_in_english_and_swedish(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    english = await ui_client.get("/ui/activities")
    assert english.status_code == 200, english.text
    for name in ("Delivering and developing our goods and services", "Managing customer relationships"):
        assert name in english.text
    assert "legitimate interests (Art. 6(1)(f))" in english.text
    assert "/ui/activities/new" not in english.text  # operations read, legal staff write
    swedish = await ui_client.get("/ui/activities", headers={"Accept-Language": "sv"})
    assert "Skötsel av kundrelationer" in swedish.text and "Rättslig grund" in swedish.text
    assert (await ui_client.get("/ui/activities/new", follow_redirects=False)).status_code == 403


async def test_a_legal_user_adds_an_activity_and_a_bad_one_is_answered_on_its_field(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    form = await ui_client.get("/ui/activities/new", headers={"Accept-Language": "sv"})
    assert form.status_code == 200 and "Gallringsfrister" in form.text
    token = csrf_token(form.text)
    bad = await ui_client.post(
        "/ui/activities",
        data={**NEW_ACTIVITY, "key": "Not A Key", "legal_basis": "", "purposes": [], "_csrf_token": token},
        headers={"Accept-Language": "sv"},
    )
    assert bad.status_code == 400
    assert 'id="key-error"' in bad.text and 'id="purposes-error"' in bad.text and 'id="legal_basis-error"' in bad.text
    saved = await ui_client.post("/ui/activities", data={**NEW_ACTIVITY, "_csrf_token": token}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    listed = await ui_client.get(saved.headers["location"])
    assert "Warranty and complaint cases" in listed.text
    exported = (await ui_client.get("/ui/registry/export?format=json")).json()
    ours = next(a for a in exported["controller"]["processing_activities"] if a["key"] == "garanti")
    assert ours["retention"]["sv"] == "Till dess att ärendet är avslutat."  # the text area's lines as one line
    duplicate = await ui_client.post("/ui/activities", data={**NEW_ACTIVITY, "_csrf_token": token})
    assert duplicate.status_code == 400 and 'id="key-error"' in duplicate.text


async def test_marking_an_activity_direct_marketing_in_the_form_makes_the_guard_ask_for_the_person(
    ui_client: Any, seeded_database: str
) -> None:
    from tests.conftest import bearer, make_key

    guard = bearer(await make_key(seeded_database, "shop", "guard:check"))
    assert (await ui_client.post("/api/guard/check", json=SUPPORT_SHARE, headers=guard)).json()["allowed"] is True
    await as_user(ui_client, "lena@offix.example")
    token = csrf_token((await ui_client.get("/ui/activities/new")).text)
    saved = await ui_client.post(
        "/ui/activities",
        data={**NEW_ACTIVITY, "direct_marketing": "on", "_csrf_token": token},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    answer = (await ui_client.post("/api/guard/check", json=SUPPORT_SHARE, headers=guard)).json()
    assert [r["code"] for r in answer["reasons"]] == ["SUBJECT_REF_MISSING"]
    removed = await ui_client.post("/ui/activities/garanti/delete", data={"_csrf_token": token}, follow_redirects=False)
    assert removed.status_code == 303


async def test_the_art30_page_shows_each_activity_with_its_record_fields(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    english = await ui_client.get("/ui/records/article-30")
    assert english.status_code == 200
    assert "S:t Eriksterrassen 72B, 112 34 Stockholm" in english.text
    for words in ("Managing customer relationships", "Legal basis", "Erasure periods", "Security measures",
                  "Kontorsgrossen Danmark ApS", "allowed by the guard"):  # fmt: skip
        assert words in english.text
    swedish = await ui_client.get("/ui/records/article-30", params={"lang": "sv"})
    for words in ("Skötsel av kundrelationer", "Rättslig grund", "berättigat intresse (art. 6.1 f)",
                  "Gallringsfrister", "brandväggar, lösenord"):  # fmt: skip
        assert words in swedish.text


async def test_the_notice_page_speaks_both_languages_and_marking_it_published_clears_the_finding(
    ui_client: Any,
) -> None:
    await as_user(ui_client, "lena@offix.example")
    swedish = await ui_client.get("/ui/records/privacy-notice", params={"lang": "sv"})
    assert swedish.status_code == 200
    assert "Till vem överlåter vi uppgifter" in swedish.text
    assert "Vi överlåter inga personuppgifter utanför EU/EES-området." in swedish.text
    assert "NOTICE_OUTDATED" in swedish.text
    english = await ui_client.get("/ui/records/privacy-notice", params={"lang": "en"})
    assert "We do not transfer any personal data outside the EU/EEA." in english.text
    marked = await ui_client.post(
        "/ui/records/privacy-notice/published", data={"_csrf_token": csrf_token(english.text)}, follow_redirects=False
    )
    assert marked.status_code == 303
    after = await ui_client.get(marked.headers["location"])
    assert "Marked as published." in after.text and "NOTICE_OUTDATED" not in after.text


def _allowed_shares_to(page: str, key: str) -> int:
    """The allowed shares the activities' recipient tables count for `key`, over every activity listing it."""
    rows = re.findall(
        rf"<small>\({re.escape(key)}[^<]*</small></td>(?:<td>.*?</td>){{3}}<td>(\d+)</td><td>\d+</td></tr>", page
    )
    assert rows, f"{key} is a recipient of no activity on the page"
    return sum(int(n) for n in rows)


async def test_the_art30_page_keeps_its_registry_part_but_counts_each_new_share_and_shows_a_new_activity(
    ui_client: Any, seeded_database: str
) -> None:
    """The activities' registry part is kept per snapshot, day, language and profile (seconds at 10,000 parties);
    the log's counts are added on every page, and a changed profile is a new record."""
    from tests.conftest import bearer, make_key

    guard = bearer(await make_key(seeded_database, "shop", "guard:check"))
    await as_user(ui_client, "lena@offix.example")
    before = (await ui_client.get("/ui/records/article-30")).text
    assert (await ui_client.post("/api/guard/check", json=SUPPORT_SHARE, headers=guard)).json()["allowed"] is True
    after = (await ui_client.get("/ui/records/article-30")).text
    assert _allowed_shares_to(after, "tibro-kontorsmobler") > _allowed_shares_to(before, "tibro-kontorsmobler")
    assert "Warranty and complaint cases" not in after

    token = csrf_token((await ui_client.get("/ui/activities/new")).text)
    saved = await ui_client.post("/ui/activities", data={**NEW_ACTIVITY, "_csrf_token": token}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert "Warranty and complaint cases" in (await ui_client.get("/ui/records/article-30")).text
    swedish = (await ui_client.get("/ui/records/article-30", params={"lang": "sv"})).text
    assert "Garanti- och reklamationsärenden" in swedish and "Warranty and complaint cases" not in swedish
