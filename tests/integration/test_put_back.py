"""What GET returns can be PUT back (issue 14, item 4): read-only fields are ignored, a changed key is a 400."""

import json

from tests.conftest import seed_document


async def test_a_party_as_get_returns_it_can_be_put_back_with_an_edit(client, writer_headers):
    party = {"key": "acme", "name": "Acme AB", "role": "processor", "category": "it_services", "established_in": "SE"}
    assert (await client.post("/api/parties", json=party, headers=writer_headers)).status_code == 201
    current = (await client.get("/api/parties/acme", headers=writer_headers)).json()
    assert {"key", "created_at", "updated_at", "version"} <= set(current)

    response = await client.put(
        "/api/parties/acme", json={**current, "name": "Acme Renamed AB"}, headers=writer_headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Acme Renamed AB" and response.json()["version"] == 2
    renamed_key = {**response.json(), "key": "other"}
    refused = await client.put("/api/parties/acme", json=renamed_key, headers=writer_headers)
    assert refused.status_code == 400
    assert [e["key"] for e in refused.json()["extra"]] == ["key"]


async def test_an_agreement_as_get_returns_it_can_be_put_back(client, writer_headers):
    headers = writer_headers
    await client.put("/api/registry", json=json.loads(json.dumps(seed_document(), default=str)), headers=headers)
    current = (await client.get("/api/agreements/nordfrakt-dpa-2024", headers=headers)).json()
    response = await client.put(
        "/api/agreements/nordfrakt-dpa-2024", json={**current, "notice_days": 45}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["notice_days"] == 45
