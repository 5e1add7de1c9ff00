"""What the guard counts for /metrics, in prometheus-client's metrics.

Nothing here writes to prometheus-client per check: the check-duration histogram and the group commits' counts
are tallied in this process and added to their metrics at most a second later (`flush`). Decisions and deny
reasons are counted by the decision-log writer once their group commit has succeeded, batch sizes and commit
latency once per commit, and 503s (rare) where the answer is built, straight into their metric.

`registry serve` runs prometheus-client in its multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set before
anything imports prometheus-client): each worker process writes its counts to its own memory-mapped file, and
whichever worker answers a scrape adds up every worker's files (a worker that died or was replaced included),
so a counter never goes down between scrapes however they are spread over the workers. Without that setting
(tests, an app embedded elsewhere) they are ordinary in-process metrics.
"""

import asyncio
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Histogram, disable_created_metrics

disable_created_metrics()  # the `_created` series double every counter's lines and nothing here uses them

CHECK_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

DECISIONS = Counter("guard_decisions", "Guard decisions logged, by outcome", ["outcome"])
_ALLOWED = DECISIONS.labels("allowed")
_DENIED = DECISIONS.labels("denied")
DENY_REASONS = Counter("guard_deny_reasons", "Reasons given in logged guard denials, by reason code", ["code"])
_REASON_CHILDREN: dict[str, Counter] = {}
UNAVAILABLE = Counter("guard_unavailable", "Fail-closed 503 answers: the guard could not decide")
FAILED_COMMITS = Counter(
    "guard_decision_log_failed_commits", "Decision-log group commits that failed (their checks were answered 503)"
)
BATCH_SIZES = Histogram(
    "guard_decision_log_batch_size",
    "Decisions per decision-log group commit",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
COMMIT_SECONDS = Histogram(
    "guard_decision_log_commit_seconds",
    "Duration of a decision-log group commit",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
_CHECK_SECONDS = Histogram(
    "guard_check_duration_seconds",
    "Time from a guard check's (or batch's) body to its answer: decision and decision-log commit included",
    buckets=CHECK_SECONDS_BUCKETS,
)
EVIDENCE_ALARMS = Counter(
    "guard_evidence_alarms",
    "Evidence of decision-log tampering found (the guard then fails closed): ledger/evidence.py",
)
REFUSED_CHECKPOINTS = Counter(
    "guard_checkpoints_refused", "Checkpoints refused: the log no longer extends its last checkpoint or a witness's"
)
WITNESS_FAILURES = Counter(
    "guard_witness_failures",
    "Checkpoints a witness did not take: unreachable, not knowing this log, or a bad answer (not a conflict)",
)
SNAPSHOT_RELOADS = Counter("guard_snapshot_reloads", "Full reloads of the guard's registry snapshot")
SNAPSHOT_CHANGES = Counter(
    "guard_snapshot_changes_applied", "Runs of registry changes applied to the snapshot without a full reload"
)


# How long counts wait in the process before they reach their metrics (a scrape sees them at most this late).
TALLY_SECONDS = 1.0

_timer: asyncio.TimerHandle | None = None
_timer_loop: asyncio.AbstractEventLoop | None = None  # (a timer on a loop that has since closed never fires)
_counts: Tally[Any] = Tally()  # counter (child) -> what to add to it at the next flush
_histograms: "list[TallyHistogram]" = []


def _flush_later() -> None:
    """Flush within TALLY_SECONDS: on the running event loop's timer, or at once where there is no loop."""
    global _timer, _timer_loop
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no event loop (a command, a test): nothing would flush it later
        flush()
        return
    if _timer is not None and _timer_loop is loop:
        return
    _timer, _timer_loop = loop.call_later(TALLY_SECONDS, flush), loop


class TallyHistogram:
    """A histogram's observations counted in plain Python and added to the prometheus-client histogram in one go,
    at most `TALLY_SECONDS` after the first of them (as every count here is: see `flush`).

    Under `registry serve` every observation of a prometheus-client histogram writes two values into its
    memory-mapped file, each under a lock: 4 to 8 µs a check on this machine (bench/metrics_cost.py), a twentieth
    of a check's CPU on the guard's path. Counted here, an observation costs a bisection and two additions; the
    metric receives each bucket's count and the sum once a second. prometheus-client has no public call that
    observes many values at once, so `_flush` adds to the histogram's own bucket and sum values, exactly as
    `Histogram.observe` does one at a time (tests/unit/test_guard_counters.py holds the two to the same
    exposition, so a prometheus-client that changes them fails there)."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._bounds = list(histogram._upper_bounds)  # (ends with +Inf, as the histogram's own)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        _histograms.append(self)

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # the first bound at or above it, as observe's
        self._sum += value
        _flush_later()

    def _flush(self) -> None:
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._sum = self._sum, 0.0
        if not any(counts):
            return
        self._histogram._sum.inc(total)
        for value, count in zip(self._histogram._buckets, counts, strict=True):
            if count:
                value.inc(count)


def flush() -> None:
    """Everything counted in this process into its metrics: on the timer, before a scrape is answered, and at
    shutdown."""
    global _timer
    if _timer is not None:
        _timer.cancel()
        _timer = None
    counts = dict(_counts)
    _counts.clear()
    for counter, amount in counts.items():
        counter.inc(amount)
    for histogram in _histograms:
        histogram._flush()


CHECK_SECONDS = TallyHistogram(_CHECK_SECONDS)
_BATCH_SIZES = TallyHistogram(BATCH_SIZES)
_COMMIT_SECONDS = TallyHistogram(COMMIT_SECONDS)


def committed(outcomes: Sequence[tuple[bool, Sequence[dict[str, object]]]], seconds: float) -> None:
    """One successful group commit: each decision's (allowed, reasons), and how long the commit took (tallied,
    in the metrics within TALLY_SECONDS)."""
    allowed = 0
    for ok, given in outcomes:
        if ok:
            allowed += 1
        for reason in given:
            code = str(reason["code"])
            child = _REASON_CHILDREN.get(code)
            if child is None:  # (labels() takes a lock and builds a key: done once per code)
                child = _REASON_CHILDREN[code] = DENY_REASONS.labels(code)
            _counts[child] += 1
    if allowed:
        _counts[_ALLOWED] += allowed
    if len(outcomes) > allowed:
        _counts[_DENIED] += len(outcomes) - allowed
    _BATCH_SIZES.observe(len(outcomes))
    _COMMIT_SECONDS.observe(seconds)
