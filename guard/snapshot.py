"""The guard's in-memory snapshot of the registry (DESIGN §4.5): built from the tables, kept fresh.

Decisions never read the database: they read the snapshot an instance holds. Every registry write raises the
registry's revision, records in `registry_change` which parties and agreements it touched, and NOTIFYs
`registry_changed`, all in its own transaction (kernel.db.notify_registry_changed). Each instance LISTENs on
one dedicated connection and, on notice, applies the changes since its revision: it reads only the rows they
name and works out again only what depends on them (the chains of every processor that reaches a changed
party). It reloads everything when it cannot account for every revision in between (a change row missing or
pruned, a notice without a revision), for an import of many records, at start-up and every
`full_reload_seconds`, so the incremental path is never the only one.

A snapshot is usable only while it is younger than `snapshot_max_age_seconds`, counted from the last moment
it was known to match the registry (a reload, an applied change, or a currency check that found the revision
unchanged); past that the guard fails closed, whatever holds the refresh up. The safety-net poll reads one
number, the registry's revision, and catches up only when it moved.
"""

import asyncio
import contextlib
import dataclasses
import gc
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from guard.policy import Snapshot
from guard.refresher import RETRY_SECONDS, ListeningRefresher
from guard.views import AgreementView, PartyView
from guard.vocabulary import ruleset_name
from kernel import counters
from kernel.calendar import controller_timezone
from kernel.db import REGISTRY_CHANGED_CHANNEL, asyncpg_dsn, registry_revision

log = logging.getLogger(__name__)

POLICY_NAME = "eea-only"
# The longest one statement of a reload or currency check may run (a read of a large registry takes well
# under a second per fetch); past it the server ends the statement and the refresher tries again.
STATEMENT_TIMEOUT_MS = 30_000
# The safety net under applied changes: the whole registry is read again this often whatever happened.
FULL_RELOAD_SECONDS = 3600.0
# Past these a run of changes is read as a full reload: many revisions or many records at once (an instance
# that fell behind, a large import) cost less to read whole than key by key.
MAX_REVISIONS_APPLIED = 500
MAX_KEYS_APPLIED = 2000
_REVISION_NOTICE = re.compile(r"r\d+(?: |$)")


@dataclass(frozen=True, slots=True)
class RegistryIndex:
    """What applying a change needs beyond the snapshot: which party holds each agreement (an agreement may move
    to another party, or go), and which processors link each sub-processor (whose chains a change reaches)."""

    agreement_party: dict[str, str]
    users: dict[str, frozenset[str]]


def index_of(snapshot: Snapshot) -> RegistryIndex:
    users: dict[str, set[str]] = defaultdict(set)
    for party in snapshot.parties.values():
        for link in party.sub_processors:
            users[link.party].add(party.key)
    return RegistryIndex(
        agreement_party={a.key: key for key, views in snapshot.agreements_by_party.items() for a in views},
        users={key: frozenset(processors) for key, processors in users.items()},
    )


def dependents(users: Mapping[str, Collection[str]], keys: Iterable[str]) -> set[str]:
    """`keys` and every party whose sub-processor chain reaches one of them (iterative: cycles cannot hang it)."""
    seen = set(keys)
    stack = list(seen)
    while stack:
        for processor in users.get(stack.pop(), ()):
            if processor not in seen:
                seen.add(processor)
                stack.append(processor)
    return seen


@dataclass(frozen=True, slots=True)
class RegistryDelta:
    """The rows a run of registry revisions touched, read at the newest of them.

    `parties`: each changed party key, to its view now (None: it is gone). `agreements`: each party whose
    agreements were read again (it holds a changed agreement now or held one before), to its agreements now."""

    parties: Mapping[str, PartyView | None]
    agreements: Mapping[str, tuple[AgreementView, ...]]


