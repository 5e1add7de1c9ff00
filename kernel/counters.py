"""What the guard counts for /metrics, in prometheus-client's metrics.

Nothing here runs per HTTP request but the check-duration histogram: decisions and deny reasons are counted by
the decision-log writer once their group commit has succeeded (one increment per outcome and reason code in
the commit, off the request's path), 503s where the answer is built, and batch sizes and commit latency once
per commit.

`registry serve` runs prometheus-client in its multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set before
anything imports prometheus-client): each worker process writes its counts to its own memory-mapped file, and
whichever worker answers a scrape adds up every worker's files (a worker that died or was replaced included),
so a counter never goes down between scrapes however they are spread over the workers. Without that setting
(tests, an app embedded elsewhere) they are ordinary in-process metrics.
"""

from collections import Counter as Tally
from collections.abc import Sequence

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
CHECK_SECONDS = Histogram(
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


def committed(outcomes: Sequence[tuple[bool, Sequence[dict[str, object]]]], seconds: float) -> None:
    """One successful group commit: each decision's (allowed, reasons), and how long the commit took."""
    allowed = 0
    reasons: Tally[str] = Tally()
    for ok, given in outcomes:
        if ok:
            allowed += 1
        for reason in given:
            reasons[str(reason["code"])] += 1
    if allowed:
        _ALLOWED.inc(allowed)
    if len(outcomes) > allowed:
        _DENIED.inc(len(outcomes) - allowed)
    for code, count in reasons.items():
        child = _REASON_CHILDREN.get(code)
        if child is None:  # (labels() takes a lock and builds a key: done once per code)
            child = _REASON_CHILDREN[code] = DENY_REASONS.labels(code)
        child.inc(count)
    BATCH_SIZES.observe(len(outcomes))
    COMMIT_SECONDS.observe(seconds)
