"""The guard's in-memory snapshot of the registry (DESIGN §4.5): built from the tables, kept fresh.

Decisions never read the database: they read the snapshot an instance holds. Every registry write
NOTIFYs `registry_changed` in its own transaction; each instance LISTENs on one dedicated connection and
reloads on notice (bursts coalesce into one reload), and polls as a safety net in case a notice is lost.
A snapshot is usable only while it is younger than `snapshot_max_age_seconds`, counted from the last moment
it was known to match the registry (a reload, or a currency check that found the revision unchanged); past
that the guard fails closed, whatever holds the refresh up.

The safety-net poll reads one number, the registry's revision (raised by every registry write in its own
transaction), and reloads only when it moved: reloading a registry of tens of thousands of agreements every
few seconds would stall the guard for nothing.
"""

import asyncio
import contextlib
import dataclasses
import gc
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import Executable, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from guard.policy import (
    AgreementRecord,
    AgreementView,
    LocationView,
    PartyView,
    Snapshot,
    SubProcessorLinkView,
    ruleset_name,
)
from guard.tasks import cancel_and_wait
from registry.calendar import controller_timezone
from registry.db import REGISTRY_CHANGED_CHANNEL, asyncpg_dsn
from registry.models import Agreement, ControllerProfile, Location, Party, SubProcessorLink

log = logging.getLogger(__name__)

POLICY_NAME = "eea-only"
# Reconnect attempts while the database is away: often enough to recover fast, rarely enough to be quiet.
LISTENER_RETRY_SECONDS = 0.5
# The longest one statement of a reload or currency check may run (a read of a large registry takes well
# under a second per fetch); past it the server ends the statement and the refresher tries again.
STATEMENT_TIMEOUT_MS = 30_000
# Currency checks run at least this many times per age bound, so an unchanged registry keeps its snapshot
# usable however long the configured poll interval is.
CHECKS_PER_AGE_BOUND = 3


async def load_snapshot(session: AsyncSession, *, ruleset: str) -> Snapshot:
    """Build the pure Snapshot from the tables in a handful of queries.

    The snapshot's ruleset is ``<ruleset>@<rules version>+r<registry revision>`` (`ruleset_name`): it changes
    whenever the rules or the registry do, two instances holding the same registry agree on it, and it is made
    once here rather than on every check. Read it in the same transaction as the tables (the refresher reads
    in one repeatable-read transaction), so the revision names exactly the rows read.

    The rows are read as plain columns, not ORM objects, and the views are built in a worker thread: with
    10,000 parties and 30,000 agreements, hydrating ORM objects and building the views on the event loop held
    it for about a second at a time, and every guard check waited. In a thread the interpreter hands the loop
    its turn every few milliseconds, so checks go on being answered (from the previous snapshot) meanwhile.
    """
    parties = await _all_rows(session, select(*_PARTY_COLUMNS).order_by(col(Party.key)))
    locations = await _all_rows(
        session, select(*_LOCATION_COLUMNS).order_by(col(Location.party_id), col(Location.position), col(Location.id))
    )
    links = await _all_rows(
        session,
        select(*_LINK_COLUMNS).order_by(
            col(SubProcessorLink.processor_id), col(SubProcessorLink.position), col(SubProcessorLink.id)
        ),
    )
    agreements = await _all_rows(session, select(*_AGREEMENT_COLUMNS).order_by(col(Agreement.key)))
    published = (
        await session.execute(select(col(ControllerProfile.published_purposes)).where(col(ControllerProfile.id) == 1))
    ).scalar()
    revision = await registry_revision(session)
    return await asyncio.to_thread(
        _build_snapshot,
        parties,
        locations,
        links,
        agreements,
        ruleset_name(ruleset, revision),
        None if published is None else frozenset(published),
    )


# Rows fetched per round trip while a snapshot loads: each batch is a short turn on the event loop (30,000
# agreements read in one go held it for about 200 ms).
ROWS_PER_FETCH = 2000


async def _all_rows(session: AsyncSession, statement: Executable) -> list[Any]:
    """Every row of `statement`, fetched ROWS_PER_FETCH at a time through a server-side cursor."""
    rows: list[Any] = []
    result = await session.stream(statement)
    async for batch in result.partitions(ROWS_PER_FETCH):
        rows.extend(batch)
    return rows


