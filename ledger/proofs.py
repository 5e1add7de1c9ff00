"""Receipts and consistency proofs (RFC 6962): built from the stored subtree roots in O(log n) reads, off the
event loop in a worker process, one at a time per API key."""

import asyncio
import base64
import uuid
from typing import Any, cast

import asyncpg

from kernel.workers import WorkerProcess
from ledger.checkpoint import CheckpointRefused
from ledger.entries import ENTRY_COLUMNS, record_content
from ledger.merkle import (
    consistency_path,
    inclusion_path,
    ranges_needed,
)
from ledger.nodes import stored_roots

# --- Receipts ----------------------------------------------------------------------------------------------


async def consistency(connection: asyncpg.Connection, first: int, second: int) -> dict[str, Any]:
    """The RFC 6962 consistency proof between the log's trees of `first` and `second` leaves (0 < first <=
    second <= the sealed leaves), with the stored checkpoints signed at those sizes (None where there is none):
    what shows a witness or an auditor that the later tree extends the earlier. ValueError for sizes the
    sealed log does not have."""
    sealed = int(await connection.fetchval("SELECT coalesce(max(size), 0) FROM guard_checkpoint"))
    if not 0 < first <= second:
        raise ValueError(f"the sizes must be 0 < first <= second, not {first} and {second}")
    if second > sealed:
        raise ValueError(f"the latest checkpoint covers {sealed} leaves, fewer than {second}")
    root_of = await stored_roots(connection, ranges_needed(lambda r: consistency_path(first, second, r)))
    proof = consistency_path(first, second, root_of)
    notes = {
        int(row["size"]): row["note"]
        for row in await connection.fetch(
            "SELECT size, note FROM guard_checkpoint WHERE size IN ($1, $2)", first, second
        )
    }
    return {
        "first": first,
        "second": second,
        "proof": [base64.b64encode(p).decode() for p in proof],
        "first_checkpoint": notes.get(first),
        "second_checkpoint": notes.get(second),
    }


_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
)


class _WorkerConnection:
    """The proofs worker process's event loop and database connection, kept from one proof to the next: a new
    connection costs each proof its connect and asyncpg's type introspection (tens of milliseconds, more than
    the proof itself). Dropped after a failure that is not the caller's (a lost connection: the next proof
    opens another)."""

    loop: asyncio.AbstractEventLoop | None = None
    connection: asyncpg.Connection | None = None

    @classmethod
    def run(cls, dsn: str, work: Any) -> Any:
        if cls.loop is None:
            cls.loop = asyncio.new_event_loop()
        return cls.loop.run_until_complete(cls._run(dsn, work))

    @classmethod
    async def _run(cls, dsn: str, work: Any) -> Any:
        reused = cls.connection is not None and not cls.connection.is_closed()
        if cls.connection is None or not reused:
            cls.connection = await asyncpg.connect(dsn, timeout=10, server_settings={"application_name": "proofs"})
        try:
            return await work(cls.connection)
        except (ValueError, CheckpointRefused):
            raise  # (the question or the log, not the connection)
        except _CONNECTION_LOST:
            cls._drop()
            if reused:  # lost while idle (the server restarted, or ended it): once more on a new one
                return await cls._run(dsn, work)
            raise
        except BaseException:
            cls._drop()
            raise

    @classmethod
    def _drop(cls) -> None:
        connection, cls.connection = cls.connection, None
        if connection is not None:
            connection.terminate()


def _on_worker_connection(dsn: str, work: Any) -> Any:
    return _WorkerConnection.run(dsn, work)


def receipt_in_worker(dsn: str, decision_id: str) -> dict[str, Any] | None:
    """In the proofs worker process: `receipt`."""
    return cast("dict[str, Any] | None", _on_worker_connection(dsn, lambda c: receipt(c, uuid.UUID(decision_id))))


