"""Change history: who changed what, when, with the state before and after."""

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from kernel.columns import jsonb_column, timestamp_column, utcnow


class ChangeRecord(SQLModel, table=True):
    __tablename__ = "change_record"
    __table_args__ = (Index("change_record_entity", "entity", "entity_key", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    entity: str = Field(max_length=16)  # party | agreement | controller
    entity_key: str = Field(max_length=64)
    action: str = Field(max_length=16)  # create | update | deactivate | delete | import
    actor: str = Field(max_length=200)
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    before: dict[str, Any] | None = Field(default=None, sa_column=jsonb_column())
    after: dict[str, Any] | None = Field(default=None, sa_column=jsonb_column())
