"""A snapshot's first view is prepared in the first-view worker (web/ui/first_view.py), not on the web role's loop:
pages show what it prepared for their snapshot's revision, the same as the loop would work out, and a worker that
fails or read another revision leaves the page to work it out itself, never showing another revision's data."""

import asyncio
import dataclasses
import pickle
import re
from datetime import date, timedelta
from typing import Any

import pytest

from guard.subjects import SubjectKey
from kernel.db import make_engine, make_sessionmaker
from tests.conftest import test_settings
from tests.integration.registry_fixtures import agreement, party
from tests.ui_session import as_user
from web.composition import build_services, services_of
from web.ui import first_view, registry_view
from web.ui import views as ui_views
from web.ui.first_view import FirstView, FirstViews
from web.ui.registry_view import RegistryView


@pytest.fixture(autouse=True)
def every_registry_prepared_in_the_worker(monkeypatch: Any) -> None:
    """The seed's registry is far below the size from which first views go to the worker."""
    monkeypatch.setattr(first_view, "MIN_PARTIES", 0)


def first_views_of(client: Any) -> FirstViews:
    found = services_of(client.app).first_views
    assert found is not None
    return found


async def settled(first_views: FirstViews) -> None:
    """Whatever preparation the app's start asked for has finished (the app runs on a loop of its own)."""
    for _ in range(1200):
        if first_views._job is None or first_views._job.done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the first-view worker did not finish within a minute")


def current_view() -> RegistryView:
    """The view the pages keep for the snapshot they read last."""
    ((_, view),) = registry_view._views.values()
    return view


def revision_of(client: Any) -> int:
    loaded = services_of(client.app).snapshots.current
    assert loaded is not None
    return loaded.revision


def expiring_shown(page: str) -> list[str]:
    section = page.split('id="h-expiring"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<tr><td><a href="/ui/agreements/([^"]+)">', section)


def shown_findings(page: str) -> list[tuple[str, str]]:
    section = page.split('id="h-findings"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<tr><td><a href="/ui/parties/([^"]+)">.*?<code>([A-Z_]+)</code>', section)


async def add_aaberg_expiring_soon(client: Any, writer_headers: Any) -> None:
    """A registry change: a new party with a dpa that expires in ten days."""
    created = await client.post("/api/parties", json=party("aaberg", name="Aaberg Lager AB"), headers=writer_headers)
    assert created.status_code == 201, created.text
    soon = (date.today() + timedelta(days=10)).isoformat()
    signed = await client.post(
        "/api/agreements", json=agreement("aaberg-dpa", "aaberg", expires_on=soon), headers=writer_headers
    )
    assert signed.status_code == 201, signed.text


async def prepared_for_now(client: Any) -> None:
    """The worker has prepared the first view of the app's current snapshot (it was asked to when it changed)."""
    first_views = first_views_of(client)
    for _ in range(1200):
        ready = first_views.ready
        if ready is not None and ready.revision >= revision_of(client):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the first-view worker did not prepare the current snapshot within a minute")


async def test_the_dashboard_after_a_registry_change_shows_the_new_data_the_worker_prepared(
    ui_client: Any, writer_headers: Any
) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    await prepared_for_now(client)
    before = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
    assert current_view().prepared_revision == revision_of(client)
    assert "aaberg-dpa" not in expiring_shown(before)

    await add_aaberg_expiring_soon(client, writer_headers)

    await prepared_for_now(client)
    after = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
    assert current_view().prepared_revision == revision_of(client)
    assert "aaberg-dpa" in expiring_shown(after)
    listed = (await client.get("/ui/agreements?state=expiring")).text
    assert "aaberg-dpa" in listed


