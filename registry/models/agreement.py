"""Written agreements: Art. 28 processing agreements (dpa) and controller-to-controller data sharing."""

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Integer
from sqlmodel import Field, SQLModel

from kernel.columns import text_array_column, timestamp_column, utcnow


class Agreement(SQLModel, table=True):
    __tablename__ = "agreement"
    __table_args__ = (
        CheckConstraint("kind IN ('dpa','data_sharing')", name="agreement_kind"),
        CheckConstraint("renewal IN ('fixed','auto')", name="agreement_renewal"),
        CheckConstraint("expires_on IS NULL OR expires_on >= effective_from", name="agreement_dates"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True, index=True)
    party_id: int = Field(
        sa_column=Column(Integer, ForeignKey("party.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    kind: str = Field(max_length=16)
    signed_on: date | None = None
    effective_from: date
    expires_on: date | None = None
    terminated_on: date | None = None
    renewal: str = Field(default="fixed", max_length=8)
    notice_days: int | None = None
    owner_email: str = Field(max_length=254)
    document_uri: str | None = Field(default=None, max_length=2048)
    document_sha256: str | None = Field(default=None, max_length=64)
    document_size: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    data_categories: list[str] = Field(default_factory=list, sa_column=text_array_column())
    purposes: list[str] = Field(default_factory=list, sa_column=text_array_column())
    data_subjects: list[str] = Field(default_factory=list, sa_column=text_array_column())
    clauses: list[str] = Field(default_factory=list, sa_column=text_array_column())
    transfers_outside_eea_permitted: bool = False
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))
