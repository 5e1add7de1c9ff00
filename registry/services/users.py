"""UI users, logins and server-side sessions. The rules for web sign-in live here; pages and CLI stay thin."""

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kernel.columns import utcnow
from kernel.errors import ConflictError, FieldError, NotFoundError, RegistryValidationError
from registry.credentials import Principal
from registry.models.history import ChangeRecord
from registry.models.user import UiLoginThrottle, UiSecret, UiSession, UiUser
from registry.schemas import EMAIL_PATTERN
from registry.services.common import change_record

ROLES = ("legal", "ops", "admin")
SCOPES_BY_ROLE: dict[str, frozenset[str]] = {
    "legal": frozenset({"registry:read", "registry:write", "guard:check"}),
    "ops": frozenset({"registry:read", "guard:check"}),
    "admin": frozenset({"admin"}),
}
# The principal of a user whose password an admin reset: no scope at all until a new password is chosen.
PASSWORD_EXPIRED = "password_expired"
SESSION_LIFETIME = timedelta(hours=10)  # one working day; a fresh login each morning
MIN_PASSWORD_LENGTH = 12
# Throttling instead of a lock-out, per account and per client address separately. After FREE_FAILURES wrong
# passwords on an account (from anywhere), or ADDRESS_FREE_FAILURES from one address (on any accounts: an office
# or a VPN shares one, so a few colleagues' typos must not hold up the admin's correct password), each further
# try waits twice as long as the one before: 1 s, 2 s, 4 s, ... An account's wait stops growing at
# ACCOUNT_MAX_DELAY, so that nobody can lock a user (the admin included) out by guessing at their account;
# guessing stays slow (one try a minute). An address's wait grows to ADDRESS_MAX_DELAY: the one guessing is
# slowed down, not the people they guess at. Wrong passwords older than FORGET_AFTER no longer count.
FREE_FAILURES = 3
ADDRESS_FREE_FAILURES = 20
ACCOUNT_MAX_DELAY = timedelta(seconds=60)
ADDRESS_MAX_DELAY = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=24)
# Entities whose changes make up the administration history on the users page.
ADMIN_ENTITIES = ("user", "api_key", "calendar_feed")

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


def _email_errors(email: str) -> list[FieldError]:
    if not EMAIL_PATTERN.match(email) or len(email) > 254:
        return [FieldError("email", f"{email!r} is not an e-mail address", "email", {"value": email})]
    return []


def _role_errors(role: str) -> list[FieldError]:
    return [] if role in ROLES else [FieldError("role", f"the role must be one of {', '.join(ROLES)}", "literal_error")]


async def _user(session: AsyncSession, email: str) -> UiUser:
    email = normalise_email(email)
    user = (
        await session.execute(select(UiUser).where(col(UiUser.email) == email).with_for_update())
    ).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user {email!r}")
    return user


