"""Data subjects' objections over HTTP against the real PostgreSQL: recorded by digest, obeyed by the guard at
share time on every instance, withdrawn, imported from a mail tool's unsubscribe list, and one person's
recipients listed from the decision log; no identifier ever stored in clear."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import SERVER_URL, bearer, make_key
from tests.conftest import test_settings as settings_for
from web.app import create_app
from web.composition import services_of

PERSON = "Anna.Berg+News@Example.SE"
OTHER = "olle@example.se"
# Kvarnberg's DPA has no end date and covers both marketing e-mail and the service itself for customers.
MARKETING = {
    "recipient": "kvarnberg",
    "purpose": "marketing.communications.email",
    "data_categories": ["user.name", "user.contact.email"],
    "destination": "SE",
    "data_subject": "customer",
}
DELIVERY = {
    "recipient": "kvarnberg",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name", "user.contact.address"],
    "destination": "SE",
    "data_subject": "customer",
}


def codes(answer: dict) -> set[str]:
    return {reason["code"] for reason in answer["reasons"]}


def objection(subject: str = PERSON, scope: str = "direct_marketing", **extra) -> dict:
    return {"subject": subject, "scope": scope, "received_on": "2026-11-01", "source": "e-mail to privacy@", **extra}


@pytest.fixture
async def guard(seeded_database) -> dict[str, str]:
    return bearer(await make_key(seeded_database, "webshop", "guard:check"))


async def check(client, headers, share: dict, subject: str | None = None) -> dict:
    body = dict(share) if subject is None else {**share, "subject_ref": subject}
    response = await client.post("/api/guard/check", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_objection_blocks_marketing_to_that_person_at_once_and_not_deliveries(
    seeded_client, guard, writer_headers
):
    before = await check(seeded_client, guard, MARKETING, PERSON)
    assert before["allowed"] is True, before
    recorded = await seeded_client.post("/api/objections", json=objection(), headers=writer_headers)
    assert recorded.status_code == 201, recorded.text
    assert isinstance(recorded.json()["id"], int)

    # The same person however the mail tool spells the address: blocked on this instance at once.
    denied = await check(seeded_client, guard, MARKETING, "  anna.berg+news@example.se ")
    assert denied["allowed"] is False
    assert codes(denied) == {"SUBJECT_OBJECTED"}
    delivery = await check(seeded_client, guard, DELIVERY, PERSON)
    assert delivery["allowed"] is True, delivery
    someone_else = await check(seeded_client, guard, MARKETING, OTHER)
    assert someone_else["allowed"] is True, someone_else


async def test_an_objection_to_all_processing_blocks_deliveries_too(seeded_client, guard, writer_headers):
    recorded = await seeded_client.post("/api/objections", json=objection(scope="all"), headers=writer_headers)
    assert recorded.status_code == 201, recorded.text
    assert codes(await check(seeded_client, guard, DELIVERY, PERSON)) == {"SUBJECT_OBJECTED"}
    assert (await check(seeded_client, guard, DELIVERY))["allowed"] is True  # (no one named: nothing to object)


async def test_a_withdrawn_objection_stops_blocking_and_stays_in_the_history(
    seeded_client, guard, writer_headers, reader_headers
):
    recorded = (await seeded_client.post("/api/objections", json=objection(), headers=writer_headers)).json()
    assert (await check(seeded_client, guard, MARKETING, PERSON))["allowed"] is False
    withdrawn = await seeded_client.delete(f"/api/objections/{recorded['id']}", headers=writer_headers)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["in_force"] is False
    assert (await check(seeded_client, guard, MARKETING, PERSON))["allowed"] is True

    listed = await seeded_client.get("/api/objections", params={"subject": PERSON.upper()}, headers=reader_headers)
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item["id"] == recorded["id"] and item["withdrawn_at"] is not None and item["withdrawn_by"] == "writer-test"
    in_force = await seeded_client.get("/api/objections", params={"in_force": "true"}, headers=reader_headers)
    assert in_force.json()["total"] == 0
    missing = await seeded_client.delete("/api/objections/999999", headers=writer_headers)
    assert missing.status_code == 404


async def test_marketing_without_a_subject_reference_is_denied_and_check_batch_works_per_person(
    seeded_client, guard, writer_headers
):
    assert codes(await check(seeded_client, guard, MARKETING)) == {"SUBJECT_REF_MISSING"}
    await seeded_client.post("/api/objections", json=objection(), headers=writer_headers)
    batch = await seeded_client.post(
        "/api/guard/check-batch",
        json=[{**MARKETING, "subject_ref": PERSON}, {**MARKETING, "subject_ref": OTHER}, MARKETING],
        headers=guard,
    )
    assert batch.status_code == 200, batch.text
    assert [codes(a) for a in batch.json()] == [{"SUBJECT_OBJECTED"}, set(), {"SUBJECT_REF_MISSING"}]


async def test_the_writes_need_registry_write_and_the_reads_registry_read(seeded_client, reader_headers, guard):
    refused = await seeded_client.post("/api/objections", json=objection(), headers=reader_headers)
    assert refused.status_code == 403
    assert (await seeded_client.get("/api/objections", headers=guard)).status_code == 403
    assert (
        await seeded_client.get("/api/subjects/recipients", params={"subject": PERSON}, headers=guard)
    ).status_code == 403
    assert (await seeded_client.get("/api/objections")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (objection(subject="x" * 5000), "subject"),
        (objection(subject="anna@example.se\r\nBcc: all@example.se"), "subject"),
        (objection(subject="   "), "subject"),
        (objection(scope="everything"), "scope"),
        (objection(received_on="2026-13-45"), "received_on"),
        (objection(received_on="2999-01-01"), "received_on"),
        (objection(source="a\x00b"), "source"),
        ({k: v for k, v in objection().items() if k != "scope"}, "scope"),
    ],
)
async def test_a_hostile_objection_is_a_400_naming_the_field_and_records_nothing(
    seeded_client, writer_headers, reader_headers, body, field
):
    response = await seeded_client.post("/api/objections", json=body, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert field in {e.get("key") for e in response.json().get("extra", [])}, response.text
    assert (await seeded_client.get("/api/objections", headers=reader_headers)).json()["total"] == 0


@pytest.mark.parametrize(
    ("subject", "status"), [("x" * 5000, 400), ("a\x01b@example.se", 400), ("   ", 400), ("a\x00b", 400)]
)
async def test_a_hostile_subject_reference_is_a_400_naming_it_and_is_not_logged(
    seeded_client, guard, reader_headers, subject, status
):
    response = await seeded_client.post("/api/guard/check", json={**MARKETING, "subject_ref": subject}, headers=guard)
    assert response.status_code == status, response.text
    assert "subject_ref" in response.text
    listed = await seeded_client.get("/api/subjects/recipients", params={"subject": subject}, headers=reader_headers)
    assert listed.status_code == 400, listed.text
    assert "subject" in listed.text
    decisions = await seeded_client.get("/api/guard/decisions", headers=reader_headers)
    assert decisions.json()["total"] == 0


UNSUBSCRIBES = (
    "Email Address,First Name,UNSUB_TIME\r\n"
    f"{PERSON},Anna,2026-10-30 08:12:00\r\n"
    "OLLE@example.se,Olle,\r\n"
    "\r\n"
    f"{PERSON.lower()},Anna,2026-10-31 09:00:00\r\n"
)


async def test_a_mail_tools_unsubscribe_list_is_imported_once_and_blocks_marketing(
    seeded_client, guard, writer_headers, reader_headers
):
    imported = await seeded_client.post(
        "/api/objections/import",
        content=UNSUBSCRIBES.encode(),
        params={"source": "Mailchimp export 2026-11-01"},
        headers={**writer_headers, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 201, imported.text
    assert imported.json() == {"rows": 3, "recorded": 2, "already_in_force": 1}
    again = await seeded_client.post(
        "/api/objections/import", content=UNSUBSCRIBES.encode(), headers={**writer_headers, "Content-Type": "text/csv"}
    )
    assert again.json() == {"rows": 3, "recorded": 0, "already_in_force": 3}
    assert codes(await check(seeded_client, guard, MARKETING, OTHER)) == {"SUBJECT_OBJECTED"}
    listed = (await seeded_client.get("/api/objections", params={"subject": PERSON}, headers=reader_headers)).json()
    assert [(i["received_on"], i["scope"]) for i in listed["items"]] == [("2026-10-30", "direct_marketing")]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("name\r\nAnna\r\n", "file"),
        ("email,unsubscribed_on\r\nanna@example.se,yesterday\r\n", "row 2.unsubscribed_on"),
        ("email\r\n" + "a" * 400 + "@example.se\r\n", "row 2.email"),
        ("email\r\nanna\x07@example.se\r\n", "row 2.email"),
        ("", "file"),
    ],
)
async def test_a_bad_unsubscribe_list_is_a_400_naming_the_row_and_records_nothing(
    seeded_client, writer_headers, reader_headers, content, field
):
    response = await seeded_client.post(
        "/api/objections/import", content=content.encode(), headers={**writer_headers, "Content-Type": "text/csv"}
    )
    assert response.status_code == 400, response.text
    assert field in {e["key"] for e in response.json()["extra"]}, response.text
    assert (await seeded_client.get("/api/objections", headers=reader_headers)).json()["total"] == 0


async def test_the_recipients_list_matches_the_allowed_decisions(seeded_client, guard, writer_headers, reader_headers):
    for share in (DELIVERY, DELIVERY, MARKETING):
        assert (await check(seeded_client, guard, share, PERSON))["allowed"] is True
    await check(seeded_client, guard, DELIVERY, OTHER)
    await check(seeded_client, guard, {**DELIVERY, "recipient": "nobody"}, PERSON)  # denied: not a recipient
    await seeded_client.post("/api/objections", json=objection(), headers=writer_headers)
    await check(seeded_client, guard, MARKETING, PERSON)  # denied now: not a recipient either

    response = await seeded_client.get(
        "/api/subjects/recipients", params={"subject": PERSON.lower()}, headers=reader_headers
    )
    assert response.status_code == 200, response.text
    (recipient,) = response.json()["recipients"]
    assert recipient["party"] == "kvarnberg" and recipient["role"] == "processor"
    assert recipient["count"] == 3
    assert recipient["purposes"] == ["essential.service.operations", "marketing.communications.email"]
    assert recipient["categories"] == ["user.contact.address", "user.contact.email", "user.name"]
    assert recipient["first_shared_at"] <= recipient["last_shared_at"]
    digest = response.json()["subject_digest"]
    decisions = (await seeded_client.get("/api/guard/decisions", headers=reader_headers)).json()["items"]
    assert all(digest not in str(d) for d in decisions)  # the log holds salted commitments only
    allowed_naming_someone = [d for d in decisions if d["allowed"] and "subject_ref_commitment" in d["request"]]
    assert len(allowed_naming_someone) == 4  # the person's three and the other person's delivery
    nobody = await seeded_client.get("/api/subjects/recipients", params={"subject": "x@y.z"}, headers=reader_headers)
    assert nobody.json()["recipients"] == []


async def all_text_in_database(url: str) -> str:
    """Every text, JSON and character column of every table, as one string."""
    connection = await asyncpg.connect(SERVER_URL.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1])
    try:
        columns = await connection.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND data_type IN ('text', 'character varying', 'character', 'jsonb', 'json', 'ARRAY')"
        )
        parts = []
        for column in columns:
            rows = await connection.fetch(f'SELECT "{column["column_name"]}"::text AS v FROM "{column["table_name"]}"')
            parts.extend(str(r["v"]) for r in rows if r["v"] is not None)
        return "\n".join(parts)
    finally:
        await connection.close()


async def test_no_table_of_the_database_holds_an_identifier_in_clear(
    seeded_database, seeded_client, guard, writer_headers
):
    await seeded_client.post("/api/objections", json=objection(), headers=writer_headers)
    await seeded_client.post(
        "/api/objections/import", content=UNSUBSCRIBES.encode(), headers={**writer_headers, "Content-Type": "text/csv"}
    )
    await check(seeded_client, guard, MARKETING, OTHER)
    await check(seeded_client, guard, DELIVERY, "Customer-00042")
    listed = await seeded_client.get("/api/objections", params={"subject": PERSON}, headers=writer_headers)
    (first,) = listed.json()["items"]
    await seeded_client.delete(f"/api/objections/{first['id']}", headers=writer_headers)
    dump = (await all_text_in_database(seeded_database)).casefold()
    assert "objection" in dump and first["subject_digest"] in dump  # (the dump did read the tables)
    for identifier in (PERSON, OTHER, "customer-00042", "anna.berg", "olle@"):
        assert identifier.casefold() not in dump


@asynccontextmanager
async def instance(url: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(create_app(settings_for(url, snapshot_max_age_seconds=5.0))) as client:
        yield client


async def answer_within(client, headers, subject: str, *, allowed: bool, seconds: float) -> dict:
    """Ask for the marketing share until the answer is `allowed`, or the time is up; the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = await check(client, headers, MARKETING, subject)
        if answer["allowed"] is allowed or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def test_a_second_instance_obeys_an_objection_within_the_snapshot_bound(seeded_database, guard, writer_headers):
    async with instance(seeded_database) as first, instance(seeded_database) as second:
        assert (await check(second, guard, MARKETING, PERSON))["allowed"] is True
        recorded = await first.post("/api/objections", json=objection(), headers=writer_headers)
        assert recorded.status_code == 201, recorded.text
        # Within the snapshot's bound in these settings (5 s); no sooner is promised.
        answer = await answer_within(second, guard, PERSON, allowed=False, seconds=5.0)
        assert codes(answer) == {"SUBJECT_OBJECTED"}
        withdrawn = await first.delete(f"/api/objections/{recorded.json()['id']}", headers=writer_headers)
        assert withdrawn.status_code == 200
        answer = await answer_within(second, guard, PERSON, allowed=True, seconds=5.0)
        assert answer["allowed"] is True