async def test_a_page_does_not_wait_for_a_preparation_under_way_but_works_its_view_out_itself(
    ui_client: Any, writer_headers: Any
) -> None:
    """Right after a change (a save's redirect), the worker is still reading the whole registry: the page answers
    from the snapshot at once, worked out on the loop, with the change in it."""
    client = await as_user(ui_client, "lena@offix.example")
    first_views = first_views_of(client)
    await settled(first_views)
    release = asyncio.Event()

    async def slow_worker(*_: Any) -> Any:
        await release.wait()  # (never set: the app's close cancels it)
        raise AssertionError("unreachable")

    first_views.worker.run = slow_worker  # type: ignore[method-assign, assignment]
    created = await client.post("/api/parties", json=party("aaberg", name="Aaberg Lager AB"), headers=writer_headers)
    assert created.status_code == 201, created.text
    assert first_views._job is not None and not first_views._job.done(), "a preparation is under way"

    page = (await client.get("/ui/parties/aaberg", headers={"Accept-Language": "en"})).text
    assert "Aaberg Lager AB" in page
    assert current_view().prepared_revision is None  # worked out on the loop
    assert not first_views._job.done(), "the page answered while the worker was still at it"


async def test_a_registry_change_has_its_first_view_prepared_before_anyone_looks(
    ui_client: Any, writer_headers: Any
) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    created = await client.post("/api/parties", json=party("aaberg", name="Aaberg Lager AB"), headers=writer_headers)
    assert created.status_code == 201, created.text
    revision = int(created.headers["Registry-Revision"])
    first_views = first_views_of(client)
    for _ in range(1200):
        if first_views.ready is not None and first_views.ready.revision >= revision:
            break
        await asyncio.sleep(0.05)
    assert first_views.ready is not None and first_views.ready.revision == revision
    assert "aaberg" in first_views.ready.party_docs


async def test_what_the_worker_prepares_equals_what_the_loop_works_out_for_the_same_snapshot(
    ui_client: Any, writer_headers: Any
) -> None:
    """After a change applied record by record (the guard's snapshot changed in place of a whole read), the worker
    reads the registry whole: the documents and every value a first view needs are still the same."""
    client = await as_user(ui_client, "lena@offix.example")
    molnhall = (await client.get("/api/parties/molnhall", headers=writer_headers)).json()
    body = {k: v for k, v in molnhall.items() if k not in ("key", "created_at", "updated_at")}
    body["locations"] = [*body["locations"], {"territory": "US", "kind": "support_access"}]
    assert (await client.put("/api/parties/molnhall", json=body, headers=writer_headers)).status_code == 200
    await add_aaberg_expiring_soon(client, writer_headers)

    loaded = services_of(client.app).snapshots.usable()
    window = first_views_of(client).window
    # What the worker runs, run here (the app's worker answers on the app's own loop; the test above uses it).
    database_url = services_of(client.app).settings.database_url
    assert database_url is not None
    prepared = await asyncio.to_thread(first_view.prepare_first_view, database_url, None, window)
    assert prepared.revision == loaded.revision

    engine = make_engine(database_url, pool_size=1)  # (the app's engine answers on the app's loop)
    try:
        async with make_sessionmaker(engine)() as session:
            controller = await registry_view.read_controller(session)
    finally:
        await engine.dispose()
    assert prepared.today == ui_views.controller_today(controller)
    on_the_loop = await RegistryView.of_snapshot(loaded.snapshot, controller)
    await on_the_loop.warm(prepared.today, window)

    assert prepared.party_docs == on_the_loop.party_docs
    assert list(prepared.agreement_docs) == list(on_the_loop.agreement_docs)
    assert prepared.agreement_docs == on_the_loop.agreement_docs
    assert prepared.agreements_by_party == on_the_loop.agreements_by_party
    assert prepared.memo == on_the_loop.memo_items()
    assert prepared.memo[("findings", prepared.today)], "the registry has findings to compare"
    assert prepared.memo[("expiring", prepared.today, window)]
    assert any(prepared.memo[("outside_counts", prepared.today)].values())


