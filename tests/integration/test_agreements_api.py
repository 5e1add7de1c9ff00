"""The agreements API: validation, kind ↔ role, optimistic concurrency, termination, history."""

import pytest

from tests.integration.registry_fixtures import agreement, error_keys, error_text, party


@pytest.fixture
async def processor(client, writer_headers):
    response = await client.post("/api/parties", json=party("proc"), headers=writer_headers)
    assert response.status_code == 201, response.text
    return "proc"


async def test_an_agreement_reads_back_as_written(client, writer_headers, processor):
    body = agreement("proc-dpa", processor, document={"uri": "https://docs.offix.example/a.pdf", "sha256": "a" * 64})
    created = await client.post("/api/agreements", json=body, headers=writer_headers)
    assert created.status_code == 201, created.text
    read = (await client.get("/api/agreements/proc-dpa", headers=writer_headers)).json()
    assert read["party"] == "proc"
    assert read["expires_on"] == "2028-12-31"
    assert read["document"] == {"uri": "https://docs.offix.example/a.pdf", "sha256": "a" * 64}
    assert read["clauses"] == body["clauses"]
    assert read["version"] == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"data_categories": ["user.shoe_size"]}, "data_categories"),
        ({"data_categories": []}, "data_categories"),
        ({"data_categories": ["user.name"] * 2}, "data_categories"),
        ({"data_categories": ["user.name"] * 101}, "data_categories"),
        ({"purposes": ["world_domination"]}, "purposes"),
        ({"data_subjects": ["martian"]}, "data_subjects"),
        ({"clauses": ["handshake"]}, "clauses"),
        ({"kind": "nda"}, "kind"),
        ({"renewal": "sometimes"}, "renewal"),
        ({"renewal": "auto", "notice_days": None}, "notice_days"),
        ({"notice_days": -1}, "notice_days"),
        ({"expires_on": "2024-12-31"}, "expires_on"),
        ({"effective_from": "2025-02-30"}, "effective_from"),
        ({"owner_email": "legal"}, "owner_email"),
        ({"document": {"uri": "x", "sha256": "not-hex"}}, "document"),
        ({"terminated_on": "2020-01-01"}, "terminated_on"),
    ],
)
async def test_invalid_agreement_input_is_a_400_that_names_the_field(
    client, writer_headers, processor, overrides, field
):
    response = await client.post(
        "/api/agreements", json=agreement("proc-dpa", processor, **overrides), headers=writer_headers
    )
    assert response.status_code == 400, response.text
    assert field in error_text(response)
    assert (await client.get("/api/agreements", headers=writer_headers)).json()["total"] == 0


async def test_an_agreement_for_an_unknown_party_is_a_400_naming_the_party_field(client, writer_headers):
    response = await client.post("/api/agreements", json=agreement("ghost-dpa", "ghost"), headers=writer_headers)
    assert response.status_code == 400
    assert error_keys(response) == ["agreement.party"]


@pytest.mark.parametrize(
    ("role", "kind", "accepted"),
    [
        ("processor", "dpa", True),
        ("sub_processor", "dpa", True),
        ("independent_controller", "data_sharing", True),
        ("processor", "data_sharing", False),
        ("independent_controller", "dpa", False),
        ("authority", "dpa", False),
        ("authority", "data_sharing", False),
    ],
)
async def test_the_agreement_kind_must_fit_the_party_role(client, writer_headers, role, kind, accepted):
    await client.post("/api/parties", json=party("p", role=role), headers=writer_headers)
    response = await client.post("/api/agreements", json=agreement("p-agr", "p", kind=kind), headers=writer_headers)
    assert (response.status_code == 201) is accepted, response.text
    if not accepted:
        assert error_keys(response) == ["agreement.kind"]


async def test_a_stale_agreement_update_is_409_and_keeps_the_first_edit(client, writer_headers, processor):
    await client.post("/api/agreements", json=agreement("proc-dpa", processor), headers=writer_headers)
    first = agreement("proc-dpa", processor, expires_on="2029-06-30", version=1)
    second = agreement("proc-dpa", processor, expires_on="2030-06-30", version=1)
    del first["key"], second["key"]
    assert (await client.put("/api/agreements/proc-dpa", json=first, headers=writer_headers)).status_code == 200
    stale = await client.put("/api/agreements/proc-dpa", json=second, headers=writer_headers)
    assert stale.status_code == 409
    assert (await client.get("/api/agreements/proc-dpa", headers=writer_headers)).json()["expires_on"] == "2029-06-30"


async def test_terminating_an_agreement_records_the_date_and_the_history(client, writer_headers, processor):
    await client.post("/api/agreements", json=agreement("proc-dpa", processor), headers=writer_headers)
    response = await client.delete(
        "/api/agreements/proc-dpa?version=1&terminated_on=2026-01-31", headers=writer_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["terminated_on"] == "2026-01-31"
    history = (await client.get("/api/agreements/proc-dpa/history", headers=writer_headers)).json()
    assert [h["action"] for h in history["items"]] == ["deactivate", "create"]
    assert history["items"][0]["before"]["terminated_on"] is None


async def test_terminating_before_the_agreement_took_effect_is_a_400(client, writer_headers, processor):
    await client.post("/api/agreements", json=agreement("proc-dpa", processor), headers=writer_headers)
    response = await client.delete(
        "/api/agreements/proc-dpa?version=1&terminated_on=2020-01-01", headers=writer_headers
    )
    assert response.status_code == 400
    assert error_keys(response) == ["terminated_on"]


async def test_agreements_filter_by_party_kind_and_expiry(client, writer_headers, processor):
    await client.post("/api/parties", json=party("maker", role="independent_controller"), headers=writer_headers)
    await client.post("/api/agreements", json=agreement("proc-dpa", processor), headers=writer_headers)
    await client.post(
        "/api/agreements",
        json=agreement("maker-share", "maker", kind="data_sharing", clauses=[], expires_on="2027-01-31"),
        headers=writer_headers,
    )

    async def keys(query: str) -> list[str]:
        response = await client.get(f"/api/agreements?{query}", headers=writer_headers)
        assert response.status_code == 200, response.text
        return [a["key"] for a in response.json()["items"]]

    assert await keys("party=maker") == ["maker-share"]
    assert await keys("kind=dpa") == ["proc-dpa"]
    assert await keys("expires_before=2027-06-01") == ["maker-share"]
    assert await keys("q=proc") == ["proc-dpa"]
