"""What the web role makes of the guard role's announcements (guard/obedience.py): a write is obeyed once every
guard-role worker of its own `registry serve` holds it; another instance's, a stale worker's or a malformed
notice changes nothing."""

import asyncio
import json

from guard.obedience import GUARD_OBEYS_CHANNEL, GuardRoleWatch, Positions


def notice(watch: GuardRoleWatch, worker: str, registry: int | None, objections: int | None = 0, **extra) -> None:
    payload = {"instance": "mine", "worker": worker, "registry": registry, "objections": objections}
    payload |= {"restrictions": 0, **extra}
    watch._on_notice(None, 0, GUARD_OBEYS_CHANNEL, json.dumps(payload))


def test_positions_cover_only_what_is_asked_and_nothing_unloaded():
    held = Positions(registry=7, objections=3, restrictions=None)
    assert held.covers(Positions(registry=7))
    assert held.covers(Positions(objections=2))
    assert not held.covers(Positions(registry=8))
    assert not held.covers(Positions(restrictions=0)), "an index not loaded holds nothing"


def test_a_revision_is_obeyed_only_once_every_worker_announced_it():
    watch = GuardRoleWatch("postgresql://unused", "mine", workers=2)
    notice(watch, "a", 5)
    assert not watch.obeys(Positions(registry=5))
    assert watch.registry_revision() is None
    notice(watch, "b", 4)
    assert not watch.obeys(Positions(registry=5))
    assert watch.registry_revision() == 4
    notice(watch, "b", 5)
    assert watch.obeys(Positions(registry=5))
    assert watch.registry_revision() == 5


def test_a_worker_that_was_replaced_does_not_hold_a_write_back_but_one_that_is_behind_does():
    watch = GuardRoleWatch("postgresql://unused", "mine", workers=2)
    notice(watch, "dead", 3)
    notice(watch, "a", 6)
    assert not watch.obeys(Positions(registry=6))
    notice(watch, "replacement", 6)
    assert watch.obeys(Positions(registry=6))


def test_another_instances_and_malformed_notices_are_ignored():
    watch = GuardRoleWatch("postgresql://unused", "mine", workers=1)
    notice(watch, "theirs", 9, instance="another serve")
    for payload in ["not json", "[]", json.dumps({"instance": "mine"}), json.dumps({"instance": "mine", "worker": 1})]:
        watch._on_notice(None, 0, GUARD_OBEYS_CHANNEL, payload)
    assert watch.held == {}
    assert not watch.obeys(Positions(registry=1))


async def test_a_waiting_write_is_released_by_the_announcement_and_a_late_one_waits_its_bound():
    watch = GuardRoleWatch("postgresql://unused", "mine", workers=1)
    notice(watch, "a", 1, objections=1)
    waiting = asyncio.create_task(watch.wait_for(Positions(registry=2, objections=1), 30))
    await asyncio.sleep(0)
    assert not waiting.done()
    notice(watch, "a", 2, objections=1)
    assert await waiting is True
    assert await watch.wait_for(Positions(objections=5), 0.01) is False
