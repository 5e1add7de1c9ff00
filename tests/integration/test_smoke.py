from tests.conftest import bearer, load_document, seed_document


async def test_the_seed_registry_exports_as_it_was_imported(client, database, reader_headers):
    await load_document(database, seed_document())
    response = await client.get("/api/registry", headers=reader_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {p["key"] for p in body["parties"]} >= {"nordfrakt", "molnhall"}
    assert bearer("x")
