"""The records a DPO is judged by (issue 17): the Art. 30 record, signed agreements on file, exports, evidence."""

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook

from tests.conftest import SEED_ALLOWED_SHARE, seed_document
from web.composition import services_of

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n" + bytes(range(256))
TODAY = date.today()
WIDE = {"from": (TODAY - timedelta(days=2)).isoformat(), "to": (TODAY + timedelta(days=2)).isoformat()}


async def _make_decisions(client, guard_headers) -> None:
    """Three shares to nordfrakt allowed (two categories), one denied; one to klarsignal denied."""
    for share in (
        SEED_ALLOWED_SHARE,
        SEED_ALLOWED_SHARE,
        {**SEED_ALLOWED_SHARE, "data_categories": ["user.contact.phone_number"]},
        {**SEED_ALLOWED_SHARE, "data_categories": ["user.health_and_medical"]},
        {**SEED_ALLOWED_SHARE, "recipient": "klarsignal", "destination": "US"},
    ):
        answer = await client.post("/api/guard/check", json=share, headers=guard_headers)
        assert answer.status_code == 200, answer.text


async def _decisions(client, headers) -> list[dict]:
    body = (await client.get("/api/guard/decisions", params={"limit": 500}, headers=headers)).json()
    return body["items"]


async def test_the_article_30_record_of_the_seed_agrees_with_the_registry_and_the_decision_log(
    seeded_client, guard_headers, reader_headers
):
    await _make_decisions(seeded_client, guard_headers)
    response = await seeded_client.get("/api/records/article-30", params=WIDE, headers=reader_headers)
    assert response.status_code == 200, response.text
    record = response.json()
    registry = (await seeded_client.get("/api/registry", headers=reader_headers)).json()
    decisions = await _decisions(seeded_client, reader_headers)

    active = {p["key"]: p for p in registry["parties"] if p["active"]}
    by_key = {r["key"]: r for r in record["recipients"]}
    assert set(by_key) == set(active)
    for key, party in active.items():
        entry = by_key[key]
        assert (entry["name"], entry["role"], entry["category"]) == (party["name"], party["role"], party["category"])
        own = {(p["territory"], p["kind"]) for p in entry["territories"] if p["chain"] is None}
        assert own == {(party["established_in"], "establishment")} | {
            (loc["territory"], loc["kind"]) for loc in party["locations"]
        }
        agreements = [a for a in registry["agreements"] if a["party"] == key]
        assert {a["key"] for a in entry["agreements"]} == {a["key"] for a in agreements}
        in_force = [a for a in agreements if a["signed_on"] and a["terminated_on"] is None]
        assert entry["data_categories"] == sorted({c for a in in_force for c in a["data_categories"]})
        assert entry["purposes"] == sorted({c for a in in_force for c in a["purposes"]})
        for a in entry["agreements"]:
            assert a["document_sha256"] == next(x for x in agreements if x["key"] == a["key"])["document"]["sha256"]
        assert entry["third_country_transfers"] == []
        mine = [d for d in decisions if d["recipient"] == key]
        allowed = [d for d in mine if d["allowed"]]
        assert entry["enforcement"]["shares_allowed"] == len(allowed)
        assert entry["enforcement"]["shares_denied"] == len(mine) - len(allowed)
        assert entry["enforcement"]["categories_shared"] == sorted(
            {c for d in allowed for c in d["request"]["data_categories"]}
        )
        if allowed:
            newest = max(allowed, key=lambda d: d["seq"])
            assert entry["enforcement"]["last_share"]["decision_id"] == newest["decision_id"]
        else:
            assert entry["enforcement"]["last_share"] is None
    # The chain: nordfrakt's data reaches Norway (backup) through molnhall and fjordvault, inside the EEA.
    chain_places = {
        (p["territory"], p["kind"], tuple(p["chain"])) for p in by_key["nordfrakt"]["territories"] if p["chain"]
    }
    assert ("NO", "backup", ("nordfrakt", "molnhall", "fjordvault")) in chain_places
    assert record["third_country_transfers"] == [] and record["third_country_transfers_summary"] == "none"
    assert by_key["nordfrakt"]["enforcement"]["shares_allowed"] == 3
    assert by_key["klarsignal"]["enforcement"]["shares_denied"] == 1
    assert record["decision_log"]["shares_allowed"] + record["decision_log"]["shares_denied"] == len(decisions)


