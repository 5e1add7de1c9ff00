"""`/api/parties`: list, create, read, update, deactivate, history."""

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from registry.schemas import PartyCategory, PartyIn, PartyUpdate, Role
from registry.services.merge_patch import patched
from registry.services.parties import PartyFilter, PartyService, history
from registry.services.removed import has_history, restore_party
from web.auth import requires
from web.contract import ChangePage, PartyAnswer, PartyPage, answers
from web.controllers.deps import Limit, Offset, Page, SearchText, page
from web.controllers.merge_patch import merge_patch_body, merge_patch_operation

Version = Annotated[int, QueryParameter(ge=1, description="the version your change is based on")]


class PartyController(Controller):
    path = "/api/parties"
    tags = ["parties"]

    @get("/", opt=requires("registry:read"), responses=answers(200, PartyPage, "A page of parties", 400, 401, 403))
    async def list_parties(
        self,
        db_session: NamedDependency[AsyncSession],
        role: FromQuery[Role | None] = None,
        category: FromQuery[PartyCategory | None] = None,
        active: FromQuery[bool | None] = None,
        q: SearchText = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[dict[str, Any]]:
        items, total = await PartyService(db_session, "").search(PartyFilter(role, category, active, q), limit, offset)
        return page(items, total, limit, offset)

    @post("/", opt=requires("registry:write"), responses=answers(201, PartyAnswer, "Created", 400, 401, 403, 409, 413))
    async def create_party(
        self, request: Request, db_session: NamedDependency[AsyncSession], data: JSONBody[PartyIn]
    ) -> dict[str, Any]:
        async with db_session.begin():
            return await PartyService(db_session, request.user.name).create(data)

    @get("/{key:str}", opt=requires("registry:read"), responses=answers(200, PartyAnswer, "The party", 401, 403, 404))
    async def get_party(self, db_session: NamedDependency[AsyncSession], key: FromPath[str]) -> dict[str, Any]:
        return await PartyService(db_session, "").get(key)

    @put(
        "/{key:str}",
        opt=requires("registry:write"),
        responses=answers(200, PartyAnswer, "Updated", 400, 401, 403, 404, 409, 413),
    )
    async def update_party(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        data: JSONBody[PartyUpdate],
    ) -> dict[str, Any]:
        async with db_session.begin():
            return await PartyService(db_session, request.user.name).update(key, data)

    @patch(
        "/{key:str}",
        opt=requires("registry:write"),
        operation_class=merge_patch_operation("party"),
        responses=answers(200, PartyAnswer, "Patched", 400, 401, 403, 404, 409, 413, 415),
    )
    async def patch_party(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> dict[str, Any]:
        """JSON Merge Patch (RFC 7396, `application/merge-patch+json`) with the `version` it is based on."""
        changes = await merge_patch_body(request)
        async with db_session.begin():
            service = PartyService(db_session, request.user.name)
            return await service.update(key, patched("party", key, await service.get(key), changes, PartyUpdate))

    @delete(
        "/{key:str}",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, PartyAnswer, "Deactivated", 400, 401, 403, 404, 409),
    )
    async def deactivate_party(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        version: Version,
    ) -> dict[str, Any]:
        """Parties are deactivated, never erased: their history and guard decisions must stay readable."""
        async with db_session.begin():
            return await PartyService(db_session, request.user.name).deactivate(key, version)

    @get(
        "/{key:str}/history",
        opt=requires("registry:read"),
        responses=answers(200, ChangePage, "Its changes, newest first", 400, 401, 403, 404),
    )
    async def party_history(
        self,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[dict[str, Any]]:
        if not await has_history(db_session, "party", key):  # a removed party's history stays readable
            await PartyService(db_session, "").get(key)  # 404 for an unknown party
        items, total = await history(db_session, "party", key, limit, offset)
        return page(items, total, limit, offset)

    @post(
        "/{key:str}/restore",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, PartyAnswer, "Restored", 401, 403, 404, 409),
    )
    async def restore_party(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> dict[str, Any]:
        """Bring back a party an import removed, as it was then (listed at GET /api/registry/removed)."""
        async with db_session.begin():
            return await restore_party(db_session, key, request.user.name)
