"""The decision log's evidence for outsiders: signed checkpoints written, stored and handed to witnesses, the
checkpoints a verification is held to, and receipts (an entry with its inclusion proof to a checkpoint).

Nothing here is on the guard's hot path: checkpoints are written by a background task (`CheckpointPublisher`)
or the CLI, and receipts are read on request.
"""

import asyncio
import contextlib
import heapq
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from kernel.counters import REFUSED_CHECKPOINTS, WITNESS_FAILURES
from kernel.tasks import cancel_and_wait
from kernel.workers import WorkerProcess
from ledger.append import EMPTY_CHAIN, ChainHead, writer_origin
from ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointRefused,
    CheckpointWithheld,
    CosignerKey,
    Signer,
    Verifier,
    WitnessConflict,
    cosignature_lines,
    load_or_create_signer,
    open_checkpoint,
    verify_cosignature,
)
from ledger.entries import WRITER_LINKS_BETWEEN
from ledger.evidence import EvidenceWatch, raise_alarm
from ledger.merkle import (
    CompactRange,
    consistency_proof,
    leaf_hash,
    verify_consistency,
)
from ledger.nodes import store_nodes
from ledger.proofs import consistency
from ledger.rollup import CHECKPOINT_LOCK_ID, count_sealed
from ledger.verify import BrokenChain, Heads, KnownCheckpoint, extend_chain, heads_at, signed_heads, walk_leaves

log = logging.getLogger(__name__)

WITNESS_TIMEOUT_SECONDS = 5.0


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


async def _starting_point(connection: asyncpg.Connection, verifier: Verifier) -> tuple[CompactRange, Heads]:
    """The tree and the writers' heads at the last stored checkpoint, when its subtrees reproduce its signed
    root and its stored heads its signed digest; else the empty log's (the next checkpoint then rehashes
    everything)."""
    row = await connection.fetchrow("SELECT size, subtrees, note FROM guard_checkpoint ORDER BY size DESC LIMIT 1")
    if row is None:
        return CompactRange(), {}
    try:
        signed = open_checkpoint(row["note"], verifier)
        compact = CompactRange(signed.size, [bytes.fromhex(h) for h in json.loads(row["subtrees"])])
    except (CheckpointError, ValueError) as exc:
        log.warning("the last stored checkpoint cannot be extended (%s): rehashing the whole log", exc)
        return CompactRange(), {}
    heads = await heads_at(connection, KnownCheckpoint(signed, "the last stored checkpoint"))
    if compact.root() != signed.root_hash or heads is None:
        log.warning("the last stored checkpoint's subtrees or heads do not match it: rehashing the whole log")
        return CompactRange(), {}
    return compact, heads


@dataclass(frozen=True)
class WrittenCheckpoint:
    checkpoint: Checkpoint
    note: str
    new: bool  # False when the log had not grown since the last one (that one is returned)


async def _seal(connection: asyncpg.Connection, heads: Heads) -> list[tuple[int, str]]:
    """Every writer's entries committed since its sealed head (`heads`, moved to the new heads), checked as the
    next of its chain, in the log's new order: by `seq`, each writer's entries in their chain's order.
    CheckpointRefused when a chain does not extend what was sealed.

    Places and links are checked, not contents: a checkpoint commits to the stored hashes, so an entry edited
    before it was sealed still fails verify-log (its content against its hash), while rehashing every entry
    here would cost the instance that seals (its event loop serves the guard) about 20 µs an entry."""
    recorded = await connection.fetch("SELECT writer, last_wseq, last_hash FROM guard_log_writer ORDER BY writer")
    chains: list[list[tuple[int, str]]] = []
    for row in recorded:
        writer, last = row["writer"], ChainHead(int(row["last_wseq"]), str(row["last_hash"]))
        sealed = heads.get(writer, EMPTY_CHAIN)
        if last.wseq < sealed.wseq or (last.wseq == sealed.wseq and last != sealed):
            raise CheckpointRefused(f"writer {writer}'s head is behind the last checkpoint's (cut back)")
        if last.wseq == sealed.wseq:
            continue
        chain: list[tuple[int, str]] = []
        async with connection.transaction():  # (a cursor needs one; this is a savepoint)
            async for record in connection.cursor(
                WRITER_LINKS_BETWEEN, writer, sealed.wseq + 1, last.wseq, prefetch=5000
            ):
                chain.append((int(record["seq"]), extend_chain(heads, record, content=False)))
        if heads.get(writer) != last:
            raise CheckpointRefused(f"writer {writer}'s chain does not end at its head (entry {last.wseq})")
        chains.append(chain)
    # A merge keeps each writer's entries in their chain's order, whatever order the sequence gave them.
    return list(heapq.merge(*chains))


