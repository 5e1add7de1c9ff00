"""Data subjects' objections and unsubscribes (GDPR Art. 21), held by keyed digest only (guard/subjects.py).

A withdrawal marks the row (`withdrawn_at`) rather than deleting it, and the change history keeps both
events. `change_seq` is taken from a sequence on every insert and withdrawal, under one advisory lock, so
that the guard's objection index (guard/objections.py) reads the changes since the last one it saw in
commit order.
"""

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index, String, text
from sqlmodel import Field, SQLModel

from kernel.columns import timestamp_column, utcnow


class Objection(SQLModel, table=True):
    __tablename__ = "objection"
    __table_args__ = (
        Index("objection_subject", "subject_digest", "id"),
        Index("objection_change_seq", "change_seq", unique=True),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    subject_digest: str = Field(sa_column=Column(String(64), nullable=False))
    scope: str = Field(max_length=32)
    received_on: date
    source: str = Field(max_length=200)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    withdrawn_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    withdrawn_by: str | None = Field(default=None, max_length=200)
    change_seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, nullable=False, server_default=text("nextval('objection_change_counter')")),
    )
