"""Registry changes reach the guard as changes (guard/snapshot.py): the rows a write touched are read, and what
depends on them (the chains through a changed sub-processor) is worked out again; and a write is answered once
the writing instance's guard obeys it (web/visibility.py)."""

from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from guard.snapshot import SnapshotRefresher
from kernel.db import make_engine, make_sessionmaker
from registry.snapshot_source import load_snapshot
from tests.conftest import SEED_ALLOWED_SHARE, load_document, seed_document
from tests.conftest import test_settings as settings_for
from tests.integration.test_snapshot_refresh import poll_until
from tests.integration.test_ui_import_preview import confirm, preview, seed_with_one_party_removed_and_one_renamed
from tests.ui_session import as_user
from web.app import create_app
from web.composition import services_of

# Both processors reach fjordvault through molnhall: nordfrakt → molnhall → fjordvault, kvarnberg → molnhall →
# fjordvault.
PROCESSORS_THROUGH_FJORDVAULT = ("nordfrakt", "kvarnberg")


def share_to(recipient: str) -> dict[str, Any]:
    return {**SEED_ALLOWED_SHARE, "recipient": recipient}


def update_body(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in document.items() if k not in ("key", "created_at", "updated_at")}
    return {**body, **changes}


async def test_the_writing_instance_denies_a_just_deactivated_party_on_the_very_next_check(
    seeded_database, writer_headers, guard_headers
):
    # No poll to help: the write's own answer must wait for the guard.
    app = create_app(settings_for(seeded_database, snapshot_poll_seconds=300.0))
    async with AsyncTestClient(app) as client:
        before = await client.post("/api/guard/check", json=share_to("kvarnberg"), headers=guard_headers)
        assert before.json()["allowed"] is True, before.text
        refresher: SnapshotRefresher = services_of(app).snapshots
        reloads = refresher.reloads
        party = (await client.get("/api/parties/kvarnberg", headers=writer_headers)).json()

        written = await client.delete(
            "/api/parties/kvarnberg", params={"version": party["version"]}, headers=writer_headers
        )

        assert written.status_code == 200, written.text
        after = await client.post("/api/guard/check", json=share_to("kvarnberg"), headers=guard_headers)
        assert after.json()["allowed"] is False
        assert "RECIPIENT_INACTIVE" in {r["code"] for r in after.json()["reasons"]}
        assert written.headers["Registry-Guard-Revision"] == written.headers["Registry-Revision"]
        assert after.json()["ruleset"].endswith(f"+r{written.headers['Registry-Revision']}")
        assert refresher.reloads == reloads, "a single write was applied as a change, not a full reload"
        assert refresher.applied >= 1


async def test_a_change_to_a_sub_processor_reaches_the_chains_of_every_processor_using_it(
    seeded_database, writer_headers, guard_headers
):
    app = create_app(settings_for(seeded_database, snapshot_poll_seconds=300.0))
    async with AsyncTestClient(app) as client:
        # Decided once each first, so their chains are worked out and remembered before the change.
        for processor in PROCESSORS_THROUGH_FJORDVAULT:
            first = await client.post("/api/guard/check", json=share_to(processor), headers=guard_headers)
            assert first.json()["allowed"] is True, first.text
        reloads = services_of(app).snapshots.reloads
        fjordvault = (await client.get("/api/parties/fjordvault", headers=writer_headers)).json()
        locations = [*fjordvault["locations"], {"territory": "US", "kind": "support_access"}]

        updated = await client.put(
            "/api/parties/fjordvault", json=update_body(fjordvault, locations=locations), headers=writer_headers
        )

        assert updated.status_code == 200, updated.text
        for processor in PROCESSORS_THROUGH_FJORDVAULT:
            answer = (await client.post("/api/guard/check", json=share_to(processor), headers=guard_headers)).json()
            assert answer["allowed"] is False, processor
            outside = [r for r in answer["reasons"] if r["code"] == "SUBPROCESSOR_OUTSIDE_EEA"]
            assert [r["chain"] for r in outside] == [[processor, "molnhall", "fjordvault"]], answer["reasons"]
        assert services_of(app).snapshots.reloads == reloads