async def leaf_hashes(connection: asyncpg.Connection, size: int) -> list[bytes]:
    """The Merkle leaf hashes of the first `size` leaves of the log's order."""
    rows = await connection.fetch(
        "SELECT d.hash FROM guard_log_leaf l JOIN guard_decision d ON d.seq = l.seq"
        " WHERE l.leaf_index < $1 ORDER BY l.leaf_index",
        size,
    )
    if len(rows) != size:
        raise CheckpointRefused(f"the log's order holds {len(rows)} of the first {size} leaves (entries deleted)")
    return [leaf_hash(bytes.fromhex(row["hash"])) for row in rows]


def _witnessed_problem(witnessed: Checkpoint, size: int, root: bytes, leaves: list[bytes] | None) -> str | None:
    """Why a checkpoint at `size` with `root` is not consistent with the witness's latest, `witnessed` (None
    when it is). `leaves` (every leaf hash up to `size`) are needed only for a witnessed size below `size`."""
    if witnessed.size > size:
        return f"a witness holds a checkpoint at size {witnessed.size}; the log now has {size} leaves (cut back)"
    if witnessed.size == size:
        return None if witnessed.root_hash == root else f"a witness holds another root at size {size} (rewritten)"
    assert leaves is not None
    proof = consistency_proof(witnessed.size, leaves)
    if not verify_consistency(witnessed.size, size, witnessed.root_hash, root, proof):
        return (
            f"no consistency proof leads from the witness's checkpoint at size {witnessed.size} to the log at"
            f" size {size} (entries at or before leaf {witnessed.size} were rewritten)"
        )
    return None


