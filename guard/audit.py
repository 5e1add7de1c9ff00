"""The decision log's evidence for outsiders: signed checkpoints written, stored and handed to witnesses, the
checkpoints a verification is held to, and receipts (an entry with its inclusion proof to a checkpoint).

Nothing here is on the guard's hot path: checkpoints are written by a background task (`CheckpointPublisher`)
or the CLI, and receipts are read on request.
"""

import asyncio
import base64
import contextlib
import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from guard.checkpoint import Checkpoint, CheckpointError, Signer, Verifier, load_or_create_signer, open_checkpoint
from guard.log import ENTRIES_FROM, GENESIS_HASH, KnownCheckpoint, content_hash, record_content
from guard.merkle import CompactRange, inclusion_proof, leaf_hash
from guard.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Arbitrary, fixed advisory-lock id (guard/log.py uses ...003): one checkpoint writer at a time.
CHECKPOINT_LOCK_ID = 7_411_028_004
WITNESS_TIMEOUT_SECONDS = 5.0
LOG_ORIGIN = "offix-registry/guard-decisions"


class CheckpointRefused(Exception):
    """The log does not extend its last checkpoint: signing it would bless a rewrite or a truncation."""


def signing_key_file(settings: Any) -> Path:
    return settings.log_signing_key_file or settings.data_dir / "log-signing.key"


def signer_for(settings: Any) -> Signer:
    return load_or_create_signer(signing_key_file(settings), settings.log_origin)


def verifier_for(settings: Any) -> Verifier:
    """The log's public key, from the signing key file (which must exist: verifying never creates a key)."""
    path = signing_key_file(settings)
    if not path.exists():
        raise CheckpointError(f"no signing key at {path}: pass the log's public key instead")
    return signer_for(settings).verifier


# --- Writing ---------------------------------------------------------------------------------------------


async def _starting_point(connection: asyncpg.Connection, verifier: Verifier) -> tuple[CompactRange, str]:
    """The tree and chain hash at the last stored checkpoint, when its subtrees reproduce its signed root;
    else the empty log's (the next checkpoint then rehashes everything)."""
    row = await connection.fetchrow("SELECT size, subtrees, note FROM guard_checkpoint ORDER BY size DESC LIMIT 1")
    if row is None:
        return CompactRange(), GENESIS_HASH
    try:
        signed = open_checkpoint(row["note"], verifier)
        compact = CompactRange(signed.size, [bytes.fromhex(h) for h in json.loads(row["subtrees"])])
    except (CheckpointError, ValueError) as exc:
        log.warning("the last stored checkpoint cannot be extended (%s): rehashing the whole log", exc)
        return CompactRange(), GENESIS_HASH
    if compact.root() != signed.root_hash:
        log.warning("the last stored checkpoint's subtrees do not give its root: rehashing the whole log")
        return CompactRange(), GENESIS_HASH
    return compact, signed.chain_hash


@dataclass(frozen=True)
class WrittenCheckpoint:
    checkpoint: Checkpoint
    note: str
    new: bool  # False when the log had not grown since the last one (that one is returned)


