"""A decision-log entry: its content, canonical form and hash, and a writer's chain head (DESIGN §4.4).

The format every reader shares: the writer (ledger/append.py) hashes entries with it, the queries
(ledger/queries.py) and the verifier (ledger/verify.py) read them back with it."""

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from ledger.checkpoint import LEGACY_WRITER

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64  # what a chain's first entry links to
# A group commit may take at most this long; past it its requests are answered 503.
APPEND_TIMEOUT_SECONDS = 10.0


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z: the form answers carry and hashes cover."""
    # The same string as strftime("%Y-%m-%dT%H:%M:%S.%fZ") (the hashes of logged entries cover it), faster.
    if moment.tzinfo is not UTC:  # (the clock and the database both give UTC moments already)
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_decision_id() -> str:
    """A random (version 4) UUID in its text form, as str(uuid.uuid4()) gives it, without building the UUID
    object and formatting it back: on the guard's hot path that cost twice as much as this."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """One guard answer as it is logged (the content the hash covers, less seq and prev_hash)."""

    decision_id: uuid.UUID | str  # the text form as answered is kept, rather than formatting the UUID twice
    decided_at: datetime
    caller: str
    request: dict[str, Any]
    allowed: bool
    reasons: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    agreement: str | None
    ruleset: str
    decided_at_text: str | None = None  # `format_timestamp(decided_at)`, when the answer already carries it
    request_id: str | None = None  # the HTTP request's id (the caller's X-Request-Id, or the one it was given)
    # A decision taken on the UI's try-a-share page: evidence, never a share (hashed when true).
    trial: bool = False
    # The person the request named (keyed digest) and the salt of the commitment its request holds: written
    # beside the log (`decision_subject`), outside the hash, so that an erasure can delete them.
    subject_digest: str | None = None
    subject_salt: str | None = None

    @property
    def recipient(self) -> str:
        return str(self.request.get("recipient", ""))


_CANONICAL = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """The form the hashes cover: json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    in UTF-8, byte for byte (tests/unit/test_decision_log_encoding.py holds msgspec to it, and to a pinned hash:
    a different form would stop the entries already logged from verifying). msgspec is ten times faster."""
    return _CANONICAL.encode(value)


def entry_content(
    *,
    writer: str,
    wseq: int,
    decision_id: uuid.UUID | str,
    decided_at: datetime | str,
    caller: str,
    recipient: str,
    request: dict[str, Any] | msgspec.Raw,
    allowed: bool,
    reasons: list[dict[str, Any]] | msgspec.Raw,
    warnings: list[dict[str, Any]] | msgspec.Raw,
    agreement: str | None,
    ruleset: str,
    request_id: str | None = None,
    trial: bool = False,
) -> dict[str, Any]:
    """What an entry's hash covers, by column name: entry `wseq` of `writer`'s chain. (The single chain before
    migration 0014, the writer LEGACY_WRITER, named its entries by `seq` alone, and their hashes cover that.)
    The request's id is covered when the entry has one (entries from before migration 0019_operations, and
    those logged outside an HTTP request, have none: their content, and so their hashes, are as they were).

    `request`, `reasons` and `warnings` may come already in canonical JSON (as msgspec.Raw, written out as they
    are), and `decided_at` as `format_timestamp` gives it, so that the writer formats each only once.

    `trial` is named only when true: the entries logged before it existed (all false) keep their hashes, and
    turning a trial into a share or back breaks the entry's hash either way."""
    content: dict[str, Any] = {
        "decision_id": str(decision_id),
        "decided_at": decided_at if isinstance(decided_at, str) else format_timestamp(decided_at),
        "caller": caller,
        "recipient": recipient,
        "request": request,
        "allowed": allowed,
        "reasons": reasons,
        "warnings": warnings,
        "agreement": agreement,
        "ruleset": ruleset,
    }
    if request_id is not None:
        content["request_id"] = request_id
    if trial:
        content["trial"] = True
    if writer == LEGACY_WRITER:
        content["seq"] = wseq
    else:
        content["writer"], content["wseq"] = writer, wseq
    return content


def content_hash(content: dict[str, Any], prev_hash: str) -> str:
    """The hash of an entry's content (`entry_content`), chained to the entry before."""
    return hashlib.sha256(canonical_json(content) + prev_hash.encode()).hexdigest()


decode_json = msgspec.json.decode

# The walks read rows with asyncpg, JSON columns as text: building ORM objects cost ten times the hashing.
ENTRY_COLUMNS = (
    "seq, writer, wseq, decision_id, decided_at, caller, recipient, allowed, request::text AS request,"
    " reasons::text AS reasons, warnings::text AS warnings, agreement, ruleset, prev_hash, hash, request_id, trial"
)
# A writer's entries from `wseq` $2 on, in its chain's order.
WRITER_ENTRIES_BETWEEN = (
    f"SELECT {ENTRY_COLUMNS} FROM guard_decision WHERE writer = $1 AND wseq BETWEEN $2 AND $3 ORDER BY wseq"
)
# The same entries' places and links only (no content): what sealing them needs.
WRITER_LINKS_BETWEEN = (
    "SELECT seq, writer, wseq, decision_id, prev_hash, hash FROM guard_decision"
    " WHERE writer = $1 AND wseq BETWEEN $2 AND $3 ORDER BY wseq"
)


def record_content(record: asyncpg.Record) -> dict[str, Any]:
    """What an entry's hash covers, from its row as `ENTRY_COLUMNS` reads it."""
    return entry_content(
        writer=record["writer"],
        wseq=record["wseq"],
        decision_id=record["decision_id"],
        decided_at=record["decided_at"],
        caller=record["caller"],
        recipient=record["recipient"],
        request=decode_json(record["request"]),
        allowed=record["allowed"],
        reasons=decode_json(record["reasons"]),
        warnings=decode_json(record["warnings"]),
        agreement=record["agreement"],
        ruleset=record["ruleset"],
        request_id=record["request_id"],
        trial=record["trial"],
    )
