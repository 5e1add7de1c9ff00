"""`GET /api/renewals`, the calendar feed management API, and the secret iCalendar feed URL."""

from datetime import date, timedelta
from typing import Any

import vobject
from click.testing import CliRunner
from icalendar import Calendar
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cli.main import main
from tests.conftest import bearer, load_document, make_key, seed_document

# The seed's dated agreements, each (expiry date, notice deadline of an auto-renewing one or None).
SEED_DATES = {
    "nordfrakt-dpa-2024": (date(2027, 1, 31), None),
    "klarsignal-dpa-2024": (date(2026, 12, 31), None),
    "handelsplattformen-dpa-2025": (date(2029, 1, 31), date(2029, 1, 31) - timedelta(days=120)),
    "molnhall-dpa-2023": (date(2028, 9, 30), date(2028, 9, 30) - timedelta(days=60)),
    "fjordvault-dpa-2024": (date(2027, 6, 30), None),
    "liffey-mailworks-dpa-2024": (date(2028, 5, 31), None),
    "maksusilta-dpa-2025": (date(2028, 12, 31), None),
    "tibro-kontorsmobler-sharing-2024": (date(2027, 3, 31), None),
    "papyra-sharing-2025": (date(2029, 2, 28), date(2029, 2, 28) - timedelta(days=60)),
    "kontorsgrossen-sharing-2023": (date(2027, 10, 31), None),
}


def seed_events() -> set[tuple[str, date]]:
    events = set()
    for key, (expires, notice) in SEED_DATES.items():
        events.add((f"expiry-{key}@renewals.offix-registry", expires))
        if notice:
            events.add((f"notice_deadline-{key}@renewals.offix-registry", notice))
    return events


async def test_renewals_lists_expiries_and_notice_deadlines_soonest_first(
    seeded_database: str, client: AsyncTestClient[Litestar], reader_headers: dict[str, str]
) -> None:
    response = await client.get("/api/renewals", params={"within": 3650}, headers=reader_headers)
    assert response.status_code == 200
    body = response.json()
    today = date.fromisoformat(body["today"])
    items = body["items"]
    dates = [i["date"] for i in items]
    assert dates == sorted(dates)
    expected = {(uid.split("@")[0], d.isoformat()) for uid, d in seed_events() if today <= d}
    assert {(f"{i['kind']}-{i['agreement']}", i["date"]) for i in items} == expected
    first = items[0]
    assert first["days_left"] == (date.fromisoformat(first["date"]) - today).days
    assert {"party", "party_name", "owner_email", "renewal"} <= first.keys()


async def test_renewals_keeps_only_the_window_asked_for(
    seeded_database: str, client: AsyncTestClient[Litestar], reader_headers: dict[str, str]
) -> None:
    wide = (await client.get("/api/renewals?within=3650", headers=reader_headers)).json()
    narrow = (await client.get("/api/renewals?within=400", headers=reader_headers)).json()
    until = date.fromisoformat(narrow["today"]) + timedelta(days=400)
    assert narrow["items"] == [i for i in wide["items"] if date.fromisoformat(i["date"]) <= until]
    default = (await client.get("/api/renewals", headers=reader_headers)).json()
    assert default["within"] == 90


async def test_a_window_ending_between_a_notice_deadline_and_its_expiry_lists_the_deadline_alone(
    seeded_database: str, client: AsyncTestClient[Litestar], reader_headers: dict[str, str]
) -> None:
    """The database reads only the agreements with a date in the window; an auto-renewing agreement whose
    notice deadline is in it and whose expiry is not must still be read."""
    wide = (await client.get("/api/renewals?within=3650", headers=reader_headers)).json()
    today = date.fromisoformat(wide["today"])
    deadlines = [i for i in wide["items"] if i["kind"] == "notice_deadline"]
    assert deadlines, "the seed has auto-renewing agreements with notice periods"
    for deadline in deadlines:
        for within in (deadline["days_left"] - 1, deadline["days_left"]):
            narrow = (await client.get(f"/api/renewals?within={within}", headers=reader_headers)).json()
            until = today + timedelta(days=within)
            assert narrow["items"] == [i for i in wide["items"] if date.fromisoformat(i["date"]) <= until]
            listed = {(i["kind"], i["agreement"]) for i in narrow["items"]}
            assert (("notice_deadline", deadline["agreement"]) in listed) == (within == deadline["days_left"])
            assert ("expiry", deadline["agreement"]) not in listed


