"""UI pages read the registry the guard of their instance holds (web/ui/registry_view.py), not the tables on
every request: they show what the API shows, a write is on the next page, and without a usable snapshot they
read the tables as before."""

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.integration.registry_fixtures import agreement, party
from tests.ui_session import as_user
from web.composition import services_of
from web.ui import registry_view
from web.ui.pages import dashboard as dashboard_page
from web.ui.pages import parties as parties_pages
from web.ui.pages import records as records_pages

SUB_PROCESSOR = "molnhall"  # engaged by nordfrakt and kvarnberg in the seed


def shown_findings(page: str) -> list[tuple[str, str]]:
    """(party key, code) of each row of the dashboard's findings table."""
    section = page.split('id="h-findings"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<tr><td><a href="/ui/parties/([^"]+)">.*?<code>([A-Z_]+)</code>', section)


@contextmanager
def guard_without_snapshot(client: Any) -> Iterator[None]:
    """The guard's snapshot too old to trust, as after a registry it could not read for a while."""
    refresher = services_of(client.app).snapshots
    bound = refresher.max_age_seconds
    refresher.max_age_seconds = -1.0
    try:
        yield
    finally:
        refresher.max_age_seconds = bound


async def test_the_dashboard_lists_the_findings_the_findings_api_gives(ui_client: Any, reader_headers: Any) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    api = (await client.get("/api/registry/findings", headers=reader_headers)).json()
    page = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
    assert api["count"] > 0, "the seed has findings (dpas without a signed copy on file at least)"
    assert shown_findings(page) == [(f["party"], f["code"]) for f in api["findings"]]


async def test_a_party_page_shows_its_own_findings_and_the_processors_that_engage_it(
    ui_client: Any, reader_headers: Any
) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    api = (await client.get("/api/registry/findings", headers=reader_headers)).json()["findings"]
    party = next(f["party"] for f in api)
    page = html.unescape((await client.get(f"/ui/parties/{party}", headers={"Accept-Language": "en"})).text)
    own = [f for f in api if f["party"] == party]
    others = {f["code"] for f in api if f["party"] != party} - {f["code"] for f in own}
    assert all(f["code"] in page for f in own)
    assert not any(code in page for code in others)
    sub = (await client.get(f"/ui/parties/{SUB_PROCESSOR}", headers={"Accept-Language": "en"})).text
    assert "Nordfrakt Logistik AB" in sub and "Kvarnberg IT-drift AB" in sub


async def test_a_write_through_the_api_is_on_the_next_page(ui_client: Any, writer_headers: Any) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    before = (await client.get("/ui/data-map")).text  # builds and keeps this snapshot's data map
    assert "Molnhall Datacenter AB" in before
    party = (await client.get(f"/api/parties/{SUB_PROCESSOR}", headers=writer_headers)).json()
    body = {k: v for k, v in party.items() if k not in ("key", "created_at", "updated_at")}
    saved = await client.put(
        f"/api/parties/{SUB_PROCESSOR}", json={**body, "name": "Molnhall Renamed AB"}, headers=writer_headers
    )
    assert saved.status_code == 200, saved.text
    for path in ("/ui/data-map", "/ui/parties?q=molnhall", "/ui/parties/nordfrakt"):
        page = (await client.get(path)).text
        assert "Molnhall Renamed AB" in page, path
        assert "Molnhall Datacenter AB" not in page, path


async def test_the_lists_filtered_by_the_rules_show_a_write_on_the_next_page(
    ui_client: Any, writer_headers: Any
) -> None:
    """The parties filtered by places and the agreements filtered by state read every matching key once per
    snapshot: a write makes a new snapshot, and the next page shows it."""
    client = await as_user(ui_client, "lena@offix.example")
    assert "Aaberg Lager AB" not in (await client.get("/ui/parties?eea=inside")).text
    assert "aaberg-dpa" not in (await client.get("/ui/agreements?state=in_force")).text
    created = await client.post("/api/parties", json=party("aaberg", name="Aaberg Lager AB"), headers=writer_headers)
    assert created.status_code == 201, created.text
    signed = await client.post("/api/agreements", json=agreement("aaberg-dpa", "aaberg"), headers=writer_headers)
    assert signed.status_code == 201, signed.text
    assert "Aaberg Lager AB" in (await client.get("/ui/parties?eea=inside")).text
    assert "aaberg-dpa" in (await client.get("/ui/agreements?state=in_force")).text


@contextmanager
def counting_whole_registry_reads(monkeypatch: Any) -> Iterator[list[int]]:
    """Counts the pages' reads of the whole registry from the tables (the real read, counted)."""
    reads = [0]
    real = registry_view.load_registry

    async def counted(session: Any) -> Any:
        reads[0] += 1
        return await real(session)

    monkeypatch.setattr(registry_view, "load_registry", counted)
    yield reads


PAGES = ("/ui/", "/ui/parties", "/ui/parties/nordfrakt", "/ui/agreements", "/ui/data-map", "/ui/decisions")