async def test_a_period_without_decisions_counts_none(seeded_client, guard_headers, reader_headers):
    await _make_decisions(seeded_client, guard_headers)
    params = {"from": "2020-01-01", "to": "2020-12-31"}
    record = (await seeded_client.get("/api/records/article-30", params=params, headers=reader_headers)).json()
    assert record["period"]["from"] == "2020-01-01"
    assert all(
        r["enforcement"]["shares_allowed"] == r["enforcement"]["shares_denied"] == 0 for r in record["recipients"]
    )


async def test_a_period_that_ends_before_it_starts_is_a_400_naming_the_field(seeded_client, reader_headers):
    params = {"from": "2026-02-01", "to": "2026-01-01"}
    response = await seeded_client.get("/api/records/article-30", params=params, headers=reader_headers)
    assert response.status_code == 400
    assert "from" in response.text


async def test_the_record_as_csv_and_xlsx_carries_the_same_recipients_and_counts(
    seeded_client, guard_headers, reader_headers
):
    await _make_decisions(seeded_client, guard_headers)
    record = (await seeded_client.get("/api/records/article-30", params=WIDE, headers=reader_headers)).json()
    expected = {
        r["key"]: (r["name"], r["enforcement"]["shares_allowed"], r["enforcement"]["shares_denied"])
        for r in record["recipients"]
    }
    as_csv = await seeded_client.get(
        "/api/records/article-30", params={**WIDE, "format": "csv"}, headers=reader_headers
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    # The CSV is the record per processing activity: one row per activity and recipient.
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    by_activity = {a["key"]: [r["key"] for r in a["recipients"]] for a in record["activities"]}
    assert [(r["Activity"], r["Recipient"]) for r in rows] == [(a, k) for a, keys in by_activity.items() for k in keys]
    assert {r["Transfers to third countries"] for r in rows} == {"none"}
    delivery = next(r for r in rows if (r["Activity"], r["Recipient"]) == ("leverans", "nordfrakt"))
    assert (int(delivery["Shares allowed in the period"]), int(delivery["Shares refused in the period"])) == (3, 1)
    assert delivery["Legal basis"] == "performance of a contract (Art. 6(1)(b))"

    as_xlsx = await seeded_client.get(
        "/api/records/article-30", params={**WIDE, "format": "xlsx"}, headers=reader_headers
    )
    assert as_xlsx.status_code == 200
    book = load_workbook(io.BytesIO(as_xlsx.content), read_only=True)
    assert book.sheetnames == ["Processing activities", "Article 30", "Territories", "Agreements", "Period"]
    sheet = list(book["Article 30"].iter_rows(values_only=True))
    header = sheet[0]
    got = {
        row[header.index("key")]: (
            row[header.index("name")],
            row[header.index("shares_allowed")],
            row[header.index("shares_denied")],
        )
        for row in sheet[1:]
    }
    assert got == expected


async def test_a_signed_pdf_comes_back_byte_for_byte_and_is_recorded_in_the_agreement_and_its_history(
    seeded_client, writer_headers
):
    before = (await seeded_client.get("/api/agreements/nordfrakt-dpa-2024", headers=writer_headers)).json()
    put = await seeded_client.put(
        "/api/agreements/nordfrakt-dpa-2024/document",
        content=PDF,
        headers={**writer_headers, "Content-Type": "application/pdf", "X-Filename": "../signed DPA.pdf"},
    )
    assert put.status_code == 200, put.text
    digest = hashlib.sha256(PDF).hexdigest()
    assert put.json()["document"] == {
        "uri": "/api/agreements/nordfrakt-dpa-2024/document",
        "sha256": digest,
        "size": len(PDF),
    }
    assert put.json()["version"] == before["version"] + 1
    got = await seeded_client.get("/api/agreements/nordfrakt-dpa-2024/document", headers=writer_headers)
    assert got.status_code == 200
    assert got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"] == 'attachment; filename="signed-DPA.pdf"'
    history = (await seeded_client.get("/api/agreements/nordfrakt-dpa-2024/history", headers=writer_headers)).json()
    newest = history["items"][0]
    assert newest["action"] == "document"
    assert newest["after"]["document"]["sha256"] == digest
    assert newest["before"]["document"]["sha256"] == before["document"]["sha256"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"PK\x03\x04 a zip, not a PDF", "application/pdf"), (PDF, "application/octet-stream"), (b"", "application/pdf")],
)
async def test_anything_that_is_not_a_pdf_is_refused_with_415(seeded_client, writer_headers, content, content_type):
    response = await seeded_client.put(
        "/api/agreements/nordfrakt-dpa-2024/document",
        content=content,
        headers={**writer_headers, "Content-Type": content_type},
    )
    assert response.status_code == 415
    missing = await seeded_client.get("/api/agreements/nordfrakt-dpa-2024/document", headers=writer_headers)
    assert missing.status_code == 404


