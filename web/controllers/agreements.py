"""`/api/agreements`: list, create, read, update, terminate, history."""

from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from registry.schemas import AgreementIn, AgreementKind, AgreementUpdate
from registry.services.agreements import AgreementFilter, AgreementService
from registry.services.merge_patch import patched
from registry.services.parties import history
from registry.services.removed import has_history, restore_agreement
from web.auth import requires
from web.contract import AgreementAnswer, AgreementPage, ChangePage, answers
from web.controllers.deps import WITHOUT_NUL, Limit, Offset, Page, SearchText, page
from web.controllers.merge_patch import merge_patch_body, merge_patch_operation

Version = Annotated[int, QueryParameter(ge=1, description="the version your change is based on")]
PartyKey = Annotated[str | None, QueryParameter(max_length=64, pattern=WITHOUT_NUL)]


class AgreementController(Controller):
    path = "/api/agreements"
    tags = ["agreements"]

    @get(
        "/", opt=requires("registry:read"), responses=answers(200, AgreementPage, "A page of agreements", 400, 401, 403)
    )
    async def list_agreements(
        self,
        db_session: NamedDependency[AsyncSession],
        party: PartyKey = None,
        kind: FromQuery[AgreementKind | None] = None,
        expires_before: FromQuery[date | None] = None,
        q: SearchText = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[dict[str, Any]]:
        f = AgreementFilter(party, kind, expires_before, q)
        items, total = await AgreementService(db_session, "").search(f, limit, offset)
        return page(items, total, limit, offset)

    @post(
        "/", opt=requires("registry:write"), responses=answers(201, AgreementAnswer, "Created", 400, 401, 403, 409, 413)
    )
    async def create_agreement(
        self, request: Request, db_session: NamedDependency[AsyncSession], data: JSONBody[AgreementIn]
    ) -> dict[str, Any]:
        async with db_session.begin():
            return await AgreementService(db_session, request.user.name).create(data)

    @get(
        "/{key:str}",
        opt=requires("registry:read"),
        responses=answers(200, AgreementAnswer, "The agreement", 401, 403, 404),
    )
    async def get_agreement(self, db_session: NamedDependency[AsyncSession], key: FromPath[str]) -> dict[str, Any]:
        return await AgreementService(db_session, "").get(key)

    @put(
        "/{key:str}",
        opt=requires("registry:write"),
        responses=answers(200, AgreementAnswer, "Updated", 400, 401, 403, 404, 409, 413),
    )
    async def update_agreement(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        data: JSONBody[AgreementUpdate],
    ) -> dict[str, Any]:
        async with db_session.begin():
            return await AgreementService(db_session, request.user.name).update(key, data)

    @patch(
        "/{key:str}",
        opt=requires("registry:write"),
        operation_class=merge_patch_operation("agreement"),
        responses=answers(200, AgreementAnswer, "Patched", 400, 401, 403, 404, 409, 413, 415),
    )
    async def patch_agreement(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> dict[str, Any]:
        """JSON Merge Patch (RFC 7396, `application/merge-patch+json`) with the `version` it is based on."""
        changes = await merge_patch_body(request)
        async with db_session.begin():
            service = AgreementService(db_session, request.user.name)
            return await service.update(
                key, patched("agreement", key, await service.get(key), changes, AgreementUpdate)
            )

    @delete(
        "/{key:str}",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, AgreementAnswer, "Terminated", 400, 401, 403, 404, 409),
    )
    async def terminate_agreement(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        version: Version,
        terminated_on: FromQuery[date],
    ) -> dict[str, Any]:
        """Deactivating an agreement records when it was terminated; from that day the guard blocks."""
        async with db_session.begin():
            return await AgreementService(db_session, request.user.name).terminate(key, version, terminated_on)

    @get(
        "/{key:str}/history",
        opt=requires("registry:read"),
        responses=answers(200, ChangePage, "Its changes, newest first", 400, 401, 403, 404),
    )
    async def agreement_history(
        self,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[dict[str, Any]]:
        if not await has_history(db_session, "agreement", key):  # a removed agreement's history stays readable
            await AgreementService(db_session, "").get(key)  # 404 for an unknown agreement
        items, total = await history(db_session, "agreement", key, limit, offset)
        return page(items, total, limit, offset)

    @post(
        "/{key:str}/restore",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, AgreementAnswer, "Restored", 401, 403, 404, 409),
    )
    async def restore_agreement(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> dict[str, Any]:
        """Bring back a agreement an import removed, as it was then (listed at GET /api/registry/removed)."""
        async with db_session.begin():
            return await restore_agreement(db_session, key, request.user.name)
