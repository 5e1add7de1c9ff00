"""Hostile and malformed input never reaches a 500: bodies nested too deeply or not UTF-8, text PostgreSQL
cannot store (NUL), dates at the ends of the calendar, and odd query values all get a 4xx naming what is wrong.
Cross-field rules name their own field too."""

import asyncio
import json

import pytest

from guard.service import MAX_BODY_BYTES
from tests.integration.registry_fixtures import agreement, error_keys, error_text, party

SHARE = {
    "recipient": "nordfrakt",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name", "user.contact.address"],
    "destination": "SE",
    "data_subject": "customer",
}
DEEPLY_NESTED = b"[" * 100_000 + b"]" * 100_000
NOT_UTF8 = b'{"key": "\xff\xfe"}'


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/parties"),
        ("PUT", "/api/parties/acme"),
        ("POST", "/api/agreements"),
        ("PUT", "/api/registry"),
        ("POST", "/api/keys"),
        ("POST", "/api/calendar-feeds"),
        ("POST", "/api/guard/check"),
        ("POST", "/api/guard/check-batch"),
    ],
)
@pytest.mark.parametrize("body", [DEEPLY_NESTED, NOT_UTF8], ids=["deeply-nested", "not-utf8"])
async def test_a_body_nested_too_deeply_or_not_utf8_is_a_400_not_a_server_error(
    client, admin_headers, method, path, body
):
    headers = {**admin_headers, "Content-Type": "application/json"}
    response = await client.request(method, path, content=body, headers=headers)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Acme\x00AB"}, "name"),
        ({"org_number": "556\x00"}, "org_number"),
        ({"contact": {"name": "Karin\x00", "email": "karin@acme.example"}}, "contact.name"),
        ({"contact": {"phone": "\x00"}}, "contact.phone"),
    ],
)
async def test_a_nul_character_in_a_party_field_is_a_400_naming_the_field(client, writer_headers, overrides, field):
    response = await client.post("/api/parties", json=party("acme", **overrides), headers=writer_headers)
    assert response.status_code == 400, response.text
    assert error_keys(response) == [field]
    assert (await client.get("/api/parties", headers=writer_headers)).json()["total"] == 0


async def test_a_nul_character_in_an_agreement_field_is_a_400_naming_the_field(client, writer_headers):
    await client.post("/api/parties", json=party("proc"), headers=writer_headers)
    body = agreement("proc-dpa", "proc", owner_email="legal\x00@offix.example", document={"uri": "https://x/\x00"})
    response = await client.post("/api/agreements", json=body, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert sorted(error_keys(response)) == ["document.uri", "owner_email"]


async def test_a_nul_character_in_the_registry_document_is_a_400_naming_its_path(client, writer_headers):
    document = {"controller": {"name": "Offix\x00AB", "established_in": "SE"}, "parties": [party("acme")]}
    document["parties"][0]["contact"] = {"name": "\x00"}
    response = await client.put("/api/registry", json=document, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert sorted(error_keys(response)) == ["controller.name", "parties[0].contact.name"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/parties/acme%00"),
        ("GET", "/api/parties/acme%00/history"),
        ("DELETE", "/api/parties/acme%00?version=1"),
        ("GET", "/api/agreements/%00"),
        ("GET", "/api/agreements/%00/history"),
        ("DELETE", "/api/agreements/%00?version=1&terminated_on=2026-01-01"),
        ("DELETE", "/api/keys/%00"),
        ("DELETE", "/api/calendar-feeds/%00"),
    ],
)
async def test_a_path_key_that_no_entry_can_have_is_a_404(client, admin_headers, method, path):
    response = await client.request(method, path, headers=admin_headers)
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/parties?q=%00", "q"),
        ("/api/agreements?q=a%00", "q"),
        ("/api/agreements?party=%00", "party"),
        ("/api/guard/decisions?recipient=%00", "recipient"),
    ],
)
async def test_a_nul_character_in_a_text_filter_is_a_400_naming_the_parameter(client, reader_headers, path, field):
    response = await client.get(path, headers=reader_headers)
    assert response.status_code == 400, response.text
    assert error_keys(response) == [field]


@pytest.mark.parametrize(
    ("share", "field"),
    [
        ({**SHARE, "recipient": "nord\x00frakt"}, "recipient"),
        ({**SHARE, "data_categories": ["user.name", "user.name\x00"]}, "data_categories[1]"),
        ({**SHARE, "destination": "SE\x00"}, "destination"),
        ({**SHARE, "data_subject": "\x00"}, "data_subject"),
    ],
)
async def test_a_share_request_holding_nul_is_a_400_naming_the_field_and_is_not_logged(
    seeded_client, guard_headers, reader_headers, share, field
):
    response = await seeded_client.post("/api/guard/check", json=share, headers=guard_headers)
    assert response.status_code == 400, response.text
    assert error_keys(response) == [field]
    batch = await seeded_client.post("/api/guard/check-batch", json=[SHARE, share], headers=guard_headers)
    assert batch.status_code == 400, batch.text
    assert error_keys(batch) == [f"[1].{field}"]
    log = await seeded_client.get("/api/guard/decisions", headers=reader_headers)
    assert log.json()["total"] == 0


