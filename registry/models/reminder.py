"""Renewal reminder tables (owned by the reminders work; see registry/jobs/).

A `reminder` row is one delivery (one channel) of one reminder. It is written before anything is sent,
under a unique key (agreement, sub-processor, kind, threshold date, channel), so that every instance's
scan may write it and only one row ever exists; senders claim rows with FOR UPDATE SKIP LOCKED.
"""

from datetime import date, datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, text
from sqlmodel import Field, SQLModel

from kernel.columns import timestamp_column, utcnow


class Reminder(SQLModel, table=True):
    __tablename__ = "reminder"
    __table_args__ = (
        # 0 stands for "no sub-processor" so that the key stays unique (NULLs are distinct in an index).
        Index(
            "reminder_once",
            "agreement_id",
            text("coalesce(sub_processor_id, 0)"),
            "kind",
            "threshold_date",
            "channel",
            unique=True,
        ),
        Index("reminder_pending", "next_attempt_at", postgresql_where=text("sent_at IS NULL AND cancelled_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Deleting an agreement (a registry import drops agreements absent from the document) drops its reminders.
    agreement_id: int = Field(
        sa_column=Column(Integer, ForeignKey("agreement.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    # For an objection-deadline reminder: the sub-processor whose change awaits approval. Keyed by the party,
    # not the link row, because a party update rewrites its link rows.
    sub_processor_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("party.id", ondelete="CASCADE"), nullable=True)
    )
    kind: str = Field(max_length=32)  # expiry | notice_deadline | lapsed | objection_deadline
    due_date: date  # the date the reminder is about: expiry, notice deadline, objection deadline
    threshold_date: date  # the day the reminder became due
    days_before: int  # negative once the date has passed (weekly lapse reminders)
    channel: str = Field(max_length=16)  # email | webhook
    recipient: str = Field(max_length=2048)  # e-mail address or webhook URL
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    attempts: int = 0
    sent_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    cancelled_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    last_error: str | None = Field(default=None, max_length=2000)


class CalendarFeed(SQLModel, table=True):
    """A secret feed URL for calendar clients. Only the token's SHA-256 is kept; revoking ends it."""

    __tablename__ = "calendar_feed"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
