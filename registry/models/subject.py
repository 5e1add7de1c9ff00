"""Data subjects' rights beyond objections, held by keyed digest only (guard/subjects.py): restrictions
(Art. 18), which person a decision-log entry named (erasable, Art. 17), and Art. 19 notifications.

A restriction is lifted by marking the row (`lifted_at`), like a withdrawn objection; `change_seq` is taken
from a sequence on every insert and lift under one advisory lock, so that the guard's restriction index
(guard/objections.py `RESTRICTIONS`) reads the changes in commit order.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlmodel import Field, SQLModel

from kernel.columns import timestamp_column, utcnow

NOTIFICATION_ACTIONS = ("rectification", "erasure", "restriction")


class Restriction(SQLModel, table=True):
    __tablename__ = "restriction"
    __table_args__ = (
        Index("restriction_subject", "subject_digest", "id"),
        Index("restriction_change_seq", "change_seq", unique=True),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    subject_digest: str = Field(sa_column=Column(String(64), nullable=False))
    received_on: date
    source: str = Field(max_length=200)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    lifted_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    lifted_by: str | None = Field(default=None, max_length=200)
    change_seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, nullable=False, server_default=text("nextval('restriction_change_counter')")),
    )


class DecisionSubject(SQLModel, table=True):
    """The person a decision-log entry named: its keyed digest and the salt of the commitment the entry's hashed
    request holds (`subject_ref_commitment`). Kept outside the append-only log, so that erasing a person
    deletes these rows and the log's chain still verifies; without the salt the commitment links to no one."""

    __tablename__ = "decision_subject"
    __table_args__ = (Index("decision_subject_digest", "subject_digest"),)

    decision_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    subject_digest: str = Field(sa_column=Column(String(64), nullable=False))
    salt: str = Field(sa_column=Column(String(32), nullable=False))


class SubjectNotification(SQLModel, table=True):
    """One Art. 19 notification to one recipient through one channel: the evidence that it was sent. `message`
    (which names the person, so that the recipient can find them) is kept only until delivered or given up."""

    __tablename__ = "subject_notification"
    __table_args__ = (
        Index("subject_notification_batch", "batch", "id"),
        Index("subject_notification_due", "next_attempt_at", "id", postgresql_where=text("status = 'pending'")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    batch: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), nullable=False))
    action: str = Field(max_length=16)
    party: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    address: str | None = Field(default=None, max_length=2000)
    language: str = Field(max_length=8)
    message: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    status: str = Field(max_length=16)
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    requested_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    next_attempt_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