def consistency_in_worker(dsn: str, first: int, second: int) -> dict[str, Any]:
    """In the proofs worker process: `consistency`."""
    return cast("dict[str, Any]", _on_worker_connection(dsn, lambda c: consistency(c, first, second)))


class ProofsBusy(Exception):
    """The caller's key already has a proof being built: one at a time per key."""


# After each proof the worker rests as long as the proof took (at most MAX_REST_SECONDS): readers fetching
# receipts back to back keep it busy half the time at most, and leave the guard's CPUs the rest
# (bench/receipts.py: two such readers pushed the guard's p99 to 1.8 times its own on two cores).
PROOF_REST = 1.0
MAX_REST_SECONDS = 0.1


class ProofService:
    """Receipts and consistency proofs, built in a worker process of their own (reading and hashing up to every
    leaf of the log would hold the guard's event loop for seconds at half a million entries), one at a time per
    API key (`ProofsBusy` past that) and one at a time in all (they queue for the worker), each followed by a
    rest as long as it took (PROOF_REST)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._worker = WorkerProcess("proofs")
        self._busy: set[str] = set()
        self._turn = asyncio.Lock()
        self._resume_at = 0.0

    async def _run(self, caller: str, function: Any, *args: Any) -> Any:
        if caller in self._busy:
            raise ProofsBusy(f"a proof for {caller} is being built already; retry once it is answered")
        self._busy.add(caller)
        loop = asyncio.get_running_loop()
        try:
            async with self._turn:
                await asyncio.sleep(max(0.0, self._resume_at - loop.time()))
                began = loop.time()
                try:
                    return await self._worker.run(function, self._dsn, *args)
                finally:
                    self._resume_at = loop.time() + min((loop.time() - began) * PROOF_REST, MAX_REST_SECONDS)
        finally:
            self._busy.discard(caller)

    async def receipt(self, caller: str, decision_id: uuid.UUID) -> dict[str, Any] | None:
        return cast("dict[str, Any] | None", await self._run(caller, receipt_in_worker, str(decision_id)))

    async def consistency(self, caller: str, first: int, second: int) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._run(caller, consistency_in_worker, first, second))

    def close(self) -> None:
        self._worker.close()


async def receipt(connection: asyncpg.Connection, decision_id: uuid.UUID) -> dict[str, Any] | None:
    """A logged decision with what a third party needs to check it: the content its hash covers (naming its
    writer and its place in that writer's chain), the previous hash and its own, its `seq`, and, once a
    checkpoint covers it, its leaf index, that signed checkpoint and the RFC 6962 inclusion proof of its leaf.

    The proof's nodes are read from the stored subtrees (`stored_roots`): O(log n) reads, not the whole log."""
    record = await connection.fetchrow(
        f"SELECT {ENTRY_COLUMNS}, (SELECT leaf_index FROM guard_log_leaf l WHERE l.seq = d.seq) AS leaf_index"
        " FROM guard_decision d WHERE decision_id = $1",
        decision_id,
    )
    if record is None:
        return None
    leaf_index = record["leaf_index"]
    document: dict[str, Any] = {
        "sequence": int(record["seq"]),
        "writer": record["writer"],
        "wseq": int(record["wseq"]),
        "content": record_content(record),
        "prev_hash": record["prev_hash"],
        "hash": record["hash"],
        "leaf_index": leaf_index,
        "checkpoint": None,
        "inclusion_proof": None,
    }
    checkpoint = (
        await connection.fetchrow(
            "SELECT size, note FROM guard_checkpoint WHERE size > $1 ORDER BY size DESC LIMIT 1", leaf_index
        )
        if leaf_index is not None
        else None
    )
    if checkpoint is not None:
        size = int(checkpoint["size"])
        root_of = await stored_roots(connection, ranges_needed(lambda r: inclusion_path(leaf_index, size, r)))
        document["checkpoint"] = checkpoint["note"]
        document["inclusion_proof"] = [base64.b64encode(p).decode() for p in inclusion_path(leaf_index, size, root_of)]
    return document
