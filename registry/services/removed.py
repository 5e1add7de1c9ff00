"""Records an import removed: their history stays readable (the removal is its last entry), they are listed for
people to find, and each can be restored from the state it was removed in."""

from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kernel.errors import ConflictError, NotFoundError, RegistryValidationError, pydantic_field_errors
from registry.models import Agreement, ChangeRecord, Party
from registry.schemas import AgreementIn, PartyIn, could_be_key
from registry.services.agreement_documents import restore_removed_document
from registry.services.agreements import AgreementService
from registry.services.common import lock_registry_for_write
from registry.services.parties import PartyService

REMOVED = "delete"  # the action an import records when it removes a record


async def has_history(session: AsyncSession, entity: str, key: str) -> bool:
    if not could_be_key(key):
        return False
    stmt = select(func.count()).where(col(ChangeRecord.entity) == entity, col(ChangeRecord.entity_key) == key)
    return bool((await session.execute(stmt.limit(1))).scalar_one())


async def removed_records(session: AsyncSession) -> list[dict[str, Any]]:
    """Every party and agreement whose last history entry is its removal, newest removal first."""
    rows = await session.execute(
        text(
            """SELECT entity, entity_key, at, actor FROM (
                SELECT DISTINCT ON (entity, entity_key) entity, entity_key, action, at, actor, id
                FROM change_record WHERE entity IN ('party', 'agreement')
                ORDER BY entity, entity_key, id DESC) last
            WHERE action = :removed
              AND NOT EXISTS (SELECT 1 FROM party p WHERE last.entity = 'party' AND p.key = last.entity_key)
              AND NOT EXISTS (SELECT 1 FROM agreement a WHERE last.entity = 'agreement' AND a.key = last.entity_key)
            ORDER BY at DESC, id DESC"""
        ),
        {"removed": REMOVED},
    )
    items = []
    for entity, key, at, actor in rows:
        base = f"/api/{'parties' if entity == 'party' else 'agreements'}/{key}"
        items.append(
            {
                "entity": entity,
                "key": key,
                "removed_at": at,
                "removed_by": actor,
                "history": f"{base}/history",
                "restore": f"{base}/restore",
            }
        )
    return items


async def _removed_state(session: AsyncSession, entity: str, key: str) -> dict[str, Any]:
    if not could_be_key(key):
        raise NotFoundError(f"no removed {entity} with key {key!r}")
    last = (
        await session.execute(
            select(ChangeRecord)
            .where(col(ChangeRecord.entity) == entity, col(ChangeRecord.entity_key) == key)
            .order_by(col(ChangeRecord.id).desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    key_column = col(Party.key) if entity == "party" else col(Agreement.key)
    live = (await session.execute(select(key_column).where(key_column == key))).first()
    if live is not None:
        raise ConflictError(f"{entity} {key!r} exists; there is nothing to restore")
    if last is None or last.action != REMOVED or last.before is None:
        raise NotFoundError(f"no removed {entity} with key {key!r}")
    return dict(last.before)


async def restore_party(session: AsyncSession, key: str, actor: str) -> dict[str, Any]:
    """Bring a removed party back as it was when removed (its sub-processors must still exist)."""
    await lock_registry_for_write(session)
    state = await _removed_state(session, "party", key)
    try:
        data = PartyIn.model_validate(state)
    except ValidationError as exc:
        raise RegistryValidationError(pydantic_field_errors(exc)) from None
    return await PartyService(session, actor).create(data, action="restore")


async def restore_agreement(session: AsyncSession, key: str, actor: str) -> dict[str, Any]:
    """Bring a removed agreement back as it was when removed (its party must exist)."""
    await lock_registry_for_write(session)
    state = await _removed_state(session, "agreement", key)
    try:
        data = AgreementIn.model_validate(state)
    except ValidationError as exc:
        raise RegistryValidationError(pydantic_field_errors(exc)) from None
    restored = await AgreementService(session, actor).create(data, action="restore")
    await restore_removed_document(session, key, (state.get("document") or {}).get("sha256"))
    return restored
