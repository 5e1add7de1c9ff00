"""Records an import removed, in the UI: a page listing them, each one's page (its history, opening with the
removal, and a restore action) where its live page was, and the restore itself. The registry's services keep
their history and restore them (registry/services/removed.py), as the API does."""

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import ConflictError, NotFoundError, RegistryValidationError
from registry.services.parties import history
from registry.services.removed import REMOVED, removed_records, restore_agreement, restore_party
from web.auth import requires
from web.ui import forms
from web.ui.pages.common import UiPages, current_user, page

ENTITY_PATHS = {"party": "parties", "agreement": "agreements"}
# A removed record's page shows this much of its history.
HISTORY_ROWS = 50


async def removed_record_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    entity: str,
    key: str,
    *,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Template:
    """The page of a record an import removed: its history, newest (the removal) first, and a restore action;
    the UI's 404 page when `key` was never a record of that kind or is not removed."""
    changes, _ = await history(session, entity, key, HISTORY_ROWS, 0)
    if not changes or changes[0]["action"] != REMOVED:
        raise NotFoundError(f"no {entity} with key {key!r}")
    return page(
        request,
        "removed_record.html",
        status_code=status_code,
        entity=entity,
        key=key,
        state=changes[0].get("before") or {},
        removal=changes[0],
        changes=changes,
        restore_errors=errors or [],
        restore_action=f"/ui/{ENTITY_PATHS[entity]}/{key}/restore",
    )


class RemovedPages(UiPages):
    @get("/removed", opt=requires("registry:read"))
    async def removed(self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]) -> Template:
        items = await removed_records(db_session)
        for item in items:
            item["page"] = f"/ui/{ENTITY_PATHS[item['entity']]}/{item['key']}"
            item["restore_action"] = f"{item['page']}/restore"
        return page(request, "removed.html", items=items)

    @post("/parties/{key:str}/restore", opt=requires("registry:write"), status_code=200)
    async def restore_removed_party(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Response[Any]:
        return await self._restore(request, db_session, "party", key)

    @post("/agreements/{key:str}/restore", opt=requires("registry:write"), status_code=200)
    async def restore_removed_agreement(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Response[Any]:
        return await self._restore(request, db_session, "agreement", key)

    async def _restore(
        self, request: Request[Any, Any, Any], session: AsyncSession, entity: str, key: str
    ) -> Response[Any]:
        """Restored: its live page. Not restorable as it was (its party or a sub-processor is gone too, or the key
        is taken again): the removed record's page, saying why."""
        restore = restore_party if entity == "party" else restore_agreement
        try:
            async with session.begin():
                await restore(session, key, current_user(request).name)
        except RegistryValidationError as exc:
            problems = [m for messages in forms.field_messages(exc.errors).values() for m in messages]
            await session.rollback()
            return await removed_record_page(request, session, entity, key, errors=problems, status_code=400)
        except ConflictError:
            return Redirect(f"/ui/{ENTITY_PATHS[entity]}/{key}", status_code=303)
        return Redirect(f"/ui/{ENTITY_PATHS[entity]}/{key}?restored=1", status_code=303)


route_handlers: list[Any] = [RemovedPages]
