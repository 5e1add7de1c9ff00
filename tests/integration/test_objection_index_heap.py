"""A large load of objections is put beyond the garbage collector's reach (guard/objections.py): an unsubscribe list
of 100,000 persons lives as long as the process, and every full collection walking it stalls every check."""

import gc

import asyncpg

from guard.objections import FREEZE_AFTER_ROWS, ObjectionIndex
from tests.integration.test_decision_log import plain_url


async def _object(url: str, persons: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO objection (subject_digest, scope, received_on, source, recorded_by, recorded_at)"
            " SELECT encode(sha256(g::text::bytea), 'hex'), 'direct_marketing', current_date, 'test', 'test', now()"
            " FROM generate_series(1, $1) AS g",
            persons,
        )
    finally:
        await connection.close()


async def _caught_up_index(url: str) -> ObjectionIndex:
    index = ObjectionIndex(url, max_age_seconds=30, poll_seconds=5)
    await index.catch_up(None)
    return index


async def test_a_large_catch_up_freezes_the_heap_and_a_small_one_does_not(database):
    url = plain_url(database)
    await _object(url, 10)
    frozen = gc.get_freeze_count()
    small = await _caught_up_index(url)
    assert len(small) == 10 and gc.get_freeze_count() == frozen  # a few changes: no collection on the guard's loop

    await _object(url, FREEZE_AFTER_ROWS)
    await small.catch_up(None)
    assert len(small) == 10 + FREEZE_AFTER_ROWS
    assert gc.get_freeze_count() > frozen
    gc.unfreeze()  # (the test process's heap back in the collector's care)
