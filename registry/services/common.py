"""Helpers every registry write uses: the write lock, history records, and the change notice."""

from collections.abc import Iterable
from typing import Any, TypeVarTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import notify_registry_changed
from registry.models import ChangeRecord
from registry.services.documents import json_ready

# Registry writes take turns: integrity checks (cycles, roles) read the whole link graph, and an import
# replaces everything, so two concurrent writers must not validate against each other's half-state.
REGISTRY_WRITE_LOCK_ID = 7_411_028_002

# The columns a list query selects: its filters keep the row type (Select[*Columns] in, Select[*Columns] out).
Columns = TypeVarTuple("Columns")


async def lock_registry_for_write(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": REGISTRY_WRITE_LOCK_ID})


def change_record(
    entity: str,
    key: str,
    action: str,
    actor: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> ChangeRecord:
    return ChangeRecord(
        entity=entity,
        entity_key=key,
        action=action,
        actor=actor,
        before=json_ready(before) if before is not None else None,
        after=json_ready(after) if after is not None else None,
    )


async def finish_write(
    session: AsyncSession,
    what: str,
    *,
    parties: Iterable[str] = (),
    agreements: Iterable[str] = (),
    everything: bool = False,
) -> int:
    """Flush, raise the revision and announce which records changed (kernel.db.notify_registry_changed)."""
    await session.flush()
    return await notify_registry_changed(session, what, parties=parties, agreements=agreements, everything=everything)
