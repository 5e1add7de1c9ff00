"""Known-stale allows (issue 33, finding 8), on the real PostgreSQL: once told the registry moved, the guard
decides on nothing older; a deactivation made by plain SQL reaches it through a trigger that notifies."""

import asyncpg

from tests.conftest import test_settings as settings_for
from tests.integration.test_decision_log import plain_url
from tests.integration.test_snapshot_refresh import SHARE, poll_until, running
from web.app import create_app
from web.composition import services_of


async def test_once_told_the_registry_moved_the_guard_allows_nothing_on_its_old_snapshot(
    seeded_database, guard_headers
):
    # A 30 s age bound: before, the old snapshot went on allowing for up to all of it.
    app = create_app(settings_for(seeded_database, snapshot_max_age_seconds=30.0, snapshot_poll_seconds=300.0))
    async with running(app) as client:
        assert (await client.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()["allowed"] is True
        locker = await asyncpg.connect(plain_url(seeded_database))
        locking = locker.transaction()
        await locking.start()
        try:
            await locker.execute("LOCK TABLE agreement IN ACCESS EXCLUSIVE MODE")  # the catch-up cannot finish
            writer = await asyncpg.connect(plain_url(seeded_database))
            try:
                async with writer.transaction():
                    await writer.execute("UPDATE party SET active = false WHERE key = 'kvarnberg'")
                    revision = await writer.fetchval(
                        "UPDATE registry_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision"
                    )
                    await writer.execute(f"SELECT pg_notify('registry_changed', 'r{revision} kvarnberg')")
            finally:
                await writer.close()
            refresher = services_of(app).snapshots

            async def told():
                return refresher.noticed_revision >= revision

            assert await poll_until(told, within=10.0)
            for _ in range(3):
                answer = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
                assert answer.json()["allowed"] is False, answer.text
                assert answer.status_code == 503
                assert f"moved to revision {revision}" in answer.json()["detail"]
        finally:
            await locking.rollback()
            await locker.close()

        async def denied_as_inactive():
            answer = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
            return answer.status_code == 200 and "RECIPIENT_INACTIVE" in {r["code"] for r in answer.json()["reasons"]}

        assert await poll_until(denied_as_inactive, within=20.0, every=0.1)


async def test_a_deactivation_by_plain_sql_reaches_the_guard_through_a_trigger_that_notifies(
    seeded_database, guard_headers
):
    # No periodic check or full reload within the test: only the trigger's notice can deliver the change.
    settings = settings_for(seeded_database, snapshot_poll_seconds=300.0, snapshot_full_reload_seconds=3600.0)
    async with running(create_app(settings)) as client:
        assert (await client.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()["allowed"] is True
        connection = await asyncpg.connect(plain_url(seeded_database))
        try:
            await connection.execute("UPDATE party SET active = false WHERE key = 'kvarnberg'")  # nothing else
        finally:
            await connection.close()

        async def denied_as_inactive():
            answer = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
            return answer.status_code == 200 and "RECIPIENT_INACTIVE" in {r["code"] for r in answer.json()["reasons"]}

        assert await poll_until(denied_as_inactive, within=10.0, every=0.05)


async def test_a_write_through_the_service_sends_its_own_notice_only(seeded_database, writer_headers):
    listener = await asyncpg.connect(plain_url(seeded_database))
    notices: list[str] = []
    await listener.add_listener("registry_changed", lambda *args: notices.append(args[3]))
    try:
        async with running(create_app(settings_for(seeded_database))) as client:
            party = (await client.get("/api/parties/kvarnberg", headers=writer_headers)).json()
            deactivated = await client.delete(
                "/api/parties/kvarnberg", params={"version": party["version"]}, headers=writer_headers
            )
            assert deactivated.status_code == 200, deactivated.text

            async def heard():
                return notices

            assert await poll_until(heard, within=5.0)
        assert len(notices) == 1 and notices[0].startswith("r")  # its revision: applied, not a full reload
    finally:
        await listener.close()