_PARTY_COLUMNS = tuple(
    col(c) for c in (Party.id, Party.key, Party.name, Party.role, Party.category, Party.established_in, Party.active)
)
_LOCATION_COLUMNS = (col(Location.party_id), col(Location.territory), col(Location.kind))
_LINK_COLUMNS = (
    col(SubProcessorLink.processor_id),
    col(SubProcessorLink.sub_processor_id),
    col(SubProcessorLink.approved_on),
    col(SubProcessorLink.objection_deadline),
    col(SubProcessorLink.authorisation),
    col(SubProcessorLink.notified_on),
    col(SubProcessorLink.objected_on),
)
# Every column AgreementView.of reads (the AgreementRecord protocol's attributes: a row answers them by name),
# and the party's id.
_AGREEMENT_COLUMNS = (
    col(Agreement.party_id),
    *(col(getattr(Agreement, name)) for name, value in vars(AgreementRecord).items() if isinstance(value, property)),
)


def _build_snapshot(
    parties: Sequence[Any],
    location_rows: Sequence[Any],
    link_rows: Sequence[Any],
    agreement_rows: Sequence[Any],
    ruleset: str,
    published_purposes: frozenset[str] | None = None,
) -> Snapshot:
    """The views of the table rows (read by column name; each sequence in the order the policy keeps)."""
    key_by_id = {p.id: p.key for p in parties}
    locations: dict[int, list[LocationView]] = defaultdict(list)
    for loc in location_rows:
        locations[loc.party_id].append(LocationView(territory=loc.territory, kind=loc.kind))
    links: dict[int, list[SubProcessorLinkView]] = defaultdict(list)
    for link in link_rows:
        links[link.processor_id].append(
            SubProcessorLinkView(
                party=key_by_id[link.sub_processor_id],
                approved_on=link.approved_on,
                objection_deadline=link.objection_deadline,
                authorisation=link.authorisation,
                notified_on=link.notified_on,
                objected_on=link.objected_on,
            )
        )
    party_views = {
        p.key: PartyView(
            key=p.key,
            name=p.name,
            role=p.role,
            category=p.category,
            established_in=p.established_in,
            active=p.active,
            locations=tuple(locations.get(p.id, ())),
            sub_processors=tuple(links.get(p.id, ())),
        )
        for p in parties
    }
    agreements: dict[str, list[AgreementView]] = defaultdict(list)
    for row in agreement_rows:
        party_key = key_by_id[row.party_id]
        agreements[party_key].append(AgreementView.of(row, party_key))
    agreements_by_party = {key: tuple(views) for key, views in agreements.items()}
    return Snapshot(
        parties=party_views,
        agreements_by_party=agreements_by_party,
        ruleset=ruleset,
        published_purposes=published_purposes,
    )


def freeze_long_lived_heap() -> None:
    """Put every object alive now beyond the cyclic garbage collector's reach (gc.freeze).

    The snapshot, the taxonomy, the territory tables and the app live as long as the process. Left in the
    collector's care, each full collection walks all of them while every request waits: measured under load,
    seven full collections in 30 s stalled the guard for 613 ms in all, 123 ms at worst. A replaced snapshot
    is still freed (by reference counting: its views hold no cycles)."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a snapshot is built: building one allocates objects by the hundred
    thousand, each batch of which set off another full collection over the growing heap (with 10,000
    parties, a dozen of them: a second of the guard stalled per reload). The heap is collected once after,
    by `freeze_long_lived_heap`."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def registry_revision(session: AsyncSession) -> int:
    """The registry's revision (0 before the first write)."""
    return int((await session.execute(text("SELECT revision FROM registry_revision WHERE id = 1"))).scalar() or 0)


