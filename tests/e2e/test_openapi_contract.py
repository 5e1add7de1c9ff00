"""The OpenAPI document is the integration contract: a client generated from the live document with
openapi-python-client makes a guard check against the running service; the document declares the bearer
scheme, the check bodies, the reason codes and the 4xx answers; its docs UI loads nothing from a CDN."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from guard.policy import ReasonCode
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


def test_the_document_needs_a_key(service):
    assert httpx.get(service.url + "/schema/openapi.json", timeout=10).status_code == 401


def test_the_document_declares_the_bearer_scheme_and_the_check_bodies(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert document["security"] == [{"bearerAuth": []}]
    check = document["paths"]["/api/guard/check"]["post"]
    body = check["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["recipient", "purpose", "data_categories", "data_subject"]
    assert body["additionalProperties"] is False
    assert body["properties"]["data_categories"]["maxItems"] == 100
    batch = document["paths"]["/api/guard/check-batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["type"] == "array" and batch["schema"]["maxItems"] == 1000
    assert {"200", "400", "401", "403", "503"} <= set(check["responses"])


def test_reason_codes_are_an_enum_of_every_code_the_policy_gives(document):
    assert set(document["components"]["schemas"]["ReasonCode"]["enum"]) == {code.value for code in ReasonCode}


def test_the_docs_ui_is_served_by_the_app_itself(service, admin_key):
    page = httpx.get(service.url + "/schema/swagger", headers=bearer(admin_key), timeout=10)
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert sources, page.text
    assert not [url for url in sources if url.startswith(("http:", "https:", "//"))], sources
    for url in sources:
        asset = httpx.get(service.url + url, headers=bearer(admin_key), timeout=10)
        assert asset.status_code == 200, url
    assert httpx.get(service.url + sources[0], timeout=10).status_code == 401


def test_a_client_generated_from_the_live_document_makes_a_check(service, document, guard_key, tmp_path):
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    generated = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(spec), "--meta", "none", "--output-path", str(tmp_path / "gen")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert (tmp_path / "gen" / "api" / "guard" / "api_guard_check_check.py").exists(), generated.stdout[-3000:]
    # The generated package is named by --output-path; load it under that name from tmp_path.
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("gen.client")
        check_module = importlib.import_module("gen.api.guard.api_guard_check_check")
        models = importlib.import_module("gen.models")
        with client_module.AuthenticatedClient(base_url=service.url, token=guard_key) as client:
            allowed = check_module.sync_detailed(
                client=client, body=models.ApiGuardCheckCheckShareRequest.from_dict(SEED_ALLOWED_SHARE)
            )
            denied = check_module.sync(
                client=client,
                body=models.ApiGuardCheckCheckShareRequest(
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
