"""The parties API: create, read, list, update with optimistic concurrency, deactivate, history."""

import pytest

from tests.integration.registry_fixtures import error_keys, error_text, party


async def test_a_created_party_reads_back_with_its_locations_and_version_one(client, writer_headers):
    created = await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    assert created.status_code == 201, created.text
    body = (await client.get("/api/parties/acme", headers=writer_headers)).json()
    assert body["name"] == "Acme AB"
    assert body["locations"] == [{"territory": "SE", "kind": "storage"}]
    assert body["version"] == 1


async def test_creating_a_party_with_an_existing_key_is_a_conflict(client, writer_headers):
    await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    again = await client.post("/api/parties", json=party("acme", name="Other"), headers=writer_headers)
    assert again.status_code == 409
    assert (await client.get("/api/parties/acme", headers=writer_headers)).json()["name"] == "Acme AB"


async def test_an_update_based_on_the_current_version_bumps_the_version(client, writer_headers):
    await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    body = party("acme", name="Acme Renamed AB", version=1)
    del body["key"]
    updated = await client.put("/api/parties/acme", json=body, headers=writer_headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.json()["name"] == "Acme Renamed AB"


async def test_a_stale_update_gets_409_and_does_not_overwrite(client, writer_headers):
    await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    first = party("acme", name="First Edit AB", version=1)
    second = party("acme", name="Second Edit AB", version=1)
    del first["key"], second["key"]
    assert (await client.put("/api/parties/acme", json=first, headers=writer_headers)).status_code == 200
    stale = await client.put("/api/parties/acme", json=second, headers=writer_headers)
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2
    assert (await client.get("/api/parties/acme", headers=writer_headers)).json()["name"] == "First Edit AB"


async def test_deactivating_keeps_the_party_and_needs_the_current_version(client, writer_headers):
    await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    stale = await client.delete("/api/parties/acme?version=7", headers=writer_headers)
    assert stale.status_code == 409
    done = await client.delete("/api/parties/acme?version=1", headers=writer_headers)
    assert done.status_code == 200
    assert done.json()["active"] is False
    still_there = await client.get("/api/parties/acme", headers=writer_headers)
    assert still_there.json()["active"] is False
    assert still_there.json()["version"] == 2


async def test_history_records_who_changed_what_with_before_and_after(client, writer_headers):
    await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    body = party("acme", established_in="DK", version=1)
    del body["key"]
    await client.put("/api/parties/acme", json=body, headers=writer_headers)
    history = (await client.get("/api/parties/acme/history", headers=writer_headers)).json()
    assert history["total"] == 2
    latest, first = history["items"]
    assert latest["action"] == "update"
    assert latest["actor"] == "writer-test"
    assert latest["before"]["established_in"] == "SE"
    assert latest["after"]["established_in"] == "DK"
    assert first["action"] == "create"
    assert first["before"] is None


async def test_an_update_that_changes_nothing_leaves_version_and_history_alone(client, writer_headers):
    await client.post("/api/parties", json=party("acme"), headers=writer_headers)
    body = party("acme", version=1)
    del body["key"]
    again = await client.put("/api/parties/acme", json=body, headers=writer_headers)
    assert again.json()["version"] == 1
    assert (await client.get("/api/parties/acme/history", headers=writer_headers)).json()["total"] == 1


async def test_lists_filter_by_role_category_activity_and_text_and_paginate(client, writer_headers):
    await client.post(
        "/api/parties", json=party("alpha", name="Alpha Frakt AB", category="transport"), headers=writer_headers
    )
    await client.post("/api/parties", json=party("beta", role="sub_processor"), headers=writer_headers)
    await client.post(
        "/api/parties",
        json=party("gamma", role="independent_controller", category="reseller", active=False),
        headers=writer_headers,
    )

    async def keys(query: str) -> list[str]:
        response = await client.get(f"/api/parties?{query}", headers=writer_headers)
        assert response.status_code == 200, response.text
        return [p["key"] for p in response.json()["items"]]

    assert await keys("role=sub_processor") == ["beta"]
    assert await keys("category=transport") == ["alpha"]
    assert await keys("active=false") == ["gamma"]
    assert await keys("q=frakt") == ["alpha"]
    page = (await client.get("/api/parties?limit=2&offset=1", headers=writer_headers)).json()
    assert [p["key"] for p in page["items"]] == ["beta", "gamma"]
    assert page["total"] == 3


async def test_text_search_treats_percent_and_underscore_literally(client, writer_headers):
    await client.post("/api/parties", json=party("alpha"), headers=writer_headers)
    response = await client.get("/api/parties?q=%25", headers=writer_headers)
    assert response.json()["items"] == []


async def test_an_unknown_party_is_404(client, reader_headers):
    assert (await client.get("/api/parties/nobody", headers=reader_headers)).status_code == 404
    assert (await client.get("/api/parties/nobody/history", headers=reader_headers)).status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"established_in": "UK"}, "established_in"),
        ({"established_in": "se"}, "established_in"),
        ({"established_in": "EU"}, "established_in"),
        ({"locations": [{"territory": "XK", "kind": "storage"}]}, "locations"),
        ({"locations": [{"territory": "SE", "kind": "basement"}]}, "locations"),
        ({"role": "friend"}, "role"),
        ({"category": "bakery"}, "category"),
        ({"key": "Not A Slug"}, "key"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"locations": [{"territory": "SE", "kind": "storage"}] * 2}, "locations"),
        ({"locations": [{"territory": "SE", "kind": "storage"}] * 201}, "locations"),
        ({"contact": {"email": "not-an-address"}}, "contact"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_invalid_party_input_is_a_400_that_names_the_field(client, writer_headers, overrides, field):
    response = await client.post("/api/parties", json=party("acme", **overrides), headers=writer_headers)
    assert response.status_code == 400, response.text
    assert field in error_text(response)
    assert (await client.get("/api/parties", headers=writer_headers)).json()["total"] == 0


async def test_iso_subdivision_codes_are_accepted_as_territories(client, writer_headers):
    response = await client.post(
        "/api/parties",
        json=party("canary", locations=[{"territory": "ES-CN", "kind": "storage"}]),
        headers=writer_headers,
    )
    assert response.status_code == 201, response.text


async def test_sub_processor_links_must_point_at_existing_sub_processor_parties(client, writer_headers):
    await client.post("/api/parties", json=party("other-processor"), headers=writer_headers)
    unknown = await client.post(
        "/api/parties", json=party("acme", sub_processors=[{"party": "ghost"}]), headers=writer_headers
    )
    assert unknown.status_code == 400
    assert error_keys(unknown) == ["party.sub_processors[0].party"]
    wrong_role = await client.post(
        "/api/parties", json=party("acme", sub_processors=[{"party": "other-processor"}]), headers=writer_headers
    )
    assert wrong_role.status_code == 400
    assert "only sub_processor parties" in error_text(wrong_role)


async def test_a_sub_processor_cycle_is_refused_with_the_chain_named(client, writer_headers):
    await client.post("/api/parties", json=party("sub-a", role="sub_processor"), headers=writer_headers)
    await client.post(
        "/api/parties",
        json=party("sub-b", role="sub_processor", sub_processors=[{"party": "sub-a"}]),
        headers=writer_headers,
    )
    body = party("sub-a", role="sub_processor", sub_processors=[{"party": "sub-b"}], version=1)
    del body["key"]
    response = await client.put("/api/parties/sub-a", json=body, headers=writer_headers)
    assert response.status_code == 400
    assert "cycle: sub-a → sub-b → sub-a" in error_text(response)
    assert (await client.get("/api/parties/sub-a", headers=writer_headers)).json()["sub_processors"] == []


async def test_a_party_cannot_be_its_own_sub_processor(client, writer_headers):
    response = await client.post(
        "/api/parties",
        json=party("selfish", role="sub_processor", sub_processors=[{"party": "selfish"}]),
        headers=writer_headers,
    )
    assert response.status_code == 400
    assert "its own sub-processor" in error_text(response)


async def test_a_role_change_that_would_orphan_an_agreement_or_a_link_is_refused(client, writer_headers):
    from tests.integration.registry_fixtures import agreement

    await client.post("/api/parties", json=party("sub", role="sub_processor"), headers=writer_headers)
    await client.post("/api/parties", json=party("proc", sub_processors=[{"party": "sub"}]), headers=writer_headers)
    await client.post("/api/agreements", json=agreement("proc-dpa", "proc"), headers=writer_headers)
    body = party("proc", role="independent_controller", version=1)
    del body["key"]
    response = await client.put("/api/parties/proc", json=body, headers=writer_headers)
    assert response.status_code == 400
    assert "dpa agreement" in error_text(response)
    body = party("sub", role="processor", version=1)
    del body["key"]
    response = await client.put("/api/parties/sub", json=body, headers=writer_headers)
    assert response.status_code == 400
    assert "sub-processor of proc" in error_text(response)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[]", b'"a string"', b'{"key": 5}'],
)
async def test_a_body_that_is_not_a_party_object_is_a_400_never_a_500(client, writer_headers, raw):
    response = await client.post(
        "/api/parties", content=raw, headers={**writer_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "offset=-1", "role=friend", "active=maybe", "q=" + "x" * 201]
)
async def test_bad_list_parameters_are_a_400(client, reader_headers, query):
    response = await client.get(f"/api/parties?{query}", headers=reader_headers)
    assert response.status_code == 400, response.text
