"""A person's rights over HTTP against the real PostgreSQL: trials on the try-a-share page kept apart from
shares, restrictions (Art. 18) obeyed by the guard at once and on every instance, erasure (Art. 17) leaving the
log verifying and nothing linked to the person, the recipients answer (Art. 15(1)(c)) with chains, territories
and contacts, as JSON and CSV."""

import asyncio
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import bearer, make_key
from tests.conftest import test_settings as settings_for
from tests.integration.test_decision_log import plain_url, tamper
from tests.integration.test_decision_log_audit import run
from tests.integration.test_objections import (
    DELIVERY,
    MARKETING,
    OTHER,
    PERSON,
    all_text_in_database,
    answer_within,
    check,
    codes,
    instance,
    objection,
    registry_cli,
)
from tests.ui_session import as_user, csrf_token
from web.app import create_app
from web.composition import services_of


def restriction(subject: str = PERSON, **extra: Any) -> dict[str, Any]:
    return {"subject": subject, "received_on": "2026-11-02", "source": "letter to privacy@", **extra}


@pytest.fixture
async def guard(seeded_database: str) -> dict[str, str]:
    return bearer(await make_key(seeded_database, "webshop", "guard:check"))


@pytest.fixture
async def writer(seeded_database: str) -> dict[str, str]:
    return bearer(await make_key(seeded_database, "legal", "registry:read", "registry:write"))


