"""The guard's in-memory index of data subjects' objections: subject digest → scopes in force.

Kept apart from the registry snapshot (guard/snapshot.py): objections arrive by the thousand (a mail tool's
unsubscribe list) and must not reload the registry. Each write takes `change_seq` from a sequence under one
advisory lock (registry/services/objections.py), so change numbers are handed out in commit order and the index
catches up by reading only the rows changed since the last number it saw. A write NOTIFYs `objections_changed`
in its transaction; each instance LISTENs on a connection of its own and catches up on notice, and checks the
newest change number as a safety net. Like the snapshot, the index is usable only while it is younger than
`snapshot_max_age_seconds`, counted from the last read that found it current: past that, a check that names a
subject fails closed (503).

Restrictions (Art. 18) are indexed by the same machinery over their own table, counter, lock and channel
(`RESTRICTIONS`): a restriction is a subject entry of the single scope `restricted`, lifted like an objection
is withdrawn.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from guard.refresher import ListeningRefresher

log = logging.getLogger(__name__)

OBJECTIONS_CHANGED_CHANNEL = "objections_changed"
# Shared with registry/services/objections.py: objection writes take turns, so `change_seq` follows commit order.
OBJECTION_WRITE_LOCK_ID = 7_411_028_019
ROWS_PER_FETCH = 5000

RESTRICTIONS_CHANGED_CHANNEL = "restrictions_changed"
RESTRICTION_WRITE_LOCK_ID = 7_411_028_020
RESTRICTED = "restricted"  # the one scope of a restriction: every purpose


@dataclass(frozen=True, slots=True)
class IndexedTable:
    """A table of subject entries the guard indexes: how to read its changes, and how its writers tell."""

    name: str
    channel: str
    write_lock_id: int
    changes_since: str  # (id, subject_digest, scope, active, change_seq) of the rows changed after $1
    newest_change: str
    application_name: str


OBJECTIONS = IndexedTable(
    name="objections",
    channel=OBJECTIONS_CHANGED_CHANNEL,
    write_lock_id=OBJECTION_WRITE_LOCK_ID,
    changes_since=(
        "SELECT id, subject_digest, scope, withdrawn_at IS NULL AS active, change_seq FROM objection"
        " WHERE change_seq > $1 ORDER BY change_seq"
    ),
    newest_change="SELECT coalesce(max(change_seq), 0) FROM objection",
    application_name="guard-objections",
)
RESTRICTIONS = IndexedTable(
    name="restrictions",
    channel=RESTRICTIONS_CHANGED_CHANNEL,
    write_lock_id=RESTRICTION_WRITE_LOCK_ID,
    changes_since=(
        f"SELECT id, subject_digest, '{RESTRICTED}' AS scope, lifted_at IS NULL AS active, change_seq"
        " FROM restriction WHERE change_seq > $1 ORDER BY change_seq"
    ),
    newest_change="SELECT coalesce(max(change_seq), 0) FROM restriction",
    application_name="guard-restrictions",
)


class ObjectionsUnavailable(Exception):
    """The index cannot be trusted to hold every objection (or restriction) now."""


class ObjectionIndex(ListeningRefresher):
    """This instance's objections (or, over `RESTRICTIONS`, restrictions) by subject digest; `scopes` is what the
    policy reads (guard/policy.py `Objections`). Changes are applied in place between awaits, so a check never
    sees half a change. Kept current by guard/refresher.py's loop; its position is the newest change number."""

    def __init__(
        self, dsn: str, *, max_age_seconds: float, poll_seconds: float, table: IndexedTable = OBJECTIONS
    ) -> None:
        super().__init__(
            dsn,
            table.channel,
            max_age_seconds=max_age_seconds,
            poll_seconds=poll_seconds,
            server_settings={"application_name": table.application_name, "statement_timeout": "30000"},
        )
        self.what = f"{table.name} index"
        self.table = table
        # Tuples, not lists: a tuple of strings leaves the cyclic garbage collector's care after its first pass,
        # a list never does. With 100,000 persons each full collection walked 100,000 lists while every check
        # waited (16 ms a collection at 200,000; bench/guard_objections.py lost a fifth of its checks).
        self.scopes: dict[str, tuple[str, ...]] = {}
        # Each entry in force by id, with the digest and scope it was indexed under: an entry whose digest was
        # replaced when it went out of force (an erasure) is still taken out where it was put.
        self._active: dict[int, tuple[str, str]] = {}
        self.last_change = 0
        self.loads = 0
        self._reading = asyncio.Lock()  # one read at a time on the listening connection

    # --- State ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._active)

    def position(self) -> int | None:
        return None if self.confirmed_at is None else self.last_change

    def usable(self) -> dict[str, tuple[str, ...]]:
        """The objections to decide on, or ObjectionsUnavailable when they may be missing some."""
        stale = self.staleness()
        if stale is not None:
            raise ObjectionsUnavailable(stale)
        return self.scopes

    def describe(self) -> dict[str, Any]:
        try:
            self.usable()
            state = "ok"
        except ObjectionsUnavailable:
            state = "unavailable"
        return {"status": state, self.table.name: len(self), "last_change": self.last_change}

    # --- Applying changes ------------------------------------------------------------------------------

    def apply(self, rows: Sequence[Any]) -> None:
        """Apply changed rows (id, subject_digest, scope, active, change_seq), in change order. A row read twice
        (a full load after an incremental one) changes nothing the second time."""
        for row in rows:
            objection_id, digest, scope, active = row[0], row[1], row[2], row[3]
            if active and objection_id not in self._active:
                self._active[objection_id] = (digest, scope)
                self.scopes[digest] = (*self.scopes.get(digest, ()), scope)
            elif not active and objection_id in self._active:
                digest, scope = self._active.pop(objection_id)
                scopes = self.scopes.get(digest)
                if scopes is not None:
                    remaining = list(scopes)
                    remaining.remove(scope)
                    if remaining:
                        self.scopes[digest] = tuple(remaining)
                    else:
                        del self.scopes[digest]
            self.last_change = max(self.last_change, row[4])

    async def catch_up(self, connection: asyncpg.Connection | None = None) -> None:
        """Read and apply every change since the last one seen; the index is then current as of the start."""
        async with self._reading:
            await self._catch_up(connection)

    async def refresh_now(self) -> None:
        """Catch up at once (after this instance wrote an objection, so that it is obeyed before the write is
        answered); a failure is logged, and the background loop catches up within the bound."""
        try:
            await self.catch_up(self._listener if self.listening else None)
        except Exception as exc:
            log.warning("%s index could not catch up after a write: %s", self.table.name, exc)

    async def _catch_up(self, connection: asyncpg.Connection | None) -> None:
        started = time.monotonic()
        try:
            if connection is None:
                connection = await asyncpg.connect(self._dsn, timeout=5)
                try:
                    await self._read_changes(connection)
                finally:
                    await connection.close()
            else:
                await self._read_changes(connection)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.loads += 1
        self._confirmed_at(started)

    async def _read_changes(self, connection: asyncpg.Connection) -> None:
        async with connection.transaction(readonly=True):
            newest = await connection.fetchval(self.table.newest_change)
            if newest == self.last_change:
                return
            if newest < self.last_change:  # the table was emptied (restored, truncated): start over
                self.scopes, self._active, self.last_change = {}, {}, 0
            cursor = await connection.cursor(self.table.changes_since, self.last_change)
            while True:
                rows = await cursor.fetch(ROWS_PER_FETCH)
                if not rows:
                    break
                self.apply([tuple(row) for row in rows])

    # --- Listening (guard/refresher.py runs the loop) ----------------------------------------------------

    async def _load_first(self) -> None:
        await self.catch_up(self._listener if self.listening else None)

    async def _refresh(self) -> None:
        # The listening connection serves the reads too: it is idle between notices.
        await self.catch_up(self._listener if self.listening else None)