async def write_checkpoint(connection: asyncpg.Connection, signer: Signer) -> WrittenCheckpoint:
    """Sign and store a checkpoint at the log's head, after checking that the entries since the last
    checkpoint extend it (links and hashes); CheckpointRefused if they do not."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", CHECKPOINT_LOCK_ID)
        head = await connection.fetchrow("SELECT last_seq, last_hash FROM guard_decision_head WHERE id = 1")
        size, head_hash = (int(head["last_seq"]), str(head["last_hash"])) if head is not None else (0, GENESIS_HASH)
        compact, chain_hash = await _starting_point(connection, signer.verifier)
        if compact.size > size:
            raise CheckpointRefused(f"the log has {size} entries, fewer than its last checkpoint's {compact.size}")
        if compact.size == size:
            if chain_hash != head_hash:
                raise CheckpointRefused(f"the log's head at {size} is not the last checkpoint's")
            latest = await connection.fetchval("SELECT note FROM guard_checkpoint WHERE size = $1", size)
            if latest is not None:
                return WrittenCheckpoint(open_checkpoint(latest, signer.verifier), latest, new=False)
        expected = compact.size + 1
        async with connection.transaction():  # (a cursor needs one; this is a savepoint)
            async for record in connection.cursor(ENTRIES_FROM, compact.size + 1, size, prefetch=2000):
                if record["seq"] != expected or record["prev_hash"] != chain_hash:
                    raise CheckpointRefused(f"entry {expected} does not extend the chain (deleted or inserted)")
                if content_hash(record_content(record), chain_hash) != record["hash"]:
                    raise CheckpointRefused(f"entry {expected} does not match its hash (edited)")
                chain_hash = record["hash"]
                compact.append(leaf_hash(bytes.fromhex(chain_hash)))
                expected += 1
        if compact.size != size or chain_hash != head_hash:
            raise CheckpointRefused(f"the log does not end at its head (entry {size})")
        checkpoint = Checkpoint(signer.name, size, compact.root(), chain_hash)
        stored = await connection.fetchval("SELECT note FROM guard_checkpoint WHERE size = $1", size)
        if stored is not None:  # (reached when the last one could not be extended: signed by another key?)
            try:
                if open_checkpoint(stored, signer.verifier) == checkpoint:
                    return WrittenCheckpoint(checkpoint, stored, new=False)
            except CheckpointError:
                pass
            raise CheckpointRefused(f"another checkpoint at size {size} is stored, not this key's or not this log's")
        note = signer.sign(checkpoint.body())
        await connection.execute(
            "INSERT INTO guard_checkpoint (size, root_hash, chain_hash, subtrees, note, created_at)"
            " VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
            size,
            checkpoint.root_hash.hex(),
            chain_hash,
            json.dumps([s.hex() for s in compact.subtrees]),
            note,
            datetime.now(UTC),
        )
    return WrittenCheckpoint(checkpoint, note, new=True)


def checkpoint_file_name(checkpoint: Checkpoint) -> str:
    return f"checkpoint-{checkpoint.size:012d}.txt"


def write_to_folder(folder: Path, written: WrittenCheckpoint) -> Path:
    """One file per checkpoint, written whole or not at all (a temporary file renamed into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / checkpoint_file_name(written.checkpoint)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(written.note)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return target


async def hand_to_witnesses(
    written: WrittenCheckpoint, folder: Path | None, url: str | None, witness_timeout: float = WITNESS_TIMEOUT_SECONDS
) -> list[str]:
    """Give the checkpoint to the witnesses configured; returns what failed (logged too). A witness that is
    down costs at most `witness_timeout` and delays nothing else: the checkpoint is already stored."""
    problems: list[str] = []
    if folder is not None:
        try:
            await asyncio.to_thread(write_to_folder, folder, written)
        except OSError as exc:
            problems.append(f"witness folder {folder}: {exc}")
    if url is not None:
        try:
            # httpx bounds each phase (connect, read…); asyncio.timeout bounds them all together.
            async with asyncio.timeout(witness_timeout), httpx.AsyncClient(timeout=witness_timeout) as client:
                response = await client.post(
                    url, content=written.note.encode(), headers={"content-type": "text/plain; charset=utf-8"}
                )
            if response.status_code >= 300:
                problems.append(f"witness {url}: HTTP {response.status_code}")
        except TimeoutError:
            problems.append(f"witness {url}: no answer within {witness_timeout:g} s")
        except httpx.HTTPError as exc:
            problems.append(f"witness {url}: {type(exc).__name__} {exc}")
    for problem in problems:
        log.warning("checkpoint at size %d not handed over: %s", written.checkpoint.size, problem)
    return problems


class CheckpointPublisher:
    """A background task per instance: every `interval` seconds, a checkpoint if the log has grown, handed to
    the witnesses. Concurrent instances take turns under an advisory lock; an unchanged log adds nothing."""

    def __init__(self, dsn: str, settings: Any, interval: float) -> None:
        self._dsn = dsn
        self._settings = settings
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="guard-checkpoint-publisher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def publish_once(self) -> WrittenCheckpoint:
        signer = await asyncio.to_thread(signer_for, self._settings)
        connection = await asyncpg.connect(self._dsn, timeout=10, server_settings={"application_name": "checkpoints"})
        try:
            written = await write_checkpoint(connection, signer)
        finally:
            await connection.close(timeout=5)
        if written.new:
            await hand_to_witnesses(written, self._settings.checkpoint_dir, self._settings.checkpoint_witness_url)
            self.published += 1
        return written

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish_once()
            except Exception as exc:  # logged and retried next time: the guard goes on answering meanwhile
                log.warning("checkpoint not written: %s", exc)


# --- Verifying ---------------------------------------------------------------------------------------------


def checkpoints_in_folder(folder: Path, verifier: Verifier) -> list[KnownCheckpoint]:
    """Every checkpoint file in `folder` (hidden and temporary files aside), each signature-checked;
    CheckpointError naming the first file refused."""
    known: list[KnownCheckpoint] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        source = f"checkpoint file {path.name}"
        try:
            known.append(KnownCheckpoint(open_checkpoint(path.read_text(encoding="utf-8"), verifier), source))
        except (CheckpointError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{source} is refused: {exc}") from None
    return known


async def stored_checkpoints(connection: asyncpg.Connection, verifier: Verifier) -> list[KnownCheckpoint]:
    known: list[KnownCheckpoint] = []
    for row in await connection.fetch("SELECT size, note FROM guard_checkpoint ORDER BY size"):
        source = f"the stored checkpoint at size {row['size']}"
        try:
            known.append(KnownCheckpoint(open_checkpoint(row["note"], verifier), source))
        except CheckpointError as exc:
            raise CheckpointError(f"{source} is refused: {exc}") from None
    return known


# --- Receipts ----------------------------------------------------------------------------------------------


async def receipt(connection: asyncpg.Connection, decision_id: uuid.UUID) -> dict[str, Any] | None:
    """A logged decision with what a third party needs to check it: the content its hash covers, the
    previous hash and its own, its sequence number, and, once a checkpoint covers it, that signed
    checkpoint and the RFC 6962 inclusion proof of the entry's leaf (leaf index = sequence - 1).

    Building the proof reads the chain hashes up to the checkpoint's size (32 bytes an entry)."""
    record = await connection.fetchrow(ENTRIES_FROM.replace("seq >= $1 AND seq <= $2", "decision_id = $1"), decision_id)
    if record is None:
        return None
    seq = int(record["seq"])
    content = record_content(record)
    document: dict[str, Any] = {
        "sequence": seq,
        "content": content,
        "prev_hash": record["prev_hash"],
        "hash": record["hash"],
        "leaf_index": seq - 1,
        "checkpoint": None,
        "inclusion_proof": None,
    }
    checkpoint = await connection.fetchrow(
        "SELECT size, note FROM guard_checkpoint WHERE size >= $1 ORDER BY size DESC LIMIT 1", seq
    )
    if checkpoint is not None:
        size = int(checkpoint["size"])
        hashes = await connection.fetch("SELECT hash FROM guard_decision WHERE seq <= $1 ORDER BY seq", size)
        leaves = [leaf_hash(bytes.fromhex(row["hash"])) for row in hashes]
        document["checkpoint"] = checkpoint["note"]
        document["inclusion_proof"] = [base64.b64encode(p).decode() for p in inclusion_proof(seq - 1, leaves)]
    return document