async def recipients(client: Any, headers: dict[str, str], subject: str = PERSON) -> dict[str, Any]:
    response = await client.get("/api/subjects/recipients", params={"subject": subject}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def verify_log(database: str, tmp_path: Path) -> str:
    result = await run(database, tmp_path / "no-key", "guard", "verify-log")
    assert result.exit_code == 0, result.output
    return result.stdout


async def try_a_share(client: Any, subject: str) -> None:
    await as_user(client, "lena@offix.example")
    page = await client.get("/ui/guard")
    form = {
        "_csrf_token": csrf_token(page.text),
        "recipient": "kvarnberg",
        "purpose": "marketing.communications.email",
        "data_subject": "customer",
        "data_categories": ["user.name", "user.contact.email"],
        "subject_ref": subject,
    }
    tried = await client.post("/ui/guard", data=form)
    assert tried.status_code == 200 and "SUBJECT_REF_MISSING" not in tried.text, tried.text


# --- Trials ----------------------------------------------------------------------------------------------------


async def test_a_trial_on_the_try_a_share_page_is_logged_as_a_trial_and_is_no_share(
    ui_client, seeded_database, guard, writer, tmp_path
):
    await try_a_share(ui_client, PERSON)
    connection = await asyncpg.connect(plain_url(seeded_database))
    try:
        trials = await connection.fetch("SELECT allowed, trial FROM guard_decision WHERE trial")
    finally:
        await connection.close()
    assert [(r["allowed"], r["trial"]) for r in trials] == [(True, True)]  # kept as evidence
    assert (await recipients(ui_client, writer))["recipients"] == []  # but it is no share
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True
    (recipient,) = (await recipients(ui_client, writer))["recipients"]
    assert recipient["count"] == 1 and recipient["purposes"] == ["essential.service.operations"]
    assert "log intact" in await verify_log(seeded_database, tmp_path)


async def test_a_trial_counts_in_no_figure_of_the_article_30_record(ui_client, guard, writer):
    await try_a_share(ui_client, PERSON)
    period = {"start": "2000-01-01", "end": "2100-01-01"}
    record = (await ui_client.get("/api/records/article-30", params=period, headers=writer)).json()
    assert record["decision_log"]["shares_allowed"] == 0 and record["decision_log"]["shares_denied"] == 0
    await check(ui_client, guard, DELIVERY, PERSON)  # a real share is counted
    record = (await ui_client.get("/api/records/article-30", params=period, headers=writer)).json()
    assert record["decision_log"]["shares_allowed"] == 1


async def test_turning_a_trial_into_a_share_or_back_breaks_the_entrys_hash(ui_client, seeded_database, guard, tmp_path):
    await try_a_share(ui_client, PERSON)
    await check(ui_client, guard, DELIVERY, PERSON)
    await tamper(seeded_database, "UPDATE guard_decision SET trial = NOT trial")
    result = await run(seeded_database, tmp_path / "no-key", "guard", "verify-log")
    assert result.exit_code != 0 and "edited" in result.output, result.output


async def test_a_link_attributing_a_share_to_another_person_is_caught_by_verify_log(
    ui_client, seeded_database, guard, writer, tmp_path
):
    await check(ui_client, guard, DELIVERY, PERSON)
    other = (await recipients(ui_client, writer, OTHER))["subject_digest"]
    await tamper(seeded_database, f"UPDATE decision_subject SET subject_digest = '{other}'")
    result = await run(seeded_database, tmp_path / "no-key", "guard", "verify-log")
    assert result.exit_code != 0 and "decision_subject" in result.output, result.output


# --- Restrictions -----------------------------------------------------------------------------------------------


async def test_a_restriction_refuses_every_share_of_the_person_until_it_is_lifted(ui_client, guard, writer):
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True
    recorded = await ui_client.post("/api/restrictions", json=restriction(), headers=writer)
    assert recorded.status_code == 201, recorded.text
    restriction_id = recorded.json()["id"]
    assert isinstance(restriction_id, int)

    # At once on this instance, whatever the purpose, however the address is spelled.
    for share in (DELIVERY, MARKETING):
        denied = await check(ui_client, guard, share, " anna.berg+news@EXAMPLE.se")
        assert codes(denied) == {"SUBJECT_RESTRICTED"}, denied
    assert (await check(ui_client, guard, DELIVERY, OTHER))["allowed"] is True
    assert (await check(ui_client, guard, DELIVERY))["allowed"] is True  # (no one named)

    lifted = await ui_client.delete(f"/api/restrictions/{restriction_id}", headers=writer)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["in_force"] is False and lifted.json()["lifted_by"] == "legal"
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True
    again = await ui_client.delete(f"/api/restrictions/{restriction_id}", headers=writer)
    assert again.status_code == 200 and again.json()["lifted_at"] == lifted.json()["lifted_at"]

    listed = await ui_client.get("/api/restrictions", params={"subject": PERSON.upper()}, headers=writer)
    (item,) = listed.json()["items"]
    assert item["id"] == restriction_id and item["in_force"] is False


async def test_lifting_an_unknown_restriction_is_a_404(ui_client, writer):
    missing = await ui_client.delete("/api/restrictions/999999", headers=writer)
    assert missing.status_code == 404, missing.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"received_on": "2026-11-02", "source": "x"}, "subject"),
        (restriction(subject=""), "subject"),
        (restriction(subject="a\x01b"), "subject"),
        (restriction(received_on="2999-01-01"), "received_on"),
        (restriction(source=""), "source"),
        (restriction(scope="all"), "scope"),
    ],
)
async def test_a_bad_restriction_is_a_400_naming_the_field_and_records_nothing(ui_client, writer, body, field):
    response = await ui_client.post("/api/restrictions", json=body, headers=writer)
    assert response.status_code == 400, response.text
    assert field in response.text
    assert (await ui_client.get("/api/restrictions", headers=writer)).json()["total"] == 0


async def test_restrictions_need_registry_write_to_record_and_lift(ui_client, seeded_database, guard):
    reader = bearer(await make_key(seeded_database, "ops", "registry:read"))
    assert (await ui_client.post("/api/restrictions", json=restriction(), headers=reader)).status_code == 403
    assert (await ui_client.delete("/api/restrictions/1", headers=reader)).status_code == 403
    assert (await ui_client.post("/api/restrictions", json=restriction())).status_code == 401


async def test_a_list_of_restrictions_is_imported_once_and_obeyed(ui_client, guard, writer):
    body = f"email;received\n{PERSON};2026-11-03\n{OTHER};\n"
    headers = {**writer, "Content-Type": "text/csv"}
    first = await ui_client.post("/api/restrictions/import", content=body.encode(), headers=headers)
    assert first.status_code == 201, first.text
    assert first.json() == {"rows": 2, "recorded": 2, "already_in_force": 0}
    second = await ui_client.post("/api/restrictions/import", content=body.encode(), headers=headers)
    assert second.json() == {"rows": 2, "recorded": 0, "already_in_force": 2}
    for subject in (PERSON, OTHER):
        assert codes(await check(ui_client, guard, DELIVERY, subject)) == {"SUBJECT_RESTRICTED"}
    bad = await ui_client.post("/api/restrictions/import", content=b"name\nx\n", headers=headers)
    assert bad.status_code == 400 and "address column" in bad.text