async def test_renewals_leaves_out_terminated_agreements_and_inactive_parties(
    database: str, client: AsyncTestClient[Litestar], reader_headers: dict[str, str]
) -> None:
    doc = seed_document()
    for agreement in doc["agreements"]:
        if agreement["key"] == "nordfrakt-dpa-2024":
            agreement["terminated_on"] = "2026-01-01"
    for party in doc["parties"]:
        if party["key"] == "klarsignal":
            party["active"] = False
    await load_document(database, doc)
    items = (await client.get("/api/renewals?within=3650", headers=reader_headers)).json()["items"]
    assert not {"nordfrakt-dpa-2024", "klarsignal-dpa-2024"} & {i["agreement"] for i in items}


async def test_renewals_rejects_a_bad_window_naming_the_field(
    database: str, client: AsyncTestClient[Litestar], reader_headers: dict[str, str]
) -> None:
    for bad in ("0", "3651", "-5", "soon"):
        response = await client.get(f"/api/renewals?within={bad}", headers=reader_headers)
        assert response.status_code == 400, bad
        assert "within" in response.text


async def test_renewals_needs_a_key_with_read_scope(
    database: str, client: AsyncTestClient[Litestar], guard_headers: dict[str, str]
) -> None:
    assert (await client.get("/api/renewals")).status_code == 401
    assert (await client.get("/api/renewals", headers=guard_headers)).status_code == 403


