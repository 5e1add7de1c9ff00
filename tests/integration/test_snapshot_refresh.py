"""The guard's snapshot (DESIGN §4.5): refreshed across instances by LISTEN/NOTIFY, fail closed when stale."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import SERVER_URL, load_document, seed_document
from tests.conftest import test_settings as settings_for
from web.app import create_app
from web.composition import services_of

# Kvarnberg's DPA runs until terminated (expires_on null), so this share is allowed on whatever day the suite
# runs; a seed agreement with an end date would lapse under the tests one day.
SHARE = {
    "recipient": "kvarnberg",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name", "user.contact.address"],
    "destination": "SE",
    "data_subject": "customer",
}


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def admin_sql(statement: str) -> None:
    connection = await asyncpg.connect(SERVER_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def cut_off(url: str) -> None:
    """Make the database unreachable for the app: refuse new connections and end the open ones."""
    name = database_name(url)
    await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


async def restore(url: str) -> None:
    await admin_sql(f'ALTER DATABASE "{database_name(url)}" ALLOW_CONNECTIONS true')


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        yield client


async def poll_until(predicate, *, within: float, every: float = 0.02):
    """Call `predicate` until it returns a truthy value or the deadline passes; return its last value."""
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every)


async def test_a_change_written_through_one_instance_is_obeyed_by_another_within_a_second(
    seeded_database, writer_headers, guard_headers
):
    # A long poll interval: only the LISTEN/NOTIFY path can deliver the change within the bound.
    settings = settings_for(seeded_database, snapshot_poll_seconds=300.0)
    async with running(create_app(settings)) as instance_a, running(create_app(settings)) as instance_b:
        before = await instance_b.post("/api/guard/check", json=SHARE, headers=guard_headers)
        assert before.json()["allowed"] is True
        party = (await instance_a.get("/api/parties/kvarnberg", headers=writer_headers)).json()

        deactivated = await instance_a.delete(
            "/api/parties/kvarnberg", params={"version": party["version"]}, headers=writer_headers
        )
        assert deactivated.status_code == 200, deactivated.text
        written_at = time.monotonic()

        async def instance_b_denies():
            body = (await instance_b.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()
            return not body["allowed"] and "RECIPIENT_INACTIVE" in {r["code"] for r in body["reasons"]}

        obeyed = await poll_until(instance_b_denies, within=1.0)
        waited = time.monotonic() - written_at
        assert obeyed, f"instance B still allowed the share {waited:.2f} s after the change"
        after = await instance_b.post("/api/guard/check", json=SHARE, headers=guard_headers)
        assert after.json()["ruleset"] != before.json()["ruleset"]


async def test_the_ruleset_names_the_registry_state_and_is_the_same_on_every_instance(seeded_database, guard_headers):
    settings = settings_for(seeded_database)
    async with running(create_app(settings)) as instance_a, running(create_app(settings)) as instance_b:
        ruleset_a = (await instance_a.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()["ruleset"]
        ruleset_b = (await instance_b.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()["ruleset"]
    assert ruleset_a == ruleset_b
    assert ruleset_a.startswith("eea-only@")


async def test_a_registry_import_reaches_the_guard_without_a_restart(database, admin_headers, guard_headers):
    settings = settings_for(database, snapshot_poll_seconds=300.0)
    async with running(create_app(settings)) as client:
        unknown = (await client.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()
        assert [r["code"] for r in unknown["reasons"]] == ["RECIPIENT_UNKNOWN"]
        document = json.loads(json.dumps(seed_document(), default=str))  # dates as ISO strings
        imported = await client.put("/api/registry", json=document, headers=admin_headers)
        assert imported.status_code == 200, imported.text

        async def allowed():
            return (await client.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()["allowed"]

        assert await poll_until(allowed, within=5.0)


async def test_the_guard_fails_closed_when_the_database_is_gone_and_the_snapshot_is_too_old(
    seeded_database, guard_headers
):
    settings = settings_for(seeded_database, snapshot_max_age_seconds=2.0, snapshot_poll_seconds=0.2)
    async with running(create_app(settings)) as client:
        assert (await client.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()["allowed"] is True
        await cut_off(seeded_database)
        try:

            async def refused():
                response = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
                return response if response.status_code == 503 else None

            response = await poll_until(refused, within=15.0, every=0.1)
            assert response is not None, "the guard kept answering with the database gone"
            assert response.json()["allowed"] is False
            batch = await client.post("/api/guard/check-batch", json=[SHARE], headers=guard_headers)
            assert batch.status_code == 503
            assert batch.json()["allowed"] is False
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
        finally:
            await restore(seeded_database)

        async def recovered():
            response = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
            return response.status_code == 200 and response.json()["allowed"]

        assert await poll_until(recovered, within=15.0, every=0.1), "the guard did not recover"
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text


async def test_a_stale_snapshot_is_refused_even_when_the_log_could_still_be_written(seeded_database):
    """The snapshot bound alone closes the guard: here the listener is gone but nothing else is."""
    from guard.snapshot import SnapshotRefresher, SnapshotUnavailable
    from kernel.db import make_engine, make_sessionmaker
    from registry.snapshot_source import RegistryTables

    engine = make_engine(seeded_database, pool_size=1)
    refresher = SnapshotRefresher(
        make_sessionmaker(engine), seeded_database, source=RegistryTables(), max_age_seconds=0.3, poll_seconds=300.0
    )
    try:
        await refresher.reload()  # loaded, but never listening
        assert refresher.usable().snapshot.parties["kvarnberg"].active
        await asyncio.sleep(0.4)
        try:
            refresher.usable()
        except SnapshotUnavailable as exc:
            assert "old" in str(exc)
        else:
            raise AssertionError("a snapshot past its age bound, unconfirmed by a listener, was used")
    finally:
        await refresher.stop()
        await engine.dispose()


async def test_a_guard_that_never_loaded_the_registry_answers_503(database, guard_headers):
    await cut_off(database)
    try:
        app = create_app(settings_for(database))
        async with running(app) as client:
            response = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
            assert response.status_code == 503
            assert response.json()["allowed"] is False
    finally:
        await restore(database)


async def test_bursts_of_registry_changes_coalesce_into_few_reloads(seeded_database, guard_headers):
    settings = settings_for(seeded_database, snapshot_poll_seconds=300.0)
    app = create_app(settings)
    async with running(app) as client:
        await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
        refresher = services_of(app).snapshots
        reloads_before = refresher.reloads
        connection = await asyncpg.connect(seeded_database.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            async with connection.transaction():
                for i in range(200):
                    await connection.execute(f"SELECT pg_notify('registry_changed', 'burst {i}')")
            for i in range(50):
                await connection.execute(f"SELECT pg_notify('registry_changed', 'separate {i}')")
        finally:
            await connection.close()
        await asyncio.sleep(0.5)
        # 250 notices: the one transaction's 200 arrive together; the 50 separate ones overlap reloads.
        assert refresher.reloads - reloads_before < 60
        assert refresher.reloads > reloads_before


async def test_the_doc_loader_used_by_other_tests_also_notifies(seeded_database, guard_headers):
    """load_document goes through import_registry, which NOTIFYs: a running guard follows it."""
    settings = settings_for(seeded_database, snapshot_poll_seconds=300.0)
    async with running(create_app(settings)) as client:
        document = seed_document()
        for party in document["parties"]:
            if party["key"] == "kvarnberg":
                party["locations"].append({"territory": "US", "kind": "support_access"})
        await load_document(seeded_database, document)

        async def denied_outside_eea():
            body = (await client.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()
            return "LOCATION_OUTSIDE_EEA" in {r["code"] for r in body["reasons"]}

        assert await poll_until(denied_outside_eea, within=1.0)


async def test_the_periodic_check_confirms_an_unchanged_registry_without_reloading_it(seeded_database):
    from guard.snapshot import SnapshotRefresher
    from kernel.db import make_engine, make_sessionmaker
    from registry.snapshot_source import RegistryTables

    engine = make_engine(seeded_database, pool_size=2)
    refresher = SnapshotRefresher(
        make_sessionmaker(engine), seeded_database, source=RegistryTables(), max_age_seconds=30.0, poll_seconds=0.05
    )
    try:
        await refresher.start()
        await asyncio.sleep(0.5)  # about ten periodic checks
        assert refresher.reloads == 1  # the load at start, nothing since
        age = refresher.age_seconds()
        assert age is not None and age < 0.3, "each check confirms the snapshot as current"
    finally:
        await refresher.stop()
        await engine.dispose()


async def test_a_change_whose_notice_was_lost_reaches_the_guard_through_the_periodic_check(seeded_database):
    """A write that raised the revision but whose NOTIFY never arrived (simulated: no NOTIFY at all)."""
    from guard.snapshot import SnapshotRefresher
    from kernel.db import make_engine, make_sessionmaker
    from registry.snapshot_source import RegistryTables

    engine = make_engine(seeded_database, pool_size=2)
    refresher = SnapshotRefresher(
        make_sessionmaker(engine), seeded_database, source=RegistryTables(), max_age_seconds=30.0, poll_seconds=0.05
    )
    try:
        await refresher.start()
        assert refresher.usable().snapshot.parties["kvarnberg"].active
        connection = await asyncpg.connect(seeded_database.replace("postgresql+asyncpg", "postgresql"))
        try:
            async with connection.transaction():
                await connection.execute("UPDATE party SET active = false WHERE key = 'kvarnberg'")
                await connection.execute("UPDATE registry_revision SET revision = revision + 1 WHERE id = 1")
        finally:
            await connection.close()

        async def deactivated():
            return not refresher.usable().snapshot.parties["kvarnberg"].active

        assert await poll_until(deactivated, within=2.0)
        assert refresher.reloads == 2
    finally:
        await refresher.stop()
        await engine.dispose()


async def test_a_reload_held_up_by_a_lock_closes_the_guard_once_the_snapshot_passes_its_age_bound(
    seeded_database, guard_headers
):
    """A change is committed and announced, but the reload it sets off waits on a lock on `agreement`: the
    listener is up and no reload has failed yet, and still the old snapshot must not outlive its bound."""
    settings = settings_for(seeded_database, snapshot_max_age_seconds=2.0, snapshot_poll_seconds=5.0)
    plain_url = seeded_database.replace("postgresql+asyncpg://", "postgresql://")
    async with running(create_app(settings)) as client:
        assert (await client.post("/api/guard/check", json=SHARE, headers=guard_headers)).json()["allowed"] is True
        locker = await asyncpg.connect(plain_url)
        locking = locker.transaction()
        await locking.start()
        try:
            await locker.execute("LOCK TABLE agreement IN ACCESS EXCLUSIVE MODE")
            # Deactivating a party touches neither the locked table nor its lock: the change commits at once.
            writer = await asyncpg.connect(plain_url)
            try:
                async with writer.transaction():
                    await writer.execute("UPDATE party SET active = false WHERE key = 'kvarnberg'")
                    await writer.execute("UPDATE registry_revision SET revision = revision + 1 WHERE id = 1")
                    await writer.execute("SELECT pg_notify('registry_changed', 'kvarnberg deactivated')")
            finally:
                await writer.close()

            async def refused():
                response = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
                return response if response.status_code == 503 else None

            response = await poll_until(refused, within=20.0, every=0.1)
            assert response is not None, "the guard kept deciding on a snapshot it could not refresh"
            assert response.json()["allowed"] is False
            ready = await client.get("/health/ready")
            assert ready.status_code == 503, ready.text
            assert ready.json()["guard"]["status"] == "unavailable"
        finally:
            await locking.rollback()
            await locker.close()

        async def denied_after_the_lock_is_gone():
            response = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
            return response.status_code == 200 and response.json()["allowed"] is False

        # The refresher's statements give up on the lock and try again: it recovers once the lock is released.
        assert await poll_until(denied_after_the_lock_is_gone, within=20.0, every=0.1)
        assert (await client.get("/health/ready")).status_code == 200


async def test_every_503_of_a_guard_route_says_not_allowed_when_the_database_is_unreachable(
    seeded_database, guard_headers
):
    """Failures from outside the guard's handler too: the API key lookup in the authentication middleware,
    connections refused, a pool run dry by many callers at once."""
    settings = settings_for(seeded_database, snapshot_max_age_seconds=2.0, snapshot_poll_seconds=0.2)
    name = database_name(seeded_database)
    async with running(create_app(settings)) as client:
        first = await client.post("/api/guard/check", json=SHARE, headers=guard_headers)
        assert first.status_code == 200, first.text
        await cut_off(seeded_database)
        try:
            answers = []
            deadline = time.monotonic() + 4.0
            round_number = 0
            while time.monotonic() < deadline:
                round_number += 1
                # A key this instance has not cached: its lookup must reach the (unreachable) database.
                unknown = {"Authorization": f"Bearer ofx_not-cached-{round_number}"}
                answers += await asyncio.gather(
                    *(client.post("/api/guard/check", json=SHARE, headers=guard_headers) for _ in range(10)),
                    *(client.post("/api/guard/check-batch", json=[SHARE], headers=guard_headers) for _ in range(5)),
                    *(client.post("/api/guard/check", json=SHARE, headers=unknown) for _ in range(10)),
                    *(client.post("/api/guard/check-batch", json=[SHARE], headers=unknown) for _ in range(5)),
                    # Connections ended while requests use them, as when the server goes down under load.
                    admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
                )
        finally:
            await restore(seeded_database)
    answers = [a for a in answers if a is not None]
    failures = [a for a in answers if a.status_code >= 500]
    assert failures, "the database was unreachable and no guard request failed"
    assert {a.status_code for a in failures} == {503}, {a.status_code for a in failures}
    lacking = [a.text for a in failures if a.json().get("allowed") is not False]
    assert not lacking, f"{len(lacking)} of {len(failures)} 503s lacked allowed: false, e.g. {lacking[:3]}"


async def test_every_503_of_a_guard_route_says_not_allowed_when_the_database_server_refuses_connections():
    """Nothing listens where the database should be: the connection attempt fails with the operating system's
    ConnectionRefusedError, raised in the authentication middleware's key lookup, before the guard's handler."""
    from tests.conftest import free_port

    settings = settings_for(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    async with running(create_app(settings)) as client:
        headers = {"Authorization": "Bearer ofx_any-key"}
        answers = [
            await client.post("/api/guard/check", json=SHARE, headers=headers),
            await client.post("/api/guard/check-batch", json=[SHARE], headers=headers),
        ]
    assert [a.status_code for a in answers] == [503, 503], [a.text for a in answers]
    assert [a.json().get("allowed") for a in answers] == [False, False], [a.text for a in answers]
