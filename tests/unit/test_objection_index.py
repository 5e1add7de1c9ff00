"""The objection index's in-memory state (guard/objections.py `ObjectionIndex.apply`): what the policy reads per
person, kept right through changes applied twice, and out of the garbage collector's walk."""

import gc

from guard.objections import ObjectionIndex


def _index() -> ObjectionIndex:
    # No connection is made until the index starts; apply() is pure bookkeeping.
    return ObjectionIndex("postgresql://nobody@127.0.0.1:1/none", max_age_seconds=30, poll_seconds=5)


def test_a_person_objecting_to_two_scopes_is_indexed_under_both_until_each_ends():
    index = _index()
    index.apply([(1, "d1", "marketing", True, 1), (2, "d1", "profiling", True, 2), (3, "d2", "marketing", True, 3)])
    assert index.scopes == {"d1": ("marketing", "profiling"), "d2": ("marketing",)}
    index.apply([(1, "d1", "marketing", False, 4)])
    assert index.scopes == {"d1": ("profiling",), "d2": ("marketing",)}
    index.apply([(2, "d1", "profiling", False, 5), (3, "d2", "marketing", False, 6)])
    assert index.scopes == {} and len(index) == 0 and index.last_change == 6


def test_a_change_read_twice_changes_nothing_the_second_time():
    index = _index()
    rows = [(1, "d1", "marketing", True, 1), (2, "d1", "marketing", True, 2), (1, "d1", "marketing", False, 3)]
    index.apply(rows)
    index.apply(rows)  # (a full load after an incremental one)
    assert index.scopes == {"d1": ("marketing",)} and len(index) == 1


def test_a_large_index_leaves_the_garbage_collector_nothing_to_walk():
    # A container the collector tracks is walked by every full collection while checks wait: 100,000 lists of
    # scopes cost each collection 16 ms. Tuples of strings are untracked after the collector's first pass.
    index = _index()
    index.apply([(i, f"digest-{i}", "marketing", True, i) for i in range(1, 10_001)])
    gc.collect()
    assert not any(gc.is_tracked(scopes) for scopes in index.scopes.values())
