"""The guard's /metrics counters (kernel/counters.py): a fail-closed 503 is counted where it is built, and a
group commit counts its decisions by outcome and reason code."""

from prometheus_client import REGISTRY

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
    )
    assert _value("guard_decisions_total", outcome="allowed") == allowed + 1
    assert _value("guard_decisions_total", outcome="denied") == denied + 2
    assert _value("guard_deny_reasons_total", code="RECIPIENT_UNKNOWN") == unknown + 2
    assert _value("guard_decision_log_batch_size_count") == commits + 1
