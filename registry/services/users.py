"""UI users, logins and server-side sessions. The rules for web sign-in live here; pages and CLI stay thin."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from registry.auth import Principal
from registry.errors import ConflictError, FieldError, NotFoundError, RegistryValidationError
from registry.models.base import utcnow
from registry.models.user import UiSecret, UiSession, UiUser
from registry.schemas import EMAIL_PATTERN
from registry.services.common import change_record

ROLES = ("legal", "ops", "admin")
SCOPES_BY_ROLE: dict[str, frozenset[str]] = {
    "legal": frozenset({"registry:read", "registry:write", "guard:check"}),
    "ops": frozenset({"registry:read", "guard:check"}),
    "admin": frozenset({"admin"}),
}
SESSION_LIFETIME = timedelta(hours=10)  # one working day; a fresh login each morning
MIN_PASSWORD_LENGTH = 12
# After this many wrong passwords in a row the account waits LOCKOUT before the next try counts.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_errors(password: str) -> list[FieldError]:
    if len(password) < MIN_PASSWORD_LENGTH:
        return [
            FieldError(
                "password",
                f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
                "string_too_short",
                {"min_length": MIN_PASSWORD_LENGTH},
            )
        ]
    if len(password) > 1024:
        return [
            FieldError(
                "password", "the password must have at most 1024 characters", "string_too_long", {"max_length": 1024}
            )
        ]
    return []


async def create_user(session: AsyncSession, email: str, role: str, password: str, actor: str) -> UiUser:
    email = normalise_email(email)
    errors: list[FieldError] = []
    if not EMAIL_PATTERN.match(email) or len(email) > 254:
        errors.append(FieldError("email", f"{email!r} is not an e-mail address", "email", {"value": email}))
    if role not in ROLES:
        errors.append(FieldError("role", f"the role must be one of {', '.join(ROLES)}", "literal_error"))
    errors += password_errors(password)
    if errors:
        raise RegistryValidationError(errors)
    if (await session.execute(select(col(UiUser.id)).where(col(UiUser.email) == email))).first():
        raise ConflictError(f"a user {email!r} exists already")
    user = UiUser(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    session.add(change_record("user", email[:64], "create", actor, None, {"email": email, "role": role}))
    await session.flush()
    return user


async def list_users(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.execute(select(UiUser).order_by(col(UiUser.email)))).scalars()
    return [{"email": u.email, "role": u.role, "active": u.active, "created_at": u.created_at} for u in rows]


async def disable_user(session: AsyncSession, email: str, actor: str) -> None:
    """Disabling ends the user's sessions in the same transaction: access stops at once."""
    email = normalise_email(email)
    user = (
        await session.execute(select(UiUser).where(col(UiUser.email) == email).with_for_update())
    ).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user {email!r}")
    await session.execute(delete(UiSession).where(col(UiSession.user_id) == user.id))
    if user.active:
        user.active = False
        session.add(change_record("user", email[:64], "deactivate", actor, {"active": True}, {"active": False}))
    await session.flush()


@dataclass(frozen=True)
class LoginResult:
    token: str | None  # the session id for the cookie; None when the login failed
    locked: bool = False


async def log_in(session: AsyncSession, email: str, password: str, *, now: datetime | None = None) -> LoginResult:
    now = now or utcnow()
    email = normalise_email(email)
    user = (
        await session.execute(select(UiUser).where(col(UiUser.email) == email).with_for_update())
    ).scalar_one_or_none()
    if user is None or not user.active:
        _verify(_DUMMY_HASH, password)
        return LoginResult(None)
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult(None, locked=True)
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.failed_logins = 0
            user.locked_until = now + LOCKOUT
            return LoginResult(None, locked=True)
        return LoginResult(None)
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token = secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(UiSession(token_sha256=_digest(token), user_id=user.id, expires_at=now + SESSION_LIFETIME))
    # Expired sessions are cleared as people log in; no separate job is needed.
    await session.execute(delete(UiSession).where(col(UiSession.expires_at) < now))
    return LoginResult(token)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def log_out(session: AsyncSession, token: str) -> None:
    await session.execute(delete(UiSession).where(col(UiSession.token_sha256) == _digest(token)))


async def principal_for_session(session: AsyncSession, token: str, *, now: datetime | None = None) -> Principal | None:
    now = now or utcnow()
    row = (
        await session.execute(
            select(col(UiUser.email), col(UiUser.role), col(UiUser.language))
            .join(UiSession, col(UiSession.user_id) == col(UiUser.id))
            .where(
                col(UiSession.token_sha256) == _digest(token),
                col(UiSession.expires_at) > now,
                col(UiUser.active).is_(True),
            )
        )
    ).first()
    if row is None:
        return None
    email, role, language = row
    return Principal(name=email, scopes=SCOPES_BY_ROLE.get(role, frozenset()), kind="user", language=language)


async def role_of(session: AsyncSession, email: str) -> str | None:
    return (await session.execute(select(col(UiUser.role)).where(col(UiUser.email) == email))).scalar_one_or_none()


async def shared_secret(session: AsyncSession, name: str) -> str:
    """The named secret, generated once; concurrent first starts agree on the row that won."""
    await session.execute(
        insert(UiSecret)
        .values(name=name, value=secrets.token_urlsafe(48), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return (await session.execute(select(col(UiSecret.value)).where(col(UiSecret.name) == name))).scalar_one()


async def reset_lockout(session: AsyncSession, email: str) -> None:
    await session.execute(
        update(UiUser).where(col(UiUser.email) == normalise_email(email)).values(failed_logins=0, locked_until=None)
    )


async def remember_language(session: AsyncSession, email: str, language: str) -> None:
    """The user's UI language, used on their next pages and in e-mails to them as an agreement's owner."""
    await session.execute(update(UiUser).where(col(UiUser.email) == email).values(language=language))