async def test_a_worker_that_fails_still_yields_a_correct_dashboard(ui_client: Any, reader_headers: Any) -> None:
    client = await as_user(ui_client, "lena@offix.example")
    first_views = first_views_of(client)
    await settled(first_views)
    first_views.ready = None
    first_views.database_url = "postgresql+asyncpg://nobody@127.0.0.1:1/no_such_registry"
    first_views.snapshot_confirmed()  # (as the refresher tells it of a new snapshot)
    await settled(first_views)
    assert first_views.failures >= 1
    registry_view._views.clear()
    api = (await client.get("/api/registry/findings", headers=reader_headers)).json()
    page = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
    assert current_view().prepared_revision is None  # worked out on the loop
    assert shown_findings(page) == [(f["party"], f["code"]) for f in api["findings"]]


@pytest.mark.parametrize(("revisions_later", "days_later"), [(1, 0), (0, -1)], ids=["newer revision", "day before"])
async def test_what_the_worker_prepared_for_another_revision_or_day_is_never_shown(
    ui_client: Any, reader_headers: Any, revisions_later: int, days_later: int
) -> None:
    """A preparation that read a newer revision than the guard's snapshot (the registry moved on meanwhile), or was
    made for another day of the controller's calendar, is not this snapshot's today: the page works its own out."""
    client = await as_user(ui_client, "lena@offix.example")
    first_views = first_views_of(client)
    await settled(first_views)
    loaded = services_of(client.app).snapshots.usable()
    first_views.ready = FirstView(
        revision=loaded.revision + revisions_later,
        today=loaded.today() + timedelta(days=days_later),
        party_docs={},
        agreement_docs={},
        agreements_by_party={},
        memo={},
    )
    registry_view._views.clear()
    api = (await client.get("/api/registry/findings", headers=reader_headers)).json()
    page = (await client.get("/ui/", headers={"Accept-Language": "en"})).text
    assert current_view().party_docs, "not the planted, empty, view"
    assert shown_findings(page) == [(f["party"], f["code"]) for f in api["findings"]]
    assert "Nordfrakt Logistik AB" in (await client.get("/ui/parties")).text


async def test_the_guard_role_has_no_first_view_worker_and_the_web_role_has_one(database: str) -> None:
    key = SubjectKey(b"k" * 32)
    guard = build_services(test_settings(database, process_role="guard"), key)
    web = build_services(test_settings(database, process_role="web"), key, role="web")
    try:
        assert guard.first_views is None
        assert web.first_views is not None
    finally:
        for services in (guard, web):
            await services.engine.dispose()


def test_a_first_view_crosses_the_process_boundary_in_pieces_and_arrives_whole() -> None:
    link = {"party": "sub", "approved_on": None}
    processor = {"key": "proc", "name": "Proc AB", "sub_processors": [link]}
    sub = {"key": "sub", "name": "Sub AB", "sub_processors": []}
    dpa = {"key": "a", "party": "proc", "expires_on": date(2030, 1, 1)}
    other = {"key": "b", "party": "proc", "expires_on": None}
    day = date(2029, 12, 20)
    memo = {
        ("expiring", day, 30): [dpa],
        ("unapproved", day): [{"processor": processor, "link": link}],
        ("findings", day): [{"party": "proc", "code": "NO_AGREEMENT"}],
        "users": {"sub": ["proc"]},
    }
    prepared = FirstView(7, day, {"proc": processor, "sub": sub}, {"a": dpa, "b": other}, {"proc": [dpa, other]}, memo)
    arrived = first_view.assembled(pickle.loads(pickle.dumps(first_view.pieces_of(prepared))))
    assert dataclasses.asdict(arrived) == dataclasses.asdict(prepared)
    assert arrived.memo[("expiring", day, 30)][0] is arrived.agreement_docs["a"]  # the same document, not a copy
    unapproved = arrived.memo[("unapproved", day)][0]
    assert unapproved["processor"] is arrived.party_docs["proc"]
    assert unapproved["link"] is arrived.party_docs["proc"]["sub_processors"][0]
    assert arrived.agreements_by_party["proc"][1] is arrived.agreement_docs["b"]