async def test_a_document_past_the_configured_limit_is_refused_with_413(seeded_client, writer_headers):
    # The limit is read from the settings at each upload; this app's settings get a 100-byte limit.
    services = services_of(seeded_client.app)
    services.settings = services.settings.model_copy(update={"agreement_document_max_bytes": 100})
    response = await seeded_client.put(
        "/api/agreements/nordfrakt-dpa-2024/document",
        content=PDF + b"x" * 100,
        headers={**writer_headers, "Content-Type": "application/pdf"},
    )
    assert response.status_code == 413
    small = await seeded_client.put(
        "/api/agreements/nordfrakt-dpa-2024/document",
        content=PDF[:100],
        headers={**writer_headers, "Content-Type": "application/pdf"},
    )
    assert small.status_code == 200, small.text


async def test_a_dpa_without_its_signed_copy_on_file_is_a_finding_until_one_is_stored(seeded_client, writer_headers):
    findings = (await seeded_client.get("/api/registry/findings", headers=writer_headers)).json()["findings"]
    undocumented = {f["agreement"] for f in findings if f["code"] == "AGREEMENT_UNDOCUMENTED"}
    assert "nordfrakt-dpa-2024" in undocumented
    assert "tibro-kontorsmobler-sharing-2024" not in undocumented  # only a dpa needs one (Art. 28(9))
    await seeded_client.put(
        "/api/agreements/nordfrakt-dpa-2024/document",
        content=PDF,
        headers={**writer_headers, "Content-Type": "application/pdf"},
    )
    findings = (await seeded_client.get("/api/registry/findings", headers=writer_headers)).json()["findings"]
    assert "nordfrakt-dpa-2024" not in {f.get("agreement") for f in findings if f["code"] == "AGREEMENT_UNDOCUMENTED"}


async def test_the_decision_log_streams_as_csv_for_a_period(seeded_client, guard_headers, reader_headers):
    await _make_decisions(seeded_client, guard_headers)
    decisions = await _decisions(seeded_client, reader_headers)
    response = await seeded_client.get("/api/guard/decisions", params={**WIDE, "format": "csv"}, headers=reader_headers)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["decision_id"] for r in rows] == [d["decision_id"] for d in sorted(decisions, key=lambda d: d["seq"])]
    assert [r["outcome"] for r in rows] == ["allowed", "allowed", "allowed", "denied", "denied"]
    past = await seeded_client.get(
        "/api/guard/decisions",
        params={"from": "2020-01-01", "to": "2020-02-01", "format": "csv"},
        headers=reader_headers,
    )
    assert len(list(csv.DictReader(io.StringIO(past.content.decode("utf-8-sig"))))) == 0


async def test_the_registry_exports_as_one_sheet_and_one_csv_per_table(seeded_client, reader_headers):
    registry = (await seeded_client.get("/api/registry", headers=reader_headers)).json()
    xlsx = await seeded_client.get("/api/records/registry.xlsx", headers=reader_headers)
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert book.sheetnames == ["parties", "locations", "chains", "agreements"]
    assert len(list(book["parties"].iter_rows())) == 1 + len(registry["parties"])
    assert len(list(book["locations"].iter_rows())) == 1 + sum(len(p["locations"]) for p in registry["parties"])
    assert len(list(book["chains"].iter_rows())) == 1 + sum(len(p["sub_processors"]) for p in registry["parties"])
    assert len(list(book["agreements"].iter_rows())) == 1 + len(registry["agreements"])
    archive = zipfile.ZipFile(
        io.BytesIO((await seeded_client.get("/api/records/registry-csv.zip", headers=reader_headers)).content)
    )
    assert sorted(archive.namelist()) == ["agreements.csv", "chains.csv", "locations.csv", "parties.csv"]
    agreements = list(csv.DictReader(io.StringIO(archive.read("agreements.csv").decode("utf-8-sig"))))
    assert [a["key"] for a in agreements] == [a["key"] for a in registry["agreements"]]


