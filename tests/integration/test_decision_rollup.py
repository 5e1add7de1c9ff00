"""The decision log's rollup (ledger/rollup.py) on the real PostgreSQL: what the checkpoint writer counts as it
seals, plus the unsealed tail counted directly, equals a direct count of the log, for any period, after seals,
across writers and restarts; trials stay out, erasures change nothing; the rollup is checked and recounted by
`registry guard rollup`; pages of a period that ended in the past are the entries a direct query lists."""

import json
import random
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import ledger.queries
from guard.subjects import SubjectKey
from kernel.db import make_engine, make_sessionmaker
from ledger.checkpoint import load_or_create_signer
from ledger.entries import DecisionEntry
from ledger.rollup import decision_counts, rollup_differences
from ledger.seal import write_checkpoint
from registry.services.subjects import erase_subject
from tests.integration.registry_fixtures import append_history
from tests.integration.test_decision_log import plain_url
from tests.integration.test_decision_log_audit import run

START = datetime(2026, 3, 1, 20, tzinfo=UTC)  # evening: the days below straddle UTC and Stockholm midnights
RECIPIENTS = ["nordfrakt", "kvarnberg", "klarsignal"]
PURPOSES = ["essential.service.operations", "marketing.advertising"]
CATEGORIES = ["user.name", "user.contact.email", "user.contact.address"]


def entry(rng: random.Random, at: datetime, *, trial: bool = False, subject: str | None = None) -> DecisionEntry:
    allowed = rng.random() > 0.3
    request: dict[str, Any] = {
        "recipient": rng.choice(RECIPIENTS),
        "purpose": rng.choice(PURPOSES),
        "data_categories": rng.sample(CATEGORIES, rng.randint(1, 2)),
    }
    if rng.random() > 0.2:  # some requests name no destination
        request["destination"] = rng.choice(["SE", "NO", "US"])
    return DecisionEntry(
        decision_id=uuid.uuid4(),
        decided_at=at,
        caller="test",
        request=request,
        allowed=allowed,
        reasons=[] if allowed else [{"code": "RECIPIENT_UNKNOWN", "message": "unknown"}],
        warnings=[],
        agreement=None,
        ruleset="eea-only@test",
        trial=trial,
        subject_digest=subject,
        subject_salt=None if subject is None else uuid.uuid4().hex,
    )


def spread(rng: random.Random, count: int, days: float, **kwargs: Any) -> list[DecisionEntry]:
    """Entries over `days` days from START, in rising order but each up to 40 minutes out of it."""
    return [
        entry(rng, START + timedelta(days=days * i / count, minutes=rng.uniform(-40, 40)), **kwargs)
        for i in range(count)
    ]


async def log(url: str, entries: list[DecisionEntry]) -> None:
    """Append `entries` as a writer of their own (each call another writer, as instances are)."""
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await append_history(session, entries)
    finally:
        await engine.dispose()


async def seal(url: str, key_file: Path) -> int:
    """A checkpoint on a connection of its own (as the worker process writes them); its size."""
    connection = await asyncpg.connect(plain_url(url))
    try:
        written = await write_checkpoint(connection, load_or_create_signer(key_file, "offix-registry/guard-decisions"))
    finally:
        await connection.close()
    return written.checkpoint.size


async def counted(url: str, first: datetime, after: datetime) -> dict[str, Any]:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            counts = await decision_counts(session, first, after)
    finally:
        await engine.dispose()
    return {
        "recipients": {key: asdict(value) for key, value in counts.recipients.items()},
        "by_purpose": counts.by_purpose,
    }


