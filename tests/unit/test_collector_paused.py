"""Snapshot builds run with the cyclic garbage collector paused (guard/snapshot.py: collector_paused)."""

import gc

import pytest

from guard.snapshot import collector_paused


@pytest.fixture(autouse=True)
def collector_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_while_a_snapshot_is_built_and_on_again_after():
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_on_again_after_a_build_that_fails():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the registry could not be read")
    assert gc.isenabled()


def test_two_builds_that_overlap_leave_the_collector_on_whichever_ends_first():
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