async def test_changes_applied_one_by_one_leave_the_snapshot_a_full_reload_would_build(
    seeded_database, writer_headers, guard_headers
):
    """Agreements moved between parties and terminated, links and locations changed, a party deactivated and a
    party created: the snapshot they leave equals the one read whole from the tables."""
    app = create_app(settings_for(seeded_database, snapshot_poll_seconds=300.0))
    async with AsyncTestClient(app) as client:
        refresher: SnapshotRefresher = services_of(app).snapshots
        reloads = refresher.reloads
        agreements = (await client.get("/api/agreements", params={"limit": 500}, headers=writer_headers)).json()
        dpa = next(a for a in agreements["items"] if a["party"] == "kvarnberg" and a["kind"] == "dpa")
        moved = await client.put(
            f"/api/agreements/{dpa['key']}", json=update_body(dpa, party="nordfrakt"), headers=writer_headers
        )
        assert moved.status_code == 200, moved.text
        molnhall = (await client.get("/api/parties/molnhall", headers=writer_headers)).json()
        unlinked = await client.put(
            "/api/parties/molnhall", json=update_body(molnhall, sub_processors=[]), headers=writer_headers
        )
        assert unlinked.status_code == 200, unlinked.text
        created = await client.post(
            "/api/parties",
            json={
                "key": "ny-underleverantor",
                "name": "Ny Underleverantör AB",
                "role": "sub_processor",
                "category": "it_services",
                "established_in": "SE",
                "locations": [{"territory": "SE", "kind": "processing"}],
            },
            headers=writer_headers,
        )
        assert created.status_code == 201, created.text
        nordfrakt = (await client.get("/api/parties/nordfrakt", headers=writer_headers)).json()
        relinked = await client.put(
            "/api/parties/nordfrakt",
            json=update_body(nordfrakt, sub_processors=[*nordfrakt["sub_processors"], {"party": "ny-underleverantor"}]),
            headers=writer_headers,
        )
        assert relinked.status_code == 200, relinked.text
        terminated = await client.delete(
            f"/api/agreements/{dpa['key']}",
            params={"version": moved.json()["version"], "terminated_on": dpa["effective_from"]},
            headers=writer_headers,
        )
        assert terminated.status_code == 200, terminated.text
        assert refresher.reloads == reloads
        applied = refresher.usable()

        engine = make_engine(seeded_database, pool_size=1)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                whole = await load_snapshot(session, ruleset=refresher.ruleset)
        finally:
            await engine.dispose()
        assert dict(applied.snapshot.parties) == dict(whole.parties)
        assert dict(applied.snapshot.agreements_by_party) == dict(whole.agreements_by_party)
        assert applied.snapshot.ruleset == whole.ruleset


async def test_an_import_of_a_few_records_is_applied_as_a_change_and_a_removed_party_leaves_the_snapshot(
    seeded_database, guard_headers
):
    app = create_app(settings_for(seeded_database, snapshot_poll_seconds=300.0))
    async with AsyncTestClient(app) as client:
        refresher: SnapshotRefresher = services_of(app).snapshots
        reloads = refresher.reloads
        revision = refresher.usable().revision
        document = seed_document()
        document["parties"] = [p for p in document["parties"] if p["key"] != "kontorsgrossen"]
        document["agreements"] = [a for a in document["agreements"] if a["party"] != "kontorsgrossen"]
        await load_document(seeded_database, document)

        async def caught_up() -> bool:
            # (`usable` refuses a snapshot behind a revision a notice announced: poll what it holds)
            return refresher.current is not None and refresher.current.revision > revision

        assert await poll_until(caught_up, within=10.0)

        assert "kontorsgrossen" not in refresher.usable().snapshot.parties
        assert "kontorsgrossen" not in refresher.usable().snapshot.agreements_by_party
        assert refresher.reloads == reloads
        answer = (await client.post("/api/guard/check", json=share_to("kontorsgrossen"), headers=guard_headers)).json()
        assert [r["code"] for r in answer["reasons"]][:1] == ["RECIPIENT_UNKNOWN"]


async def test_a_write_the_guard_has_not_caught_up_with_is_still_answered_and_says_so(seeded_database, writer_headers):
    app = create_app(settings_for(seeded_database, snapshot_poll_seconds=300.0, write_visibility_timeout_seconds=0.2))
    async with AsyncTestClient(app) as client:
        party = (await client.get("/api/parties/kvarnberg", headers=writer_headers)).json()
        # The guard's catch-up reads the party's agreements; deactivating a party does not touch them.
        locker = await asyncpg.connect(seeded_database.replace("postgresql+asyncpg://", "postgresql://"))
        locking = locker.transaction()
        await locking.start()
        try:
            await locker.execute("LOCK TABLE agreement IN ACCESS EXCLUSIVE MODE")

            written = await client.delete(
                "/api/parties/kvarnberg", params={"version": party["version"]}, headers=writer_headers
            )

            assert written.status_code == 200, written.text
            assert written.json()["active"] is False
            assert int(written.headers["Registry-Guard-Revision"]) < int(written.headers["Registry-Revision"])
        finally:
            await locking.rollback()
            await locker.close()


async def test_an_import_preview_announces_nothing_and_is_not_held_for_the_guard(seeded_database, admin_headers):
    app = create_app(settings_for(seeded_database, snapshot_poll_seconds=300.0))
    async with AsyncTestClient(app) as client:
        revision = services_of(app).snapshots.usable().revision
        preview = await client.put(
            "/api/registry", params={"dry_run": "true"}, json=_json_ready(seed_document()), headers=admin_headers
        )
        assert preview.status_code == 200, preview.text
        assert "Registry-Revision" not in preview.headers
        assert services_of(app).snapshots.usable().revision == revision


def _json_ready(document: dict[str, Any]) -> Any:
    import json

    return json.loads(json.dumps(document, default=str))


async def test_an_import_confirmed_in_the_ui_is_obeyed_by_the_guard_when_the_page_answers(ui_client, guard_headers):
    await as_user(ui_client, "lena@offix.example")
    previewed = await preview(ui_client, await seed_with_one_party_removed_and_one_renamed(ui_client))
    assert previewed.status_code == 200, previewed.text

    confirmed = await confirm(ui_client, previewed)

    assert confirmed.status_code in (200, 303), confirmed.text
    assert confirmed.headers["Registry-Guard-Revision"] == confirmed.headers["Registry-Revision"]
    answer = (await ui_client.post("/api/guard/check", json=share_to("uppbordsverket"), headers=guard_headers)).json()
    assert [r["code"] for r in answer["reasons"]][:1] == ["RECIPIENT_UNKNOWN"]
