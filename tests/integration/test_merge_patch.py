"""PATCH /api/parties/{key} and /api/agreements/{key} take a JSON Merge Patch (RFC 7396) with the version it is
based on: the fields sent change, null removes an optional one, nested objects merge, a stale version is a 409,
read-only fields pass unchanged and are refused changed, and every invalid field is named by its path."""

import pytest

from tests.conftest import bearer, make_key

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
PARTY = {
    "key": "acme",
    "name": "Acme AB",
    "role": "processor",
    "category": "it_services",
    "established_in": "SE",
    "org_number": "556000-0000",
    "contact": {"name": "Ann", "email": "ann@acme.example", "phone": "+46 8 000"},
}


@pytest.fixture
async def acme(client, writer_headers):
    created = await client.post("/api/parties", json=PARTY, headers=writer_headers)
    assert created.status_code == 201, created.text
    return created.json()


async def patch(client, path, body, headers, content_type=MERGE_PATCH):
    import json

    return await client.patch(path, content=json.dumps(body), headers={**headers, **content_type})


async def test_a_merge_patch_changes_the_fields_sent_and_keeps_the_others(client, writer_headers, acme):
    answer = await patch(client, "/api/parties/acme", {"version": 1, "name": "Acme Group AB"}, writer_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["name"] == "Acme Group AB" and body["version"] == 2
    assert body["org_number"] == "556000-0000" and body["contact"]["email"] == "ann@acme.example"
    history = (await client.get("/api/parties/acme/history", headers=writer_headers)).json()
    assert history["total"] == 2, "the patch is an update in the party's history"


async def test_null_removes_an_optional_field_and_nested_objects_merge(client, writer_headers, acme):
    answer = await patch(
        client, "/api/parties/acme", {"version": 1, "org_number": None, "contact": {"phone": None}}, writer_headers
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body.get("org_number") is None
    assert body["contact"] == {"name": "Ann", "email": "ann@acme.example"}


async def test_a_stale_version_is_a_409_and_changes_nothing(client, writer_headers, acme):
    assert (
        await patch(client, "/api/parties/acme", {"version": 1, "name": "First"}, writer_headers)
    ).status_code == 200
    stale = await patch(client, "/api/parties/acme", {"version": 1, "name": "Second"}, writer_headers)
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2
    assert (await client.get("/api/parties/acme", headers=writer_headers)).json()["name"] == "First"


async def test_the_version_is_required(client, writer_headers, acme):
    answer = await patch(client, "/api/parties/acme", {"name": "No version"}, writer_headers)
    assert answer.status_code == 400
    assert [e["key"] for e in answer.json()["extra"]] == ["version"]


async def test_read_only_fields_pass_unchanged_and_are_refused_changed(client, writer_headers, acme):
    current = (await client.get("/api/parties/acme", headers=writer_headers)).json()
    unchanged = {k: current[k] for k in ("key", "created_at", "updated_at", "version")}
    echoed = await patch(client, "/api/parties/acme", {**unchanged, "name": "Echoed"}, writer_headers)
    assert echoed.status_code == 200, echoed.text

    changed = {"version": 2, "key": "other", "created_at": "2001-01-01T00:00:00Z", "updated_at": None}
    refused = await patch(client, "/api/parties/acme", changed, writer_headers)
    assert refused.status_code == 400
    assert sorted(e["key"] for e in refused.json()["extra"]) == ["created_at", "key", "updated_at"]
    assert (await client.get("/api/parties/acme", headers=writer_headers)).json()["version"] == 2


async def test_every_invalid_field_is_named_by_its_path_and_nothing_is_written(client, writer_headers, acme):
    body = {
        "version": 1,
        "name": None,  # required: removing it is invalid
        "role": "spy",
        "locations": [{"territory": "SE", "kind": "storage"}, {"territory": "Sweden", "kind": "storage"}],
        "contact": {"email": "not an address"},
    }
    answer = await patch(client, "/api/parties/acme", body, writer_headers)
    assert answer.status_code == 400
    assert {e["key"] for e in answer.json()["extra"]} >= {"name", "role", "locations[1].territory", "contact.email"}
    assert (await client.get("/api/parties/acme", headers=writer_headers)).json()["version"] == 1


@pytest.mark.parametrize(
    ("content_type", "status"), [("application/json", 415), ("application/json-patch+json", 415), (None, 415)]
)
async def test_a_patch_in_another_media_type_is_a_415(client, writer_headers, acme, content_type, status):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await client.patch(
        "/api/parties/acme", content=b'{"version": 1, "name": "x"}', headers={**writer_headers, **headers}
    )
    assert answer.status_code == status
    assert "application/merge-patch+json" in answer.json()["detail"]


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b'"text"'])
async def test_a_patch_that_is_not_a_json_object_is_a_400(client, writer_headers, acme, body):
    answer = await client.patch("/api/parties/acme", content=body, headers={**writer_headers, **MERGE_PATCH})
    assert answer.status_code == 400


async def test_patching_an_unknown_party_is_a_404(client, writer_headers):
    assert (await patch(client, "/api/parties/nobody", {"version": 1}, writer_headers)).status_code == 404


async def test_patching_needs_the_write_scope(client, database, acme):
    reader = bearer(await make_key(database, "patch-reader", "registry:read"))
    assert (await patch(client, "/api/parties/acme", {"version": 1, "name": "x"}, reader)).status_code == 403
    assert (await patch(client, "/api/parties/acme", {"version": 1, "name": "x"}, {})).status_code == 401


async def test_an_agreement_is_patched_with_its_version(client, writer_headers, seeded_database):
    path = "/api/agreements/nordfrakt-dpa-2024"
    current = (await client.get(path, headers=writer_headers)).json()
    answer = await patch(
        client,
        path,
        {
            "version": current["version"],
            "renewal": "auto",
            "notice_days": 60,
            "document": {"uri": "https://x.example/a.pdf"},
        },
        writer_headers,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["renewal"], body["notice_days"], body["version"]) == ("auto", 60, current["version"] + 1)
    assert body["document"]["uri"] == "https://x.example/a.pdf"
    assert body["document"]["sha256"] == current["document"]["sha256"], "nested objects merge"

    invalid = await patch(client, path, {"version": body["version"], "notice_days": None}, writer_headers)
    assert invalid.status_code == 400
    assert [e["key"] for e in invalid.json()["extra"]] == ["notice_days"]
    stale = await patch(client, path, {"version": current["version"], "notice_days": 30}, writer_headers)
    assert stale.status_code == 409