async def test_a_check_naming_a_subject_fails_closed_when_the_objections_are_stale(seeded_database, guard):
    async with instance(seeded_database) as client:
        index = services_of(client.app).objections
        index.confirmed_at = time.monotonic() - 3600  # as if no read had confirmed it for an hour
        await index.stop()  # and none will
        response = await client.post("/api/guard/check", json={**MARKETING, "subject_ref": PERSON}, headers=guard)
        assert response.status_code == 503, response.text
        assert response.json()["allowed"] is False
        # A check naming no one does not need the objections.
        assert (await check(client, guard, DELIVERY))["allowed"] is True


def test_today_is_a_plausible_received_on():
    assert date.today().isoformat() >= "2026-01-01"


def registry_cli(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_SCHEDULER_ENABLED": "false", **environment}
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_the_cli_imports_an_unsubscribe_list_that_running_guards_obey(seeded_database, guard, tmp_path):
    listing = tmp_path / "unsubscribed.csv"
    listing.write_text("email;unsubscribed_on\nkim@example.se;2026-10-01\n", encoding="utf-8")
    key = "k" * 40  # one key for the service and the CLI, as every instance of a registry shares it
    async with AsyncTestClient(create_app(settings_for(seeded_database, subject_key=key))) as client:
        assert (await check(client, guard, MARKETING, "KIM@example.se"))["allowed"] is True
        result = await asyncio.to_thread(
            registry_cli,
            "objections",
            "import",
            str(listing),
            "--source",
            "newsletter tool",
            REGISTRY_DATABASE_URL=seeded_database,
            REGISTRY_SUBJECT_KEY=key,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "1 rows: 1 objections recorded, 0 already in force"
        answer = await answer_within(client, guard, "KIM@example.se", allowed=False, seconds=30.0)
        assert codes(answer) == {"SUBJECT_OBJECTED"}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"received_on": "31/12/2026"}, "received_on"), ({"scope": "sometimes"}, "scope"), ({"source": "a\nb"}, "source")],
)
async def test_a_bad_import_parameter_is_a_400_naming_it(seeded_client, writer_headers, params, field):
    response = await seeded_client.post(
        "/api/objections/import",
        content=UNSUBSCRIBES.encode(),
        params=params,
        headers={**writer_headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 400, response.text
    assert field in response.text


async def test_the_cli_guard_check_names_a_person_and_obeys_their_objection(seeded_database, writer_headers):
    key = "c" * 32
    async with AsyncTestClient(create_app(settings_for(seeded_database, subject_key=key))) as client:
        assert (
            await client.post("/api/objections", json=objection(scope="all"), headers=writer_headers)
        ).status_code == 201
    arguments = ["guard", "check", "--recipient", "kvarnberg", "--purpose", "essential.service.operations",
                 "--category", "user.name", "--data-subject", "customer"]  # fmt: skip
    environment = {"REGISTRY_DATABASE_URL": seeded_database, "REGISTRY_SUBJECT_KEY": key}
    objected = await asyncio.to_thread(registry_cli, *arguments, "--subject-ref", PERSON, **environment)
    assert objected.returncode == 1, objected.stderr
    assert '"SUBJECT_OBJECTED"' in objected.stdout
    other = await asyncio.to_thread(registry_cli, *arguments, "--subject-ref", OTHER, **environment)
    assert other.returncode == 0, other.stdout + other.stderr


def test_the_cli_refuses_a_bad_list_with_exit_2_naming_the_row(database, tmp_path):
    listing = tmp_path / "bad.csv"
    listing.write_text("email\nkim\x07@example.se\n", encoding="utf-8")
    result = registry_cli("objections", "import", str(listing), REGISTRY_DATABASE_URL=database)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: row 2.email:")
