"""Guard decision log tables (owned by the guard work; see ledger/append.py).

The log is append-only and hash-chained per writer: each entry's `hash` is sha256 over its canonical content
and the hash of the same writer's previous entry, and `wseq` numbers a writer's entries without gaps.
`guard_log_writer` holds each writer's last `wseq` and hash, so that deleting a writer's newest entries is
detected too. `seq` locates an entry in the whole log (taken from a sequence: unique, rising, not gapless);
`guard_log_leaf` is the log's global order, the leaves of the Merkle tree that checkpoints sign.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Index, SmallInteger, String, Text, false, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlmodel import Field, SQLModel

from kernel.columns import timestamp_column


class GuardDecision(SQLModel, table=True):
    __tablename__ = "guard_decision"
    __table_args__ = (
        Index("guard_decision_recipient", "recipient", "seq"),
        # One person's recipients (GET /api/subjects/recipients): only entries naming a subject are indexed.
        Index(
            "guard_decision_subject",
            "subject_digest",
            "seq",
            postgresql_where=text("subject_digest IS NOT NULL"),
        ),
        Index("guard_decision_decided_at_seq", "decided_at", "seq"),
        # Only the denials (the rare outcome, the one looked for): nothing more to maintain for an allowed one.
        Index("guard_decision_denied", "seq", postgresql_where=text("NOT allowed")),
        Index("guard_decision_denied_recipient", "recipient", "seq", postgresql_where=text("NOT allowed")),
        Index("guard_decision_writer_wseq", "writer", "wseq", unique=True),
    )

    seq: int = Field(
        sa_column=Column(
            BigInteger, primary_key=True, autoincrement=False, server_default=text("nextval('guard_decision_seq')")
        )
    )
    writer: str = Field(max_length=64)
    wseq: int = Field(sa_column=Column(BigInteger, nullable=False))
    decision_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), nullable=False, unique=True))
    decided_at: datetime = Field(sa_column=timestamp_column(nullable=False))
    caller: str = Field(max_length=200)
    recipient: str = Field(max_length=200)
    allowed: bool
    request: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    reasons: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    warnings: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    agreement: str | None = Field(default=None, max_length=64)
    ruleset: str = Field(max_length=200)
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))
    # Before migration 0017: the keyed digest of the request's `subject_ref` (never the identifier), the same
    # value the hashed `request` holds as `subject_ref_digest`, in a column of its own so that it can be indexed.
    # Entries logged since migration 0017 leave it empty: the person is named in `decision_subject` (erasable),
    # the hashed request holding only a salted commitment (`subject_ref_commitment`).
    subject_digest: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # The id of the HTTP request the decision answered (the caller's X-Request-Id when it sent a sane one), for
    # following a request from the caller's logs to its decisions; hashed with the entry when present.
    request_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    # A decision taken on the UI's try-a-share page: kept as evidence, never a share. Hashed when true (an entry
    # logged before migration 0017 reads false and its hash does not name it).
    trial: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))


class GuardLogWriter(SQLModel, table=True):
    """A writer's chain head: its last `wseq` and that entry's hash (only ever moved forward, by a trigger)."""

    __tablename__ = "guard_log_writer"

    writer: str = Field(max_length=64, primary_key=True)
    last_wseq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_hash: str = Field(sa_column=Column(String(64), nullable=False))
    started_at: datetime = Field(sa_column=timestamp_column(nullable=False))
    started_by: str = Field(max_length=200)


class GuardLogLeaf(SQLModel, table=True):
    """The log's global order: leaf `leaf_index` of the Merkle tree is entry `seq` (assigned when sealed)."""

    __tablename__ = "guard_log_leaf"
    __table_args__ = (Index("guard_log_leaf_seq", "seq", unique=True),)

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class GuardCheckpoint(SQLModel, table=True):
    """A signed checkpoint of the log (ledger/checkpoint.py), as the service wrote and handed it to witnesses.

    `subtrees` is the Merkle tree's compact range at `size` (hex, largest subtree first): the next checkpoint
    extends it with the entries since instead of rehashing the whole log. It is checked against the signed root
    before use, so an edited copy costs a full rebuild, never a wrong checkpoint."""

    __tablename__ = "guard_checkpoint"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: str = Field(sa_column=Column(String(64), nullable=False))
    # A checkpoint of the single chain before migration 0014 signed its chain hash; later ones sign every
    # writer's head ({writer: [wseq, hash]}, kept here so that `verify-log --since-checkpoint` can start there).
    chain_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    heads: dict[str, list[Any]] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    subtrees: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamp_column(nullable=False))


