"""Issue 21 through the registry API on the real PostgreSQL: what is refused when written, and what the new
link and controller fields read back as."""

from pathlib import Path

import pytest
import yaml

from tests.integration.registry_fixtures import agreement, error_keys, error_text, party
from tests.integration.test_snapshot_refresh import poll_until

SEED = Path(__file__).resolve().parents[2] / "seed" / "offix.yaml"


@pytest.mark.parametrize("role", ["processor", "sub_processor", "independent_controller"])
async def test_a_party_of_category_authority_with_another_role_is_a_400_naming_both_fields(
    client, writer_headers, role
):
    response = await client.post(
        "/api/parties", json=party("tax", role=role, category="authority"), headers=writer_headers
    )
    assert response.status_code == 400, response.text
    assert error_keys(response) == ["category"]
    assert "role" in error_text(response)
    assert (await client.get("/api/parties", headers=writer_headers)).json()["total"] == 0


async def test_an_authority_filed_as_an_authority_is_accepted(client, writer_headers):
    response = await client.post(
        "/api/parties", json=party("tax", role="authority", category="authority"), headers=writer_headers
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("subjects", [[], None])
async def test_an_agreement_listing_no_data_subject_is_a_400_naming_the_field(client, writer_headers, subjects):
    await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    body = agreement("acme-dpa", "acme", data_subjects=subjects)
    if subjects is None:
        del body["data_subjects"]
    response = await client.post("/api/agreements", json=body, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert error_keys(response) == ["data_subjects"]


async def test_a_sub_processor_link_keeps_how_it_was_authorised(client, writer_headers):
    await client.post("/api/parties", json=party("host", role="sub_processor"), headers=writer_headers)
    link = {
        "party": "host",
        "authorisation": "general",
        "notified_on": "2026-10-01",
        "objection_deadline": "2026-10-31",
        "approved_on": None,
        "objected_on": "2026-10-15",
    }
    created = await client.post("/api/parties", json=party("acme", sub_processors=[link]), headers=writer_headers)
    assert created.status_code == 201, created.text
    read = (await client.get("/api/parties/acme", headers=writer_headers)).json()
    assert read["sub_processors"] == [link]


async def test_an_unknown_authorisation_is_a_400_naming_the_field(client, writer_headers):
    await client.post("/api/parties", json=party("host", role="sub_processor"), headers=writer_headers)
    body = party("acme", sub_processors=[{"party": "host", "authorisation": "tacit"}])
    response = await client.post("/api/parties", json=body, headers=writer_headers)
    assert response.status_code == 400
    assert error_keys(response) == ["sub_processors.0.authorisation"] or "authorisation" in error_text(response)


async def test_the_seed_reads_back_with_its_published_purposes_and_link_authorisations(
    client, seeded_database, reader_headers
):
    exported = (await client.get("/api/registry", headers=reader_headers)).json()
    seed = yaml.safe_load(SEED.read_text())
    assert exported["controller"]["published_purposes"] == seed["controller"]["published_purposes"]
    nordfrakt = next(p for p in exported["parties"] if p["key"] == "nordfrakt")
    assert nordfrakt["sub_processors"][0]["authorisation"] == "specific"
    assert nordfrakt["sub_processors"][0]["approved_on"] == "2025-01-10"


async def test_export_then_import_of_the_new_fields_is_the_identity(client, seeded_database, writer_headers):
    before = (await client.get("/api/registry", headers=writer_headers)).json()
    before["controller"]["published_purposes"] = ["essential.service", "sales", "marketing.communications.email"]
    kvarnberg = next(p for p in before["parties"] if p["key"] == "kvarnberg")
    kvarnberg["sub_processors"][0] |= {
        "authorisation": "general",
        "notified_on": "2023-09-01",
        "objection_deadline": "2023-10-01",
    }
    put = await client.put("/api/registry", json=before, headers=writer_headers)
    assert put.status_code == 200, put.text
    after = (await client.get("/api/registry", headers=writer_headers)).json()
    assert after == before


async def test_published_purposes_deny_a_share_for_another_purpose_through_the_api(
    client, seeded_database, writer_headers, guard_headers
):
    document = (await client.get("/api/registry", headers=writer_headers)).json()
    document["controller"]["published_purposes"] = ["marketing.communications.email"]
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    share = {
        "recipient": "nordfrakt",
        "purpose": "essential.service.operations",
        "data_categories": ["user.name"],
        "data_subject": "customer",
    }

    async def reasons():
        answer = (await client.post("/api/guard/check", json=share, headers=guard_headers)).json()
        return [r["code"] for r in answer["reasons"]]

    # The instance's snapshot follows the write by LISTEN/NOTIFY: bounded wait, then the answer.
    assert await poll_until(reasons, within=10) == ["PURPOSE_NOT_PUBLISHED"]
