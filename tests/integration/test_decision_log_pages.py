"""Pages of the decision log (GET /api/guard/decisions) on the real PostgreSQL: keyset paging by `next_cursor`
visits every entry once while new ones arrive, for every filter; totals are exact up to a bound and said to be
estimates past it; a bad cursor is a 400 naming it."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import ledger.queries
from kernel.db import make_engine, make_sessionmaker
from ledger.entries import DecisionEntry
from tests.integration.registry_fixtures import append_history
from tests.ui_session import add_user, log_in

START = datetime(2026, 3, 1, tzinfo=UTC)


def entry(recipient: str, allowed: bool, at: datetime) -> DecisionEntry:
    return DecisionEntry(
        decision_id=uuid.uuid4(),
        decided_at=at,
        caller="test",
        request={"recipient": recipient, "purpose": "essential.service.operations", "data_categories": ["user.name"]},
        allowed=allowed,
        reasons=[] if allowed else [{"code": "RECIPIENT_UNKNOWN", "message": "unknown"}],
        warnings=[],
        agreement=None,
        ruleset="eea-only@test",
    )


def mixed(count: int, rng: random.Random, around: datetime) -> list[DecisionEntry]:
    """Entries of two recipients, a third denied, their times up to an hour out of order (as batches of
    several instances are logged): the log's order is seq, not decided_at."""
    return [
        entry(
            rng.choice(["nordfrakt", "kvarnberg"]),
            rng.random() > 0.33,
            around + timedelta(minutes=rng.uniform(-60, 60)),
        )
        for _ in range(count)
    ]


async def append(url: str, entries: list[DecisionEntry]) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await append_history(session, entries)
    finally:
        await engine.dispose()


def matches(item: dict[str, Any], params: dict[str, Any]) -> bool:
    decided_at = datetime.fromisoformat(item["decided_at"])
    return (
        ("recipient" not in params or item["recipient"] == params["recipient"])
        and ("outcome" not in params or item["outcome"] == params["outcome"])
        and ("from" not in params or decided_at >= datetime.fromisoformat(params["from"]))
        and ("to" not in params or decided_at < datetime.fromisoformat(params["to"]))
    )


FILTERS = [
    {},
    {"recipient": "kvarnberg"},
    {"outcome": "denied"},
    {"outcome": "allowed"},
    {"recipient": "nordfrakt", "outcome": "denied"},
    {"from": (START + timedelta(minutes=10)).isoformat(), "to": (START + timedelta(hours=5)).isoformat()},
    {"from": (START + timedelta(hours=3)).isoformat()},
    {"to": (START + timedelta(hours=2)).isoformat(), "recipient": "nordfrakt"},
]


@pytest.mark.parametrize("params", FILTERS)
async def test_following_next_cursor_lists_every_matching_entry_once_while_new_ones_arrive(
    client, reader_headers, database, monkeypatch, params
):
    # A small probe, so that periods are paged through their time index as well as through the primary key.
    monkeypatch.setattr(ledger.queries, "PERIOD_PROBE_ROWS", 7)
    rng = random.Random(7)
    for hour in range(6):
        await append(database, mixed(20, rng, START + timedelta(hours=hour)))
    everything = (await client.get("/api/guard/decisions", params={"limit": 500}, headers=reader_headers)).json()[
        "items"
    ]
    expected = [item["seq"] for item in everything if matches(item, params)]
    assert expected, "the filter should match some of the entries"

    listed: list[int] = []
    cursor = None
    for _ in range(100):
        query = {**params, "limit": 4, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/guard/decisions", params=query, headers=reader_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        listed += [item["seq"] for item in body["items"]]
        assert all(matches(item, params) for item in body["items"])
        # Meanwhile the guard goes on deciding, some of it inside the period being paged.
        await append(database, mixed(3, rng, START + timedelta(hours=3)))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert listed == expected  # newest first, none twice, none left out; the ones logged since come later


async def test_the_total_is_exact_up_to_the_bound_and_an_estimate_past_it(
    client, reader_headers, database, monkeypatch
):
    await append(database, [entry("nordfrakt", i % 2 == 0, START + timedelta(minutes=i)) for i in range(12)])
    monkeypatch.setattr(ledger.queries, "COUNT_EXACTLY_UP_TO", 4)
    whole = (await client.get("/api/guard/decisions", headers=reader_headers)).json()
    assert (whole["total"], whole["total_exact"]) == (12, True)  # the head's size, however large the log
    few = (
        await client.get(
            "/api/guard/decisions", params={"to": (START + timedelta(minutes=4)).isoformat()}, headers=reader_headers
        )
    ).json()
    assert (few["total"], few["total_exact"]) == (4, True)
    many = (await client.get("/api/guard/decisions", params={"outcome": "denied"}, headers=reader_headers)).json()
    assert many["total_exact"] is False
    assert many["total"] >= 5  # at least what was counted; PostgreSQL's estimate of the rest
    assert len(many["items"]) == 6


async def test_offset_still_pages_and_cannot_be_combined_with_a_cursor(client, reader_headers, database):
    await append(database, [entry("nordfrakt", True, START + timedelta(minutes=i)) for i in range(5)])
    by_offset = (
        await client.get("/api/guard/decisions", params={"limit": 2, "offset": 2}, headers=reader_headers)
    ).json()
    assert [item["seq"] for item in by_offset["items"]] == [3, 2]
    assert by_offset["next_cursor"] == "2"
    both = await client.get("/api/guard/decisions", params={"cursor": "3", "offset": 1}, headers=reader_headers)
    assert both.status_code == 400
    assert both.json()["extra"][0]["key"] == "offset"


@pytest.mark.parametrize("cursor", ["abc", "-1", "0", "1.5", "9" * 21, "١٢"])
async def test_a_cursor_that_is_not_one_is_a_400_naming_it(client, reader_headers, database, cursor):
    response = await client.get("/api/guard/decisions", params={"cursor": cursor}, headers=reader_headers)
    assert response.status_code == 400
    assert "cursor" in response.text


async def test_the_web_log_pages_older_by_cursor(client, database):
    await append(database, [entry("nordfrakt", True, START + timedelta(minutes=i)) for i in range(60)])
    await add_user(database, "olle@offix.example", "ops")
    assert (await log_in(client, "olle@offix.example")).status_code == 303
    headers: dict[str, str] = {}
    first = await client.get("/ui/decisions", headers=headers)
    assert first.status_code == 200, first.text
    assert "cursor=11" in first.text  # the 50 newest (60…11), then older ones below 11
    older = await client.get("/ui/decisions", params={"cursor": "11"}, headers=headers)
    assert older.status_code == 200
    assert "cursor=" not in older.text  # the last page
    bad = await client.get("/ui/decisions", params={"cursor": "x"}, headers=headers)
    assert bad.status_code == 400
