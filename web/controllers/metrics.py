"""GET /metrics in the Prometheus text format (scope `metrics:read`, or `admin`).

Everything is read at scrape time from numbers the code already keeps (kernel/counters.py, the snapshot
refresher, the decision-log writer) plus one indexed count of the reminder queue, so the guard's hot path
carries no metrics middleware.
"""

import time
from collections.abc import Iterable, Iterator
from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from kernel.counters import COUNTERS, GuardCounters
from web.auth import requires
from web.composition import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_REMINDER_QUEUE = text(
    """SELECT count(*), count(*) FILTER (WHERE attempts > 0), coalesce(sum(attempts), 0)
    FROM reminder WHERE sent_at IS NULL AND cancelled_at IS NULL"""
)


class RegistryCollector(Collector):
    """Builds the metric families from one sample taken for this scrape."""

    def __init__(self, counters: GuardCounters, services: Services, reminders: tuple[int, int, int] | None) -> None:
        self.counters = counters
        self.services = services
        self.reminders = reminders

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        counters = self.counters
        decisions = CounterMetricFamily(
            "guard_decisions", "Guard decisions logged by this process, by outcome", labels=["outcome"]
        )
        decisions.add_metric(["allowed"], counters.decisions[True])
        decisions.add_metric(["denied"], counters.decisions[False])
        yield decisions
        reasons = CounterMetricFamily(
            "guard_deny_reasons", "Reasons given in logged guard denials, by reason code", labels=["code"]
        )
        for code, count in sorted(counters.deny_reasons.items()):
            reasons.add_metric([code], count)
        yield reasons
        yield CounterMetricFamily(
            "guard_unavailable", "Fail-closed 503 answers: the guard could not decide", value=counters.unavailable
        )
        yield CounterMetricFamily(
            "guard_decision_log_failed_commits",
            "Decision-log group commits that failed (their checks were answered 503)",
            value=counters.failed_appends,
        )
        yield HistogramMetricFamily(
            "guard_decision_log_batch_size",
            "Decisions per decision-log group commit",
            buckets=counters.batch_sizes.cumulative(),
            sum_value=counters.batch_sizes.total,
        )
        yield HistogramMetricFamily(
            "guard_decision_log_commit_seconds",
            "Duration of a decision-log group commit",
            buckets=counters.commit_seconds.cumulative(),
            sum_value=counters.commit_seconds.total,
        )
        refresher = self.services.snapshots
        loaded = refresher.current
        if loaded is not None:
            yield GaugeMetricFamily(
                "guard_snapshot_age_seconds",
                "Seconds since the guard's registry snapshot was last confirmed current",
                value=time.monotonic() - loaded.confirmed_at,
            )
            yield GaugeMetricFamily(
                "guard_snapshot_revision", "Registry revision the guard decides on", value=loaded.revision
            )
            yield CounterMetricFamily(
                "guard_snapshot_reloads", "Full snapshot reloads by this process", value=refresher.reloads
            )
            yield CounterMetricFamily(
                "guard_snapshot_changes_applied",
                "Runs of registry changes applied to the snapshot without a full reload",
                value=refresher.applied,
            )
        yield GaugeMetricFamily(
            "guard_snapshot_loaded", "1 while the guard holds a snapshot", value=0 if loaded is None else 1
        )
        if self.reminders is not None:
            pending, failing, attempts = self.reminders
            yield GaugeMetricFamily("reminder_queue_depth", "Reminders waiting to be sent", value=pending)
            yield GaugeMetricFamily(
                "reminder_queue_failing", "Waiting reminders whose earlier attempts failed", value=failing
            )
            yield GaugeMetricFamily(
                "reminder_queue_failed_attempts", "Failed attempts of the reminders still waiting", value=attempts
            )
        yield GaugeMetricFamily(
            "registry_database_up", "1 when this scrape could read the database", value=int(self.reminders is not None)
        )


async def _reminder_queue(services: Services) -> tuple[int, int, int] | None:
    try:
        async with services.sessionmaker() as session:
            row = (await session.execute(_REMINDER_QUEUE)).one()
    except Exception:  # a scrape reports the outage (registry_database_up 0) instead of failing
        return None
    return int(row[0]), int(row[1]), int(row[2])


def render(services: Services, reminders: tuple[int, int, int] | None, counters: GuardCounters = COUNTERS) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(counters, services, reminders))
    return generate_latest(registry)


class MetricsController(Controller):
    path = "/metrics"
    tags = ["operations"]

    @get("/", opt=requires("metrics:read"), media_type=CONTENT_TYPE)
    async def metrics(self, services: NamedDependency[Services]) -> Response[Any]:
        """Prometheus metrics of this process (text exposition format)."""
        return Response(render(services, await _reminder_queue(services)), media_type=CONTENT_TYPE)