def apply_delta(
    snapshot: Snapshot, index: RegistryIndex, delta: RegistryDelta, ruleset: str
) -> tuple[Snapshot, RegistryIndex]:
    """The snapshot after `delta`, and the index updated for it.

    The snapshot is new (two top-level maps copied, a few milliseconds at 50,000 parties; the old one stays
    whole for whoever still holds it), keeping every memo the change cannot reach. The index is updated in place:
    it belongs to the refresher alone, and copying its 150,000 agreement keys on every change cost as much as
    the rest of the change together. A caller whose apply fails drops the index (a full reload rebuilds it)."""
    # A party's places and chain read its own row, and the rows and agreements of every party in its chain: a
    # memo is stale when its party changed or its chain (as it was) reached a changed party. A chain that
    # reached none is made of unchanged parties, whose links are unchanged, so it is the same chain after.
    stale = dependents(index.users, {*delta.parties, *delta.agreements})
    # Copied with dict(): CPython copies a dict without deleted slots as one block, ten times faster than entry
    # by entry; so a changed entry is overwritten in place, and only a party that is gone leaves a slot.
    parties = dict(snapshot.parties)
    users = index.users
    for key, after in delta.parties.items():
        before = parties.get(key)
        if before is not None:
            for link in before.sub_processors:
                remaining = users.get(link.party, frozenset()) - {key}
                if remaining:
                    users[link.party] = remaining
                else:
                    users.pop(link.party, None)
        if after is None:
            parties.pop(key, None)
        else:
            parties[key] = after
            for link in after.sub_processors:
                users[link.party] = users.get(link.party, frozenset()) | {key}
    agreements_by_party = dict(snapshot.agreements_by_party)
    agreement_party = index.agreement_party
    for key, views in delta.agreements.items():
        for old in agreements_by_party.get(key, ()):
            if agreement_party.get(old.key) == key:
                del agreement_party[old.key]
        if views and key in parties:
            agreements_by_party[key] = views
            for view in views:
                agreement_party[view.key] = key
        else:
            agreements_by_party.pop(key, None)
    return snapshot.changed(parties, agreements_by_party, ruleset, stale), index


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
    # For applying changes (None: this snapshot can only be replaced by a full reload).
    index: RegistryIndex | None = dataclasses.field(default=None, repr=False, compare=False)
    calendar: ControllerCalendar = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "calendar", ControllerCalendar(self.timezone))

    def today(self) -> date:
        """The controller's calendar date now: worked out for each decision, never fixed with the snapshot."""
        return self.calendar.today()


class RegistrySource(Protocol):
    """Where the refresher reads the registry from (registry/snapshot_source.py `RegistryTables`): handed in,
    so that the guard never imports the registry's tables."""

    async def snapshot(self, session: AsyncSession, *, ruleset: str) -> Snapshot: ...

    async def delta(
        self,
        session: AsyncSession,
        index: "RegistryIndex",
        party_keys: Collection[str],
        agreement_keys: Collection[str],
    ) -> "RegistryDelta": ...


class SnapshotUnavailable(Exception):
    """The guard cannot decide: it holds no snapshot it may trust."""