async def counted_directly(url: str, first: datetime, after: datetime) -> dict[str, Any]:
    """The same figures counted from the log's entries alone, in Python."""
    connection = await asyncpg.connect(plain_url(url))
    try:
        rows = await connection.fetch(
            "SELECT seq, decision_id::text AS id, decided_at, recipient, allowed, request::text AS request"
            " FROM guard_decision WHERE decided_at >= $1 AND decided_at < $2 AND NOT trial ORDER BY seq",
            first,
            after,
        )
    finally:
        await connection.close()
    recipients: dict[str, dict[str, Any]] = {}
    by_purpose: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        request = json.loads(row["request"])
        mine = recipients.setdefault(
            row["recipient"],
            {
                "allowed": 0,
                "denied": 0,
                "last_share_seq": None,
                "last_share_at": None,
                "last_share_id": None,
                "destinations": set(),
                "categories": set(),
            },
        )
        allowed, denied = by_purpose.get((row["recipient"], request.get("purpose", "")), (0, 0))
        if row["allowed"]:
            mine["allowed"] += 1
            allowed += 1
            mine["last_share_seq"], mine["last_share_id"] = row["seq"], row["id"]
            mine["last_share_at"] = max(filter(None, [mine["last_share_at"], row["decided_at"]]))
            if "destination" in request:
                mine["destinations"].add(request["destination"])
            mine["categories"].update(request["data_categories"])
        else:
            mine["denied"] += 1
            denied += 1
        by_purpose[(row["recipient"], request.get("purpose", ""))] = (allowed, denied)
    return {"recipients": recipients, "by_purpose": by_purpose}


async def differences(url: str) -> list[str]:
    connection = await asyncpg.connect(plain_url(url))
    try:
        return await rollup_differences(connection)
    finally:
        await connection.close()


# Periods: whole UTC days, Stockholm days (an hour off UTC's), partial days, one inside a day, none at all.
PERIODS = [
    (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)),
    (datetime(2026, 3, 1, 23, tzinfo=UTC), datetime(2026, 3, 4, 23, tzinfo=UTC)),
    (START + timedelta(hours=1, minutes=7), START + timedelta(days=3, hours=2, minutes=13)),
    (START + timedelta(days=1, hours=2), START + timedelta(days=1, hours=9)),
    (datetime(2020, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)),
    (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),
    # Whole months inside (April, from its months' rows), and partial ones on either side.
    (datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 5, 10, tzinfo=UTC)),
    (datetime(2026, 3, 31, 22, tzinfo=UTC), datetime(2026, 5, 31, 22, tzinfo=UTC)),  # Stockholm's April and May
    (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
]


async def test_the_counts_equal_a_direct_count_with_sealed_and_unsealed_entries_of_two_writers_and_trials(
    database, tmp_path
):
    rng = random.Random(27)
    key_file = tmp_path / "log-signing.key"
    await log(database, spread(rng, 150, 4) + spread(rng, 200, 80))
    await log(database, spread(rng, 120, 4) + spread(rng, 20, 4, trial=True))  # a second writer
    await seal(database, key_file)
    await log(database, spread(rng, 60, 4))  # sealed by the second checkpoint
    await seal(database, key_file)
    await log(database, spread(rng, 40, 4) + spread(rng, 30, 80) + spread(rng, 5, 4, trial=True))  # not sealed yet
    assert await differences(database) == []
    for first, after in PERIODS:
        assert await counted(database, first, after) == await counted_directly(database, first, after), (first, after)
    whole = await counted(database, *PERIODS[4])
    assert sum(r["allowed"] + r["denied"] for r in whole["recipients"].values()) == 600  # trials not among them


async def test_a_checkpoint_after_a_restart_or_a_full_rehash_counts_only_what_it_newly_seals(database, tmp_path):
    rng = random.Random(3)
    key_file = tmp_path / "log-signing.key"
    await log(database, spread(rng, 40, 3) + spread(rng, 40, 70))
    await seal(database, key_file)
    # The last checkpoint's stored subtrees no longer match it: the next one rehashes every leaf from the start.
    connection = await asyncpg.connect(plain_url(database))
    try:
        async with connection.transaction():
            await connection.execute("ALTER TABLE guard_checkpoint DISABLE TRIGGER USER")
            await connection.execute("UPDATE guard_checkpoint SET subtrees = '[]'::jsonb")
            await connection.execute("ALTER TABLE guard_checkpoint ENABLE TRIGGER USER")
    finally:
        await connection.close()
    await log(database, spread(rng, 30, 3))
    assert await seal(database, key_file) == 110
    await log(database, spread(rng, 10, 3))
    assert await seal(database, key_file) == 120  # a fresh connection: nothing held in memory between them
    assert await seal(database, key_file) == 120  # an unchanged log seals nothing and counts nothing
    assert await differences(database) == []
    for first, after in PERIODS:
        assert await counted(database, first, after) == await counted_directly(database, first, after)


