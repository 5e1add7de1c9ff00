"""The OpenAPI document is the integration contract: a client generated from the live document with
openapi-python-client makes a guard check against the running service; the document declares the bearer
scheme, the check bodies, the reason codes and the 4xx answers; its docs UI loads nothing from a CDN."""

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from guard.vocabulary import ReasonCode
from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture(scope="module")
async def admin_key(seeded_service_database: str) -> str:
    return await make_key(seeded_service_database, "openapi-admin", "admin")


@pytest.fixture(scope="module")
async def guard_key(seeded_service_database: str) -> str:
    return await make_key(seeded_service_database, "openapi-guard", "guard:check")


@pytest.fixture(scope="module")
def document(service, admin_key) -> dict:
    answer = httpx.get(service.url + "/schema/openapi.json", headers=bearer(admin_key), timeout=30)
    assert answer.status_code == 200
    return answer.json()


def test_the_document_needs_no_key_and_the_data_still_does(service):
    assert httpx.get(service.url + "/schema/openapi.json", timeout=10).status_code == 200
    assert httpx.get(service.url + "/api/parties", timeout=10).status_code == 401


def test_the_document_declares_the_bearer_scheme_and_the_check_bodies(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert document["security"] == [{"bearerAuth": []}]
    check = document["paths"]["/api/guard/check"]["post"]
    assert check["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ShareRequest"
    }
    body = document["components"]["schemas"]["ShareRequest"]
    assert body["required"] == ["recipient", "purpose", "data_categories", "data_subject"]
    assert body["additionalProperties"] is False
    assert body["properties"]["data_categories"]["maxItems"] == 100
    batch = document["paths"]["/api/guard/check-batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["type"] == "array" and batch["schema"]["maxItems"] == 1000
    assert {"200", "400", "401", "403", "503"} <= set(check["responses"])


def test_reason_codes_are_an_enum_of_every_code_the_policy_gives(document):
    assert set(document["components"]["schemas"]["ReasonCode"]["enum"]) == {code.value for code in ReasonCode}
    assert {"SUBJECT_OBJECTED", "SUBJECT_REF_MISSING", "SUBJECT_RESTRICTED"} <= {code.value for code in ReasonCode}


def test_the_check_body_takes_an_optional_subject_reference(document):
    body = document["components"]["schemas"]["ShareRequest"]
    subject_ref = body["properties"]["subject_ref"]
    assert subject_ref["type"] == "string" and subject_ref["maxLength"] == 320
    assert "subject_ref" not in body["required"]
    assert {"/api/objections", "/api/objections/{objection_id}", "/api/subjects/recipients"} <= set(document["paths"])


def test_the_docs_ui_is_served_by_the_app_itself_without_a_key(service):
    page = httpx.get(service.url + "/schema/swagger", timeout=10)
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert sources, page.text
    assert not [url for url in sources if url.startswith(("http:", "https:", "//"))], sources
    for url in sources:
        asset = httpx.get(service.url + url, timeout=10)
        assert asset.status_code == 200, url


def test_a_client_generated_from_the_live_document_makes_a_check(service, guard_key, tmp_path):
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--url",
            service.url + "/schema/openapi.json",  # no key needed to read the contract
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "gen"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert (tmp_path / "gen" / "api" / "guard" / "check_share.py").exists(), generated.stdout[-3000:]
    # The generated package is named by --output-path; load it under that name from tmp_path.
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("gen.client")
        check_module = importlib.import_module("gen.api.guard.check_share")
        models = importlib.import_module("gen.models")
        # The operation names the bearer scheme: the generated function takes only an authenticated client.
        assert inspect.signature(check_module.sync).parameters["client"].annotation in (
            "AuthenticatedClient",
            client_module.AuthenticatedClient,
        )
        with client_module.AuthenticatedClient(base_url=service.url, token=guard_key) as client:
            allowed = check_module.sync_detailed(client=client, body=models.ShareRequest.from_dict(SEED_ALLOWED_SHARE))
            denied = check_module.sync(
                client=client,
                body=models.ShareRequest(
                    recipient="no-such-party",
                    purpose="essential.service.operations",
                    data_categories=["user.name"],
                    data_subject="customer",
                ),
            )
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "gen" or n.startswith("gen.")]:
            del sys.modules[name]
    assert allowed.status_code == 200
    assert allowed.parsed.allowed is True
    assert denied.allowed is False
    assert [reason.code.value for reason in denied.reasons] == ["RECIPIENT_UNKNOWN"]


TYPED_ANSWERS = {
    ("/api/parties", "get", "200"): "PartyPage",
    ("/api/parties", "post", "201"): "PartyAnswer",
    ("/api/parties/{key}", "get", "200"): "PartyAnswer",
    ("/api/parties/{key}", "patch", "200"): "PartyAnswer",
    ("/api/parties/{key}/history", "get", "200"): "ChangePage",
    ("/api/agreements", "get", "200"): "AgreementPage",
    ("/api/agreements/{key}", "put", "200"): "AgreementAnswer",
    ("/api/guard/decisions", "get", "200"): "DecisionPage",
    ("/api/renewals", "get", "200"): "RenewalsAnswer",
    ("/api/registry/findings", "get", "200"): "FindingsAnswer",
    ("/api/registry", "put", "200"): "ImportAnswer",
    ("/api/registry/removed", "get", "200"): "RemovedList",
    ("/api/keys", "post", "201"): "CreatedApiKey",
}


def _schema_of(document: dict, path: str, method: str, status: str) -> dict:
    return document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


@pytest.mark.parametrize(("path", "method", "status"), list(TYPED_ANSWERS))
def test_answers_are_typed_not_bare_objects(document, path, method, status):
    assert _schema_of(document, path, method, status) == {
        "$ref": f"#/components/schemas/{TYPED_ANSWERS[path, method, status]}"
    }


def test_party_and_agreement_answers_name_every_field_with_its_type(document):
    schemas = document["components"]["schemas"]
    party = schemas["PartyAnswer"]
    assert {"key", "name", "role", "category", "locations", "version", "created_at", "updated_at"} <= set(
        party["required"]
    )
    assert set(party["properties"]["role"]["enum"]) == {
        "processor",
        "sub_processor",
        "independent_controller",
        "authority",
    }
    assert party["properties"]["version"]["type"] == "integer"
    agreement = schemas["AgreementAnswer"]
    assert agreement["properties"]["effective_from"] == {"type": "string", "format": "date"}
    assert set(agreement["properties"]["kind"]["enum"]) == {"dpa", "data_sharing"}
    decision = schemas["DecisionAnswer"]
    assert decision["properties"]["reasons"]["items"] == {"$ref": "#/components/schemas/ReasonAnswer"}
    assert schemas["ReasonAnswer"]["properties"]["code"] == {"$ref": "#/components/schemas/ReasonCode"}
    assert {"status_code", "detail"} <= set(schemas["ErrorAnswer"]["required"])
    assert schemas["ErrorAnswer"]["properties"]["extra"]["items"] == {"$ref": "#/components/schemas/FieldProblem"}


def test_every_route_that_needs_a_key_documents_401_and_403_and_its_other_errors(document):
    missing = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            expected = set()
            if operation.get("security") != []:
                expected |= {"401", "403"}
            if "{" in path:
                expected.add("404")
            if operation.get("parameters") or operation.get("requestBody"):
                expected.add("400")
            if not expected <= statuses:
                missing.append((method.upper(), path, sorted(expected - statuses)))
            for status in statuses & set(ERROR_STATUSES):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                if path.startswith("/api/guard/check"):
                    continue  # the guard's own problem document, with `allowed`
                assert schema == {"$ref": "#/components/schemas/ErrorAnswer"}, (method, path, status)
    assert not missing, missing


ERROR_STATUSES = ["400", "401", "403", "404", "409", "413", "415", "422", "429"]


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/api/parties/{key}", "put", {"400", "404", "409", "413"}),
        ("/api/parties/{key}", "patch", {"400", "404", "409", "413", "415"}),
        ("/api/agreements/{key}", "delete", {"400", "404", "409"}),
        ("/api/parties", "post", {"400", "409", "413"}),
        ("/api/registry", "put", {"400", "413", "415"}),
        ("/api/guard/check-batch", "post", {"400", "429"}),
        ("/api/keys", "post", {"400", "409"}),
    ],
)
def test_the_errors_a_route_gives_are_documented(document, path, method, statuses):
    assert statuses <= set(document["paths"][path][method]["responses"])


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_health_routes_are_public_in_the_document_as_they_are_in_the_service(service, document, path):
    assert document["paths"][path]["get"]["security"] == []
    assert not {"401", "403"} & set(document["paths"][path]["get"]["responses"])
    assert httpx.get(service.url + path, timeout=10).status_code == 200
