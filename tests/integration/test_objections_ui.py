"""The UI's data-subject pages: legal staff record and withdraw objections looked up by a person's identifier;
ops staff only look; one person's recipients as a printable page in English and Swedish."""

from typing import Any

from tests.conftest import bearer, make_key
from tests.integration.test_objections import MARKETING, PERSON, check
from tests.ui_session import as_user, csrf_token


async def test_a_legal_user_records_and_withdraws_an_objection_the_guard_obeys(
    ui_client: Any, seeded_database: str
) -> None:
    guard = bearer(await make_key(seeded_database, "webshop-ui", "guard:check"))
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/objections")
    assert page.status_code == 200 and "Record an objection" in page.text
    form = {
        "_csrf_token": csrf_token(page.text),
        "subject": PERSON,
        "scope": "direct_marketing",
        "received_on": "2026-11-01",
        "source": "phone call",
    }
    recorded = await ui_client.post("/ui/objections", data=form)
    assert recorded.status_code == 200, recorded.text
    assert "the guard obeys it now" in recorded.text and "phone call" in recorded.text
    assert (await check(ui_client, guard, MARKETING, PERSON))["allowed"] is False

    looked_up = await ui_client.get("/ui/objections", params={"subject": PERSON.lower()})
    assert "In force" in looked_up.text
    withdrawn = await ui_client.post(
        "/ui/objections/1/withdraw", data={"_csrf_token": csrf_token(looked_up.text)}, follow_redirects=False
    )
    assert withdrawn.status_code == 303, withdrawn.text
    assert PERSON not in withdrawn.headers["location"]
    assert (await check(ui_client, guard, MARKETING, PERSON))["allowed"] is True
    after = await ui_client.get("/ui/objections", params={"subject": PERSON})
    assert "Withdrawn" in after.text and "lena@offix.example" in after.text


async def test_a_bad_objection_form_names_the_field_and_records_nothing(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/objections")
    bad = await ui_client.post(
        "/ui/objections",
        data={
            "_csrf_token": csrf_token(page.text),
            "subject": "x" * 400,
            "scope": "everything",
            "received_on": "someday",
            "source": "",
        },
    )
    assert bad.status_code == 400, bad.text
    for field in ("subject-error", "scope-error", "received_on-error", "source-error"):
        assert f'id="{field}"' in bad.text
    assert "In force" not in (await ui_client.get("/ui/objections", params={"subject": "x" * 300})).text


async def test_an_ops_user_looks_up_but_cannot_record(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    page = await ui_client.get("/ui/objections", params={"subject": PERSON})
    assert page.status_code == 200
    assert "No objections recorded for this person." in page.text
    assert "Record an objection" not in page.text
    refused = await ui_client.post(
        "/ui/objections",
        data={"_csrf_token": csrf_token(page.text), "subject": PERSON, "scope": "all", "received_on": "2026-11-01"},
    )
    assert refused.status_code == 403


async def test_one_persons_recipients_print_in_english_and_swedish(ui_client: Any, seeded_database: str) -> None:
    guard = bearer(await make_key(seeded_database, "webshop-ui2", "guard:check"))
    assert (await check(ui_client, guard, MARKETING, PERSON))["allowed"] is True
    await as_user(ui_client, "olle@offix.example")
    english = await ui_client.get("/ui/subjects/recipients", params={"subject": PERSON})
    assert english.status_code == 200, english.text
    assert "Recipients of one person&#39;s data" in english.text or "Recipients of one person's data" in english.text
    assert "kvarnberg" in english.text and "marketing.communications.email" in english.text
    assert 'href="/ui/static/records.css"' in english.text  # its print styles: the CSP allows no inline style
    swedish = await ui_client.get("/ui/subjects/recipients", params={"subject": PERSON, "lang": "sv"})
    assert "Mottagare av en persons uppgifter" in swedish.text and "personuppgiftsbiträde" in swedish.text
    nobody = await ui_client.get("/ui/subjects/recipients", params={"subject": "nobody@example.se", "lang": "sv"})
    assert "Ingen mottagare har fått" in nobody.text
    hostile = await ui_client.get("/ui/subjects/recipients", params={"subject": "a\x01b"})
    assert hostile.status_code == 400 and 'id="subject-error"' in hostile.text


async def test_try_a_share_names_the_person_for_marketing(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/guard")
    assert 'id="subject_ref"' in page.text
    form = {
        "_csrf_token": csrf_token(page.text),
        "recipient": "kvarnberg",
        "purpose": "marketing.communications.email",
        "data_subject": "customer",
        "data_categories": ["user.name", "user.contact.email"],
    }
    unnamed = await ui_client.post("/ui/guard", data=form)
    assert unnamed.status_code == 200 and "SUBJECT_REF_MISSING" in unnamed.text
    named = await ui_client.post("/ui/guard", data={**form, "subject_ref": PERSON})
    assert named.status_code == 200 and "SUBJECT_REF_MISSING" not in named.text, named.text
    hostile = await ui_client.post("/ui/guard", data={**form, "subject_ref": "a\x01b"})
    assert hostile.status_code == 400 and 'id="subject_ref-error"' in hostile.text
