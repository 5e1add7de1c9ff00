"""The UI's page of a person's rights: legal staff restrict and lift, erase, and notify the recipients, each
obeyed or recorded at once; ops staff only look; the recipients page shows chains, contacts and its limits."""

from typing import Any

from tests.conftest import bearer, make_key
from tests.integration.test_objections import DELIVERY, MARKETING, PERSON, check, codes
from tests.ui_session import as_user, csrf_token


async def test_a_legal_user_restricts_and_lifts_and_the_guard_obeys_at_once(
    ui_client: Any, seeded_database: str
) -> None:
    guard = bearer(await make_key(seeded_database, "webshop-ui", "guard:check"))
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/subjects")
    assert page.status_code == 200 and "Restrict processing" in page.text
    form = {"_csrf_token": csrf_token(page.text), "subject": PERSON, "received_on": "2026-11-01", "source": "letter"}
    recorded = await ui_client.post("/ui/subjects/restrictions", data=form)
    assert recorded.status_code == 200, recorded.text
    assert "the guard refuses every share of this person now" in recorded.text and "letter" in recorded.text
    assert codes(await check(ui_client, guard, DELIVERY, PERSON)) == {"SUBJECT_RESTRICTED"}

    looked_up = await ui_client.get("/ui/subjects", params={"subject": PERSON.lower()})
    assert "In force" in looked_up.text
    lifted = await ui_client.post(
        "/ui/subjects/restrictions/1/lift", data={"_csrf_token": csrf_token(looked_up.text)}, follow_redirects=False
    )
    assert lifted.status_code == 303 and PERSON not in lifted.headers["location"]
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True
    after = await ui_client.get("/ui/subjects", params={"subject": PERSON})
    assert "Lifted" in after.text and "lena@offix.example" in after.text


async def test_a_bad_restriction_form_names_the_field_and_records_nothing(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/subjects")
    bad = await ui_client.post(
        "/ui/subjects/restrictions",
        data={"_csrf_token": csrf_token(page.text), "subject": "", "received_on": "someday", "source": ""},
    )
    assert bad.status_code == 400, bad.text
    for field in ("subject-error", "received_on-error", "source-error"):
        assert f'id="{field}"' in bad.text
    assert "No restrictions recorded for this person." in (await ui_client.get("/ui/subjects?subject=x")).text


async def test_a_legal_user_erases_a_person_from_the_page(ui_client: Any, seeded_database: str) -> None:
    guard = bearer(await make_key(seeded_database, "webshop-ui", "guard:check"))
    assert (await check(ui_client, guard, MARKETING, PERSON))["allowed"] is True
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/subjects")
    empty = await ui_client.post(
        "/ui/subjects/erasure", data={"_csrf_token": csrf_token(page.text), "erase_subject": "  "}
    )
    assert empty.status_code == 400 and 'id="erase_subject-error"' in empty.text
    erased = await ui_client.post(
        "/ui/subjects/erasure", data={"_csrf_token": csrf_token(page.text), "erase_subject": PERSON}
    )
    assert erased.status_code == 200, erased.text
    assert "nothing the registry keeps links to them any more" in erased.text and 'id="erasure-outcome"' in erased.text
    recipients = await ui_client.get("/ui/subjects/recipients", params={"subject": PERSON})
    assert (
        "No recipient has received this person&#39;s data" in recipients.text or "No recipient has" in recipients.text
    )


async def test_notifying_a_person_without_recipients_says_so_in_swedish(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/subjects")
    answered = await ui_client.post(
        "/ui/subjects/notifications?lang=sv",
        data={"_csrf_token": csrf_token(page.text), "notify_subject": "nobody@example.se", "action": "erasure"},
        headers={"Accept-Language": "sv"},
    )
    assert answered.status_code == 200, answered.text
    assert 'id="notified-none"' in answered.text
    bad = await ui_client.post(
        "/ui/subjects/notifications",
        data={"_csrf_token": csrf_token(page.text), "notify_subject": PERSON, "action": "forgetting"},
    )
    assert bad.status_code == 400 and 'id="action-error"' in bad.text


async def test_an_ops_user_looks_but_cannot_restrict_or_erase(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    page = await ui_client.get("/ui/subjects", params={"subject": PERSON})
    assert page.status_code == 200 and "Restrict processing" not in page.text and "Erase this person" not in page.text
    refused = await ui_client.post(
        "/ui/subjects/erasure", data={"_csrf_token": csrf_token(page.text), "erase_subject": PERSON}
    )
    assert refused.status_code == 403


async def test_the_recipients_page_shows_the_chain_and_what_it_cannot_know_in_swedish(
    ui_client: Any, seeded_database: str
) -> None:
    guard = bearer(await make_key(seeded_database, "webshop-ui", "guard:check"))
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True
    await as_user(ui_client, "olle@offix.example")
    english = await ui_client.get("/ui/subjects/recipients", params={"subject": PERSON})
    assert "molnhall" in english.text and "fjordvault" in english.text
    assert "did not name the person" in english.text and "format=csv" in english.text
    swedish = await ui_client.get("/ui/subjects/recipients", params={"subject": PERSON, "lang": "sv"})
    assert "Underbiträden" in swedish.text and "inte angav personen" in swedish.text
