"""The decision log (DESIGN §4.4): group commit, the hash chain, tamper detection, and its listing."""

import asyncio
import contextlib
import getpass
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from cli.main import main
from kernel.db import make_engine, make_sessionmaker
from ledger.append import DecisionLogWriter, append_decisions
from ledger.entries import DecisionEntry
from ledger.verify import verify_log
from tests.conftest import bearer, make_key
from tests.integration.registry_fixtures import append_history

REPO = Path(__file__).resolve().parents[2]
ALLOWED_SHARE = {
    "recipient": "nordfrakt",
    "purpose": "essential.service.operations",
    "data_categories": ["user.name", "user.contact.address"],
}


def plain_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def entry(recipient: str = "nordfrakt", *, allowed: bool = True, at: datetime | None = None) -> DecisionEntry:
    return DecisionEntry(
        decision_id=uuid.uuid4(),
        decided_at=at or datetime.now(UTC),
        caller="test",
        request={"recipient": recipient, "purpose": "essential.service.operations", "data_categories": ["user.name"]},
        allowed=allowed,
        reasons=[] if allowed else [{"code": "RECIPIENT_UNKNOWN", "message": "unknown"}],
        warnings=[],
        agreement="nordfrakt-dpa-2024" if allowed else None,
        ruleset="eea-only@test",
    )


async def write_entries(url: str, count: int) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await append_decisions(session, [entry() for _ in range(count)])
    finally:
        await engine.dispose()


async def verify(url: str):
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            return await verify_log(session)
    finally:
        await engine.dispose()


