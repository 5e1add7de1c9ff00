"""Registry-wide findings against the real database: `GET /api/registry/findings` and `registry check`."""

import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.conftest import seed_document
from tests.integration.registry_fixtures import put_every_dpa_on_file

CHECK_DAY = "2026-11-25"
REGISTRY_COMMAND = str(Path(sys.executable).parent / "registry")

AMERICAN_RESELLER: dict[str, Any] = {
    "key": "prairie-office",
    "name": "Prairie Office Supply Inc.",
    "role": "independent_controller",
    "category": "reseller",
    "established_in": "US",
    "locations": [{"territory": "US", "kind": "storage"}],
}


async def add_american_reseller(client: Any, headers: dict[str, str]) -> None:
    response = await client.post("/api/parties", json=AMERICAN_RESELLER, headers=headers)
    assert response.status_code == 201, response.text


async def run_check(*args: str, database_url: str | None = None) -> tuple[int, str, str]:
    """`registry check` as a real subprocess, as a CI job would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    if database_url is not None:
        env["REGISTRY_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        REGISTRY_COMMAND,
        "check",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def seeded_database(seeded_database: str) -> str:
    """The seed with a signed copy of every dpa on file: these tests are about the guard's rules, and a dpa
    without its copy (AGREEMENT_UNDOCUMENTED) has tests of its own below and in test_records.py."""
    await put_every_dpa_on_file(seeded_database)
    return seeded_database


# --- API ----------------------------------------------------------------------------------------------


async def test_a_seed_dpa_without_its_signed_copy_on_file_is_the_only_kind_of_finding(client, database, reader_headers):
    from tests.conftest import load_document

    await load_document(database, seed_document(), actor="seed")
    response = await client.get("/api/registry/findings", params={"on": CHECK_DAY}, headers=reader_headers)

    findings = response.json()["findings"]
    dpas_in_force = {
        a["key"] for a in seed_document()["agreements"] if a["kind"] == "dpa" and a["terminated_on"] is None
    }
    assert {f["code"] for f in findings} == {"AGREEMENT_UNDOCUMENTED"}
    assert {f["agreement"] for f in findings} == dpas_in_force


async def test_the_seed_registry_has_no_findings(client, seeded_database, reader_headers):
    response = await client.get("/api/registry/findings", params={"on": CHECK_DAY}, headers=reader_headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"findings": [], "count": 0, "checked_on": CHECK_DAY}


async def test_findings_are_checked_on_the_controllers_today_by_default(client, seeded_database, reader_headers):
    response = await client.get("/api/registry/findings", headers=reader_headers)

    assert response.status_code == 200, response.text
    assert response.json()["checked_on"] == datetime.now(ZoneInfo("Europe/Stockholm")).date().isoformat()


async def test_a_party_located_in_the_us_without_agreement_shows_every_finding(
    client, seeded_database, reader_headers, writer_headers
):
    await add_american_reseller(client, writer_headers)

    response = await client.get("/api/registry/findings", params={"on": CHECK_DAY}, headers=reader_headers)

    body = response.json()
    assert body["count"] == 3
    assert [(f["party"], f["code"]) for f in body["findings"]] == [
        ("prairie-office", "NO_AGREEMENT"),
        ("prairie-office", "LOCATION_OUTSIDE_EEA"),  # its establishment
        ("prairie-office", "LOCATION_OUTSIDE_EEA"),  # its storage
    ]
    assert {f["territory"] for f in body["findings"][1:]} == {"US"}
    assert "stores data in US (United States), outside the EU/EEA" in body["findings"][2]["message"]


async def test_an_agreement_expired_on_the_day_asked_for_is_a_finding(client, seeded_database, reader_headers):
    response = await client.get("/api/registry/findings", params={"on": "2027-01-01"}, headers=reader_headers)

    findings = response.json()["findings"]
    assert [(f["party"], f["code"], f.get("agreement")) for f in findings] == [
        ("klarsignal", "NO_AGREEMENT", "klarsignal-dpa-2024")
    ]


async def test_the_registry_document_at_the_root_still_answers_beside_the_findings(
    client, seeded_database, reader_headers
):
    response = await client.get("/api/registry", headers=reader_headers)

    assert response.status_code == 200
    assert "parties" in response.json()


async def test_findings_need_a_key(client, seeded_database):
    response = await client.get("/api/registry/findings")

    assert response.status_code == 401


async def test_findings_need_the_registry_read_scope(client, seeded_database, guard_headers):
    response = await client.get("/api/registry/findings", headers=guard_headers)

    assert response.status_code == 403


async def test_a_day_that_is_not_a_date_is_a_400_naming_the_parameter(client, seeded_database, reader_headers):
    response = await client.get("/api/registry/findings", params={"on": "next-week"}, headers=reader_headers)

    assert response.status_code == 400
    assert "on" in {item.get("key") for item in response.json()["extra"]}


# --- CLI ----------------------------------------------------------------------------------------------


async def test_registry_check_passes_on_the_seed_registry(seeded_database):
    code, out, _ = await run_check("--on", CHECK_DAY, database_url=seeded_database)

    assert code == 0
    assert out.strip() == f"no findings on {CHECK_DAY}"


async def test_registry_check_fails_and_names_the_party_once_a_party_is_located_in_the_us(
    client, seeded_database, writer_headers
):
    await add_american_reseller(client, writer_headers)

    code, out, err = await run_check("--on", CHECK_DAY, database_url=seeded_database)

    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("prairie-office: ") for line in lines)
    assert "LOCATION_OUTSIDE_EEA" in lines[2]
    assert "3 findings" in err


async def test_registry_check_on_a_file_needs_no_database(tmp_path):
    clean = tmp_path / "registry.yaml"
    clean.write_text(yaml.safe_dump(seed_document()), encoding="utf-8")
    broken_doc = seed_document()
    broken_doc["parties"].append(AMERICAN_RESELLER)
    broken = tmp_path / "registry.json"
    broken.write_text(json.dumps(broken_doc, default=str), encoding="utf-8")

    clean_code, clean_out, _ = await run_check("--file", str(clean), "--on", CHECK_DAY)
    broken_code, broken_out, _ = await run_check("--file", str(broken), "--on", CHECK_DAY)

    assert (clean_code, clean_out.strip()) == (0, f"no findings on {CHECK_DAY}")
    assert broken_code == 1
    assert [line.split(": ")[:2] for line in broken_out.splitlines()] == [
        ["prairie-office", "NO_AGREEMENT"],
        ["prairie-office", "LOCATION_OUTSIDE_EEA"],
        ["prairie-office", "LOCATION_OUTSIDE_EEA"],
    ]


async def test_registry_check_on_an_invalid_document_exits_2_naming_the_field(tmp_path):
    doc = seed_document()
    doc["parties"][0]["sub_processors"] = [{"party": "nobody-known", "approved_on": None}]
    doc["agreements"][0]["data_categories"] = ["user.not_a_category"]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")

    code, out, err = await run_check("--file", str(path))

    assert code == 2
    assert out == ""
    assert "agreements[0].data_categories[0]" in err


async def test_registry_check_on_a_document_with_a_dangling_reference_exits_2(tmp_path):
    doc = seed_document()
    doc["parties"][0]["sub_processors"] = [{"party": "nobody-known", "approved_on": None}]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")

    code, _, err = await run_check("--file", str(path))

    assert code == 2
    assert "parties[0].sub_processors" in err


async def test_registry_check_on_a_file_that_is_not_yaml_exits_2(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("controller: [unclosed", encoding="utf-8")

    code, _, err = await run_check("--file", str(path))

    assert code == 2
    assert "not valid YAML" in err