def _record(user: UiUser, action: str, actor: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> Any:
    return change_record("user", user.email[:64], action, actor, before, after)


async def _end_sessions(session: AsyncSession, user: UiUser, *, keep_token: str | None = None) -> None:
    statement = delete(UiSession).where(col(UiSession.user_id) == user.id)
    if keep_token is not None:
        statement = statement.where(col(UiSession.token_sha256) != _digest(keep_token))
    await session.execute(statement)


async def _other_active_admins(session: AsyncSession, user: UiUser) -> int:
    return len(
        (
            await session.execute(
                select(col(UiUser.id)).where(
                    col(UiUser.role) == "admin", col(UiUser.active).is_(True), col(UiUser.id) != user.id
                )
            )
        ).all()
    )


async def _keep_an_admin(session: AsyncSession, user: UiUser, field: str) -> None:
    """Nobody may remove the last active admin: there would be no one left to administer the UI."""
    if user.role == "admin" and user.active and not await _other_active_admins(session, user):
        raise RegistryValidationError([FieldError(field, "the last active admin must stay an active admin")])


async def create_user(session: AsyncSession, email: str, role: str, password: str, actor: str) -> UiUser:
    """A new user; the e-mail of a disabled user may be used again (the account is enabled with the new role and
    password, and its history continues)."""
    email = normalise_email(email)
    errors = _email_errors(email) + _role_errors(role) + password_errors(password)
    if errors:
        raise RegistryValidationError(errors)
    existing = (
        await session.execute(select(UiUser).where(col(UiUser.email) == email).with_for_update())
    ).scalar_one_or_none()
    if existing is not None and existing.active:
        raise ConflictError(f"a user {email!r} exists already")
    if existing is not None:
        before = {"active": False, "role": existing.role}
        existing.active, existing.role, existing.must_change_password = True, role, False
        existing.password_hash = hash_password(password)
        session.add(_record(existing, "recreate", actor, before, {"active": True, "role": role}))
        await session.flush()
        return existing
    user = UiUser(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    session.add(_record(user, "create", actor, None, {"email": email, "role": role}))
    await session.flush()
    return user


async def list_users(session: AsyncSession, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    users = list((await session.execute(select(UiUser).order_by(col(UiUser.email)))).scalars())
    keys = {account_key(u.email): u.email for u in users}
    waits = {
        keys[key]: next_try_at
        for key, next_try_at in await session.execute(
            select(col(UiLoginThrottle.key), col(UiLoginThrottle.next_try_at)).where(
                col(UiLoginThrottle.key).in_(list(keys)), col(UiLoginThrottle.next_try_at) > now
            )
        )
    }
    return [
        {
            "email": u.email,
            "role": u.role,
            "active": u.active,
            "created_at": u.created_at,
            "must_change_password": u.must_change_password,
            "throttled_until": waits.get(u.email),
        }
        for u in users
    ]


async def disable_user(session: AsyncSession, email: str, actor: str) -> None:
    """Disabling ends the user's sessions in the same transaction: access stops at once."""
    user = await _user(session, email)
    await _keep_an_admin(session, user, "email")
    await _end_sessions(session, user)
    if user.active:
        user.active = False
        session.add(_record(user, "deactivate", actor, {"active": True}, {"active": False}))
    await session.flush()


async def enable_user(session: AsyncSession, email: str, actor: str) -> None:
    user = await _user(session, email)
    if not user.active:
        user.active = True
        session.add(_record(user, "enable", actor, {"active": False}, {"active": True}))
    await session.flush()


async def change_role(session: AsyncSession, email: str, role: str, actor: str) -> None:
    """The new role applies to the user's next request (a session's scopes are read from the role each time)."""
    if errors := _role_errors(role):
        raise RegistryValidationError(errors)
    user = await _user(session, email)
    if user.role == role:
        return
    if role != "admin":
        await _keep_an_admin(session, user, "role")
    session.add(_record(user, "change_role", actor, {"role": user.role}, {"role": role}))
    user.role = role
    await session.flush()


async def reset_password(session: AsyncSession, email: str, actor: str) -> str:
    """A temporary password, returned once for the admin to pass on: it lets the user do nothing but choose a new
    password. The user's sessions end and their account's throttle is lifted."""
    user = await _user(session, email)
    temporary = secrets.token_urlsafe(12)  # 16 characters, above the minimum length
    user.password_hash = hash_password(temporary)
    user.must_change_password = True
    await _end_sessions(session, user)
    await session.execute(delete(UiLoginThrottle).where(col(UiLoginThrottle.key) == account_key(user.email)))
    session.add(_record(user, "reset_password", actor, None, {"must_change_password": True}))
    await session.flush()
    return temporary


async def change_own_password(
    session: AsyncSession, email: str, current: str, new: str, confirmation: str, session_token: str | None
) -> None:
    """The signed-in user's own change: the current password proves it is them; their other sessions end."""
    user = await _user(session, email)
    errors: list[FieldError] = []
    if not _verify(user.password_hash, current):
        errors.append(FieldError("current_password", "the current password is not right"))
    errors += [FieldError("new_password", e.message) for e in password_errors(new)]
    if new != confirmation:
        errors.append(FieldError("confirm_password", "the two new passwords differ"))
    elif new and new == current:
        errors.append(FieldError("new_password", "the new password must differ from the current one"))
    if errors:
        raise RegistryValidationError(errors)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    await _end_sessions(session, user, keep_token=session_token)
    session.add(_record(user, "password", email, None, None))
    await session.flush()


async def unlock_user(session: AsyncSession, email: str, actor: str) -> None:
    """Lift the throttle on an account's sign-ins (the wrong passwords counted against it are forgotten)."""
    user = await _user(session, email)
    await session.execute(delete(UiLoginThrottle).where(col(UiLoginThrottle.key) == account_key(user.email)))
    session.add(_record(user, "unlock", actor, None, None))
    await session.flush()


async def admin_history(session: AsyncSession, limit: int = 50) -> list[dict[str, Any]]:
    """The latest administrative changes: users, API keys and calendar feeds, newest first."""
    rows = (
        await session.execute(
            select(ChangeRecord)
            .where(col(ChangeRecord.entity).in_(ADMIN_ENTITIES))
            .order_by(col(ChangeRecord.id).desc())
            .limit(limit)
        )
    ).scalars()
    return [
        {"at": r.at, "actor": r.actor, "entity": r.entity, "key": r.entity_key, "action": r.action, "after": r.after}
        for r in rows
    ]


# --- signing in ---------------------------------------------------------------------------------------------


def account_key(email: str) -> str:
    return "account:" + hashlib.sha256(normalise_email(email).encode()).hexdigest()


def address_key(address: str) -> str:
    return ("address:" + address)[:80]


def throttle_delay(failures: int, cap: timedelta, free: int = FREE_FAILURES) -> timedelta:
    if failures < free:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(failures - free, 20)), cap)


@dataclass(frozen=True)
class LoginResult:
    token: str | None  # the session id for the cookie; None when the login failed
    wait_seconds: int = 0  # when throttled: how long before the next try counts
    must_change_password: bool = False


async def log_in(
    session: AsyncSession, email: str, password: str, address: str, *, now: datetime | None = None
) -> LoginResult:
    """Unknown and known e-mails are answered alike: both are throttled, both cost a password verification."""
    now = now or utcnow()
    email = normalise_email(email)
    keys = {
        address_key(address): (ADDRESS_MAX_DELAY, ADDRESS_FREE_FAILURES),
        account_key(email): (ACCOUNT_MAX_DELAY, FREE_FAILURES),
    }
    # Tries on one address or one account take turns (until the transaction ends), so that a burst of concurrent
    # guesses cannot all pass the check before the first of them is counted. Taken in one order: no deadlock.
    for key in sorted(keys):
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
    next_try = (
        await session.execute(
            select(func.max(col(UiLoginThrottle.next_try_at))).where(col(UiLoginThrottle.key).in_(list(keys)))
        )
    ).scalar_one()
    if next_try is not None and next_try > now:
        return LoginResult(None, wait_seconds=max(1, math.ceil((next_try - now).total_seconds())))
    user = (
        await session.execute(select(UiUser).where(col(UiUser.email) == email).with_for_update())
    ).scalar_one_or_none()
    if user is None or not user.active:
        _verify(_DUMMY_HASH, password)
        await _count_failure(session, keys, now)
        return LoginResult(None)
    if not _verify(user.password_hash, password):
        await _count_failure(session, keys, now)
        return LoginResult(None)
    await session.execute(delete(UiLoginThrottle).where(col(UiLoginThrottle.key) == account_key(email)))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token = secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(UiSession(token_sha256=_digest(token), user_id=user.id, expires_at=now + SESSION_LIFETIME))
    # Expired sessions and forgotten failures are cleared as people log in; no separate job is needed.
    await session.execute(delete(UiSession).where(col(UiSession.expires_at) < now))
    await session.execute(delete(UiLoginThrottle).where(col(UiLoginThrottle.last_failure_at) < now - FORGET_AFTER))
    return LoginResult(token, must_change_password=user.must_change_password)


# The password "hash" of a user created by single sign-on: argon2 refuses it as a hash, so no password matches.
SIGN_ON_ONLY = "!sign-on"


@dataclass(frozen=True)
class SignOnResult:
    token: str | None  # the session id for the cookie; None when the account is disabled
    created: bool = False


async def sign_on(session: AsyncSession, email: str, role: str, *, now: datetime | None = None) -> SignOnResult:
    """Sign in a user the identity provider vouched for (registry/ui/oidc.py verified its ID token). The user is
    created on first sign-in, with no password; the role is the provider's on every sign-in (the provider is the
    source of truth; a change is in the administration history). An account an admin disabled stays shut."""
    now = now or utcnow()
    email = normalise_email(email)
    if errors := _email_errors(email) + _role_errors(role):
        raise RegistryValidationError(errors)
    user = (
        await session.execute(select(UiUser).where(col(UiUser.email) == email).with_for_update())
    ).scalar_one_or_none()
    created = user is None
    if user is None:
        user = UiUser(email=email, password_hash=SIGN_ON_ONLY, role=role)
        session.add(user)
        session.add(_record(user, "create", "sign-on", None, {"email": email, "role": role}))
        await session.flush()
    elif not user.active:
        return SignOnResult(None)
    elif user.role != role:
        session.add(_record(user, "change_role", "sign-on", {"role": user.role}, {"role": role}))
        user.role = role
    token = secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(UiSession(token_sha256=_digest(token), user_id=user.id, expires_at=now + SESSION_LIFETIME))
    await session.execute(delete(UiSession).where(col(UiSession.expires_at) < now))
    return SignOnResult(token, created=created)


async def _count_failure(session: AsyncSession, keys: dict[str, tuple[timedelta, int]], now: datetime) -> None:
    """One more wrong password on each key (its wait's cap, its free failures), atomically (concurrent tries
    must all count)."""
    for key, (cap, free) in keys.items():
        table = UiLoginThrottle.__table__  # type: ignore[attr-defined]
        statement = insert(table).values(key=key, failures=1, next_try_at=now, last_failure_at=now)
        failures = (
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "failures": case((table.c.last_failure_at < now - FORGET_AFTER, 1), else_=table.c.failures + 1),
                        "last_failure_at": now,
                    },
                ).returning(table.c.failures)
            )
        ).scalar_one()
        await session.execute(
            update(UiLoginThrottle)
            .where(col(UiLoginThrottle.key) == key)
            .values(next_try_at=now + throttle_delay(failures, cap, free))
        )


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
            select(col(UiUser.email), col(UiUser.role), col(UiUser.language), col(UiUser.must_change_password))
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
    email, role, language, must_change = row
    if must_change:
        return Principal(name=email, scopes=frozenset(), kind=PASSWORD_EXPIRED, language=language)
    return Principal(name=email, scopes=SCOPES_BY_ROLE.get(role, frozenset()), kind="user", language=language)


async def shared_secret(session: AsyncSession, name: str) -> str:
    """The named secret, generated once; concurrent first starts agree on the row that won."""
    await session.execute(
        insert(UiSecret)
        .values(name=name, value=secrets.token_urlsafe(48), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return (await session.execute(select(col(UiSecret.value)).where(col(UiSecret.name) == name))).scalar_one()


async def remember_language(session: AsyncSession, email: str, language: str) -> None:
    """The user's UI language, used on their next pages and in e-mails to them as an agreement's owner."""
    await session.execute(update(UiUser).where(col(UiUser.email) == email).values(language=language))
