"""Issue 21 through the registry API on the real PostgreSQL: what is refused when written, and what the new
link and controller fields read back as."""

from pathlib import Path

import pytest
import yaml
from litestar.testing import AsyncTestClient

from kernel.i18n import day, use_locale
from tests.conftest import test_settings as settings_for
from tests.integration.registry_fixtures import agreement, error_keys, error_text, party
from tests.integration.test_snapshot_refresh import poll_until
from tests.ui_session import add_user, as_user, csrf_token, post_form
from web.app import create_app

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
    # The processing activities publish their purposes too (deliveries among them): without them, only the list.
    del document["controller"]["processing_activities"]
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


# --- The UI's one-step approve / object -------------------------------------------------------------------


@pytest.fixture
async def ui_client(seeded_database):
    for email, role in (("lena@offix.example", "legal"), ("olle@offix.example", "ops")):
        await add_user(seeded_database, email, role)
    async with AsyncTestClient(create_app(settings_for(seeded_database))) as client:
        yield client


async def _with_pending_link(client, writer_headers) -> None:
    document = (await client.get("/api/registry", headers=writer_headers)).json()
    nordfrakt = next(p for p in document["parties"] if p["key"] == "nordfrakt")
    nordfrakt["sub_processors"].append(
        {
            "party": "fjordvault",
            "authorisation": "general",
            "notified_on": "2026-11-01",
            "objection_deadline": "2999-01-01",
        }
    )
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200


async def test_legal_objects_to_and_then_approves_a_sub_processor_change_in_one_action_each(ui_client, writer_headers):
    await _with_pending_link(ui_client, writer_headers)
    await as_user(ui_client, "lena@offix.example")
    page = (await ui_client.get("/ui/parties/nordfrakt")).text
    assert "/ui/parties/nordfrakt/sub-processors/fjordvault/decision" in page
    version = (await ui_client.get("/api/parties/nordfrakt", headers=writer_headers)).json()["version"]

    objected = await post_form(
        ui_client,
        "/ui/parties/nordfrakt",
        "/ui/parties/nordfrakt/sub-processors/fjordvault/decision",
        [("action", "object"), ("version", str(version))],
    )
    assert objected.status_code == 303, objected.text
    stored = (await ui_client.get("/api/parties/nordfrakt", headers=writer_headers)).json()
    [link] = [s for s in stored["sub_processors"] if s["party"] == "fjordvault"]
    assert link["objected_on"] is not None and link["approved_on"] is None
    with use_locale("en"):  # the page shows the date in its language (the test client asks for none: English)
        objected_on = day(link["objected_on"])
    assert "objected " + objected_on in (await ui_client.get("/ui/parties/nordfrakt")).text

    approved = await post_form(
        ui_client,
        "/ui/parties/nordfrakt",
        "/ui/parties/nordfrakt/sub-processors/fjordvault/decision",
        [("action", "approve"), ("version", str(stored["version"]))],
    )
    assert approved.status_code == 303, approved.text
    stored = (await ui_client.get("/api/parties/nordfrakt", headers=writer_headers)).json()
    [link] = [s for s in stored["sub_processors"] if s["party"] == "fjordvault"]
    assert link["approved_on"] is not None and link["objected_on"] is None


async def test_a_stale_decision_on_a_sub_processor_change_is_a_409_and_changes_nothing(ui_client, writer_headers):
    await _with_pending_link(ui_client, writer_headers)
    await as_user(ui_client, "lena@offix.example")
    response = await post_form(
        ui_client,
        "/ui/parties/nordfrakt",
        "/ui/parties/nordfrakt/sub-processors/fjordvault/decision",
        [("action", "object"), ("version", "1")],
    )
    assert response.status_code == 409
    stored = (await ui_client.get("/api/parties/nordfrakt", headers=writer_headers)).json()
    [link] = [s for s in stored["sub_processors"] if s["party"] == "fjordvault"]
    assert link["objected_on"] is None


async def test_an_ops_user_cannot_decide_a_sub_processor_change(ui_client, writer_headers):
    await _with_pending_link(ui_client, writer_headers)
    await as_user(ui_client, "olle@offix.example")
    page = await ui_client.get("/ui/parties/nordfrakt")
    assert "/sub-processors/fjordvault/decision" not in page.text
    response = await ui_client.post(
        "/ui/parties/nordfrakt/sub-processors/fjordvault/decision",
        data={"action": "object", "version": "2", "_csrf_token": csrf_token(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 403
