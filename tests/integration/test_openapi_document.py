"""The OpenAPI document as generators read it (issue 32): readable without a key, the bearer scheme named on
every operation that needs a key, stable operation ids, formats on times and ids, a typed answer for every
operation, and the copy committed under clients/ equal to the one the service serves."""

import json
import re
from typing import Any

import pytest

from web.openapi import COMMITTED_DOCUMENT, OPERATION_IDS, REGENERATE

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def document(client: Any) -> dict[str, Any]:
    answer = await client.get("/schema/openapi.json")  # no key: the contract is public
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


async def test_the_committed_document_is_the_one_the_service_serves(document: dict[str, Any]) -> None:
    committed = json.loads(COMMITTED_DOCUMENT.read_text(encoding="utf-8"))
    if committed != document:
        changed = sorted(
            {f"{m.upper()} {p}" for m, p, op in operations(document)}
            ^ {f"{m.upper()} {p}" for m, p, op in operations(committed)}
        )
        pytest.fail(
            f"clients/openapi.json differs from the served document (operations added or gone: {changed or 'none'}); "
            f"regenerate it with: {REGENERATE}",
            pytrace=False,
        )


async def test_the_document_and_its_docs_page_need_no_key(client: Any) -> None:
    assert (await client.get("/schema/openapi.json")).status_code == 200
    assert (await client.get("/schema/openapi.yaml")).status_code == 200
    page = await client.get("/schema/swagger")
    assert page.status_code == 200
    for asset in re.findall(r"""(?:src|href)=["'](/schema-assets/[^"']+)["']""", page.text):
        assert (await client.get(asset)).status_code == 200, asset
    # The data stays behind the key.
    assert (await client.get("/api/parties")).status_code == 401


async def test_every_operation_that_needs_a_key_names_the_bearer_scheme_itself(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if path.startswith("/health/"):
            assert operation["security"] == [], (method, path)
        else:
            assert operation["security"] == [{"bearerAuth": []}], (method, path)


async def test_operation_ids_are_the_stable_names_and_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", i) for i in ids), ids
    by_route = {(m.upper(), p): op["operationId"] for m, p, op in operations(document)}
    assert by_route[("POST", "/api/guard/check")] == "checkShare"
    assert by_route[("GET", "/api/parties")] == "listParties"
    assert by_route[("GET", "/api/guard/decisions/{decision_id}")] == "getDecisionReceipt"
    for route, stable in OPERATION_IDS.items():
        assert by_route.get(route) == stable, route


async def test_times_are_date_time_and_decision_ids_uuid(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("GuardAnswer", "DecisionAnswer"):
        properties = schemas[name]["properties"]
        assert properties["decided_at"] == {"type": "string", "format": "date-time"}, name
        assert properties["decision_id"] == {"type": "string", "format": "uuid"}, name
    assert schemas["ObjectionAnswer"]["properties"]["recorded_at"]["format"] == "date-time"
    assert schemas["CalendarFeedAnswer"]["properties"]["created_at"]["format"] == "date-time"


async def test_every_operation_answers_a_named_type_not_a_bare_object(document: dict[str, Any]) -> None:
    bare = []
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                schema = content.get("schema", {})
                if status.startswith("2") and (schema in ({}, {"type": "object"}) or "additionalProperties" in schema):
                    bare.append((method, path, status, media_type))
    assert bare == []
    answers = {
        ("get", "/api/registry"): "RegistryDocument",
        ("get", "/api/guard/decisions/{decision_id}"): "ReceiptAnswer",
        ("get", "/api/objections"): "ObjectionPage",
        ("post", "/api/objections"): "ObjectionAnswer",
        ("get", "/api/subjects/recipients"): "SubjectRecipientsAnswer",
        ("post", "/api/calendar-feeds"): "CreatedCalendarFeed",
        ("get", "/health/ready"): "HealthReadyAnswer",
    }
    for (method, path), name in answers.items():
        response = document["paths"][path][method]["responses"]
        status = "201" if "201" in response else "200"
        assert response[status]["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{name}"}
    assert set(document["components"]["schemas"]["ReceiptAnswer"]["required"]) >= {"sequence", "hash", "content"}


async def test_the_check_bodies_name_one_share_request_schema(document: dict[str, Any]) -> None:
    check = document["paths"]["/api/guard/check"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch = document["paths"]["/api/guard/check-batch"]["post"]["requestBody"]["content"]["application/json"]
    assert check == {"$ref": "#/components/schemas/ShareRequest"}
    assert batch["schema"]["items"] == {"$ref": "#/components/schemas/ShareRequest"}
    assert document["components"]["schemas"]["ShareRequest"]["additionalProperties"] is False
