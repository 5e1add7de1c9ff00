"""The registry's revision: one row, one number; and what each revision changed."""

from sqlalchemy import BigInteger, Boolean, Column, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel


class RegistryRevision(SQLModel, table=True):
    """Raised by every registry write in its own transaction (kernel.db.notify_registry_changed), so an
    instance can tell with one cheap read whether its guard snapshot is still current, without reloading it."""

    __tablename__ = "registry_revision"

    id: int = Field(default=1, primary_key=True)
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))


class RegistryChange(SQLModel, table=True):
    """What one revision changed: the keys of the parties and agreements it touched, or `everything` (a bulk
    import, the controller profile). Written in the same transaction as the revision, so a guard snapshot at
    revision r applies the rows after r and reads only the records they name; a revision with no row here
    (pruned, or written by hand) makes it reload the whole registry instead."""

    __tablename__ = "registry_change"

    revision: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    parties: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    agreements: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    everything: bool = Field(sa_column=Column(Boolean, nullable=False))
