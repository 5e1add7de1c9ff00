"""The legal team's pages in Swedish over HTTP (issue 28): the objections page and its navigation, the guard's
reasons as sentences, badges and the refused filter from the guard's own rules, error pages (a bad date, the
database down) as HTML in the reader's language."""

from typing import Any

from tests.conftest import test_settings as settings_for
from tests.integration.test_snapshot_refresh import cut_off, restore, running
from tests.ui_session import add_user, as_user, csrf_token, log_in
from web.app import create_app

SWEDISH = {"Accept-Language": "sv-SE,sv;q=0.9"}


US_CLOUD = {
    "key": "usmoln",
    "name": "US Moln Inc",
    "role": "sub_processor",
    "category": "it_services",
    "established_in": "US",
    "locations": [{"territory": "US", "kind": "storage"}],
}


async def add_unapproved_us_sub_processor(client: Any, headers: dict[str, str]) -> None:
    """nordfrakt (a processor whose own dpa is in force) engages a US sub-processor nobody has approved."""
    created = await client.post("/api/parties", json=US_CLOUD, headers=headers)
    assert created.status_code == 201, created.text
    party = (await client.get("/api/parties/nordfrakt", headers=headers)).json()
    links = [*party["sub_processors"], {"party": "usmoln", "approved_on": None, "objection_deadline": None}]
    changed = await client.put("/api/parties/nordfrakt", json={**party, "sub_processors": links}, headers=headers)
    assert changed.status_code == 200, changed.text


async def test_the_objections_page_is_swedish_navigation_included(ui_client: Any) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    html = (await client.get("/ui/objections", headers=SWEDISH)).text
    assert "Invändningar och avregistreringar" in html
    assert ">Pröva en delning<" in html and ">Try a share<" not in html
    art15 = (await client.get("/ui/subjects/recipients", headers=SWEDISH)).text
    assert "Mottagare av en persons uppgifter" in art15 and ">Dashboard<" not in art15


async def test_the_refused_filter_lists_a_processor_with_an_unapproved_us_sub_processor(
    ui_client: Any, admin_headers: dict[str, str]
) -> None:
    await add_unapproved_us_sub_processor(ui_client, admin_headers)
    client = await as_user(ui_client, "lena@offix.example")

    refused = (await client.get("/ui/parties?status=refused", headers=SWEDISH)).text
    assert "Nordfrakt Logistik AB" in refused and "US Moln Inc" in refused
    in_force = (await client.get("/ui/parties?status=in_force", headers=SWEDISH)).text
    assert "Nordfrakt Logistik AB" not in in_force

    party = (await client.get("/ui/parties/nordfrakt", headers=SWEDISH)).text
    assert "avtal som kontrollen nekar" in party
    assert "Underbiträdet US Moln Inc (usmoln), i kedjan Nordfrakt Logistik AB (nordfrakt)" in party
    assert "<code>SUBPROCESSOR_UNAPPROVED</code>" in party
    assert "is not approved" not in party, "the guard's English message is shown instead of the sentence"


async def test_a_bad_date_on_the_art_30_page_is_an_html_page_in_swedish(ui_client: Any) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    response = await client.get("/ui/records/article-30?start=2026-13-45", headers=SWEDISH)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "Ange ett datum som år-månad-dag" in response.text


async def test_a_ui_page_is_a_swedish_html_page_and_one_log_line_when_the_database_is_down(
    seeded_database: str, capfd: Any
) -> None:
    await add_user(seeded_database, "lena@offix.example", "legal")
    async with running(create_app(settings_for(seeded_database))) as client:
        assert (await log_in(client, "lena@offix.example")).status_code == 303
        await cut_off(seeded_database)
        try:
            capfd.readouterr()
            answers = [await client.get("/ui/parties", headers=SWEDISH) for _ in range(3)]
            logged = capfd.readouterr().err
        finally:
            await restore(seeded_database)
    assert [a.status_code for a in answers] == [503, 503, 503], [a.text[:300] for a in answers]
    assert all(a.headers["content-type"].startswith("text/html") for a in answers)
    assert "Registrets databas kan inte nås just nu" in answers[0].text
    lines = [
        line
        for line in logged.splitlines()
        if "the registry database is unavailable" in line and "GET /ui/parties answered 503" in line
    ]
    assert len(lines) == 3, logged
    assert "Traceback" not in logged, "a traceback was logged for an unreachable database"


