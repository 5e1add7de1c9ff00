"""The registry document: export, replace-all import (all or nothing), identity, CLI."""

import copy
import json
import os
import subprocess
import sys

import yaml

from tests.conftest import seed_document


async def _export(client, headers):
    response = await client.get("/api/registry", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _as_json(document):
    """The seed as the API answers it: dates as ISO strings."""
    return json.loads(json.dumps(document, default=str))


def in_key_order(document):
    """The export's canonical form: parties and agreements sorted by key, so that exports diff cleanly
    whatever order the imported file had. Everything inside an entry keeps its order."""
    return {
        **document,
        "parties": sorted(document["parties"], key=lambda p: p["key"]),
        "agreements": sorted(document["agreements"], key=lambda a: a["key"]),
    }


async def test_import_then_export_gives_back_the_same_document_in_key_order(client, writer_headers):
    seed = seed_document()
    assert in_key_order(seed) != seed  # the seed is grouped by role, so this also proves the export sorts
    imported = await client.put("/api/registry", json=_as_json(seed), headers=writer_headers)
    assert imported.status_code == 200, imported.text
    assert await _export(client, writer_headers) == _as_json(in_key_order(seed))


async def test_export_then_import_is_the_identity_and_changes_no_version(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    before = await _export(client, writer_headers)
    versions = {
        p["key"]: p["version"]
        for p in (await client.get("/api/parties?limit=500", headers=writer_headers)).json()["items"]
    }
    again = await client.put("/api/registry", json=before, headers=writer_headers)
    assert again.json()["created"] == 0 and again.json()["updated"] == 0 and again.json()["deleted"] == 0
    assert await _export(client, writer_headers) == before
    after = {
        p["key"]: p["version"]
        for p in (await client.get("/api/parties?limit=500", headers=writer_headers)).json()["items"]
    }
    assert after == versions


async def test_a_document_with_errors_leaves_the_registry_untouched_and_lists_every_error(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    before = await _export(client, writer_headers)
    broken = copy.deepcopy(before)
    broken["parties"][0]["established_in"] = "UK"
    broken["parties"][1]["locations"].append({"territory": "SE", "kind": "garage"})
    broken["agreements"][0]["data_categories"] = ["user.shoe_size"]
    response = await client.put("/api/registry", json=broken, headers=writer_headers)
    assert response.status_code == 400, response.text
    keys = [e["key"] for e in response.json()["extra"]]
    assert "parties[0].established_in" in keys
    assert any(k.startswith("parties[1].locations[") for k in keys)
    assert "agreements[0].data_categories[0]" in keys
    assert await _export(client, writer_headers) == before


async def test_cross_reference_errors_are_reported_with_their_paths(client, writer_headers):
    document = _as_json(seed_document())
    molnhall = next(i for i, p in enumerate(document["parties"]) if p["key"] == "molnhall")
    document["parties"][molnhall]["role"] = "processor"  # links point at it as a sub-processor
    document["agreements"].append({**document["agreements"][0], "key": "dangling", "party": "nobody"})
    document["parties"].append({**document["parties"][0]})  # duplicate key
    response = await client.put("/api/registry", json=document, headers=writer_headers)
    assert response.status_code == 400
    messages = {e["key"]: e["message"] for e in response.json()["extra"]}
    assert any("only sub_processor parties" in m for m in messages.values())
    assert f"agreements[{len(document['agreements']) - 1}].party" in messages
    assert f"parties[{len(document['parties']) - 1}].key" in messages
    assert (await _export(client, writer_headers))["parties"] == []


async def test_a_cycle_in_a_document_is_refused(client, writer_headers):
    document = _as_json(seed_document())
    by_key = {p["key"]: p for p in document["parties"]}
    by_key["fjordvault"]["sub_processors"] = [{"party": "molnhall", "approved_on": None, "objection_deadline": None}]
    response = await client.put("/api/registry", json=document, headers=writer_headers)
    assert response.status_code == 400
    assert any("cycle" in e["message"] for e in response.json()["extra"])


async def test_an_import_removes_what_the_document_no_longer_holds_and_records_it(client, writer_headers):
    document = _as_json(seed_document())
    await client.put("/api/registry", json=document, headers=writer_headers)
    smaller = copy.deepcopy(document)
    gone = "uppbordsverket"
    smaller["parties"] = [p for p in smaller["parties"] if p["key"] != gone]
    response = await client.put("/api/registry", json=smaller, headers=writer_headers)
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 1
    assert (await client.get(f"/api/parties/{gone}", headers=writer_headers)).status_code == 404


async def test_a_document_that_is_not_a_mapping_is_a_400(client, writer_headers):
    for body in ([], "text", {"parties": []}):
        response = await client.put("/api/registry", json=body, headers=writer_headers)
        assert response.status_code == 400, response.text


def _cli(database: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_DATABASE_URL": database}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, input=stdin, timeout=120
    )


async def test_the_cli_imports_and_exports_the_same_document_in_key_order(database, tmp_path):
    seed_path = tmp_path / "seed.yaml"
    seed_path.write_text(yaml.safe_dump(seed_document(), sort_keys=False))
    imported = _cli(database, "import", str(seed_path))
    assert imported.returncode == 0, imported.stderr
    exported = _cli(database, "export")
    assert exported.returncode == 0, exported.stderr
    assert yaml.safe_load(exported.stdout) == in_key_order(seed_document())
    json_path = tmp_path / "registry.json"
    assert _cli(database, "export", str(json_path)).returncode == 0
    assert _cli(database, "import", str(json_path)).stdout.startswith("0 created, 0 updated, 0 deleted")


async def test_the_cli_refuses_a_broken_document_with_paths_and_writes_nothing(database, tmp_path):
    document = seed_document()
    document["parties"][0]["established_in"] = "ZZ"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = _cli(database, "import", str(path))
    assert result.returncode == 2
    assert "parties[0].established_in" in result.stderr
    assert yaml.safe_load(_cli(database, "export").stdout)["parties"] == []


async def test_the_cli_creates_a_key_whose_token_is_the_only_stdout_line(database):
    result = _cli(database, "apikey", "create", "freight-job", "--scope", "guard:check")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ofx_")
    listed = _cli(database, "apikey", "list").stdout
    assert "freight-job\tguard:check\tactive" in listed
    assert lines[0] not in listed
    assert _cli(database, "apikey", "revoke", "freight-job").returncode == 0
    assert "revoked" in _cli(database, "apikey", "list").stdout
    assert _cli(database, "apikey", "create", "x", "--scope", "root").returncode == 2
