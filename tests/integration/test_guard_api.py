"""POST /api/guard/check and /check-batch over HTTP against the real PostgreSQL (DESIGN §4.1)."""

import dataclasses
import uuid
from datetime import datetime

import pytest

from guard.views import Reason
from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key


async def test_an_allowed_share_is_answered_with_the_contract_fields(seeded_client, guard_headers):
    response = await seeded_client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "decision_id",
        "allowed",
        "reasons",
        "warnings",
        "agreement",
        "ruleset",
        "decided_at",
        "sequence",
    }
    assert body["allowed"] is True
    assert body["reasons"] == []
    assert body["agreement"] == "nordfrakt-dpa-2024"
    assert body["ruleset"].startswith("eea-only@")
    uuid.UUID(body["decision_id"])
    assert body["decided_at"].endswith("Z")
    datetime.fromisoformat(body["decided_at"].replace("Z", "+00:00"))


async def test_the_openapi_document_describes_the_answers_the_guard_gives(seeded_client, guard_headers, reader_headers):
    answer = await seeded_client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard_headers)
    batch = await seeded_client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE], headers=guard_headers)
    assert answer.headers["content-type"] == batch.headers["content-type"] == "application/json"
    openapi = await seeded_client.get("/schema/openapi.json", headers=reader_headers)
    assert openapi.status_code == 200, openapi.text
    document = openapi.json()
    check = document["paths"]["/api/guard/check"]["post"]["responses"]
    check_batch = document["paths"]["/api/guard/check-batch"]["post"]["responses"]
    answer_ref = {"$ref": "#/components/schemas/GuardAnswer"}
    assert check["200"]["content"]["application/json"]["schema"] == answer_ref
    assert check_batch["200"]["content"]["application/json"]["schema"] == {"type": "array", "items": answer_ref}
    assert {"400", "503"} <= set(check) & set(check_batch)
    described = document["components"]["schemas"]["GuardAnswer"]
    assert set(described["properties"]) == set(described["required"]) == set(answer.json()) == set(batch.json()[0])
    reason = document["components"]["schemas"]["ReasonAnswer"]
    assert set(reason["required"]) == {"code", "message"}
    # Every field a reason may carry (the policy's Reason, as `as_dict` answers it) is documented.
    assert set(reason["properties"]) == {f.name for f in dataclasses.fields(Reason)}


async def test_a_denied_share_is_a_200_listing_every_reason(seeded_client, guard_headers):
    share = {**SEED_ALLOWED_SHARE, "data_categories": ["user.name", "user.health_and_medical"], "destination": "US"}
    response = await seeded_client.post("/api/guard/check", json=share, headers=guard_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["allowed"] is False
    codes = {r["code"] for r in body["reasons"]}
    assert {"SPECIAL_CATEGORY", "DESTINATION_OUTSIDE_EEA", "DESTINATION_UNDECLARED"} <= codes
    assert all(set(r) >= {"code", "message"} for r in body["reasons"])


async def test_a_call_without_a_key_is_refused_with_401(seeded_client):
    response = await seeded_client.post("/api/guard/check", json=SEED_ALLOWED_SHARE)
    assert response.status_code == 401


async def test_a_key_without_the_guard_scope_is_refused_with_403(seeded_client, reader_headers):
    response = await seeded_client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=reader_headers)
    assert response.status_code == 403