async def write_checkpoint(
    connection: asyncpg.Connection, signer: Signer, witnessed: Checkpoint | None = None
) -> WrittenCheckpoint:
    """Seal the entries committed since the last checkpoint into the log's order, after checking that each
    extends its writer's chain (links and hashes), and sign and store a checkpoint over them; CheckpointRefused
    if the log does not extend the last checkpoint; WitnessConflict (nothing sealed or signed) if it does not
    extend `witnessed`, the latest checkpoint a witness holds (RFC 6962 consistency, as C2SP witnesses check);
    CheckpointWithheld while a tampering alarm is open."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", CHECKPOINT_LOCK_ID)
        if await connection.fetchval("SELECT count(*) FROM guard_evidence_alarm WHERE resolved_at IS NULL"):
            raise CheckpointWithheld("evidence of tampering is unresolved (registry guard resolve-alarms)")
        compact, heads = await _starting_point(connection, signer.verifier)
        start = CompactRange(compact.size, compact.subtrees)
        leaves = int(await connection.fetchval("SELECT coalesce(max(leaf_index) + 1, 0) FROM guard_log_leaf"))
        if leaves < compact.size:
            raise CheckpointRefused(
                f"the log's order has {leaves} leaves, fewer than its last checkpoint's {compact.size}"
            )
        try:
            # Leaves past the starting point (none, unless the last checkpoint could not be extended) are re-walked.
            await walk_leaves(
                connection, heads, compact.size, lambda _, digest: compact.append(leaf_hash(bytes.fromhex(digest)))
            )
            new_leaves = await _seal(connection, heads)
        except BrokenChain as broken:
            raise CheckpointRefused(broken.result(0).describe()) from None
        for _, digest in new_leaves:
            compact.append(leaf_hash(bytes.fromhex(digest)))
        size = compact.size
        if not new_leaves:
            latest = await connection.fetchval("SELECT note FROM guard_checkpoint WHERE size = $1", size)
            if latest is not None:
                return WrittenCheckpoint(open_checkpoint(latest, signer.verifier), latest, new=False)
        if witnessed is not None:
            # The witness's latest is usually where this tree was extended from, which proves it a prefix;
            # otherwise the proof is built from the leaves, as a remote witness would be handed it.
            extended = witnessed.size == start.size and witnessed.root_hash == start.root() and start.size > 0
            hashes = None
            if not extended and witnessed.size < size:
                hashes = await leaf_hashes(connection, size - len(new_leaves))
                hashes += [leaf_hash(bytes.fromhex(digest)) for _, digest in new_leaves]
            problem = None if extended else _witnessed_problem(witnessed, size, compact.root(), hashes)
            if problem is not None:
                raise WitnessConflict(problem)
        checkpoint = Checkpoint(signer.name, size, compact.root(), signed_heads(heads))
        stored = await connection.fetchval("SELECT note FROM guard_checkpoint WHERE size = $1", size)
        if stored is not None:  # (reached when the last one could not be extended: signed by another key?)
            try:
                existing = open_checkpoint(stored, signer.verifier)
                if existing.root_hash == checkpoint.root_hash:
                    return WrittenCheckpoint(existing, stored, new=False)
            except CheckpointError:
                pass
            raise CheckpointRefused(f"another checkpoint at size {size} is stored, not this key's or not this log's")
        if new_leaves:
            await connection.execute(
                "INSERT INTO guard_log_leaf (leaf_index, seq) SELECT * FROM unnest($1::bigint[], $2::bigint[])",
                list(range(size - len(new_leaves), size)),
                [seq for seq, _ in new_leaves],
            )
            # Counted as they are sealed, in this transaction: the rollup holds exactly the sealed entries.
            await count_sealed(connection, [seq for seq, _ in new_leaves])
        await store_nodes(connection, size)
        note = signer.sign(checkpoint.body())
        await connection.execute(
            "INSERT INTO guard_checkpoint (size, root_hash, heads, subtrees, note, created_at)"
            " VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6)",
            size,
            checkpoint.root_hash.hex(),
            json.dumps({writer: [head.wseq, head.hash] for writer, head in sorted(heads.items())}),
            json.dumps([s.hex() for s in compact.subtrees]),
            note,
            datetime.now(UTC),
        )
    return WrittenCheckpoint(checkpoint, note, new=True)


def checkpoint_file_name(checkpoint: Checkpoint) -> str:
    return f"checkpoint-{checkpoint.size:012d}.txt"


def write_to_folder(folder: Path, written: WrittenCheckpoint) -> Path:
    """One file per checkpoint, written whole or not at all, and never over a file the folder holds: a
    temporary file hard-linked into place, which fails if the name is taken. The same checkpoint again is no
    change; another one at that size is a WitnessConflict (the folder keeps its own)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / checkpoint_file_name(written.checkpoint)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(written.note)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, target)
        except FileExistsError:
            if target.read_text(encoding="utf-8") != written.note:
                raise WitnessConflict(
                    f"the witness folder already holds another checkpoint at size {written.checkpoint.size}"
                    f" ({target.name}); it is kept, this one is not written"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return target


def witnessed_in_folder(folder: Path | None, verifier: Verifier) -> Checkpoint | None:
    """The latest checkpoint of this log (by the log's key) a witness folder holds; None if none. Files that do
    not open as this log's checkpoints are left aside here (verify-log --checkpoints reports them)."""
    if folder is None or not folder.is_dir():
        return None
    latest: Checkpoint | None = None
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            checkpoint = open_checkpoint(path.read_text(encoding="utf-8"), verifier)
        except (CheckpointError, UnicodeDecodeError, OSError):
            continue
        if latest is None or checkpoint.size > latest.size:
            latest = checkpoint
    return latest


@dataclass(frozen=True)
class UrlWitness:
    """A C2SP tlog-witness: its submission prefix (add-checkpoint is POSTed under it) and, when configured, its
    Ed25519 cosigning key (REGISTRY_CHECKPOINT_WITNESS_KEY), with which its cosignatures are verified."""

    url: str
    key: CosignerKey | None = None

    @property
    def add_checkpoint(self) -> str:
        return self.url.rstrip("/") + "/add-checkpoint"


def url_witness_for(settings: Any) -> UrlWitness | None:
    """The URL witness configured, if any (its key was checked when the settings were read)."""
    if settings.checkpoint_witness_url is None:
        return None
    key = settings.checkpoint_witness_key
    return UrlWitness(settings.checkpoint_witness_url, CosignerKey.parse(key) if key else None)


async def _witness_size(connection: asyncpg.Connection, witness: UrlWitness) -> int:
    """The latest size this witness cosigned, as stored (0: none, as the protocol starts; a witness that holds
    more answers 409 with its size)."""
    return int(
        await connection.fetchval(
            "SELECT coalesce(max(size), 0) FROM guard_checkpoint_cosignature WHERE witness = $1", witness.url
        )
    )


async def _add_checkpoint_body(connection: asyncpg.Connection, old: int, written: WrittenCheckpoint) -> bytes:
    """``old <size>``, the RFC 6962 consistency proof from `old` to the checkpoint's size (base64, a line each,
    read from the stored subtrees: O(log n)), a blank line, and the signed checkpoint."""
    size = written.checkpoint.size
    proof = (await consistency(connection, old, size))["proof"] if 0 < old < size else []
    return "".join([f"old {old}\n", *(f"{line}\n" for line in proof), "\n", written.note]).encode()


def _told_size(response: httpx.Response) -> int | None:
    """The witness's size from a 409 answer (Content-Type text/x.tlog.size, a decimal and a newline)."""
    if response.headers.get("content-type", "").split(";")[0].strip() != "text/x.tlog.size":
        return None
    text = response.text
    return int(text[:-1]) if text.endswith("\n") and text[:-1].isdigit() else None


async def _store_cosignatures(
    connection: asyncpg.Connection, witness: UrlWitness, written: WrittenCheckpoint, answer: str
) -> str | None:
    """Keep the cosignature lines of a 200 answer beside the checkpoint; what is wrong with them (None: stored).
    With a key configured only its verified cosignatures are kept, and at least one must be there."""
    body = written.checkpoint.body()
    try:
        lines = cosignature_lines(answer)
        if witness.key is not None:
            lines = [line for line in lines if verify_cosignature(line, body, witness.key) is not None]
            if not lines:
                return f"its answer carries no cosignature by {witness.key.name}"
    except CheckpointError as exc:
        return f"its answer is refused: {exc}"
    await connection.execute(
        "INSERT INTO guard_checkpoint_cosignature (size, cosignature, witness, verified, received_at)"
        " SELECT $1, line, $2, $3, now() FROM unnest($4::text[]) AS line ON CONFLICT DO NOTHING",
        written.checkpoint.size,
        witness.url,
        witness.key is not None,
        lines,
    )
    return None


async def _hand_to_url_witness(
    connection: asyncpg.Connection, written: WrittenCheckpoint, witness: UrlWitness, client: httpx.AsyncClient
) -> str | None:
    """C2SP tlog-witness add-checkpoint: the checkpoint with a consistency proof from the size the witness last
    cosigned. What went wrong (None: cosigned and stored); WitnessConflict when the witness shows the log is not
    append-only: it refuses the proof (422), holds another root at this size, or holds more than was signed."""
    size = written.checkpoint.size
    old = await _witness_size(connection, witness)
    for attempt in range(2):
        if old > size:
            return None  # (a later checkpoint, by another instance, reached the witness first: nothing to add)
        response = await client.post(
            witness.add_checkpoint,
            content=await _add_checkpoint_body(connection, old, written),
            headers={"content-type": "text/plain; charset=utf-8"},
        )
        status = response.status_code
        if status == 200:
            return await _store_cosignatures(connection, witness, written, response.text)
        if status == 422:
            raise WitnessConflict(
                f"witness {witness.url} refused the consistency proof from its checkpoint at size {old} to the log"
                f" at size {size} (HTTP 422: entries at or before leaf {old} were rewritten)"
            )
        if status in (403, 404):
            return f"HTTP {status}: it does not know this log's origin or key"
        if status != 409:
            return f"HTTP {status}"
        told = _told_size(response)
        if told is None:
            return "HTTP 409 without its size (Content-Type text/x.tlog.size)"
        if told == size and old == size:
            raise WitnessConflict(f"witness {witness.url} holds another root at size {size} (rewritten)")
        if told > size:
            signed = int(await connection.fetchval("SELECT coalesce(max(size), 0) FROM guard_checkpoint"))
            if told > signed:
                raise WitnessConflict(
                    f"witness {witness.url} holds a checkpoint at size {told}; the log's checkpoints end at"
                    f" {signed} (cut back)"
                )
        if attempt == 0:
            old = told
    return f"HTTP 409 twice (its size moved to {told} meanwhile)"


async def hand_to_witnesses(
    connection: asyncpg.Connection,
    written: WrittenCheckpoint,
    folder: Path | None,
    witness: UrlWitness | None,
    witness_timeout: float = WITNESS_TIMEOUT_SECONDS,
) -> list[str]:
    """Give the checkpoint to the witnesses configured; returns what failed (logged too): a witness that is
    down or does not know this log costs at most `witness_timeout` and delays nothing else (the checkpoint is
    already stored). WitnessConflict when a witness shows the log is not what it cosigned."""
    problems: list[str] = []
    if folder is not None:
        try:
            await asyncio.to_thread(write_to_folder, folder, written)
        except WitnessConflict:
            raise
        except OSError as exc:
            problems.append(f"witness folder {folder}: {exc}")
    if witness is not None:
        try:
            # httpx bounds each phase (connect, read…); asyncio.timeout bounds them all together.
            async with (
                asyncio.timeout(witness_timeout),
                httpx.AsyncClient(timeout=witness_timeout, follow_redirects=False) as client,
            ):
                problem = await _hand_to_url_witness(connection, written, witness, client)
            if problem is not None:
                problems.append(f"witness {witness.url}: {problem}")
        except TimeoutError:
            problems.append(f"witness {witness.url}: no answer within {witness_timeout:g} s")
        except httpx.HTTPError as exc:
            problems.append(f"witness {witness.url}: {type(exc).__name__} {exc}")
    for problem in problems:
        log.warning("checkpoint at size %d not handed over: %s", written.checkpoint.size, problem)
    return problems


class CheckpointPublisher:
    """A background task per instance: every `interval` seconds, a checkpoint if the log has grown, handed to
    the witnesses. Concurrent instances take turns under an advisory lock; an unchanged log adds nothing.

    The work runs in a worker process (kernel/workers.py): sealing walks every entry committed since the last
    checkpoint, and on the server's event loop each walk would hold up the guard's checks."""

    def __init__(self, dsn: str, settings: Any, interval: float, evidence: EvidenceWatch | None = None) -> None:
        self._dsn = dsn
        self._settings = settings
        self.interval = interval
        self._evidence = evidence
        self._task: asyncio.Task[None] | None = None
        self._worker = WorkerProcess("checkpoint")
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="guard-checkpoint-publisher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._worker.close()

    async def publish_once(self) -> Checkpoint:
        """Write a checkpoint if the log has grown and hand it to the witnesses; the log's latest checkpoint."""
        settings = self._settings
        try:
            checkpoint, new, problems = await self._worker.run(
                publish_in_worker,
                self._dsn,
                str(signing_key_file(settings)),
                settings.log_origin,
                str(settings.checkpoint_dir) if settings.checkpoint_dir is not None else None,
                settings.checkpoint_witness_url,
                settings.checkpoint_witness_key,
            )
        except CheckpointRefused as exc:
            # Evidence: the log no longer extends what was signed or witnessed. Counted, logged, and the guard
            # fails closed (the worker stored the alarm; this instance need not wait to hear of it).
            REFUSED_CHECKPOINTS.inc()
            if self._evidence is not None:
                self._evidence.raise_(f"checkpoint refused: {exc}", stored=True)
            raise
        if problems:  # (logged by the worker; counted here, where /metrics reads the counters)
            WITNESS_FAILURES.inc(len(problems))
        if new:
            self.published += 1
        return checkpoint

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish_once()
            except CheckpointRefused as exc:  # (the guard now fails closed: guard/evidence.py)
                log.error("checkpoint refused: %s", exc)
            except Exception as exc:  # logged and retried next time: the guard goes on answering meanwhile
                log.warning("checkpoint not written: %s", exc)


def publish_in_worker(
    dsn: str, key_file: str, origin: str, folder: str | None, witness_url: str | None, witness_key: str | None
) -> tuple[Checkpoint, bool, list[str]]:
    """In the worker process: write a checkpoint if the log has grown, hand a new one to the witnesses; the
    latest checkpoint (signed there, so the server need not read the key to learn it), whether it is new, and
    what the witnesses did not take."""

    async def main() -> tuple[Checkpoint, bool, list[str]]:
        signer = load_or_create_signer(Path(key_file), origin)
        witness_folder = Path(folder) if folder is not None else None
        witness = url_witness_for(_WitnessSettings(witness_url, witness_key))
        problems: list[str] = []
        connection = await asyncpg.connect(dsn, timeout=10, server_settings={"application_name": "checkpoints"})
        try:
            try:
                written = await write_checkpoint(
                    connection, signer, witnessed_in_folder(witness_folder, signer.verifier)
                )
                if written.new:
                    problems = await hand_to_witnesses(connection, written, witness_folder, witness)
            except CheckpointRefused as exc:
                await raise_alarm(connection, f"checkpoint refused: {exc}", writer_origin("checkpoints"))
                raise
        finally:
            await connection.close(timeout=5)
        return written.checkpoint, written.new, problems

    return asyncio.run(main())


@dataclass(frozen=True)
class _WitnessSettings:
    checkpoint_witness_url: str | None
    checkpoint_witness_key: str | None


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