async def test_a_party_an_import_removed_opens_with_its_history_and_is_restored_from_its_page(
    ui_client: Any, admin_headers: dict[str, str]
) -> None:
    document = (await ui_client.get("/api/registry", headers=admin_headers)).json()
    document["parties"] = [p for p in document["parties"] if p["key"] != "kvarnberg"]
    document["agreements"] = [a for a in document["agreements"] if a["party"] != "kvarnberg"]
    imported = await ui_client.put("/api/registry", json=document, headers=admin_headers)
    assert imported.status_code == 200, imported.text
    client = await as_user(ui_client, "lena@offix.example")

    listed = (await client.get("/ui/removed", headers=SWEDISH)).text
    assert "Borttagna poster" in listed and "kvarnberg" in listed and "kvarnberg-dpa-2023" in listed
    removed = await client.get("/ui/parties/kvarnberg", headers=SWEDISH)
    assert removed.status_code == 200
    assert "Kvarnberg IT-drift AB" in removed.text and "Återställ" in removed.text
    assert (await client.get("/ui/parties/never-was", headers=SWEDISH)).status_code == 404

    restored = await client.post(
        "/ui/parties/kvarnberg/restore",
        data={"_csrf_token": csrf_token(removed.text)},
        headers=SWEDISH,
        follow_redirects=False,
    )
    assert restored.status_code == 303, restored.text
    live = await client.get("/ui/parties/kvarnberg", headers=SWEDISH)
    assert live.status_code == 200 and "återställd" in live.text
    assert "kvarnberg" in (await ui_client.get("/api/parties/kvarnberg", headers=admin_headers)).text


async def test_the_art_30_page_downloads_csv_and_xlsx_with_the_browsers_session(ui_client: Any) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    html = (await client.get("/ui/records/article-30", headers=SWEDISH)).text
    assert "Ladda ned som CSV" in html and "Ladda ned som Excel (XLSX)" in html

    as_csv = await client.get("/ui/records/article-30.csv?lang=sv", headers=SWEDISH)
    assert as_csv.status_code == 200, as_csv.text[:300]
    assert as_csv.headers["content-disposition"].startswith("attachment; filename=")
    assert as_csv.content.startswith(b"\xef\xbb\xbf")
    header = as_csv.content.decode("utf-8-sig").splitlines()[0]
    assert ";" in header and "," not in header

    as_xlsx = await client.get("/ui/records/article-30.xlsx", headers=SWEDISH)
    assert as_xlsx.status_code == 200
    assert as_xlsx.content.startswith(b"PK")
    assert (await client.get("/api/records/article-30?format=csv")).status_code == 401, "the API still wants a key"


async def test_a_swedish_unsubscribe_export_is_imported_from_the_objections_page(ui_client: Any) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    page = await client.get("/ui/objections", headers=SWEDISH)
    swedish_export = (
        "\ufeffNamn;E-post;Avregistrerad\nAnna Bergström;anna@example.se;2026-01-02\nOlle;olle@example.se;\n"
    )
    imported = await client.post(
        "/ui/objections/import",
        data={"_csrf_token": csrf_token(page.text), "import_scope": "direct_marketing", "import_source": "Mailchimp"},
        files={"file": ("avregistrerade.csv", swedish_export.encode("utf-8"), "text/csv")},
        headers=SWEDISH,
    )
    assert imported.status_code == 200, imported.text[:500]
    assert "Listan är importerad: 2 rader, 2 invändningar registrerade, 0 gällde redan." in imported.text
    looked_up = (await client.get("/ui/objections?subject=anna@example.se", headers=SWEDISH)).text
    assert "Mailchimp" in looked_up

    no_address = await client.post(
        "/ui/objections/import",
        data={"_csrf_token": csrf_token(page.text)},
        files={"file": ("lista.csv", b"Namn,Telefon\nAnna,08-123\n", "text/csv")},
        headers=SWEDISH,
    )
    assert no_address.status_code == 400
    assert "Filen har ingen kolumn med e-postadresser eller kundnummer. Dess rubrikrad har Namn, Telefon" in (
        no_address.text
    )
    assert "e-post, e-postadress" in no_address.text
