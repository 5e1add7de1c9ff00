"""The data controller whose registry this is (one row)."""

from typing import Any

from sqlalchemy import Column, Text
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
