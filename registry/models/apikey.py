"""API keys for integrations and operators. Only a SHA-256 digest of the secret is stored: the tokens are
256-bit random strings, so a fast hash is enough and keeps key checks off the guard's hot path."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from kernel.columns import text_array_column, timestamp_column, utcnow


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    scopes: list[str] = Field(default_factory=list, sa_column=text_array_column())
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
