"""Shared column helpers for the registry's tables."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_column(**kwargs: Any) -> Any:
    return Column(DateTime(timezone=True), **kwargs)


def text_array_column() -> Any:
    return Column(ARRAY(Text), nullable=False, server_default="{}")


def jsonb_column(nullable: bool = True) -> Any:
    return Column(JSONB, nullable=nullable)