@contextmanager
def whole_table_reads(client: Any) -> Iterator[list[str]]:
    """The statements the app sends that read every row of the agreement table: no WHERE, no LIMIT, not a count
    (a list page counts the agreements and reads a page of their keys: that is not reading them all)."""
    engine = services_of(client.app).sessionmaker.kw["bind"].sync_engine
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        whole = not any(word in statement for word in ("WHERE", "LIMIT", "count("))
        if re.search(r"\bFROM agreement\b", statement) and whole:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def test_pages_do_not_read_the_whole_registry_from_the_tables_while_the_guard_holds_it(
    ui_client: Any,
) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    with whole_table_reads(client) as reads:
        for path in PAGES:
            assert (await client.get(path)).status_code == 200, path
    assert reads == []


async def test_pages_read_the_tables_when_the_guard_holds_no_usable_snapshot(
    ui_client: Any, reader_headers: Any, monkeypatch: Any
) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    api = (await client.get("/api/registry/findings", headers=reader_headers)).json()
    with guard_without_snapshot(client), counting_whole_registry_reads(monkeypatch) as reads:
        page = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
        parties = (await client.get("/ui/parties?role=sub_processor")).text
    assert reads[0] == 2
    assert shown_findings(page) == [(f["party"], f["code"]) for f in api["findings"]]
    assert "Molnhall Datacenter AB" in parties


def chain_sections(page: str) -> list[str]:
    """The recipients whose chain the data map shows, in order."""
    return re.findall(r'<section aria-labelledby="c-([^"]+)">', page)


async def test_the_data_map_pages_its_recipients_and_counts_each_territorys_recipients(
    ui_client: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(parties_pages, "PAGE_SIZE", 3)
    client = await as_user(ui_client, "lena@offix.example")
    pages, offset = [], 0
    while True:
        page = (await client.get("/ui/data-map", params={"offset": offset}, headers={"Accept-Language": "en"})).text
        pages.append(chain_sections(page))
        if 'rel="next"' not in page:
            break
        offset += 3
    shown = [key for found in pages for key in found]
    assert len(pages) > 1 and all(len(found) <= 3 for found in pages)
    assert len(shown) == len(set(shown)) and "nordfrakt" in shown and "molnhall" not in shown  # recipients only
    first = (await client.get("/ui/data-map", headers={"Accept-Language": "en"})).text
    sweden = first.split("Sweden (SE)", 1)[1].split("</section>", 1)[0]
    counted = re.search(r"(\d+) recipients? holds? data here", sweden)
    assert counted is not None and int(counted.group(1)) >= 2  # the whole registry's count, not the page's


async def test_the_art_30_page_shows_every_recipient_of_the_record_a_page_at_a_time(
    ui_client: Any, reader_headers: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(records_pages, "PAGE_SIZE", 2)
    client = await as_user(ui_client, "lena@offix.example")
    record = (await client.get("/api/records/article-30", headers=reader_headers)).json()
    shown, offset = [], 0
    while True:
        page = (await client.get("/ui/records/article-30", params={"offset": offset})).text
        found = re.findall(r'<section class="recipient" aria-labelledby="r-([^"]+)">', page)
        assert len(found) <= 2
        shown += found
        if 'rel="next"' not in page:
            break
        offset += 2
    assert shown == [r["key"] for r in record["recipients"]] and len(shown) > 2
    first = (await client.get("/ui/records/article-30", params={"lang": "en"})).text
    summary = record["third_country_transfers_summary"]
    assert (summary in first) if summary != "none" else ("<strong>None</strong>" in first)
    totals = f"{record['decision_log']['shares_allowed']} shares allowed, {record['decision_log']['shares_denied']}"
    assert totals in first


async def test_the_dashboard_counts_every_finding_and_lists_the_first_of_them(
    ui_client: Any, reader_headers: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(dashboard_page, "DASHBOARD_ROWS", 1)
    client = await as_user(ui_client, "lena@offix.example")
    api = (await client.get("/api/registry/findings", headers=reader_headers)).json()
    page = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
    assert api["count"] > 1
    assert shown_findings(page) == [(f["party"], f["code"]) for f in api["findings"][:1]]
    assert f'Registry findings <span class="count">{api["count"]}</span>' in page
    assert f"The first 1 of {api['count']}." in page


async def test_the_art_30_page_counts_the_transfers_of_the_whole_record(
    ui_client: Any, reader_headers: Any, writer_headers: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(records_pages, "PAGE_SIZE", 2)
    client = await as_user(ui_client, "lena@offix.example")
    party = (await client.get(f"/api/parties/{SUB_PROCESSOR}", headers=writer_headers)).json()
    body = {k: v for k, v in party.items() if k not in ("key", "created_at", "updated_at")}
    body["locations"] = [*body["locations"], {"territory": "US", "kind": "support_access"}]
    saved = await client.put(f"/api/parties/{SUB_PROCESSOR}", json=body, headers=writer_headers)
    assert saved.status_code == 200, saved.text
    record = (await client.get("/api/records/article-30", headers=reader_headers)).json()
    summary = record["third_country_transfers_summary"]
    assert summary != "none"  # molnhall's own place, and those of the processors whose chain reaches it
    first = (await client.get("/ui/records/article-30", params={"lang": "en"})).text
    assert summary in first