async def test_an_admin_key_may_check_a_share(seeded_client, admin_headers):
    response = await seeded_client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["allowed"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in SEED_ALLOWED_SHARE.items() if k != "recipient"}, "recipient"),
        ({k: v for k, v in SEED_ALLOWED_SHARE.items() if k != "purpose"}, "purpose"),
        ({k: v for k, v in SEED_ALLOWED_SHARE.items() if k != "data_categories"}, "data_categories"),
        ({**SEED_ALLOWED_SHARE, "recipient": 42}, "recipient"),
        ({**SEED_ALLOWED_SHARE, "purpose": ["essential"]}, "purpose"),
        ({**SEED_ALLOWED_SHARE, "data_categories": "user.name"}, "data_categories"),
        ({**SEED_ALLOWED_SHARE, "data_categories": []}, "data_categories"),
        ({**SEED_ALLOWED_SHARE, "data_categories": ["user.name"] * 101}, "data_categories"),
        ({**SEED_ALLOWED_SHARE, "data_categories": ["user.name", 7]}, "data_categories[1]"),
        ({**SEED_ALLOWED_SHARE, "data_categories": ["x" * 201]}, "data_categories[0]"),
        ({**SEED_ALLOWED_SHARE, "recipient": "r" * 201}, "recipient"),
        ({**SEED_ALLOWED_SHARE, "purpose": ""}, "purpose"),
        ({**SEED_ALLOWED_SHARE, "destination": 46}, "destination"),
        ({**SEED_ALLOWED_SHARE, "destination": "S" * 201}, "destination"),
        ({**SEED_ALLOWED_SHARE, "data_subject": True}, "data_subject"),
        ({**SEED_ALLOWED_SHARE, "colour": "blue"}, "colour"),
    ],
)
async def test_a_structurally_bad_request_is_a_400_naming_the_field(seeded_client, guard_headers, body, field):
    response = await seeded_client.post("/api/guard/check", json=body, headers=guard_headers)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert field in [e["key"] for e in answer["extra"]]
    assert field in answer["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"nordfrakt"', b"null"])
async def test_a_body_that_is_not_a_json_object_is_a_400(seeded_client, guard_headers, raw):
    headers = {**guard_headers, "Content-Type": "application/json"}
    response = await seeded_client.post("/api/guard/check", content=raw, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["extra"][0]["key"] == "(body)"


async def test_structurally_bad_requests_are_not_logged(seeded_client, guard_headers, reader_headers):
    await seeded_client.post("/api/guard/check", json={"recipient": "nordfrakt"}, headers=guard_headers)
    listed = await seeded_client.get("/api/guard/decisions", headers=reader_headers)
    assert listed.json()["total"] == 0


async def test_a_batch_is_answered_in_order_and_every_answer_is_logged(seeded_client, guard_headers, reader_headers):
    shares = [
        SEED_ALLOWED_SHARE,
        {**SEED_ALLOWED_SHARE, "recipient": "nobody-we-know"},
        {**SEED_ALLOWED_SHARE, "recipient": "uppbordsverket"},
        SEED_ALLOWED_SHARE,
    ]
    response = await seeded_client.post("/api/guard/check-batch", json=shares, headers=guard_headers)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["allowed"] for a in answers] == [True, False, False, True]
    assert answers[1]["reasons"][0]["code"] == "RECIPIENT_UNKNOWN"
    assert "RECIPIENT_IS_AUTHORITY" in {r["code"] for r in answers[2]["reasons"]}
    assert len({a["decision_id"] for a in answers}) == 4
    listed = (await seeded_client.get("/api/guard/decisions", headers=reader_headers)).json()
    assert listed["total"] == 4
    # Newest first: the log holds the batch in reverse order of the answers.
    assert [d["decision_id"] for d in listed["items"]] == [a["decision_id"] for a in reversed(answers)]


async def test_a_batch_of_a_thousand_is_accepted_and_one_more_is_a_400(seeded_client, guard_headers):
    full = await seeded_client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE] * 1000, headers=guard_headers)
    assert full.status_code == 200, full.text
    assert len(full.json()) == 1000
    over = await seeded_client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE] * 1001, headers=guard_headers)
    assert over.status_code == 400
    assert "1001" in over.json()["detail"]


@pytest.mark.parametrize("body", [[], {"requests": []}, SEED_ALLOWED_SHARE])
async def test_a_batch_that_is_not_a_non_empty_array_is_a_400(seeded_client, guard_headers, body):
    response = await seeded_client.post("/api/guard/check-batch", json=body, headers=guard_headers)
    assert response.status_code == 400


async def test_one_bad_request_in_a_batch_rejects_the_batch_and_names_its_position(
    seeded_client, guard_headers, reader_headers
):
    shares = [SEED_ALLOWED_SHARE, {**SEED_ALLOWED_SHARE, "data_categories": []}]
    response = await seeded_client.post("/api/guard/check-batch", json=shares, headers=guard_headers)
    assert response.status_code == 400
    assert "[1].data_categories" in [e["key"] for e in response.json()["extra"]]
    assert (await seeded_client.get("/api/guard/decisions", headers=reader_headers)).json()["total"] == 0


async def test_the_batch_needs_the_guard_scope(seeded_client, reader_headers):
    response = await seeded_client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE], headers=reader_headers)
    assert response.status_code == 403


async def test_the_decision_log_records_the_caller_key_name(seeded_client, seeded_database, reader_headers):
    crm = bearer(await make_key(seeded_database, "crm", "guard:check"))
    await seeded_client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=crm)
    item = (await seeded_client.get("/api/guard/decisions", headers=reader_headers)).json()["items"][0]
    assert item["caller"] == "crm"
    assert item["request"] == SEED_ALLOWED_SHARE
    assert item["outcome"] == "allowed"
    assert item["agreement"] == "nordfrakt-dpa-2024"
