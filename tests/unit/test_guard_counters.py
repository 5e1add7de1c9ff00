"""The guard's /metrics counters (kernel/counters.py): a fail-closed 503 is counted where it is built, and a
group commit counts its decisions by outcome and reason code."""

import asyncio

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from kernel import counters
from web.controllers.guard import unavailable


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_fail_closed_answer_is_counted_as_unavailable():
    before = _value("guard_unavailable_total")
    status, body = unavailable("the registry database is unavailable (OSError)")
    assert (status, body["allowed"]) == (503, False)
    assert _value("guard_unavailable_total") == before + 1


def test_a_group_commit_counts_each_outcome_and_reason_and_observes_its_size():
    allowed, denied = (
        _value("guard_decisions_total", outcome="allowed"),
        _value("guard_decisions_total", outcome="denied"),
    )
    unknown = _value("guard_deny_reasons_total", code="RECIPIENT_UNKNOWN")
    commits = _value("guard_decision_log_batch_size_count")
    counters.committed(
        [(True, []), (False, [{"code": "RECIPIENT_UNKNOWN"}]), (False, [{"code": "RECIPIENT_UNKNOWN"}])], 0.004
    )  # (no event loop here: counted straight into the metrics)
    assert _value("guard_decisions_total", outcome="allowed") == allowed + 1
    assert _value("guard_decisions_total", outcome="denied") == denied + 2
    assert _value("guard_deny_reasons_total", code="RECIPIENT_UNKNOWN") == unknown + 2
    assert _value("guard_decision_log_batch_size_count") == commits + 1


# Edges of the buckets, values between them, beyond the last, zero: each must land where observe() puts it.
OBSERVED = [0.0, 0.0005, 0.001, 0.0011, 0.0025, 0.004, 0.01, 0.3, 2.5, 5.0, 7.5, 60.0, 0.001, 0.001]


def _exposition(histogram: Histogram) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for metric in histogram.collect() for s in metric.samples]


def test_a_tallied_histogram_shows_what_observing_each_value_would_once_flushed():
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", buckets=counters.CHECK_SECONDS_BUCKETS, registry=registry)
    tallied_metric = Histogram("tallied_seconds", "t", buckets=counters.CHECK_SECONDS_BUCKETS, registry=registry)
    tallied = counters.TallyHistogram(tallied_metric)
    for value in OBSERVED:
        direct.observe(value)
    asyncio.run(_observe_on_a_loop(tallied, OBSERVED))  # (on a loop, as in the server: flushed later, not at once)
    assert all(value == 0 for name, _, value in _exposition(tallied_metric) if name != "tallied_seconds_created")
    counters.flush()
    renamed = [
        (name.replace("tallied", "direct"), labels, value) for name, labels, value in _exposition(tallied_metric)
    ]
    assert [s for s in renamed if not s[0].endswith("_created")] == [
        s for s in _exposition(direct) if not s[0].endswith("_created")
    ]


async def _observe_on_a_loop(tallied: counters.TallyHistogram, values: list[float]) -> None:
    for value in values:
        tallied.observe(value)


def test_a_tallied_histogram_reaches_its_metric_within_a_second_on_its_own():
    registry = CollectorRegistry()
    metric = Histogram("waiting_seconds", "w", buckets=(0.1, 1.0), registry=registry)
    tallied = counters.TallyHistogram(metric)

    async def observe_then_wait() -> float:
        tallied.observe(0.05)
        tallied.observe(0.5)
        before = registry.get_sample_value("waiting_seconds_count") or 0.0
        await asyncio.sleep(counters.TALLY_SECONDS + 0.5)
        return before

    assert asyncio.run(observe_then_wait()) == 0.0
    assert registry.get_sample_value("waiting_seconds_count") == 2.0
    assert registry.get_sample_value("waiting_seconds_bucket", {"le": "0.1"}) == 1.0
    assert registry.get_sample_value("waiting_seconds_sum") == 0.55


def test_without_an_event_loop_an_observation_reaches_the_metric_at_once():
    registry = CollectorRegistry()
    metric = Histogram("at_once_seconds", "a", buckets=(0.1,), registry=registry)
    counters.TallyHistogram(metric).observe(0.2)
    assert registry.get_sample_value("at_once_seconds_bucket", {"le": "+Inf"}) == 1.0