async def sql(url: str, statement: str) -> None:
    connection = await asyncpg.connect(plain_url(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


LOG_TABLES = ("guard_decision", "guard_log_writer", "guard_log_leaf", "guard_checkpoint")


async def tamper(url: str, *statements: str) -> None:
    """What a database superuser (or the tables' owner) can do: lift the append-only triggers, run the
    statements, and put the triggers back, all in one transaction."""
    connection = await asyncpg.connect(plain_url(url))
    try:
        async with connection.transaction():
            for table in LOG_TABLES:
                await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for statement in statements:
                await connection.execute(statement)
            for table in LOG_TABLES:
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await connection.close()


def run_cli(url: str, *args: str):
    """The `registry` command in-process (click's runner), in a thread: the CLI runs its own event loop."""
    return CliRunner().invoke(main, list(args), env={"REGISTRY_DATABASE_URL": plain_url(url)}, catch_exceptions=False)


# --- Group commit and the chain ------------------------------------------------------------------------


@asynccontextmanager
async def running_writers(database: str, count: int = 1, **options) -> AsyncIterator[list[DecisionLogWriter]]:
    writers = [DecisionLogWriter(plain_url(database), **{"batch_max": 10, **options}) for _ in range(count)]
    for writer in writers:
        writer.start()
    try:
        yield writers
    finally:
        for writer in writers:
            await writer.stop()


async def assert_intact(database: str, entries: int) -> None:
    result = await verify(database)
    assert result.ok, result.describe()
    assert result.entries == entries


@asynccontextmanager
async def log_locked(database: str) -> AsyncIterator[None]:
    """Another transaction holds the log's table locked against inserts: no append can finish until it ends."""
    blocker = await asyncpg.connect(plain_url(database))
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE guard_decision IN SHARE MODE")
            yield
    finally:
        await blocker.close()


async def test_concurrent_appends_share_commits_and_keep_one_intact_chain(database):
    async with running_writers(database, batch_max=50) as (writer,):
        await asyncio.gather(*(writer.append([entry()]) for _ in range(200)))
    assert writer.entries_written == 200
    assert writer.commits == 4  # 200 concurrent requests, at most 50 per commit
    await assert_intact(database, 200)


async def test_two_instances_appending_at_once_keep_a_chain_each_and_the_log_verifies_whole(database):
    async with running_writers(database, 2, batch_max=7) as writers:
        sequences = await asyncio.gather(*(writers[i % 2].append([entry()]) for i in range(120)))
    await assert_intact(database, 120)
    assert len({s for (s,) in sequences}) == 120  # every entry its own place in the whole log
    connection = await asyncpg.connect(plain_url(database))
    try:
        heads = await connection.fetch("SELECT writer, last_wseq FROM guard_log_writer ORDER BY writer")
    finally:
        await connection.close()
    assert sorted((r["writer"], r["last_wseq"]) for r in heads) == sorted((w.writer, 60) for w in writers)


async def test_one_writer_appends_while_another_writers_head_is_held_locked(database):
    """Writers share no row: a transaction holding one writer's head does not hold up another's appends."""
    async with running_writers(database, 2, append_timeout=5.0) as (held, free):
        await held.append([entry()])
        blocker = await asyncpg.connect(plain_url(database))
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT * FROM guard_log_writer WHERE writer = $1 FOR UPDATE", held.writer)
                waiting = asyncio.ensure_future(held.append([entry()]))
                assert len(await free.append([entry(), entry()])) == 2
                assert not waiting.done()  # (the held one waits for the lock, as it must)
        finally:
            await blocker.close()
        await waiting
    await assert_intact(database, 4)


async def test_a_second_group_commit_goes_out_while_the_first_is_still_in_flight(database):
    """With two chains a check waits for at most the commit it is in, not for one already under way too."""
    async with running_writers(database, chains=2, append_timeout=10.0) as (writer,):
        await writer.append([entry()])  # (registers the first chain, which a lone check always goes to)
        first_chain, second_chain = writer.writers
        blocker = await asyncpg.connect(plain_url(database))
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT * FROM guard_log_writer WHERE writer = $1 FOR UPDATE", first_chain)
                stuck = asyncio.ensure_future(writer.append([entry()]))
                await asyncio.sleep(0.2)  # (lets the writer hand it to the first chain, whose commit now waits)
                assert len(await writer.append([entry(), entry()])) == 2  # the second chain commits meanwhile
                assert not stuck.done()
                assert writer.most_in_flight == 2
        finally:
            await blocker.close()
        await stuck
    await assert_intact(database, 4)
    connection = await asyncpg.connect(plain_url(database))
    try:
        heads = dict(await connection.fetch("SELECT writer, last_wseq FROM guard_log_writer"))
    finally:
        await connection.close()
    assert heads == {first_chain: 2, second_chain: 2}


async def test_with_one_chain_a_commit_waits_for_the_one_in_flight(database):
    async with running_writers(database, chains=1, append_timeout=10.0) as (writer,):
        await writer.append([entry()])
        blocker = await asyncpg.connect(plain_url(database))
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT * FROM guard_log_writer WHERE writer = $1 FOR UPDATE", writer.writer)
                stuck = asyncio.ensure_future(writer.append([entry()]))
                await asyncio.sleep(0.2)
                waiting = asyncio.ensure_future(writer.append([entry()]))
                await asyncio.sleep(0.2)
                assert not stuck.done() and not waiting.done()
        finally:
            await blocker.close()
        await asyncio.gather(stuck, waiting)
        assert writer.most_in_flight == 1
    await assert_intact(database, 3)


async def test_a_writer_that_reconnects_rereads_its_own_head_and_continues_its_chain(database):
    async with running_writers(database) as (writer,):
        await writer.append([entry() for _ in range(3)])
        await writer.append([entry() for _ in range(2)])  # the head is where it left it: no read
        assert writer.head_reads == 1
        await writer._disconnect()  # as after a failed append, whose outcome is unknown
        await writer.append([entry() for _ in range(2)])
        assert writer.head_reads == 2
        await write_entries(database, 4)  # the CLI appends as a writer of its own meanwhile
        await writer.append([entry()])
    assert writer.entries_written == 8
    await assert_intact(database, 12)


AWKWARD_TEXT = 'quote " backslash \\ slash / tab \t newline \n åäö 中文 🚚 \u2028'


async def test_entries_are_stored_exactly_as_given_whatever_their_text_holds(database):
    """A batch travels to PostgreSQL as one JSON document: escapes, non-ASCII and a 6-digit timestamp
    fraction must come back as they went in, and the stored rows must verify against their hashes."""
    moment = datetime.now(UTC).replace(microsecond=999_999)
    awkward = DecisionEntry(
        decision_id=uuid.uuid4(),
        decided_at=moment,
        caller=AWKWARD_TEXT,
        request={"recipient": AWKWARD_TEXT, "purpose": "p", "data_categories": [AWKWARD_TEXT, "user.name"]},
        allowed=False,
        reasons=[{"code": "RECIPIENT_UNKNOWN", "message": AWKWARD_TEXT, "chain": ["a", AWKWARD_TEXT]}],
        warnings=[{"code": "AGREEMENT_EXPIRING", "message": "x", "days": 3}],
        agreement=AWKWARD_TEXT,
        ruleset="eea-only@test",
    )
    async with running_writers(database) as (writer,):
        await writer.append([awkward, entry()])  # the first append registers the writer
        await writer.append([replace(awkward, decision_id=uuid.uuid4())])  # the one statement after a known head
    await assert_intact(database, 3)
    connection = await asyncpg.connect(plain_url(database))
    try:
        rows = await connection.fetch(
            "SELECT decided_at, caller, recipient, request::text, reasons::text, warnings::text, agreement"
            " FROM guard_decision WHERE seq IN (1, 3) ORDER BY seq"
        )
    finally:
        await connection.close()
    for row in rows:
        assert row["decided_at"] == moment
        assert row["caller"] == row["recipient"] == row["agreement"] == AWKWARD_TEXT
        assert json.loads(row["request"]) == awkward.request
        assert json.loads(row["reasons"]) == awkward.reasons
        assert json.loads(row["warnings"]) == awkward.warnings


async def test_a_writer_whose_connection_was_cut_reconnects_for_the_next_batch(database):
    async with running_writers(database) as (writer,):
        await writer.append([entry()])
        await sql(
            database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'guard-decision-log'"
            " AND datname = current_database()",
        )
        # The cut may be noticed only by the next batch's statement, which then fails with whatever the driver
        # makes of the lost connection (its requests get a 503 from the guard); the next batch reconnects.
        with contextlib.suppress(Exception):
            await writer.append([entry()])
        await writer.append([entry()])
    assert writer.entries_written >= 2
    await assert_intact(database, writer.entries_written)


async def test_a_group_commit_that_cannot_finish_in_time_fails_its_requests_and_the_next_one_succeeds(database):
    async with running_writers(database, append_timeout=0.5) as (writer,):
        async with log_locked(database):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(writer.append([entry(), entry()]), timeout=5.0)
        await writer.append([entry()])
    await assert_intact(database, 1)  # the batch that timed out was never committed


async def test_a_request_waiting_when_the_writer_stops_is_failed_not_left_waiting(database):
    async with log_locked(database):
        async with running_writers(database) as (writer,):
            waiting = asyncio.ensure_future(writer.append([entry()]))
            await asyncio.sleep(0.3)  # its batch is stuck on the locked head
        with pytest.raises(RuntimeError, match="stopped"):
            await asyncio.wait_for(waiting, timeout=5.0)
        with pytest.raises(RuntimeError, match="not running"):
            await writer.append([entry()])


async def test_an_empty_log_is_intact(database):
    result = await verify(database)
    assert result.ok
    assert result.describe() == "log intact: 0 entries"


# --- Tampering through SQL -------------------------------------------------------------------------------


async def test_an_edited_entry_is_named_as_the_first_bad_one(database):
    await write_entries(database, 6)
    await tamper(database, "UPDATE guard_decision SET allowed = NOT allowed WHERE seq = 3")
    await tamper(database, "UPDATE guard_decision SET caller = 'someone-else' WHERE seq = 5")
    result = await verify(database)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "edited" in result.problem


async def test_an_edit_inside_the_json_of_an_entry_is_detected(database):
    await write_entries(database, 4)
    await tamper(
        database, """UPDATE guard_decision SET request = jsonb_set(request, '{recipient}', '"x"') WHERE seq = 2"""
    )
    result = await verify(database)
    assert (result.ok, result.first_bad_seq) == (False, 2)


async def test_a_deleted_entry_is_named_as_the_first_bad_one(database):
    await write_entries(database, 6)
    await tamper(database, "DELETE FROM guard_decision WHERE seq = 4")
    result = await verify(database)
    assert not result.ok
    assert (result.wseq, result.first_bad_seq) == (4, None)  # (gone: it has no seq left to name)
    assert "missing" in result.problem


async def test_deleting_the_newest_entries_is_detected(database):
    await write_entries(database, 6)
    await tamper(database, "DELETE FROM guard_decision WHERE seq >= 5")
    result = await verify(database)
    assert not result.ok
    assert result.wseq == 5
    assert "at its end, are missing" in result.problem


@pytest.mark.parametrize(
    ("writer", "wseq", "prev_hash"),
    [("writer", "6", "hash"), ("'ghost'", "1", "repeat('0', 64)")],
    ids=["after-its-writers-head", "of-a-writer-with-no-head"],
)
async def test_an_inserted_entry_is_named_as_standing_in_no_chain(database, writer, wseq, prev_hash):
    await write_entries(database, 5)
    await sql(
        database,
        "INSERT INTO guard_decision (writer, wseq, decision_id, decided_at, caller, recipient, allowed, request,"
        " reasons, warnings, agreement, ruleset, prev_hash, hash)"
        f" SELECT {writer}, {wseq}, gen_random_uuid(), now(), 'forger', recipient, true, request, '[]', '[]',"
        f" agreement, ruleset, {prev_hash}, repeat('a', 64) FROM guard_decision WHERE seq = 5",
    )
    result = await verify(database)
    assert not result.ok
    assert result.first_bad_seq == 6
    assert "1 entry stands in no writer's chain" in result.problem


async def test_an_entry_replaced_with_a_correctly_rehashed_forgery_breaks_the_next_link(database):
    await write_entries(database, 5)
    engine = make_engine(database, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            from sqlalchemy import select

            from ledger.entries import content_hash, entry_content
            from ledger.tables import GuardDecision

            row = (await session.execute(select(GuardDecision).where(GuardDecision.seq == 2))).scalar_one()
            forged_content = entry_content(
                writer=row.writer,
                wseq=row.wseq,
                decision_id=row.decision_id,
                decided_at=row.decided_at,
                caller=row.caller,
                recipient=row.recipient,
                request=row.request,
                allowed=not row.allowed,
                reasons=row.reasons,
                warnings=row.warnings,
                agreement=row.agreement,
                ruleset=row.ruleset,
            )
            forged = content_hash(forged_content, row.prev_hash)
    finally:
        await engine.dispose()
    await tamper(database, f"UPDATE guard_decision SET allowed = NOT allowed, hash = '{forged}' WHERE seq = 2")
    result = await verify(database)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "link" in result.problem


# --- The command line -------------------------------------------------------------------------------------


async def test_verify_log_exits_zero_on_an_intact_log_and_one_naming_the_entry_after_tampering(database):
    await write_entries(database, 5)
    intact = await asyncio.to_thread(run_cli, database, "guard", "verify-log")
    assert intact.exit_code == 0, intact.output
    assert "log intact: 5 entries" in intact.stdout
    await tamper(database, "UPDATE guard_decision SET ruleset = 'eea-only@other' WHERE seq = 2")
    broken = await asyncio.to_thread(run_cli, database, "guard", "verify-log")
    assert broken.exit_code == 1
    assert "entry 2" in broken.stderr


async def test_the_installed_registry_command_reports_a_deleted_entry(database):
    await write_entries(database, 3)
    await tamper(database, "DELETE FROM guard_decision WHERE seq = 2")
    env = {**os.environ, "REGISTRY_DATABASE_URL": plain_url(database)}
    registry = Path(sys.executable).parent / "registry"
    completed = await asyncio.to_thread(
        subprocess.run,
        [str(registry), "guard", "verify-log"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "entry 2" in completed.stderr


async def test_guard_check_on_the_command_line_prints_the_decision_and_logs_it(seeded_database):
    allowed = await asyncio.to_thread(
        run_cli,
        seeded_database,
        "guard",
        "check",
        "--recipient",
        "nordfrakt",
        "--purpose",
        "essential.service.operations",
        "--category",
        "user.name",
        "--category",
        "user.contact.address",
        "--destination",
        "SE",
        "--data-subject",
        "customer",
    )
    assert allowed.exit_code == 0, allowed.output
    answer = json.loads(allowed.stdout)
    assert answer["allowed"] is True
    assert answer["agreement"] == "nordfrakt-dpa-2024"
    denied = await asyncio.to_thread(
        run_cli, seeded_database, "guard", "check", "--recipient", "uppbordsverket", "--purpose", "legal",
        "--category", "user.name", "--data-subject", "customer",
    )  # fmt: skip
    assert denied.exit_code == 1
    assert "RECIPIENT_IS_AUTHORITY" in {r["code"] for r in json.loads(denied.stdout)["reasons"]}
    no_subject = await asyncio.to_thread(
        run_cli, seeded_database, "guard", "check", "--recipient", "nordfrakt", "--purpose", "essential.service",
        "--category", "user.name",
    )  # fmt: skip
    assert no_subject.exit_code == 2
    assert "--data-subject" in no_subject.output
    engine = make_engine(seeded_database, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            from ledger.queries import list_decisions

            found = await list_decisions(session)
            items, total = found.items, found.total
    finally:
        await engine.dispose()
    assert total == 2
    assert items[1]["decision_id"] == answer["decision_id"]
    assert {item["caller"] for item in items} == {f"cli:{getpass.getuser()}"}
    assert (await verify(seeded_database)).ok


async def test_guard_check_on_the_command_line_rejects_a_structurally_bad_request(seeded_database):
    result = await asyncio.to_thread(
        run_cli, seeded_database, "guard", "check", "--recipient", "n" * 201, "--purpose", "x", "--category", "y",
        "--data-subject", "customer",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "recipient" in result.stderr


# --- GET /api/guard/decisions -----------------------------------------------------------------------------


@pytest.fixture
async def logged_decisions(database):
    """Ten decisions: nordfrakt allowed (6), kvarnberg denied (4), an hour apart going back from now."""
    now = datetime.now(UTC)
    entries = [entry("nordfrakt", at=now - timedelta(hours=9 - i)) for i in range(6)]
    entries += [entry("kvarnberg", allowed=False, at=now - timedelta(hours=3 - i)) for i in range(4)]
    engine = make_engine(database, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await append_history(session, entries)
    finally:
        await engine.dispose()
    return now


async def test_decisions_are_listed_newest_first_with_a_total(client, reader_headers, logged_decisions):
    response = await client.get("/api/guard/decisions", headers=reader_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 10
    assert [d["seq"] for d in body["items"]] == list(range(10, 0, -1))


async def test_decisions_filter_by_recipient_and_outcome(client, reader_headers, logged_decisions):
    by_recipient = (
        await client.get("/api/guard/decisions", params={"recipient": "kvarnberg"}, headers=reader_headers)
    ).json()
    assert by_recipient["total"] == 4
    assert {d["recipient"] for d in by_recipient["items"]} == {"kvarnberg"}
    allowed = (await client.get("/api/guard/decisions", params={"outcome": "allowed"}, headers=reader_headers)).json()
    assert allowed["total"] == 6
    assert all(d["allowed"] for d in allowed["items"])
    none = (
        await client.get(
            "/api/guard/decisions", params={"recipient": "nordfrakt", "outcome": "denied"}, headers=reader_headers
        )
    ).json()
    assert none["total"] == 0


async def test_decisions_filter_by_time_range_and_paginate(client, reader_headers, logged_decisions):
    now = logged_decisions
    params = {
        "from": (now - timedelta(hours=5, minutes=30)).isoformat(),
        "to": (now - timedelta(hours=1, minutes=30)).isoformat(),
        "limit": 2,
        "offset": 1,
    }
    body = (await client.get("/api/guard/decisions", params=params, headers=reader_headers)).json()
    # Decided 5, 4 (nordfrakt) and 3, 2 (kvarnberg) hours ago: four in range, page of two after the newest.
    assert body["total"] == 4
    assert [d["seq"] for d in body["items"]] == [7, 6]


@pytest.mark.parametrize(
    "params", [{"outcome": "maybe"}, {"from": "yesterday"}, {"limit": 0}, {"limit": 501}, {"offset": -1}]
)
async def test_bad_decision_filters_are_a_400(client, reader_headers, params):
    response = await client.get("/api/guard/decisions", params=params, headers=reader_headers)
    assert response.status_code == 400


async def test_the_decision_log_needs_the_read_scope(client, database):
    checker = bearer(await make_key(database, "webshop-only", "guard:check"))
    assert (await client.get("/api/guard/decisions", headers=checker)).status_code == 403
    assert (await client.get("/api/guard/decisions")).status_code == 401