def _cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_DATABASE_URL": database}
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120)


def _cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_DATABASE_URL": database}
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_the_evidence_bundle_holds_every_file_with_its_digest_in_the_manifest(
    seeded_client, seeded_database, guard_headers, writer_headers, tmp_path
):
    await _make_decisions(seeded_client, guard_headers)
    await seeded_client.put(
        "/api/agreements/nordfrakt-dpa-2024/document",
        content=PDF,
        headers={**writer_headers, "Content-Type": "application/pdf"},
    )
    out = tmp_path / "evidence.zip"
    done = _cli(seeded_database, "evidence", "--from", WIDE["from"], "--to", WIDE["to"], str(out))
    assert done.returncode == 0, done.stderr
    archive = zipfile.ZipFile(out)
    names = set(archive.namelist())
    assert {
        "article-30.json",
        "article-30.csv",
        "article-30.xlsx",
        "registry.yaml",
        "agreements/nordfrakt-dpa-2024.pdf",
        "guard-decisions.csv",
        "verify-log.json",
        "MANIFEST.sha256",
        "manifest.json",
    } <= names
    listed = {}
    for line in archive.read("MANIFEST.sha256").decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == names - {"MANIFEST.sha256", "manifest.json"}
    for name, digest in listed.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name
    assert archive.read("agreements/nordfrakt-dpa-2024.pdf") == PDF
    assert json.loads(archive.read("verify-log.json"))["ok"] is True
    assert len(list(csv.DictReader(io.StringIO(archive.read("guard-decisions.csv").decode("utf-8-sig"))))) == 5
    record = json.loads(archive.read("article-30.json"))
    assert next(r for r in record["recipients"] if r["key"] == "nordfrakt")["enforcement"]["shares_allowed"] == 3
    load_workbook(io.BytesIO(archive.read("article-30.xlsx")), read_only=True)
    assert seed_document()["controller"]["name"] in archive.read("registry.yaml").decode()


async def test_an_agreement_edit_that_keeps_the_document_keeps_the_size_of_the_copy_on_file(
    seeded_client, writer_headers
):
    stored = await seeded_client.put(
        "/api/agreements/nordfrakt-dpa-2024/document",
        content=PDF,
        headers={**writer_headers, "Content-Type": "application/pdf"},
    )
    agreement = stored.json()
    edit = {k: v for k, v in agreement.items() if k not in {"key", "created_at", "updated_at"}}
    edit["document"] = {k: v for k, v in agreement["document"].items() if k != "size"}  # as the UI's form sends it
    edit["owner_email"] = "legal@offix.example"
    response = await seeded_client.put("/api/agreements/nordfrakt-dpa-2024", json=edit, headers=writer_headers)
    assert response.status_code == 200, response.text
    assert response.json()["document"]["size"] == len(PDF)


async def test_a_formula_in_a_cell_stays_text_in_the_workbook():
    from registry.services.exports import workbook

    book = load_workbook(io.BytesIO(workbook([("s", ["name"], [['=HYPERLINK("http://x")']])])))
    cell = book["s"]["A2"]
    assert cell.value == '=HYPERLINK("http://x")'
    assert cell.data_type == "s"


async def test_registry_check_lists_a_dpa_without_its_signed_copy_and_fails(seeded_database):
    done = _cli(seeded_database, "check")
    assert done.returncode == 1
    assert "nordfrakt: AGREEMENT_UNDOCUMENTED: Data processing agreement nordfrakt-dpa-2024" in done.stdout
    assert "tibro-kontorsmobler: AGREEMENT_UNDOCUMENTED" not in done.stdout  # a data-sharing agreement
