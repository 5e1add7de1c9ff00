"""GET /metrics in the Prometheus text format (scope `metrics:read`, or `admin`).

The guard's counters and histograms are prometheus-client metrics (kernel/counters.py); under `registry serve`
they are kept in its multiprocess mode, so that whichever worker answers a scrape reports every worker's counts
added up. The rest is read at scrape time: the snapshot this process decides on, one indexed count of the
reminder queue (and with it `registry_database_up`), and each process's `process_*` figures. A scrape
answers while the database is down: the queue figures are left out and `registry_database_up` is 0.
"""

import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Response
from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import text

import kernel.counters  # noqa: F401  (registers the guard's metrics before the first scrape)
from kernel import counters
from kernel.settings import SERVE_SUPERVISOR_PID
from web.auth import requires
from web.composition import Services

# Litestar adds the charset of a text/* answer itself: naming it here too would send it twice.
MEDIA_TYPE = "text/plain; version=0.0.4"
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
_REMINDER_QUEUE = text(
    """SELECT count(*), count(*) FILTER (WHERE attempts > 0), coalesce(sum(attempts), 0)
    FROM reminder WHERE sent_at IS NULL AND cancelled_at IS NULL"""
)
_PID_OF_FILE = re.compile(r"_(\d+)\.db$")


class WorkerProcesses(Collector):
    """`process_*` of every live process that keeps metrics in the multiprocess directory, each series labelled
    with its `pid` (one process's CPU seconds are a counter of their own; reported unlabelled, the workers'
    would alternate from scrape to scrape)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def pids(self) -> list[int]:
        found = {int(m.group(1)) for name in os.listdir(self.directory) if (m := _PID_OF_FILE.search(name))}
        # Not the supervisors: `registry serve` (it keeps a metrics file from its checks before serving, but
        # answers no request) and uvicorn's of `--workers N`: their figures would be series of no worker.
        supervisors = {os.getppid(), int(os.environ.get(SERVE_SUPERVISOR_PID, "0") or 0)}
        return sorted(pid for pid in found if pid not in supervisors and os.path.exists(f"/proc/{pid}"))

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.pids():
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():  # type: ignore[misc]
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return list(families.values())


class RegistryCollector(Collector):
    """The figures read at scrape time, from this process and one sample of the database."""

    def __init__(self, services: Services, reminders: tuple[int, int, int] | None) -> None:
        self.services = services
        self.reminders = reminders

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "guard_evidence_alarm_open",
            "1 while an unresolved tampering alarm makes this guard fail closed",
            value=int(self.services.evidence.problem is not None),
        )
        loaded = self.services.snapshots.current
        if loaded is not None:
            yield GaugeMetricFamily(
                "guard_snapshot_age_seconds",
                "Seconds since the answering process's registry snapshot was last confirmed current",
                value=time.monotonic() - loaded.confirmed_at,
            )
            yield GaugeMetricFamily(
                "guard_snapshot_revision", "Registry revision the answering process decides on", value=loaded.revision
            )
        yield GaugeMetricFamily(
            "guard_snapshot_loaded", "1 while the answering process holds a snapshot", value=0 if loaded is None else 1
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


def render(services: Services, reminders: tuple[int, int, int] | None) -> bytes:
    counters.flush()  # this process's checks of the last second too (other workers add theirs within a second)
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROCESS_DIRECTORY)
    if directory:
        MultiProcessCollector(registry, directory)  # every worker's counts, added up
        registry.register(WorkerProcesses(directory))
    else:
        registry.register(REGISTRY)  # this process's metrics, its process_* among them
    registry.register(RegistryCollector(services, reminders))
    return generate_latest(registry)


class MetricsController(Controller):
    path = "/metrics"
    tags = ["operations"]

    @get("/", opt=requires("metrics:read"), media_type=MEDIA_TYPE)
    async def metrics(self, services: NamedDependency[Services]) -> Response[Any]:
        """Prometheus metrics of the service (text exposition format)."""
        return Response(render(services, await _reminder_queue(services)), media_type=MEDIA_TYPE)
