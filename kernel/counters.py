"""What the guard counts for /metrics, kept as plain numbers in this process.

Nothing here runs per HTTP request: decisions are counted by the decision-log writer once their group commit
has succeeded (a dict increment per decision, off the request's path), 503s where the answer is built, and
batch sizes and commit latency once per commit. The /metrics route reads them at scrape time. Each process
(each `--workers` worker) counts its own; Prometheus adds them up across instances.
"""

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Histogram:
    """Counts per upper bound (the last bound is +Inf), and the sum, as Prometheus histograms report them."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        running, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return buckets


@dataclass
class GuardCounters:
    decisions: Counter[bool] = field(default_factory=Counter)  # logged decisions by `allowed`
    deny_reasons: Counter[str] = field(default_factory=Counter)  # reason codes of logged denials
    unavailable: int = 0  # fail-closed 503 answers ("the guard cannot decide")
    failed_appends: int = 0  # decision-log group commits that failed (their checks got a 503)
    batch_sizes: Histogram = field(default_factory=lambda: Histogram((1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)))
    commit_seconds: Histogram = field(
        default_factory=lambda: Histogram((0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
    )

    def committed(self, outcomes: Sequence[tuple[bool, Sequence[dict[str, object]]]], seconds: float) -> None:
        """One successful group commit: each decision's (allowed, reasons), and how long the commit took."""
        decisions, deny_reasons = self.decisions, self.deny_reasons
        for allowed, reasons in outcomes:
            decisions[allowed] += 1
            for reason in reasons:
                deny_reasons[str(reason["code"])] += 1
        self.batch_sizes.observe(len(outcomes))
        self.commit_seconds.observe(seconds)


COUNTERS = GuardCounters()
