"""A snapshot's first view, prepared in a worker process instead of on the web role's event loop (issue 27).

Pages work out what they need of the whole registry once per snapshot (web/ui/registry_view.py): the documents
of every party and agreement, the findings, the agreements' states and the expiring ones, the unapproved links,
the Art. 30 page's transfer counts. At 10,000 parties that took the first view after each registry change
seconds of the loop's time, in slices. Here a niced worker process of its own (kernel/workers.py; not the report
worker, where a view would queue behind a 20-second export) reads the registry in one repeatable-read
transaction and runs the view's own code over it (`RegistryView.of_snapshot` and `warm`): one copy of the
logic, two places to run it. What it hands back is plain data, tagged with the registry revision it read.

A page takes it only for the snapshot of that same revision: a worker that read a newer revision (the registry
moved on while it read), failed, or has not finished yet leaves the page to work its view out on the loop as
before, never to show another revision's data, and never to wait (a preparation takes seconds longer than the
loop's own work: the first look right after a save would wait for it). The web role asks for the preparation as
soon as its guard snapshot changes (the refresher's `on_confirmed`), so that whoever looks once it is done finds
it done; the guard role has no pages and never starts it (web/composition.py). Small registries are worked out
on the loop: a worker's round trip costs more than their whole view.
"""

import asyncio
import io
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from guard.policy import Snapshot
from guard.snapshot import POLICY_NAME, LoadedSnapshot, collector_paused
from kernel.workers import WorkerProcess

log = logging.getLogger(__name__)

# From this many parties a snapshot's first view is prepared in the worker; below, on the loop (a few
# milliseconds: the seed's registry, the tests').
MIN_PARTIES = 1000


@dataclass(frozen=True)
class FirstView:
    """What the worker prepared for the registry at `revision`: a RegistryView's documents and memo."""

    revision: int
    today: date
    party_docs: dict[str, dict[str, Any]]
    agreement_docs: dict[str, dict[str, Any]]
    agreements_by_party: dict[str, list[dict[str, Any]]]
    memo: dict[Any, Any]