class ControllerCalendar:
    """The controller's calendar date, asked on every decision.

    It remembers the date for the current second of the clock and works it out again in the next: a zone's
    offset from UTC is a whole number of seconds, so its midnight starts a whole second and the date cannot
    change within one. Exact, and the zone lookup runs once a second instead of once a check."""

    __slots__ = ("_day", "_second", "timezone")

    def __init__(self, timezone: ZoneInfo) -> None:
        self.timezone = timezone
        self._second: int | None = None
        self._day = date.min

    def on(self, timestamp: float) -> date:
        """The date at a POSIX timestamp (time.time())."""
        second = math.floor(timestamp)
        if second != self._second:
            self._day = datetime.fromtimestamp(second, self.timezone).date()
            self._second = second
        return self._day

    def today(self) -> date:
        return self.on(time.time())


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    snapshot: Snapshot
    timezone: ZoneInfo
    revision: int  # the registry revision the snapshot was built from
    confirmed_at: float  # time.monotonic() when the tables were last seen to match this snapshot
    calendar: ControllerCalendar = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "calendar", ControllerCalendar(self.timezone))

    def today(self) -> date:
        """The controller's calendar date now: worked out for each decision, never fixed with the snapshot."""
        return self.calendar.today()


class SnapshotUnavailable(Exception):
    """The guard cannot decide: it holds no snapshot it may trust."""


