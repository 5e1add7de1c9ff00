"""The registry's revision: one row, one number."""

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel


class RegistryRevision(SQLModel, table=True):
    """Raised by every registry write in its own transaction (registry.db.notify_registry_changed), so an
    instance can tell with one cheap read whether its guard snapshot is still current, without reloading it."""

    __tablename__ = "registry_revision"

    id: int = Field(default=1, primary_key=True)
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