async def create_feed(client: AsyncTestClient[Litestar], headers: dict[str, str], name: str = "legal-team") -> str:
    response = await client.post("/api/calendar-feeds", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    assert url.startswith("http://127.0.0.1:8000/calendar/ofxcal_") and url.endswith(".ics")
    return url.removeprefix("http://127.0.0.1:8000")


async def test_the_feed_parses_back_with_one_event_per_expiry_and_notice_deadline(
    seeded_database: str, client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> None:
    path = await create_feed(client, admin_headers)
    response = await client.get(path)  # no bearer header: the URL is the credential
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.content)
    events = calendar.walk("VEVENT")
    assert {(str(e["UID"]), e.decoded("DTSTART")) for e in events} == seed_events()
    assert len(events) == len(seed_events())
    assert all(e.decoded("DTEND") - e.decoded("DTSTART") == timedelta(days=1) for e in events)
    # The same UIDs on the next fetch: a client updates events in place instead of duplicating them.
    again = Calendar.from_ical((await client.get(path)).content)
    assert sorted(str(e["UID"]) for e in again.walk("VEVENT")) == sorted(str(e["UID"]) for e in events)


async def test_the_feed_imports_into_a_calendar_clients_parser(
    seeded_database: str, client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> None:
    path = await create_feed(client, admin_headers)
    parsed: Any = vobject.readOne((await client.get(path)).text)
    parsed.validate()  # raises on any RFC 5545 violation vobject knows about
    events = parsed.contents["vevent"]
    assert len(events) == len(seed_events())
    summaries = {e.summary.value for e in events}
    assert "Expires: klarsignal-dpa-2024 (Klarsignal Kommunikation AB)" in summaries
    assert "Notice deadline: papyra-sharing-2025 (Papyra Kontorspapper AB)" in summaries or any(
        s.startswith("Notice deadline: papyra-sharing-2025") for s in summaries
    )


async def test_a_revoked_or_unknown_feed_token_is_not_found(
    seeded_database: str, client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> None:
    path = await create_feed(client, admin_headers)
    assert (await client.get("/calendar/ofxcal_not-a-real-token.ics")).status_code == 404
    assert (await client.get("/calendar/")).status_code == 404
    assert (await client.get(path.removesuffix(".ics"))).status_code == 404
    revoked = await client.delete("/api/calendar-feeds/legal-team", headers=admin_headers)
    assert revoked.status_code == 200
    assert (await client.get(path)).status_code == 404
    listed = (await client.get("/api/calendar-feeds", headers=admin_headers)).json()
    assert [(f["name"], f["revoked_at"] is not None) for f in listed] == [("legal-team", True)]
    assert "ofxcal_" not in str(listed)
    assert (await client.delete("/api/calendar-feeds/legal-team", headers=admin_headers)).status_code == 404


async def test_feed_management_is_for_administrators(
    database: str, client: AsyncTestClient[Litestar], writer_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    assert (await client.post("/api/calendar-feeds", json={"name": "x"})).status_code == 401
    assert (await client.get("/api/calendar-feeds")).status_code == 401
    assert (await client.post("/api/calendar-feeds", json={"name": "x"}, headers=writer_headers)).status_code == 403
    assert (await client.get("/api/calendar-feeds", headers=writer_headers)).status_code == 403
    assert (await client.delete("/api/calendar-feeds/x", headers=writer_headers)).status_code == 403
    bad = await client.post("/api/calendar-feeds", json={"name": "Not A Slug!"}, headers=admin_headers)
    assert bad.status_code == 400 and "name" in bad.text
    await create_feed(client, admin_headers, "ops")
    duplicate = await client.post("/api/calendar-feeds", json={"name": "ops"}, headers=admin_headers)
    assert duplicate.status_code == 409


def test_the_cli_creates_lists_and_revokes_feeds_and_runs_reminders(seeded_database: str) -> None:
    env = {
        "REGISTRY_DATABASE_URL": seeded_database,
        "REGISTRY_SMTP_HOST": "127.0.0.1",
        "REGISTRY_SMTP_PORT": "1",  # nothing listens: sends fail and stay pending
        "REGISTRY_PUBLIC_URL": "https://registry.offix.example",
    }
    runner = CliRunner()
    created = runner.invoke(main, ["feed", "create", "ops-calendar"], env=env)
    assert created.exit_code == 0, created.output
    assert created.output.startswith("https://registry.offix.example/calendar/ofxcal_")
    listed = runner.invoke(main, ["feed", "list"], env=env)
    assert "ops-calendar" in listed.output and "active" in listed.output
    assert runner.invoke(main, ["feed", "revoke", "ops-calendar"], env=env).exit_code == 0
    assert "revoked" in runner.invoke(main, ["feed", "list"], env=env).output
    missing = runner.invoke(main, ["feed", "revoke", "nope"], env=env)
    assert missing.exit_code == 2 and "no active calendar feed" in missing.output
    run = runner.invoke(main, ["reminders", "run", "--today", "2026-12-01", "--send"], env=env)
    assert run.exit_code == 0, run.output
    assert "2026-12-01: 2 reminder(s) due, 2 new" in run.output  # klarsignal at 30 days, nordfrakt at 90
    assert "failed" in run.output and "klarsignal-dpa-2024" in run.output
    pending = runner.invoke(main, ["reminders", "list", "--pending"], env=env)
    assert "klarsignal-dpa-2024" in pending.output and "pending (attempts 1" in pending.output


async def test_a_feed_key_made_elsewhere_does_not_open_the_feed(
    seeded_database: str, client: AsyncTestClient[Litestar]
) -> None:
    token = await make_key(seeded_database, "someone", "admin")
    assert (await client.get(f"/calendar/{token}.ics")).status_code == 404
    assert (await client.get("/calendar/x.ics", headers=bearer(token))).status_code == 404