class SnapshotRefresher:
    """Holds this instance's snapshot and keeps it current; one LISTEN connection per instance."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        database_url: str,
        *,
        max_age_seconds: float,
        poll_seconds: float,
        ruleset: str = POLICY_NAME,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._dsn = asyncpg_dsn(database_url)
        self.max_age_seconds = max_age_seconds
        self.poll_seconds = poll_seconds
        self.ruleset = ruleset
        self.current: LoadedSnapshot | None = None
        self.reloads = 0
        self.last_error: str | None = None
        self._unconfirmed = False
        self._listener: asyncpg.Connection | None = None
        self._changed = asyncio.Event()
        self._listener_lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- State -------------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    def age_seconds(self) -> float | None:
        return None if self.current is None else time.monotonic() - self.current.confirmed_at

    def usable(self) -> LoadedSnapshot:
        """The snapshot to decide on, or SnapshotUnavailable.

        A snapshot is trusted only while it is younger than the bound, counted from the last moment it was
        known to match the registry (`confirmed_at`: a reload, or a currency check that found the revision
        unchanged). A connected listener is no proof of currency: a notice of a change the snapshot does not
        hold, followed by a reload that hangs (a lock, DDL, a starved process), would otherwise keep an old
        snapshot allowing shares forever. Nothing but a successful read of the registry moves `confirmed_at`.
        """
        loaded = self.current
        if loaded is None:
            raise SnapshotUnavailable("the guard has not loaded the registry yet")
        age = time.monotonic() - loaded.confirmed_at
        if age > self.max_age_seconds:
            raise SnapshotUnavailable(
                f"the registry snapshot is {age:.1f} s old and could not be confirmed as current since "
                f"(bound: {self.max_age_seconds:g} s)"
            )
        return loaded

    def describe(self) -> dict[str, Any]:
        """For /health/ready."""
        age = self.age_seconds()
        try:
            self.usable()
            state = "ok"
        except SnapshotUnavailable:
            state = "unavailable"
        return {
            "status": state,
            "ruleset": None if self.current is None else self.current.snapshot.ruleset,
            "age_seconds": None if age is None else round(age, 3),
            "listening": self.listening,
            "reloads": self.reloads,
        }

    # --- Loading -----------------------------------------------------------------------------------

    async def reload(self) -> LoadedSnapshot:
        started = time.monotonic()
        with self._recording_failure():
            async with self._sessionmaker() as session, session.begin():
                # One repeatable-read transaction: the snapshot never mixes two registry states.
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                await self._bound_statements(session)
                with collector_paused():
                    snapshot = await load_snapshot(session, ruleset=self.ruleset)
                timezone = await controller_timezone(session)
                revision = await registry_revision(session)
        loaded = self._confirmed(
            LoadedSnapshot(snapshot=snapshot, timezone=timezone, revision=revision, confirmed_at=started)
        )
        self.reloads += 1
        freeze_long_lived_heap()
        return loaded

    async def confirm_or_reload(self) -> LoadedSnapshot:
        """The periodic check: read the registry's revision, and reload only when it moved."""
        started = time.monotonic()
        with self._recording_failure():
            async with self._sessionmaker() as session, session.begin():
                await self._bound_statements(session)
                revision = await registry_revision(session)
        current = self.current
        if current is None or current.revision != revision:
            return await self.reload()
        return self._confirmed(dataclasses.replace(current, confirmed_at=started))

    async def _bound_statements(self, session: AsyncSession) -> None:
        """Time limits for this transaction's statements: a reload or check that waits on a lock or a stalled
        server gives up and is tried again, instead of holding the refresher (and its retries) forever. The
        snapshot goes unusable at its age bound whatever happens here; these limits only let it recover."""
        lock_ms = max(100, int(self.max_age_seconds * 1000))
        statement_ms = max(lock_ms, STATEMENT_TIMEOUT_MS)
        await session.execute(text(f"SET LOCAL lock_timeout = {lock_ms}"))
        await session.execute(text(f"SET LOCAL statement_timeout = {statement_ms}"))

    @contextlib.contextmanager
    def _recording_failure(self) -> Iterator[None]:
        """A registry read that fails leaves the snapshot unconfirmed, its error kept for /health/ready."""
        try:
            yield
        except Exception as exc:
            self._unconfirmed = True
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise

    def _confirmed(self, loaded: LoadedSnapshot) -> LoadedSnapshot:
        """`loaded` matches the tables as of its `confirmed_at`: it becomes the snapshot decisions use."""
        self.current = loaded
        self._unconfirmed = False
        self.last_error = None
        return loaded

    # --- Listening ---------------------------------------------------------------------------------

    def _on_notice(self, *_: Any) -> None:
        self._changed.set()

    def _on_termination(self, *_: Any) -> None:
        log.warning("registry change listener lost its connection")
        # Changes made while no one listens go unseen: the snapshot is unconfirmed until the next reload.
        self._unconfirmed = True
        self._listener_lost.set()
        self._changed.set()  # wake the loop so it reconnects now

    async def _connect_listener(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=5)
        try:
            await connection.add_listener(REGISTRY_CHANGED_CHANNEL, self._on_notice)
            connection.add_termination_listener(self._on_termination)
        except BaseException:
            await connection.close()
            raise
        self._listener = connection
        self._listener_lost.clear()

    async def _close_listener(self) -> None:
        connection, self._listener = self._listener, None
        if connection is not None:
            # asyncpg calls termination listeners on our own close too; closing on purpose is no lost connection.
            connection.remove_termination_listener(self._on_termination)
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)
            if not connection.is_closed():
                connection.terminate()

    async def start(self) -> None:
        """Load once before serving (failing quietly: the loop keeps trying), then keep it fresh."""
        with contextlib.suppress(Exception):
            await self._connect_listener()
        try:
            await self.reload()
        except Exception:
            log.exception("could not load the registry snapshot at start-up; the guard answers 503 until it can")
        self._task = asyncio.create_task(self._run(), name="guard-snapshot-refresher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._close_listener()

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the refresher die: the guard would silently go stale
                log.exception("snapshot refresher step failed")
                await asyncio.sleep(LISTENER_RETRY_SECONDS)

    async def _step(self) -> None:
        if not self.listening or self._listener_lost.is_set():
            await self._close_listener()
            try:
                await self._connect_listener()
            except Exception as exc:
                self.last_error = f"listener: {type(exc).__name__}: {exc}"
                await asyncio.sleep(LISTENER_RETRY_SECONDS)
                return
            # Notices sent while we were away are lost: reload now.
            self._changed.set()
        every = min(self.poll_seconds, self.max_age_seconds / CHECKS_PER_AGE_BOUND)
        wait = every if not self._unconfirmed else min(every, LISTENER_RETRY_SECONDS)
        notified = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=wait)
            notified = True
        # Clear before reading: a notice arriving during the reload sets it again and causes one more
        # reload, so a burst of writes costs at most two reloads and the last write is always seen.
        self._changed.clear()
        if self._listener_lost.is_set():
            return  # reconnect first, then reload
        try:
            if notified:
                await self.reload()
            else:
                await self.confirm_or_reload()
        except Exception as exc:
            log.warning("registry snapshot reload failed: %s", exc)
