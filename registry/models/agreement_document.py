"""Signed agreement documents on file: the PDF itself, kept in PostgreSQL next to the agreement.

One current document per agreement. Replacing it keeps the old digest in the agreement's history (the change
record of its `document` field), not the old bytes: the registry keeps the contract in force, and an auditor
compares the digest in the history with the copy they were given.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, String
from sqlmodel import Field, SQLModel

from kernel.columns import timestamp_column, utcnow


class AgreementDocument(SQLModel, table=True):
    __tablename__ = "agreement_document"

    agreement_id: int = Field(
        sa_column=Column(Integer, ForeignKey("agreement.id", ondelete="CASCADE"), primary_key=True)
    )
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    filename: str = Field(max_length=255)
    uploaded_by: str = Field(max_length=200)
    uploaded_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))


class RemovedAgreementDocument(SQLModel, table=True):
    """The signed PDF of an agreement an import removed, kept until a restore puts it back (migration 0020)."""

    __tablename__ = "removed_agreement_document"

    agreement_key: str = Field(sa_column=Column(String(64), primary_key=True))
    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    filename: str = Field(max_length=255)
    uploaded_by: str = Field(max_length=200)
    uploaded_at: datetime = Field(sa_column=timestamp_column(nullable=False))
    removed_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
