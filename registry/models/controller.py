"""The data controller whose registry this is (one row)."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from kernel.calendar import DEFAULT_TIMEZONE


class ControllerProfile(SQLModel, table=True):
    __tablename__ = "controller_profile"

    id: int = Field(default=1, primary_key=True)
    name: str = Field(max_length=200)
    established_in: str = Field(max_length=8)
    timezone: str = Field(default=DEFAULT_TIMEZONE, max_length=64)
    # The purposes (taxonomy keys) the privacy policy publishes; NULL: not set, so the guard does not check them.
    published_purposes: list[str] | None = Field(default=None, sa_column=Column(ARRAY(Text), nullable=True))
    # The controller's own words for taxonomy keys: {key: {"sv": label, "en": label}}; NULL: none given.
    vocabulary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    # Art. 30(1)(a): {address, email, phone}; NULL: none given.
    contact: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    # The processing activities as the registry document writes them (registry.schemas.ProcessingActivityIn,
    # validated before they are stored); NULL: none kept.
    processing_activities: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))


class PrivacyNoticePublication(SQLModel, table=True):
    """The privacy notice's recipients-and-transfers section as it was last marked published (one row per
    marking, the newest counts): when what the registry generates now differs, the notice is outdated."""

    __tablename__ = "privacy_notice_publication"

    id: int | None = Field(default=None, primary_key=True)
    published_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    published_by: str = Field(max_length=200)
    registry_revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    # SHA-256 of the generated section in both languages (registry.services.privacy_notice.notice_digest).
    digest: str = Field(max_length=64)
    texts: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