async def test_the_cli_imports_a_restriction_list_that_running_guards_obey(seeded_database, guard, tmp_path):
    listing = tmp_path / "restricted.csv"
    listing.write_text("email\nkim@example.se\n", encoding="utf-8")
    key = "k" * 40  # one key for the service and the CLI, as every instance of a registry shares it
    async with AsyncTestClient(create_app(settings_for(seeded_database, subject_key=key))) as client:
        assert (await check(client, guard, DELIVERY, "KIM@example.se"))["allowed"] is True
        result = await asyncio.to_thread(
            registry_cli,
            "restrictions",
            "import",
            str(listing),
            REGISTRY_DATABASE_URL=seeded_database,
            REGISTRY_SUBJECT_KEY=key,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "1 rows: 1 restrictions recorded, 0 already in force"
        deadline = time.monotonic() + 30.0
        while (answer := await check(client, guard, DELIVERY, "KIM@example.se"))["allowed"]:
            assert time.monotonic() < deadline, answer
            await asyncio.sleep(0.05)
        assert codes(answer) == {"SUBJECT_RESTRICTED"}


async def test_a_second_instance_obeys_a_restriction_within_the_snapshot_bound(seeded_database, guard, writer):
    async with instance(seeded_database) as first, instance(seeded_database) as second:
        assert (await check(second, guard, MARKETING, PERSON))["allowed"] is True
        recorded = await first.post("/api/restrictions", json=restriction(), headers=writer)
        assert recorded.status_code == 201, recorded.text
        answer = await answer_within(second, guard, PERSON, allowed=False, seconds=5.0)
        assert codes(answer) == {"SUBJECT_RESTRICTED"}
        await first.delete(f"/api/restrictions/{recorded.json()['id']}", headers=writer)
        assert (await answer_within(second, guard, PERSON, allowed=True, seconds=5.0))["allowed"] is True


async def test_a_check_naming_a_subject_fails_closed_when_the_restrictions_are_stale(seeded_database, guard, writer):
    async with instance(seeded_database) as client:
        await client.post("/api/restrictions", json=restriction(), headers=writer)
        ready = (await client.get("/health/ready")).json()["guard"]["restrictions"]
        assert ready["status"] == "ok" and ready["restrictions"] == 1
        index = services_of(client.app).restrictions
        index.confirmed_at = -3600.0  # as if no read had confirmed it for an hour
        await index.stop()
        response = await client.post("/api/guard/check", json={**DELIVERY, "subject_ref": PERSON}, headers=guard)
        assert response.status_code == 503 and response.json()["allowed"] is False
        assert (await check(client, guard, DELIVERY))["allowed"] is True


# --- Erasure ---------------------------------------------------------------------------------------------------


async def test_an_erasure_unlinks_the_person_keeps_the_log_verifying_and_keeps_the_objection_as_suppression(
    ui_client, seeded_database, guard, writer, tmp_path
):
    for share in (DELIVERY, MARKETING):
        assert (await check(ui_client, guard, share, PERSON))["allowed"] is True
    await check(ui_client, guard, DELIVERY, OTHER)
    await ui_client.post("/api/objections", json=objection(), headers=writer)
    withdrawn = (await ui_client.post("/api/objections", json=objection(scope="all"), headers=writer)).json()
    await ui_client.delete(f"/api/objections/{withdrawn['id']}", headers=writer)
    await ui_client.post("/api/restrictions", json=restriction(), headers=writer)
    digest = (await recipients(ui_client, writer))["subject_digest"]
    assert digest in await all_text_in_database(seeded_database)

    erased = await ui_client.post("/api/subjects/erasure", json={"subject": PERSON}, headers=writer)
    assert erased.status_code == 200, erased.text
    outcome = erased.json()
    assert outcome["unlinked_log_entries"] == 2
    assert outcome["log_entries_still_linked"] == 0
    assert outcome["objections_kept_as_suppression"] == 1
    assert outcome["withdrawn_objections_unlinked"] == 1
    assert outcome["restrictions_lifted"] == 1

    # Nothing the service keeps holds the person's digest any more, and the log still verifies.
    dump = await all_text_in_database(seeded_database)
    assert dump.count(digest) == 1  # the suppression entry, and nothing else
    assert PERSON.casefold() not in dump.casefold()
    assert "log intact" in await verify_log(seeded_database, tmp_path)
    assert (await recipients(ui_client, writer))["recipients"] == []
    (other,) = (await recipients(ui_client, writer, OTHER))["recipients"]
    assert other["count"] == 1  # another person's shares untouched

    # Never marketed to again; the restriction went with the data.
    assert codes(await check(ui_client, guard, MARKETING, PERSON)) == {"SUBJECT_OBJECTED"}
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True

    # The erasure is on record without the identifier.
    connection = await asyncpg.connect(plain_url(seeded_database))
    try:
        recorded = await connection.fetchrow(
            "SELECT actor, after::text AS after FROM change_record WHERE action = 'erase'"
        )
    finally:
        await connection.close()
    assert recorded["actor"] == "legal" and outcome["erasure"] in recorded["after"] and digest not in recorded["after"]


async def test_erasing_twice_is_the_same_as_once(ui_client, guard, writer):
    await check(ui_client, guard, DELIVERY, PERSON)
    first = await ui_client.post("/api/subjects/erasure", json={"subject": PERSON}, headers=writer)
    second = await ui_client.post("/api/subjects/erasure", json={"subject": PERSON.upper()}, headers=writer)
    assert first.status_code == second.status_code == 200
    assert first.json()["unlinked_log_entries"] == 1
    counts = {k: v for k, v in second.json().items() if k != "erasure"}
    assert set(counts.values()) == {0}


@pytest.mark.parametrize("body", [{"subject": ""}, {"subject": "   "}, {}, {"subject": "a\x00b"}, {"subject": 7}])
async def test_an_erasure_without_a_usable_subject_is_a_400_naming_it(ui_client, writer, body):
    response = await ui_client.post("/api/subjects/erasure", json=body, headers=writer)
    assert response.status_code == 400, response.text
    assert "subject" in response.text


async def test_an_erasure_needs_registry_write(ui_client, seeded_database):
    reader = bearer(await make_key(seeded_database, "ops", "registry:read"))
    response = await ui_client.post("/api/subjects/erasure", json={"subject": PERSON}, headers=reader)
    assert response.status_code == 403


# --- The recipients answer --------------------------------------------------------------------------------------


async def test_the_recipients_answer_names_chains_territories_contacts_period_and_its_limits(ui_client, guard, writer):
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True
    answer = await recipients(ui_client, writer)
    (recipient,) = answer["recipients"]
    assert recipient["party"] == "kvarnberg" and recipient["territories"]
    assert set(recipient) >= {"contact", "sub_processors", "established_in", "territories"}
    assert answer["period"]["from"] <= recipient["first_shared_at"] <= answer["period"]["to"]
    assert "did not name the person" in answer["cannot_know"]

    exported = await ui_client.get(
        "/api/subjects/recipients", params={"subject": PERSON, "format": "csv"}, headers=writer
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][0] == "Recipient" and rows[1][0] == "kvarnberg"
    assert "did not name the person" in exported.text


async def test_the_recipients_answer_follows_the_sub_processor_chain_and_shows_the_contact(
    ui_client, seeded_database, guard, writer
):
    await set_contact(seeded_database, "kvarnberg", {"name": "Dataskydd", "email": "privacy@kvarnberg.example"})
    assert (await check(ui_client, guard, DELIVERY, PERSON))["allowed"] is True
    (recipient,) = (await recipients(ui_client, writer))["recipients"]
    assert recipient["contact"]["email"] == "privacy@kvarnberg.example"
    (molnhall,) = [s for s in recipient["sub_processors"] if s["party"] == "molnhall"]
    assert [s["party"] for s in molnhall["sub_processors"]] == ["fjordvault"]  # the chain, two deep
    deepest = molnhall["sub_processors"][0]["territories"]
    assert set(deepest) <= set(recipient["territories"])  # the recipient's territories include its chain's


async def set_contact(database: str, party: str, contact: dict[str, Any]) -> None:
    connection = await asyncpg.connect(plain_url(database))
    try:
        await connection.execute("UPDATE party SET contact = $2::jsonb WHERE key = $1", party, json.dumps(contact))
    finally:
        await connection.close()
