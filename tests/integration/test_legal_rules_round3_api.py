"""Issue 31 through the API, the registry document, the UI form and the guard on the real PostgreSQL: the objection
deadline refused when written, international organisations recorded and refused, every agreement in force that
permits transfers denied, and findings that say whether they block."""

import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import test_settings as settings_for
from tests.integration.registry_fixtures import agreement, error_keys, error_text, party
from tests.integration.test_snapshot_refresh import poll_until
from tests.ui_session import add_user, as_user, post_form
from web.app import create_app

LATE_NOTICE = {
    "party": "host",
    "authorisation": "general",
    "notified_on": "2026-10-31",
    "objection_deadline": "2026-10-01",
}
SHARE = {
    "recipient": "acme",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name"],
    "data_subject": "customer",
}


async def _refusal(client: Any, guard_headers: dict[str, str], share: dict[str, Any], expected: list[str]) -> list[str]:
    """The guard's reason codes for `share`, asked until they are `expected` (the instance's snapshot follows a
    write by LISTEN/NOTIFY) or ten seconds have passed."""
    last: list[str] = []

    async def arrived() -> bool:
        nonlocal last
        answer = (await client.post("/api/guard/check", json=share, headers=guard_headers)).json()
        last = sorted(r["code"] for r in answer["reasons"])
        return last == expected

    await poll_until(arrived, within=10)
    return last


# --- Art. 28(2): the deadline after the notice, refused when written --------------------------------------


async def test_a_link_with_its_objection_deadline_before_the_notice_is_a_400_naming_the_deadline(
    client, writer_headers
):
    await client.post("/api/parties", json=party("host", role="sub_processor"), headers=writer_headers)
    response = await client.post(
        "/api/parties", json=party("acme", sub_processors=[LATE_NOTICE]), headers=writer_headers
    )
    assert response.status_code == 400, response.text
    assert error_keys(response) == ["sub_processors.0.objection_deadline"]
    assert "objection_deadline must be after notified_on" in error_text(response)
    assert (await client.get("/api/parties/acme", headers=writer_headers)).status_code == 404, "nothing written"