async def test_an_erasure_leaves_the_counts_as_they_were(database, tmp_path):
    rng = random.Random(30)
    key = SubjectKey(b"k" * 32)
    digest = key.digest("anna@example.org")
    await log(database, spread(rng, 40, 2) + spread(rng, 10, 2, subject=digest))
    await seal(database, tmp_path / "log-signing.key")
    await log(database, spread(rng, 5, 2, subject=digest))
    period = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    before = await counted(database, *period)
    engine = make_engine(database, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            erased = await erase_subject(session, key, "anna@example.org", "test")
    finally:
        await engine.dispose()
    assert erased["unlinked_log_entries"] == 15  # the person was unlinked from the entries naming her…
    assert await counted(database, *period) == before == await counted_directly(database, *period)  # …still counted
    assert await differences(database) == []


async def test_registry_guard_rollup_finds_an_edited_rollup_and_rebuilds_it(database, tmp_path):
    rng = random.Random(5)
    key_file = tmp_path / "log-signing.key"
    await log(database, spread(rng, 50, 2))
    await seal(database, key_file)
    agrees = await run(database, key_file, "guard", "rollup")
    assert agrees.exit_code == 0, agrees.output
    connection = await asyncpg.connect(plain_url(database))
    try:
        await connection.execute("UPDATE guard_decision_daily SET decisions = decisions + 1 WHERE allowed")
        await connection.execute("DELETE FROM guard_log_hour WHERE hour = (SELECT max(hour) FROM guard_log_hour)")
    finally:
        await connection.close()
    edited = await run(database, key_file, "guard", "rollup")
    assert edited.exit_code == 1
    assert "guard_decision_daily" in edited.output and "guard_log_hour" in edited.output
    assert "guard_decision_daily_category" not in edited.output  # only what differs is named
    rebuilt = await run(database, key_file, "guard", "rollup", "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "50 sealed entries" in rebuilt.output
    assert await differences(database) == []
    period = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    assert await counted(database, *period) == await counted_directly(database, *period)


async def test_the_article_30_record_counts_sealed_and_unsealed_shares_alike(
    seeded_database, seeded_client, guard_headers, reader_headers, tmp_path
):
    from tests.conftest import SEED_ALLOWED_SHARE

    async def share(**changes: Any) -> None:
        answer = await seeded_client.post(
            "/api/guard/check", json={**SEED_ALLOWED_SHARE, **changes}, headers=guard_headers
        )
        assert answer.status_code == 200, answer.text

    await share()
    await share(recipient="klarsignal", destination="US")
    await seal(seeded_database, tmp_path / "log-signing.key")
    await share(data_categories=["user.contact.phone_number"])
    await share()
    today = datetime.now(UTC).date()
    params = {"from": (today - timedelta(days=2)).isoformat(), "to": (today + timedelta(days=2)).isoformat()}
    record = (await seeded_client.get("/api/records/article-30", params=params, headers=reader_headers)).json()
    by_key = {r["key"]: r["enforcement"] for r in record["recipients"]}
    decisions = (await seeded_client.get("/api/guard/decisions", params={"limit": 500}, headers=reader_headers)).json()[
        "items"
    ]
    assert len(decisions) == 4
    for key, enforcement in by_key.items():
        mine = [d for d in decisions if d["recipient"] == key]
        allowed = [d for d in mine if d["allowed"]]
        assert (enforcement["shares_allowed"], enforcement["shares_denied"]) == (len(allowed), len(mine) - len(allowed))
        assert enforcement["categories_shared"] == sorted({c for d in allowed for c in d["request"]["data_categories"]})
        newest = max(allowed, key=lambda d: d["seq"], default=None)
        assert (enforcement["last_share"] or {}).get("decision_id") == (newest or {}).get("decision_id")
    assert by_key["nordfrakt"]["shares_allowed"] == 3


# --- Pages of a period that ended in the past ---------------------------------------------------------------


async def listed_directly(url: str, since: datetime | None, until: datetime | None) -> list[int]:
    connection = await asyncpg.connect(plain_url(url))
    try:
        rows = await connection.fetch(
            "SELECT seq FROM guard_decision WHERE ($1::timestamptz IS NULL OR decided_at >= $1)"
            " AND ($2::timestamptz IS NULL OR decided_at < $2) ORDER BY seq DESC",
            since,
            until,
        )
    finally:
        await connection.close()
    return [row["seq"] for row in rows]


async def paged(client: Any, headers: dict[str, str], params: dict[str, str], limit: int) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor = None
    for _ in range(500):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/guard/decisions", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["seq"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("tail_limit", [50_000, 5], ids=["bounded", "tail-too-long"])
@pytest.mark.parametrize("sealed_share", [0.0, 0.6, 1.0])
@pytest.mark.parametrize(
    "period",
    [
        (None, START + timedelta(days=2)),  # "up to two days ago"
        (START + timedelta(hours=5), START + timedelta(days=3, minutes=17)),  # across day boundaries
        (None, START + timedelta(days=1, hours=7, minutes=30)),  # ending inside an hour
        (START - timedelta(days=30), START - timedelta(days=29)),  # before the log: empty
        (None, START - timedelta(days=1)),  # empty
        (START + timedelta(days=30), START + timedelta(days=31)),  # in the future
        (None, START + timedelta(days=30)),  # ending in the future: every entry
    ],
)
async def test_pages_of_a_period_that_ended_in_the_past_list_what_a_direct_query_lists(
    client, reader_headers, database, tmp_path, monkeypatch, period, sealed_share, tail_limit
):
    # A small probe, so that the hour bounds decide where the primary-key walk starts; past `tail_limit`
    # unsealed entries the bounds are not used (checkpoints stalled) and the pages are the same.
    monkeypatch.setattr(ledger.queries, "PERIOD_PROBE_ROWS", 9)
    monkeypatch.setattr(ledger.queries, "BOUND_TAIL_LIMIT", tail_limit)
    rng = random.Random(11)
    everything = spread(rng, 400, 5) + spread(rng, 10, 5, trial=True)
    sealed = int(len(everything) * sealed_share)
    await log(database, everything[: sealed // 2])
    await log(database, everything[sealed // 2 : sealed])  # two writers
    if sealed:
        await seal(database, tmp_path / "log-signing.key")
    await log(database, everything[sealed:])
    since, until = period
    params = {name: moment.isoformat() for name, moment in (("from", since), ("to", until)) if moment is not None}
    expected = await listed_directly(database, since, until)
    pages = await paged(client, reader_headers, params, 13)
    assert [seq for page in pages for seq in page] == expected
    assert pages[0] == expected[:13]


async def test_the_migration_counts_the_entries_already_sealed_into_the_rollup(private_database, tmp_path):
    """Walked one migration down (0021) and up again: the backfill equals what the checkpoint writer counted."""
    import asyncio

    from kernel.db import downgrade_schema, upgrade_schema

    rng = random.Random(21)
    await log(private_database, spread(rng, 90, 3) + spread(rng, 5, 3, trial=True))
    await seal(private_database, tmp_path / "log-signing.key")
    await log(private_database, spread(rng, 20, 3))
    period = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    written = await counted(private_database, *period)
    await asyncio.to_thread(downgrade_schema, private_database, "-1")
    await asyncio.to_thread(upgrade_schema, private_database)
    assert await differences(private_database) == []
    assert await counted(private_database, *period) == written == await counted_directly(private_database, *period)
    connection = await asyncpg.connect(plain_url(private_database))
    try:
        assert await connection.fetchval("SELECT sum(wseq) FROM guard_rollup_head") == 95
    finally:
        await connection.close()
