"""Processing activities (the privacy policy as code) against the real PostgreSQL: kept in the registry document
through GET/PUT and YAML, refused with the path named when wrong, and obeyed by the guard: a purpose of an
activity marked direct_marketing needs the person named and obeys their unsubscribe."""

import copy
import json

import yaml

from tests.conftest import bearer, make_key, seed_document

# Offix's outreach through its reseller: the seed's data-sharing agreement with kontorsgrossen covers `sales`.
SALES_TO_RESELLER = {
    "recipient": "kontorsgrossen",
    "purpose": "sales",
    "data_categories": ["user.contact.email"],
    "destination": "DK",
    "data_subject": "customer",
}
PERSON = "karin.unsubscribed@example.se"


def _as_json(document):
    return json.loads(json.dumps(document, default=str))


async def _export(client, headers):
    response = await client.get("/api/registry", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _activity(**changes):
    activity = copy.deepcopy(seed_document()["controller"]["processing_activities"][2])
    activity.update(changes)
    return activity


async def _put_with_activities(client, headers, activities):
    document = _as_json(seed_document())
    document["controller"]["processing_activities"] = activities
    return await client.put("/api/registry", json=document, headers=headers)


def _fields(response) -> set[str]:
    return {error["key"] for error in response.json()["extra"]}


async def test_the_seeds_activities_come_back_as_written_and_put_back_changes_nothing(client, writer_headers):
    seed = _as_json(seed_document())
    assert (await client.put("/api/registry", json=seed, headers=writer_headers)).status_code == 200
    exported = await _export(client, writer_headers)
    assert exported["controller"]["processing_activities"] == seed["controller"]["processing_activities"]
    assert exported["controller"]["contact"] == seed["controller"]["contact"]
    assert [a["key"] for a in exported["controller"]["processing_activities"]] == [
        "leverans",
        "avtal",
        "kundrelationer",
        "direktmarknadsforing",
    ]
    again = await client.put("/api/registry", json=exported, headers=writer_headers)
    assert again.json()["updated"] == 0 and again.json()["created"] == 0
    assert await _export(client, writer_headers) == exported


async def test_the_yaml_export_imports_back_to_the_same_activities(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    exported = await _export(client, writer_headers)
    as_yaml = yaml.safe_dump(exported, allow_unicode=True, sort_keys=False)
    put = await client.put(
        "/api/registry", content=as_yaml.encode(), headers={**writer_headers, "Content-Type": "application/yaml"}
    )
    assert put.status_code == 200, put.text
    assert await _export(client, writer_headers) == exported


async def test_a_registry_without_activities_exports_none(client, writer_headers):
    document = _as_json(seed_document())
    del document["controller"]["processing_activities"]
    del document["controller"]["contact"]
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    controller = (await _export(client, writer_headers))["controller"]
    assert "processing_activities" not in controller and "contact" not in controller


async def test_an_unknown_legal_basis_is_refused_naming_its_path(client, writer_headers):
    response = await _put_with_activities(client, writer_headers, [_activity(legal_basis="gut_feeling")])
    assert response.status_code == 400
    assert "controller.processing_activities[0].legal_basis" in _fields(response)


async def test_an_unknown_taxonomy_key_is_refused_naming_its_path(client, writer_headers):
    response = await _put_with_activities(
        client, writer_headers, [_activity(purposes=["sales", "selling.harder"], data_categories=["user.aura"])]
    )
    assert response.status_code == 400
    assert {
        "controller.processing_activities[0].purposes[1]",
        "controller.processing_activities[0].data_categories[0]",
    } <= _fields(response)


async def test_a_duplicate_activity_key_is_refused_naming_the_second(client, writer_headers):
    response = await _put_with_activities(client, writer_headers, [_activity(), _activity()])
    assert response.status_code == 400
    assert "controller.processing_activities[1].key" in _fields(response)
    assert "duplicate key 'kundrelationer'" in response.text


async def test_a_refused_document_leaves_the_activities_untouched(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    before = await _export(client, writer_headers)
    response = await _put_with_activities(client, writer_headers, [_activity(name={"sv": "Bara svenska"})])
    assert response.status_code == 400
    assert "controller.processing_activities[0].name.en" in _fields(response)
    assert await _export(client, writer_headers) == before


async def test_an_activitys_purpose_is_published_even_when_published_purposes_leave_it_out(
    client, writer_headers, guard_headers
):
    document = _as_json(seed_document())
    document["controller"]["published_purposes"] = ["essential.service"]
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    share = {**SALES_TO_RESELLER, "subject_ref": "olle@example.se"}
    answer = (await client.post("/api/guard/check", json=share, headers=guard_headers)).json()
    assert answer["allowed"] is True, answer
    unpublished = {**share, "purpose": "marketing.advertising"}
    answer = (await client.post("/api/guard/check", json=unpublished, headers=guard_headers)).json()
    assert "PURPOSE_NOT_PUBLISHED" in {r["code"] for r in answer["reasons"]}


async def test_an_unsubscribed_persons_email_to_the_reseller_for_sales_is_refused(seeded_database, client):
    guard = bearer(await make_key(seeded_database, "crm", "guard:check"))
    writer = bearer(await make_key(seeded_database, "privacy", "registry:read", "registry:write"))
    named = {**SALES_TO_RESELLER, "subject_ref": PERSON}
    before = (await client.post("/api/guard/check", json=named, headers=guard)).json()
    assert before["allowed"] is True, before

    unsubscribe = {"subject": PERSON, "scope": "direct_marketing", "received_on": "2026-11-02", "source": "mail-out"}
    assert (await client.post("/api/objections", json=unsubscribe, headers=writer)).status_code == 201

    after = (await client.post("/api/guard/check", json=named, headers=guard)).json()
    assert after["allowed"] is False
    assert {r["code"] for r in after["reasons"]} == {"SUBJECT_OBJECTED"}
    anonymous = (await client.post("/api/guard/check", json=SALES_TO_RESELLER, headers=guard)).json()
    assert anonymous["allowed"] is False
    assert {r["code"] for r in anonymous["reasons"]} == {"SUBJECT_REF_MISSING"}
    # A delivery to a processor for the same person is not direct marketing: the unsubscribe does not touch it.
    delivery = {
        "recipient": "nordfrakt",
        "purpose": "essential.service.operations",
        "data_categories": ["user.name", "user.contact.address"],
        "destination": "SE",
        "data_subject": "customer",
        "subject_ref": PERSON,
    }
    assert (await client.post("/api/guard/check", json=delivery, headers=guard)).json()["allowed"] is True