async def test_a_share_request_holding_nul_does_not_fail_the_checks_logged_alongside_it(seeded_client, guard_headers):
    """The decision log commits concurrent answers together: an entry PostgreSQL refuses would fail them all."""
    poisoned = {**SHARE, "recipient": "nord\x00frakt"}
    calls = [seeded_client.post("/api/guard/check", json=SHARE, headers=guard_headers) for _ in range(20)]
    calls.insert(10, seeded_client.post("/api/guard/check", json=poisoned, headers=guard_headers))
    answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * 10 + [400] + [200] * 10


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"expires_on": "2024-12-31"}, "expires_on"),
        ({"terminated_on": "2024-12-31"}, "terminated_on"),
        ({"renewal": "auto"}, "notice_days"),
        ({"renewal": "auto", "notice_days": None}, "notice_days"),
    ],
)
async def test_a_rule_across_agreement_fields_is_reported_on_the_field_it_names(
    client, writer_headers, overrides, field
):
    await client.post("/api/parties", json=party("proc"), headers=writer_headers)
    response = await client.post(
        "/api/agreements", json=agreement("proc-dpa", "proc", **overrides), headers=writer_headers
    )
    assert response.status_code == 400, response.text
    assert error_keys(response) == [field]


async def test_an_unknown_controller_time_zone_is_reported_on_the_timezone_field(client, writer_headers):
    document = {"controller": {"name": "Offix AB", "established_in": "SE", "timezone": "Mars/Olympus_Mons"}}
    response = await client.put("/api/registry", json=document, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert error_keys(response) == ["controller.timezone"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"effective_from": "0001-01-01", "signed_on": "0001-01-01", "expires_on": "0001-01-10"}, "effective_from"),
        ({"expires_on": "9999-12-31"}, "expires_on"),
        ({"signed_on": "1066-10-14"}, "signed_on"),
    ],
)
async def test_a_date_at_the_ends_of_the_calendar_is_a_400_naming_the_field(client, writer_headers, overrides, field):
    """Renewal reminders and the calendar feed count days around these dates; at year 1 or 9999 they overflowed."""
    await client.post("/api/parties", json=party("proc"), headers=writer_headers)
    body = agreement("proc-dpa", "proc", renewal="auto", notice_days=3650, **overrides)
    response = await client.post("/api/agreements", json=body, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert field in error_keys(response)
    assert (await client.get("/api/renewals?within=3650", headers=writer_headers)).status_code == 200


async def test_a_sub_processor_link_dated_at_the_end_of_the_calendar_is_a_400_naming_it(client, writer_headers):
    await client.post("/api/parties", json=party("sub", role="sub_processor"), headers=writer_headers)
    link = {"party": "sub", "objection_deadline": "9999-12-31"}
    response = await client.post("/api/parties", json=party("proc", sub_processors=[link]), headers=writer_headers)
    assert response.status_code == 400, response.text
    assert error_keys(response) == ["sub_processors.0.objection_deadline"]


async def test_terminating_an_agreement_at_the_end_of_the_calendar_is_a_400_naming_the_date(client, writer_headers):
    await client.post("/api/parties", json=party("proc"), headers=writer_headers)
    await client.post("/api/agreements", json=agreement("proc-dpa", "proc"), headers=writer_headers)
    response = await client.delete(
        "/api/agreements/proc-dpa?version=1&terminated_on=9999-12-31", headers=writer_headers
    )
    assert response.status_code == 400, response.text
    assert error_keys(response) == ["terminated_on"]
    assert (await client.get("/api/agreements/proc-dpa", headers=writer_headers)).json()["terminated_on"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=0001-01-01T00:00:00%2B14:00", "from"),
        ("to=9999-12-31T23:59:59-14:00", "to"),
    ],
)
async def test_a_bad_decision_log_time_filter_is_a_400_naming_the_parameter_as_sent(
    client, reader_headers, query, field
):
    response = await client.get(f"/api/guard/decisions?{query}", headers=reader_headers)
    assert response.status_code == 400, response.text
    assert error_keys(response) == [field]
    assert field in error_text(response)


@pytest.mark.parametrize("query", ["from=2026-01-01", "from=2026-01-01T00:00:00Z&to=2026-01-02T12:00:00%2B01:00"])
async def test_the_decision_log_time_filters_take_a_date_or_a_date_and_time(client, reader_headers, query):
    response = await client.get(f"/api/guard/decisions?{query}", headers=reader_headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/api/guard/check", "/api/guard/check-batch"])
async def test_a_guard_body_over_the_size_limit_is_a_400_naming_the_limit_and_nothing_is_logged(
    seeded_client, guard_headers, reader_headers, path
):
    oversized = b" " * MAX_BODY_BYTES + json.dumps(SHARE).encode()  # valid JSON, only too big
    headers = {**guard_headers, "Content-Type": "application/json"}
    response = await seeded_client.post(path, content=oversized, headers=headers)
    assert response.status_code == 400, response.text
    assert f"exceeds {MAX_BODY_BYTES} bytes" in response.json()["detail"]
    log = await seeded_client.get("/api/guard/decisions", headers=reader_headers)
    assert log.json()["total"] == 0