class SnapshotRefresher(ListeningRefresher):
    """Holds this instance's snapshot and keeps it current; one LISTEN connection per instance."""

    what = "registry snapshot"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        database_url: str,
        *,
        source: RegistrySource,
        max_age_seconds: float,
        poll_seconds: float,
        ruleset: str = POLICY_NAME,
        full_reload_seconds: float = FULL_RELOAD_SECONDS,
    ) -> None:
        super().__init__(
            asyncpg_dsn(database_url),
            REGISTRY_CHANGED_CHANNEL,
            max_age_seconds=max_age_seconds,
            poll_seconds=poll_seconds,
        )
        self._sessionmaker = sessionmaker
        self._source = source
        self.full_reload_seconds = full_reload_seconds
        self.ruleset = ruleset
        self.current: LoadedSnapshot | None = None
        self.reloads = 0  # full reloads
        self.applied = 0  # runs of changes applied without a full reload
        self._reloaded_at = -math.inf
        self._full_wanted = False
        # The highest registry revision a notice has announced: once told, the guard decides on nothing older.
        self.noticed_revision = 0
        self._unconfirmed = False

    # --- State -------------------------------------------------------------------------------------

    def position(self) -> int | None:
        return None if self.current is None else self.current.revision

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
        if loaded.revision < self.noticed_revision:
            raise SnapshotUnavailable(
                f"the registry moved to revision {self.noticed_revision}; the guard's snapshot holds"
                f" {loaded.revision} and has not caught up yet"
            )
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
            "revision": None if self.current is None else self.current.revision,
            "listening": self.listening,
            "reloads": self.reloads,
            "changes_applied": self.applied,
        }

    def behind(self) -> bool:
        """A notice announced a revision the snapshot does not hold yet."""
        current = self.current
        return current is not None and current.revision < self.noticed_revision

    # --- Loading -----------------------------------------------------------------------------------

    async def reload(self) -> LoadedSnapshot:
        started = time.monotonic()
        with self._recording_failure():
            async with self._sessionmaker() as session, session.begin():
                # One repeatable-read transaction: the snapshot never mixes two registry states.
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                await self._bound_statements(session)
                with collector_paused():
                    snapshot = await self._source.snapshot(session, ruleset=self.ruleset)
                    index = await asyncio.to_thread(index_of, snapshot)
                timezone = await controller_timezone(session)
                revision = await registry_revision(session)
        loaded = self._confirmed(
            LoadedSnapshot(snapshot=snapshot, timezone=timezone, revision=revision, confirmed_at=started, index=index)
        )
        self.reloads += 1
        counters.SNAPSHOT_RELOADS.inc()
        self._reloaded_at = started
        freeze_long_lived_heap()
        return loaded

    async def confirm_or_reload(self) -> LoadedSnapshot:
        """The periodic check, and the answer to a notice: read the registry's revision; confirm the snapshot when
        it has not moved, apply the changes since when every revision in between is on record, else reload."""
        current = self.current
        if current is None or current.index is None:
            return await self.reload()
        started = time.monotonic()
        delta: RegistryDelta | None = None
        with self._recording_failure():
            async with self._sessionmaker() as session, session.begin():
                # One repeatable-read transaction: the revision and the rows read belong to one registry state.
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                await self._bound_statements(session)
                revision = await registry_revision(session)
                if revision != current.revision:
                    delta = await self._changes_since(session, current, revision)
        if revision == current.revision:
            return self._confirmed(dataclasses.replace(current, confirmed_at=started))
        if delta is None:  # not every revision since is accounted for: read everything again
            return await self.reload()
        assert current.index is not None
        try:
            snapshot, index = apply_delta(current.snapshot, current.index, delta, ruleset_name(self.ruleset, revision))
        except Exception:
            self.current = dataclasses.replace(current, index=None)  # half updated: the next catch-up reloads
            raise
        self.applied += 1
        counters.SNAPSHOT_CHANGES.inc()
        return self._confirmed(
            LoadedSnapshot(
                snapshot=snapshot, timezone=current.timezone, revision=revision, confirmed_at=started, index=index
            )
        )

    async def _changes_since(
        self, session: AsyncSession, current: LoadedSnapshot, revision: int
    ) -> RegistryDelta | None:
        """The rows changed after the snapshot's revision up to `revision`, or None when a full reload must
        replace it: a revision without its change row, a change of everything, too many records."""
        if revision < current.revision or revision - current.revision > MAX_REVISIONS_APPLIED:
            return None
        rows = (
            await session.execute(
                text(
                    "SELECT parties, agreements, everything FROM registry_change"
                    " WHERE revision > :since AND revision <= :until"
                ),
                {"since": current.revision, "until": revision},
            )
        ).all()
        if len(rows) != revision - current.revision or any(row.everything for row in rows):
            return None
        parties = {key for row in rows for key in row.parties}
        agreements = {key for row in rows for key in row.agreements}
        if len(parties) + len(agreements) > MAX_KEYS_APPLIED:
            return None
        assert current.index is not None
        return await self._source.delta(session, current.index, parties, agreements)

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
        self._confirmed_at(loaded.confirmed_at)
        return loaded

    # --- Listening (guard/refresher.py runs the loop) -------------------------------------------------

    def _noticed(self, payload: str) -> None:
        # The registry's notices name their revision, and its change row says what changed. A notice without
        # one was sent by hand (an operator, a script): what changed is unknown, so everything is read again.
        if not _REVISION_NOTICE.match(payload):
            self._full_wanted = True
        else:
            # From now on no check is decided on an older snapshot (GuardRuntime.decide waits for the catch-up).
            self.noticed_revision = max(self.noticed_revision, int(payload[1:].split(" ", 1)[0]))

    def _lost(self) -> None:
        # Changes made while no one listens go unseen: the snapshot is unconfirmed until the next reload.
        self._unconfirmed = True

    def _wait_seconds(self) -> float:
        every = super()._wait_seconds()
        return every if not self._unconfirmed else min(every, RETRY_SECONDS)

    async def _load_first(self) -> None:
        await self.reload()

    async def _refresh(self) -> None:
        full, self._full_wanted = self._full_wanted, False
        try:
            if full or time.monotonic() - self._reloaded_at > self.full_reload_seconds:
                await self.reload()
            else:
                await self.confirm_or_reload()
        except Exception as exc:
            log.warning("registry snapshot reload failed: %s", exc)
