"""API keys: created with a random token shown once, stored as a digest, revocable."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kernel.columns import utcnow
from kernel.errors import ConflictError, FieldError, NotFoundError, RegistryValidationError
from registry.credentials import new_token, token_digest
from registry.models import ApiKey
from registry.schemas import SCOPES
from registry.services.common import change_record


async def create_api_key(session: AsyncSession, name: str, scopes: list[str], actor: str) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise RegistryValidationError(
            [FieldError("scopes", f"scopes must be among {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")]
        )
    if (await session.execute(select(col(ApiKey.id)).where(col(ApiKey.name) == name))).first():
        raise ConflictError(f"an API key named {name!r} exists already")
    token = new_token()
    session.add(ApiKey(name=name, token_sha256=token_digest(token), scopes=sorted(set(scopes))))
    session.add(change_record("api_key", name, "create", actor, None, {"name": name, "scopes": sorted(set(scopes))}))
    await session.flush()
    return token


async def list_api_keys(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.execute(select(ApiKey).order_by(col(ApiKey.name)))).scalars()
    return [
        {"name": k.name, "scopes": list(k.scopes), "created_at": k.created_at, "revoked_at": k.revoked_at} for k in rows
    ]


async def revoke_api_key(session: AsyncSession, name: str, actor: str) -> None:
    if "\x00" in name:  # PostgreSQL text cannot hold NUL, so no key has such a name
        raise NotFoundError(f"no API key named {name!r}")
    key = (await session.execute(select(ApiKey).where(col(ApiKey.name) == name).with_for_update())).scalar_one_or_none()
    if key is None:
        raise NotFoundError(f"no API key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(
            change_record("api_key", name, "revoke", actor, {"revoked_at": None}, {"revoked_at": key.revoked_at})
        )
    await session.flush()


async def any_admin_key(session: AsyncSession) -> bool:
    row = await session.execute(
        select(col(ApiKey.id)).where(col(ApiKey.revoked_at).is_(None), col(ApiKey.scopes).contains(["admin"])).limit(1)
    )
    return row.first() is not None
