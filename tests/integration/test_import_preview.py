"""Editing the registry by document never loses anything silently (issue 14, items 1-3 and 5): the import
answers its change set and can preview it, removed records stay reachable and can be restored, YAML and large
documents are accepted, and every problem of a document comes back in one answer."""

import hashlib
import json
import os
import subprocess
import sys

import yaml

from tests.conftest import seed_document


def _as_json(document):
    return json.loads(json.dumps(document, default=str))


def _edited_seed():
    """The seed with one party removed (and its agreement) and one renamed."""
    document = _as_json(seed_document())
    document["parties"] = [p for p in document["parties"] if p["key"] != "uppbordsverket"]
    document["agreements"] = [a for a in document["agreements"] if a["party"] != "uppbordsverket"]
    next(p for p in document["parties"] if p["key"] == "nordfrakt")["name"] = "Nordfrakt Transport AB"
    return document


def _without_agreement(key):
    document = _as_json(seed_document())
    document["agreements"] = [a for a in document["agreements"] if a["key"] != key]
    return document


async def test_a_dry_run_answers_the_change_set_and_writes_nothing(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    before = (await client.get("/api/registry", headers=writer_headers)).json()

    preview = await client.put("/api/registry?dry_run=true", json=_edited_seed(), headers=writer_headers)

    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["status"] == "preview"
    assert body["changes"]["parties"]["removed"] == ["uppbordsverket"]
    assert body["changes"]["parties"]["updated"] == {"nordfrakt": ["name"]}
    assert body["changes"]["parties"]["created"] == []
    assert (await client.get("/api/registry", headers=writer_headers)).json() == before
    assert (await client.get("/api/parties/uppbordsverket", headers=writer_headers)).status_code == 200
    # The real import answers the same change set.
    real = await client.put("/api/registry", json=_edited_seed(), headers=writer_headers)
    assert real.status_code == 200, real.text
    assert real.json()["status"] == "imported"
    assert real.json()["changes"] == body["changes"]


async def test_a_party_removed_by_an_import_keeps_its_history_is_listed_and_can_be_restored(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    await client.put("/api/registry", json=_edited_seed(), headers=writer_headers)

    history = await client.get("/api/parties/uppbordsverket/history", headers=writer_headers)
    assert history.status_code == 200, history.text
    assert history.json()["items"][0]["action"] == "delete"  # the removal is its last entry
    assert history.json()["items"][0]["before"]["key"] == "uppbordsverket"
    removed = (await client.get("/api/registry/removed", headers=writer_headers)).json()["items"]
    assert {(r["entity"], r["key"]) for r in removed} >= {("party", "uppbordsverket")}

    restored = await client.post("/api/parties/uppbordsverket/restore", headers=writer_headers)
    assert restored.status_code == 200, restored.text
    assert (await client.get("/api/parties/uppbordsverket", headers=writer_headers)).status_code == 200
    assert "uppbordsverket" not in {
        r["key"] for r in (await client.get("/api/registry/removed", headers=writer_headers)).json()["items"]
    }
    actions = [
        e["action"]
        for e in (await client.get("/api/parties/uppbordsverket/history", headers=writer_headers)).json()["items"]
    ]
    assert actions[:2] == ["restore", "delete"]
    assert (await client.post("/api/parties/nobody/restore", headers=writer_headers)).status_code == 404
    assert (await client.get("/api/parties/nobody/history", headers=writer_headers)).status_code == 404


async def test_an_agreement_removed_by_an_import_gets_its_signed_pdf_back_when_restored(client, writer_headers):
    # Issue 33, finding 10: the document row cascaded with the agreement, so the signed copy was gone for good.
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    agreement = "nordfrakt-dpa-2024"
    first_copy = b"%PDF-1.7\n% the copy signed in 2024\n%%EOF\n"
    second_copy = b"%PDF-1.7\n% the copy signed in 2025\n%%EOF\n"
    pdf = {**writer_headers, "Content-Type": "application/pdf"}
    assert (await client.put(f"/api/agreements/{agreement}/document", content=first_copy, headers=pdf)).is_success

    assert (await client.put("/api/registry", json=_without_agreement(agreement), headers=writer_headers)).is_success
    assert (await client.get(f"/api/agreements/{agreement}/document", headers=writer_headers)).status_code == 404
    restored = await client.post(f"/api/agreements/{agreement}/restore", headers=writer_headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["document"]["sha256"] == hashlib.sha256(first_copy).hexdigest()
    back = await client.get(f"/api/agreements/{agreement}/document", headers=writer_headers)
    assert back.status_code == 200 and back.content == first_copy

    # Another copy on file, removed and restored again: the restore brings back the copy its history names.
    assert (await client.put(f"/api/agreements/{agreement}/document", content=second_copy, headers=pdf)).is_success
    assert (await client.put("/api/registry", json=_without_agreement(agreement), headers=writer_headers)).is_success
    assert (await client.post(f"/api/agreements/{agreement}/restore", headers=writer_headers)).is_success
    again = await client.get(f"/api/agreements/{agreement}/document", headers=writer_headers)
    assert again.status_code == 200 and again.content == second_copy


async def test_an_agreement_removed_without_a_document_is_restored_without_one(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    agreement = "nordfrakt-dpa-2024"
    assert (await client.put("/api/registry", json=_without_agreement(agreement), headers=writer_headers)).is_success
    assert (await client.post(f"/api/agreements/{agreement}/restore", headers=writer_headers)).is_success
    assert (await client.get(f"/api/agreements/{agreement}/document", headers=writer_headers)).status_code == 404


async def test_the_registry_document_can_be_put_as_yaml(client, writer_headers):
    body = yaml.safe_dump(seed_document(), sort_keys=False, allow_unicode=True).encode()
    for media_type in ("application/yaml", "text/yaml"):
        response = await client.put(
            "/api/registry", content=body, headers={**writer_headers, "Content-Type": media_type}
        )
        assert response.status_code == 200, response.text
    exported = (await client.get("/api/registry", headers=writer_headers)).json()
    assert {p["key"] for p in exported["parties"]} == {p["key"] for p in seed_document()["parties"]}
    broken = await client.put(
        "/api/registry", content=b"parties: [\n", headers={**writer_headers, "Content-Type": "application/yaml"}
    )
    assert broken.status_code == 400 and "YAML" in broken.text


def _large_document(parties: int, agreements_per_party: int):
    document = _as_json(seed_document())
    template = next(a for a in document["agreements"] if a["kind"] == "dpa")
    for i in range(parties):
        key = f"bulk-{i:05d}"
        document["parties"].append(
            {
                "key": key,
                "name": f"Bulk Processor {i} AB",
                "role": "processor",
                "category": "it_services",
                "established_in": "SE",
                "locations": [{"territory": "SE", "kind": "storage"}],
            }
        )
        for j in range(agreements_per_party):
            document["agreements"].append({**template, "key": f"{key}-dpa-{j}", "party": key})
    return document


async def test_a_registry_of_ten_thousand_parties_and_thirty_thousand_agreements_is_accepted(client, writer_headers):
    document = _large_document(10_000, 3)
    body = json.dumps(document).encode()
    assert len(body) > 10 * 1024 * 1024  # past Litestar's default body limit

    response = await client.put(
        "/api/registry", content=body, headers={**writer_headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 200, response.text[:2000]
    assert response.json()["created"] >= 40_000


async def test_a_document_past_the_configured_limit_is_a_413_naming_the_setting(database):
    from litestar.testing import AsyncTestClient

    from tests.conftest import bearer, make_key, test_settings
    from web.app import create_app

    headers = {**bearer(await make_key(database, "writer", "registry:write")), "Content-Type": "application/json"}
    app = create_app(test_settings(database, registry_import_max_bytes=1000))
    body = json.dumps(_as_json(seed_document())).encode()
    async with AsyncTestClient(app) as client:
        response = await client.put("/api/registry", content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert "REGISTRY_IMPORT_MAX_BYTES" in response.text


async def test_field_and_reference_problems_come_back_in_one_answer(client, writer_headers):
    document = _as_json(seed_document())
    document["parties"][0]["established_in"] = "ZZ"  # a field problem
    document["agreements"].append({**document["agreements"][0], "key": "dangling", "party": "nobody"})
    by_key = {p["key"]: p for p in document["parties"]}
    by_key["fjordvault"]["sub_processors"] = [{"party": "molnhall"}]  # a cycle

    response = await client.put("/api/registry", json=document, headers=writer_headers)

    assert response.status_code == 400
    keys = [e["key"] for e in response.json()["extra"]]
    messages = " ".join(e["message"] for e in response.json()["extra"])
    assert "parties[0].established_in" in keys
    assert f"agreements[{len(document['agreements']) - 1}].party" in keys
    assert "cycle" in messages


def _cli(database, *args):
    env = {**os.environ, "REGISTRY_DATABASE_URL": database}
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_the_cli_dry_run_prints_the_change_set_and_changes_nothing(database, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(seed_document(), sort_keys=False))
    assert _cli(database, "import", str(seed)).returncode == 0
    before = _cli(database, "export").stdout
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(_edited_seed(), sort_keys=False))

    result = _cli(database, "import", "--dry-run", str(edited))

    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout
    assert "parties: removed uppbordsverket" in result.stdout
    assert "parties: updated nordfrakt: name" in result.stdout
    assert _cli(database, "export").stdout == before
