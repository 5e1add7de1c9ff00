"""Line breaks and other control characters are refused in names and contacts at write time (issue 14, item 7):
they would end up in reminder e-mail headers."""

import json

import pytest

from tests.conftest import seed_document


@pytest.mark.parametrize(
    "name", ["Klarsignal\r\nBcc: x@evil.example", "Klar\nsignal", "Klar\tsignal", "Klar\x1bsignal"]
)
async def test_a_party_name_with_a_control_character_is_a_400_naming_the_field(client, writer_headers, name):
    party = {"key": "klar", "name": name, "role": "processor", "category": "marketing", "established_in": "SE"}
    response = await client.post("/api/parties", json=party, headers=writer_headers)
    assert response.status_code == 400, response.text
    assert "name" in {e["key"] for e in response.json()["extra"]}


async def test_a_contact_with_a_line_break_is_refused_in_an_imported_document(client, writer_headers):
    document = seed_document()
    document["parties"][1]["contact"] = {"name": "Anna\r\nBcc: x@evil.example", "phone": "+46 8\n123"}
    document["agreements"][0]["owner_email"] = "legal@offix.example\r\nBcc: x@evil.example"
    body = json.loads(json.dumps(document, default=str))
    response = await client.put("/api/registry", json=body, headers=writer_headers)
    assert response.status_code == 400, response.text
    fields = {e["key"] for e in response.json()["extra"]}
    assert {"parties[1].contact.name", "parties[1].contact.phone", "agreements[0].owner_email"} <= fields
