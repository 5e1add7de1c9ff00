"""The guard's /metrics counters (kernel/counters.py): a fail-closed 503 is counted where it is built, and the
histograms report cumulative Prometheus buckets."""

from kernel.counters import COUNTERS, Histogram
from web.controllers.guard import unavailable


def test_every_fail_closed_answer_is_counted_as_unavailable():
    before = COUNTERS.unavailable
    status, body = unavailable("the registry database is unavailable (OSError)")
    assert (status, body["allowed"]) == (503, False)
    assert COUNTERS.unavailable == before + 1


def test_a_histogram_reports_cumulative_buckets_and_its_sum():
    histogram = Histogram((1, 10))
    for value in (1, 3, 30):
        histogram.observe(value)
    assert histogram.cumulative() == [("1.0", 1), ("10.0", 2), ("+Inf", 3)]
    assert histogram.total == 34
