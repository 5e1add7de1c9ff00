"""The UI's records (issue 17): the printable Art. 30 page in English and Swedish, the signed PDF's upload and
download on the agreement page, and the evidence bundle's download."""

import hashlib
import io
import re
import zipfile
from typing import Any

from tests.integration.test_records import PDF
from tests.ui_session import as_user, csrf_token


async def test_the_article_30_page_lists_every_active_recipient_in_english_or_swedish(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    english = await ui_client.get("/ui/records/article-30")
    assert english.status_code == 200, english.text
    assert "Record of processing activities" in english.text
    for name in ("Nordfrakt Logistik AB", "Fjordvault Backup AS", "Maksusilta Oy"):
        assert name in english.text
    assert "NO (Norway) — backup, via nordfrakt → molnhall → fjordvault" in english.text
    # The print layout is a stylesheet of the app's own (the content security policy allows no inline style).
    assert '<link rel="stylesheet" href="/ui/static/records.css">' in english.text
    print_css = await ui_client.get("/ui/static/records.css")
    assert print_css.status_code == 200 and "@media print" in print_css.text
    swedish = await ui_client.get("/ui/records/article-30", params={"lang": "sv"})
    assert "Register över behandlingar" in swedish.text and "personuppgiftsbiträde" in swedish.text
    by_header = await ui_client.get("/ui/records/article-30", headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"})
    assert "Överföringar till tredjeland" in by_header.text
    bad = await ui_client.get("/ui/records/article-30", params={"start": "yesterday"})
    assert bad.status_code == 400 and "From: Enter a date as year-month-day" in bad.text


async def test_a_legal_user_puts_the_signed_pdf_on_file_and_downloads_the_same_bytes(ui_client: Any) -> None:
    await as_user(ui_client, "lena@offix.example")
    page = await ui_client.get("/ui/agreements/nordfrakt-dpa-2024")
    assert "No signed copy is on file" in page.text
    token = csrf_token(page.text)
    refused = await ui_client.post(
        "/ui/agreements/nordfrakt-dpa-2024/document",
        data={"_csrf_token": token},
        files={"document": ("contract.docx", b"PK\x03\x04 not a pdf", "application/pdf")},
        follow_redirects=False,
    )
    assert refused.status_code == 303 and refused.headers["location"].endswith("?document=not_pdf")
    stored = await ui_client.post(
        "/ui/agreements/nordfrakt-dpa-2024/document",
        data={"_csrf_token": token},
        files={"document": ("Nordfrakt DPA.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert stored.status_code == 303, stored.text
    shown = await ui_client.get(stored.headers["location"])
    assert "The signed PDF is on file." in shown.text
    assert hashlib.sha256(PDF).hexdigest() in shown.text
    download = await ui_client.get("/ui/agreements/nordfrakt-dpa-2024/document")
    assert download.content == PDF
    assert download.headers["content-disposition"] == 'attachment; filename="Nordfrakt-DPA.pdf"'


async def test_an_ops_user_may_download_but_not_upload(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    page = await ui_client.get("/ui/agreements/nordfrakt-dpa-2024")
    assert 'action="/ui/agreements/nordfrakt-dpa-2024/document"' not in page.text
    refused = await ui_client.post(
        "/ui/agreements/nordfrakt-dpa-2024/document",
        data={"_csrf_token": csrf_token(page.text)},
        files={"document": ("a.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert refused.status_code == 403


async def test_the_evidence_button_downloads_a_bundle_whose_manifest_matches(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    page = await ui_client.get("/ui/records/article-30")
    link = re.search(r'href="(/ui/records/evidence\.zip[^"]*)"', page.text)
    assert link
    response = await ui_client.get(link.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    for line in archive.read("MANIFEST.sha256").decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert "article-30.json" in archive.namelist()


async def test_a_party_page_shows_a_missing_signed_copy_as_an_evidence_gap_not_a_refusal(ui_client: Any) -> None:
    await as_user(ui_client, "olle@offix.example")
    page = await ui_client.get("/ui/parties/nordfrakt")
    assert page.status_code == 200
    assert "Evidence missing from the registry" in page.text and "AGREEMENT_UNDOCUMENTED" in page.text
    assert "The guard would refuse shares to this party" not in page.text