def prepare_first_view(database_url: str, today: date | None, window: int) -> FirstView:
    """In the worker: read the registry (the guard's snapshot as `load_snapshot` builds it, its revision and the
    controller, in one repeatable-read transaction) and work out its first view for `today` (default: the
    controller's today, as pages take it) and the expiring `window`."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from kernel.db import registry_revision
    from registry.models.controller import ControllerProfile
    from registry.reports import in_registry
    from registry.services.documents import controller_document
    from registry.snapshot_source import load_snapshot
    from web.ui import views
    from web.ui.snapshot_view import RegistryView

    async def read(session: AsyncSession) -> tuple[Snapshot, int, dict[str, Any] | None]:
        async with session.begin():
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            snapshot = await load_snapshot(session, ruleset=POLICY_NAME)
            revision = await registry_revision(session)
            controller = controller_document(await session.get(ControllerProfile, 1))
        return snapshot, revision, controller

    snapshot, revision, controller = in_registry(database_url, read)
    day = today or views.controller_today(controller)

    async def prepare() -> FirstView:
        view = await RegistryView.of_snapshot(snapshot, controller)
        await view.warm(day, window)
        return FirstView(
            revision, day, view.party_docs, view.agreement_docs, view.agreements_by_party, view.memo_items()
        )

    return asyncio.run(prepare())


# Documents per piece of a prepared first view: each piece is unpickled in one call, during which no other thread
# (the loop's) runs; a thousand documents take a few milliseconds.
PIECE = 1000


@dataclass(frozen=True)
class FirstViewPieces:
    """A FirstView as it crosses from the worker: pickled in pieces the web role unpickles one at a time, so that
    its loop gets a turn between them (the whole view in one piece held it for 350 ms at 10,000 parties). The
    memo's entries name the documents they hold (each party's, its links', each agreement's) instead of carrying
    copies: they are the same objects on arrival, as in a view worked out on the loop."""

    revision: int
    today: date
    parties: list[bytes]
    agreements: list[bytes]
    memo: list[bytes]


class _NamingDocuments(pickle.Pickler):
    def __init__(self, file: io.BytesIO, names: dict[int, tuple[str, ...]]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._names = names

    def persistent_id(self, obj: Any) -> tuple[str, ...] | None:
        return self._names.get(id(obj))


class _FindingDocuments(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, documents: dict[tuple[Any, ...], Any]) -> None:
        super().__init__(file)
        self._documents = documents

    def persistent_load(self, pid: Any) -> Any:
        return self._documents[tuple(pid)]


def _document_names(party_docs: list[dict[str, Any]], agreement_docs: list[dict[str, Any]]) -> dict[Any, Any]:
    """Each document's (and party link's) name, by the object (`id`: each is alive while the view is pickled)."""
    names: dict[Any, Any] = {}
    for party in party_docs:
        names[id(party)] = ("party", party["key"])
        for n, link in enumerate(party["sub_processors"]):
            names[id(link)] = ("link", party["key"], str(n))
    for agreement in agreement_docs:
        names[id(agreement)] = ("agreement", agreement["key"])
    return names


def pieces_of(view: FirstView) -> FirstViewPieces:
    parties, agreements = list(view.party_docs.values()), list(view.agreement_docs.values())
    names = _document_names(parties, agreements)

    def pickled(entry: Any) -> bytes:
        out = io.BytesIO()
        _NamingDocuments(out, names).dump(entry)
        return out.getvalue()

    def in_pieces(docs: list[dict[str, Any]]) -> list[bytes]:
        return [pickle.dumps(docs[n : n + PIECE], protocol=pickle.HIGHEST_PROTOCOL) for n in range(0, len(docs), PIECE)]

    return FirstViewPieces(
        view.revision,
        view.today,
        in_pieces(parties),
        in_pieces(agreements),
        [pickled(entry) for entry in view.memo.items()],
    )


def assembled(pieces: FirstViewPieces) -> FirstView:
    """The FirstView the pieces were made of, one piece per unpickling call (the collector paused meanwhile: the
    hundreds of thousands of objects would set off collection after collection over the web role's heap)."""
    with collector_paused():
        documents: dict[tuple[Any, ...], Any] = {}
        party_docs: dict[str, dict[str, Any]] = {}
        for piece in pieces.parties:
            for party in pickle.loads(piece):  # our own worker's answer
                party_docs[party["key"]] = documents[("party", party["key"])] = party
                for n, link in enumerate(party["sub_processors"]):
                    documents[("link", party["key"], str(n))] = link
        agreement_docs: dict[str, dict[str, Any]] = {}
        by_party: dict[str, list[dict[str, Any]]] = {}
        for piece in pieces.agreements:
            for agreement in pickle.loads(piece):
                agreement_docs[agreement["key"]] = documents[("agreement", agreement["key"])] = agreement
                by_party.setdefault(agreement["party"], []).append(agreement)
        memo = dict(_FindingDocuments(io.BytesIO(body), documents).load() for body in pieces.memo)
    return FirstView(pieces.revision, pieces.today, party_docs, agreement_docs, by_party, memo)


def prepared_first_view(database_url: str, today: date | None, window: int) -> FirstViewPieces:
    """`prepare_first_view` in pieces, for the web role to take in (`assembled`) without long stalls."""
    return pieces_of(prepare_first_view(database_url, today, window))


class FirstViews:
    """The web role's first views, prepared in a worker: the newest one kept, one preparation at a time."""

    def __init__(self, database_url: str, window: int, current: Callable[[], LoadedSnapshot | None]) -> None:
        self.database_url = database_url
        self.window = window
        self._current = current  # the refresher's snapshot now
        self.worker = WorkerProcess("first-view")
        self.ready: FirstView | None = None
        self.failures = 0
        self.unpickle_seconds = 0.0  # the last answer's (bench/ui_first_view.py prints it)
        self._job: asyncio.Task[bool] | None = None
        self._closed = False
        # The revision the last failed preparation was asked for: warming waits for a newer one (a failure
        # that lasts is not retried on every currency check; a page still asks once for its snapshot).
        self._failed_at = -1

    @staticmethod
    def worth_it(snapshot: Snapshot) -> bool:
        return len(snapshot.parties) >= MIN_PARTIES

    def snapshot_confirmed(self) -> None:
        """The refresher's listener (it confirmed or replaced its snapshot): prepare the first view of the new
        snapshot (or of a new day on the controller's calendar) now, unless it is prepared, being prepared, or
        small."""
        loaded = self._current()
        if self._closed or loaded is None or not self.worth_it(loaded.snapshot):
            return
        ready, today = self.ready, loaded.today()
        if ready is not None and (ready.revision, ready.today) >= (loaded.revision, today):
            return
        if loaded.revision <= self._failed_at:
            return
        self._start(today)

    def prepared_for(self, revision: int, today: date) -> FirstView | None:
        """The first view prepared for the registry at `revision` on `today`, if it is ready; else None, and the
        page works its view out on the loop as before. A page never waits for the worker: read from the whole
        registry in a niced process, a preparation takes seconds longer than the loop's own work (bench/
        ui_first_view.py), and the first look right after a change (a save's redirect) would wait for it."""
        ready = self.ready
        return ready if ready is not None and (ready.revision, ready.today) == (revision, today) else None

    def _start(self, today: date) -> "asyncio.Task[bool]":
        if self._job is None or self._job.done():
            loaded = self._current()
            wanted = -1 if loaded is None else loaded.revision
            self._job = asyncio.get_running_loop().create_task(self._prepare(wanted, today))
            self._job.add_done_callback(self._done)
        return self._job

    def _done(self, job: "asyncio.Task[bool]") -> None:
        # The snapshot may have moved on while this one was prepared: prepare that one in turn.
        if not job.cancelled() and job.result():
            self.snapshot_confirmed()

    async def _prepare(self, wanted: int, today: date) -> bool:
        try:
            pieces = await self.worker.run(prepared_first_view, self.database_url, today, self.window)
            started = time.perf_counter()
            prepared = await asyncio.to_thread(assembled, pieces)
            self.unpickle_seconds = time.perf_counter() - started
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            self._failed_at = max(self._failed_at, wanted)
            log.warning(
                "a first view could not be prepared in the worker (%s: %s): pages work it out", type(exc).__name__, exc
            )
            return False
        if self.ready is None or (prepared.revision, prepared.today) >= (self.ready.revision, self.ready.today):
            self.ready = prepared
        return True

    def close(self) -> None:
        self._closed = True
        if self._job is not None:
            self._job.cancel()
        self.worker.close()
