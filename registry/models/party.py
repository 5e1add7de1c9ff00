"""Parties (processors, sub-processors, independent controllers, authorities), their locations and
sub-processor links."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from kernel.columns import jsonb_column, timestamp_column, utcnow


class Party(SQLModel, table=True):
    __tablename__ = "party"
    __table_args__ = (
        CheckConstraint(
            "role IN ('processor','sub_processor','independent_controller','authority')", name="party_role"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=32)
    category: str = Field(max_length=32)
    org_number: str | None = Field(default=None, max_length=32)
    established_in: str = Field(max_length=8)
    active: bool = True
    # Art. 4(26): an international organisation; a share to one is a transfer (Art. 44) wherever its office is.
    international_organisation: bool = Field(default=False, sa_column_kwargs={"server_default": "false"})
    contact: dict[str, Any] | None = Field(default=None, sa_column=jsonb_column())
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))


class Location(SQLModel, table=True):
    __tablename__ = "location"
    __table_args__ = (UniqueConstraint("party_id", "territory", "kind", name="location_unique"),)

    id: int | None = Field(default=None, primary_key=True)
    party_id: int = Field(sa_column=Column(Integer, ForeignKey("party.id", ondelete="CASCADE"), nullable=False))
    territory: str = Field(max_length=8)
    kind: str = Field(max_length=32)
    position: int = 0


class SubProcessorLink(SQLModel, table=True):
    __tablename__ = "sub_processor_link"
    __table_args__ = (
        UniqueConstraint("processor_id", "sub_processor_id", name="sub_processor_link_unique"),
        CheckConstraint("processor_id <> sub_processor_id", name="sub_processor_link_not_self"),
        CheckConstraint("authorisation IN ('specific','general')", name="sub_processor_link_authorisation"),
    )

    id: int | None = Field(default=None, primary_key=True)
    processor_id: int = Field(
        sa_column=Column(Integer, ForeignKey("party.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    sub_processor_id: int = Field(
        sa_column=Column(Integer, ForeignKey("party.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    # Art. 28(2): a specific authorisation is in effect once approved; a general one once approved or once the
    # objection deadline passed with no objection. An objected link never is.
    authorisation: str = Field(default="specific", max_length=16)
    notified_on: date | None = None
    objection_deadline: date | None = None
    approved_on: date | None = None
    objected_on: date | None = None
    position: int = 0