class GuardEvidenceAlarm(SQLModel, table=True):
    """Evidence that the decision log was tampered with (a chain cut back under its writer, a checkpoint the
    log no longer extends or a witness refused): while one is open, every instance's guard fails closed.

    Append-only but for its resolution, written once by an operator (`registry guard resolve-alarms`)."""

    __tablename__ = "guard_evidence_alarm"

    id: int | None = Field(default=None, primary_key=True)
    raised_at: datetime = Field(sa_column=timestamp_column(nullable=False))
    raised_by: str = Field(max_length=200)
    problem: str = Field(sa_column=Column(Text, nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    resolved_by: str | None = Field(default=None, max_length=200)
    resolution: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class GuardSubjectKey(SQLModel, table=True):
    """The fingerprint of the subject key every instance of this registry must share (guard/subjects.py): an
    instance whose key does not match it refuses to start. Never the key itself."""

    __tablename__ = "guard_subject_key"

    id: int = Field(default=1, primary_key=True)
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=timestamp_column(nullable=False))
    created_by: str = Field(max_length=200)


class GuardLogNode(SQLModel, table=True):
    """Stored interior nodes of the log's Merkle tree (guard/merkle.py `STORED_LEVELS`): the root of the perfect
    subtree of 2**level leaves starting at leaf `index * 2**level`, written by the checkpoint writer as the
    tree grows, so that a receipt's or a consistency proof's nodes are read, not rehashed (O(log n))."""

    __tablename__ = "guard_log_node"

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


# --- Derived from the sealed log (ledger/rollup.py): rebuilt at will, never evidence -----------------------


class GuardDecisionDaily(SQLModel, table=True):
    """The sealed decisions (trials aside) counted per UTC day and per month, recipient, purpose, destination and
    outcome, written by the checkpoint writer in the transaction that seals them: the Art. 30 record sums these
    rows instead of counting a year of the log. `last_seq` and `last_decided_at` are the group's latest entry."""

    __tablename__ = "guard_decision_daily"
    __table_args__ = (
        # A request without a destination is its own group (NULLS NOT DISTINCT, PostgreSQL 15).
        Index(
            "guard_decision_daily_group",
            "whole_month",
            "day",
            "recipient",
            "purpose",
            "destination",
            "allowed",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    day: date
    whole_month: bool  # the row counts the whole month that starts on `day` (each entry is in both kinds of row)
    recipient: str = Field(max_length=200)
    purpose: str = Field(sa_column=Column(Text, nullable=False))
    destination: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    allowed: bool
    decisions: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_decided_at: datetime = Field(sa_column=timestamp_column(nullable=False))


class GuardDecisionDailyCategory(SQLModel, table=True):
    """The data categories of the sealed allowed shares (trials aside), per UTC day and per month, and recipient."""

    __tablename__ = "guard_decision_daily_category"

    whole_month: bool = Field(primary_key=True)
    day: date = Field(primary_key=True)
    recipient: str = Field(max_length=200, primary_key=True)
    category: str = Field(sa_column=Column(Text, primary_key=True))
    decisions: int = Field(sa_column=Column(BigInteger, nullable=False))


class GuardLogHour(SQLModel, table=True):
    """Per UTC hour of `decided_at`, the highest `seq` of a sealed entry decided in that hour or any before it
    (trials included): an entry decided before a moment has a `seq` no higher than its hour's `seq_through`,
    so a period that ended in the past is paged from there down by primary key (ledger/queries.py)."""

    __tablename__ = "guard_log_hour"

    hour: datetime = Field(sa_column=timestamp_column(nullable=False, primary_key=True))
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))  # the hour's own highest
    seq_through: int = Field(sa_column=Column(BigInteger, nullable=False))


class GuardRollupHead(SQLModel, table=True):
    """How far each writer's chain is counted into the tables above: entries 1..`wseq` (the sealed ones); a
    reader counts the entries past it directly, so that its figures are exact."""

    __tablename__ = "guard_rollup_head"

    writer: str = Field(max_length=64, primary_key=True)
    wseq: int = Field(sa_column=Column(BigInteger, nullable=False))


class GuardCheckpointCosignature(SQLModel, table=True):
    """A witness's cosignature of a checkpoint (C2SP tlog-cosignature, one signature line), as its
    add-checkpoint answered (ledger/seal.py): the witness's word that the log was append-only up to `size`.
    `verified`: checked with the witness key configured (REGISTRY_CHECKPOINT_WITNESS_KEY); without one it is
    kept as received. Append-only (migration 0023)."""

    __tablename__ = "guard_checkpoint_cosignature"
    __table_args__ = (Index("guard_checkpoint_cosignature_witness", "witness", "size"),)

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    cosignature: str = Field(sa_column=Column(Text, primary_key=True))
    witness: str = Field(sa_column=Column(Text, nullable=False))  # the witness's submission URL
    verified: bool = Field(sa_column=Column(Boolean, nullable=False))
    received_at: datetime = Field(sa_column=timestamp_column(nullable=False))