async def test_a_registry_document_with_such_a_link_is_refused_whole_naming_its_path(
    client, seeded_database, writer_headers
):
    document = (await client.get("/api/registry", headers=writer_headers)).json()
    index = next(i for i, p in enumerate(document["parties"]) if p["key"] == "nordfrakt")
    document["parties"][index]["sub_processors"].append({**LATE_NOTICE, "party": "fjordvault"})
    before = (await client.get("/api/registry", headers=writer_headers)).json()
    response = await client.put("/api/registry", json=document, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert f"parties[{index}].sub_processors[1].objection_deadline" in error_keys(response)
    assert (await client.get("/api/registry", headers=writer_headers)).json() == before, "all or nothing"


@pytest.fixture
async def ui_client(seeded_database):
    await add_user(seeded_database, "lena@offix.example", "legal")
    async with AsyncTestClient(create_app(settings_for(seeded_database))) as client:
        yield client


def _party_form(**extra: str) -> list[tuple[str, str]]:
    fields = [("key", "unhcr"), ("name", "UNHCR"), ("role", "independent_controller"), ("category", "other"),
              ("established_in", "DK"), ("active", "on"), ("loc_territory", ""), ("loc_kind", "")]  # fmt: skip
    return fields + list(extra.items())


async def test_the_party_form_puts_the_deadline_problem_beside_the_deadline_and_saves_nothing(
    ui_client, writer_headers
):
    await as_user(ui_client, "lena@offix.example")
    response = await post_form(
        ui_client,
        "/ui/parties/new",
        "/ui/parties/new",
        [
            *_party_form(),
            ("sub_party", "fjordvault"),
            ("sub_approved_on", ""),
            ("sub_objection_deadline", "2026-10-01"),
            ("sub_authorisation", "general"),
            ("sub_notified_on", "2026-10-31"),
            ("sub_objected_on", ""),
        ],
    )
    assert response.status_code == 400, response.text
    error = re.search(r'id="sub-0-objection_deadline-error">([^<]+)<', response.text)
    assert error and "objection deadline must be after the day the sub-processor change was notified" in error.group(1)
    assert (await ui_client.get("/api/parties/unhcr", headers=writer_headers)).status_code == 404


# --- Art. 4(26), 44: international organisations --------------------------------------------------------


async def test_the_party_form_records_an_international_organisation_and_the_guard_refuses_shares_to_it(
    ui_client, writer_headers, guard_headers
):
    await as_user(ui_client, "lena@offix.example")
    form = (await ui_client.get("/ui/parties/new")).text
    assert 'name="international_organisation"' in form and "International organisation (Art. 4(26))" in form
    response = await post_form(
        ui_client, "/ui/parties/new", "/ui/parties/new", [*_party_form(), ("international_organisation", "on")]
    )
    assert response.status_code == 303, response.text
    stored = (await ui_client.get("/api/parties/unhcr", headers=writer_headers)).json()
    assert stored["international_organisation"] is True
    page = (await ui_client.get("/ui/parties/unhcr")).text
    assert "RECIPIENT_INTERNATIONAL_ORGANISATION" in page and "international organisation" in page
    sharing = agreement("unhcr-sharing", "unhcr", kind="data_sharing")
    assert (await ui_client.post("/api/agreements", json=sharing, headers=writer_headers)).status_code == 201
    share = {**SHARE, "recipient": "unhcr", "destination": "DK"}
    expected = ["RECIPIENT_INTERNATIONAL_ORGANISATION"]
    assert await _refusal(ui_client, guard_headers, share, expected) == expected


async def test_an_international_organisation_reads_back_exports_and_is_a_transfer_in_the_article_30_record(
    client, seeded_database, writer_headers, reader_headers
):
    body = party("oecd", role="independent_controller", established_in="FR", international_organisation=True)
    assert (await client.post("/api/parties", json=body, headers=writer_headers)).status_code == 201, body
    document = (await client.get("/api/registry", headers=writer_headers)).json()
    [oecd] = [p for p in document["parties"] if p["key"] == "oecd"]
    assert oecd["international_organisation"] is True
    assert all(p["international_organisation"] is False for p in document["parties"] if p["key"] != "oecd")
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    assert (await client.get("/api/registry", headers=writer_headers)).json() == document, "export, import: identity"

    record = (await client.get("/api/records/article-30", headers=reader_headers)).json()
    [entry] = [r for r in record["recipients"] if r["key"] == "oecd"]
    assert entry["international_organisation"] is True
    assert [t["kind"] for t in entry["third_country_transfers"]] == ["international_organisation"]
    findings = (await client.get("/api/registry/findings", headers=reader_headers)).json()["findings"]
    assert {"party": "oecd", "code": "RECIPIENT_INTERNATIONAL_ORGANISATION"}.items() <= next(
        f for f in findings if f["code"] == "RECIPIENT_INTERNATIONAL_ORGANISATION"
    ).items()


# --- Art. 28(3)(a), 44: every agreement in force counts; findings say whether they block -----------------


async def test_a_second_dpa_permitting_transfers_denies_and_the_finding_and_the_record_agree(
    client, writer_headers, reader_headers, guard_headers
):
    assert (await client.post("/api/parties", json=party("acme"), headers=writer_headers)).status_code == 201
    for body in (
        agreement("acme-dpa", "acme"),
        agreement("acme-dpa-2026", "acme", effective_from="2026-01-01", transfers_outside_eea_permitted=True),
    ):
        assert (await client.post("/api/agreements", json=body, headers=writer_headers)).status_code == 201, body
    assert await _refusal(client, guard_headers, SHARE, ["AGREEMENT_PERMITS_TRANSFER"]) == [
        "AGREEMENT_PERMITS_TRANSFER"
    ]

    findings = (await client.get("/api/registry/findings", headers=reader_headers)).json()["findings"]
    mine = [(f["code"], f.get("agreement"), f["blocks"]) for f in findings if f["party"] == "acme"]
    assert ("AGREEMENT_PERMITS_TRANSFER", "acme-dpa-2026", True) in mine
    assert all(isinstance(f["blocks"], bool) for f in findings)
    assert [f["blocks"] for f in findings if f["code"] == "AGREEMENT_UNDOCUMENTED"] == [False] * sum(
        f["code"] == "AGREEMENT_UNDOCUMENTED" for f in findings
    )

    record = (await client.get("/api/records/article-30", headers=reader_headers)).json()
    [entry] = [r for r in record["recipients"] if r["key"] == "acme"]
    transfers = [(t["kind"], t.get("agreement")) for t in entry["third_country_transfers"]]
    assert transfers == [("agreement_permits_transfer", "acme-dpa-2026")]
    assert record["third_country_transfers_summary"] != "none"


async def test_the_seed_has_no_findings_that_block(client, seeded_database, reader_headers):
    findings = (await client.get("/api/registry/findings", headers=reader_headers)).json()["findings"]
    assert [f for f in findings if f["blocks"]] == []


async def test_the_article_30_page_lists_an_agreement_permitting_transfers_and_an_international_organisation(
    ui_client, writer_headers
):
    bodies = [party("acme"), party("oecd", role="independent_controller", established_in="FR",
                                     international_organisation=True)]  # fmt: skip
    for body in bodies:
        assert (await ui_client.post("/api/parties", json=body, headers=writer_headers)).status_code == 201
    permitting = agreement("acme-dpa-open", "acme", transfers_outside_eea_permitted=True)
    assert (await ui_client.post("/api/agreements", json=permitting, headers=writer_headers)).status_code == 201
    await as_user(ui_client, "lena@offix.example")

    async def page() -> str:
        return (await ui_client.get("/ui/records/article-30", params={"lang": "sv"})).text

    async def both_listed() -> bool:
        text = await page()
        return "avtalet tillåter överföringar utanför EU/EES" in text and "en internationell organisation" in text

    assert await poll_until(both_listed, within=10) is True
    assert "<code>acme-dpa-open</code>" in await page()
