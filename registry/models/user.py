"""Web UI users and sessions (owned by the UI work; see web/ui/).

Sessions live server-side so that logging out or disabling a user revokes access at once; the browser
holds only a random id, and the table only its SHA-256 digest (a stolen table row cannot be replayed)."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from kernel.columns import timestamp_column, utcnow


class UiUser(SQLModel, table=True):
    __tablename__ = "ui_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=200)  # argon2id, PHC string
    role: str = Field(max_length=16)  # legal | ops | admin
    active: bool = True
    language: str | None = Field(default=None, max_length=8)  # sv | en, chosen with the UI's switch
    # Set when an admin resets the password: the user may do nothing but choose a new one.
    must_change_password: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))


class UiSession(SQLModel, table=True):
    __tablename__ = "ui_session"

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="ui_user.id", index=True, ondelete="CASCADE")
    expires_at: datetime = Field(sa_column=timestamp_column(nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))


class UiSecret(SQLModel, table=True):
    """Secrets generated at first start when none is configured, shared by every instance."""

    __tablename__ = "ui_secret"

    name: str = Field(max_length=64, primary_key=True)
    value: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column(nullable=False))


class UiLoginThrottle(SQLModel, table=True):
    """Wrong passwords in a row, per client address and per account (keyed by a digest of the e-mail, known or
    not, so that the throttle answers alike for both), and when the next try may be made."""

    __tablename__ = "ui_login_throttle"

    key: str = Field(max_length=80, primary_key=True)  # "address:<ip>" or "account:<sha256 of the e-mail>"
    failures: int = 0
    next_try_at: datetime = Field(sa_column=timestamp_column(nullable=False))
    last_failure_at: datetime = Field(sa_column=timestamp_column(nullable=False))
