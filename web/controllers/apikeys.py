"""`/api/keys`: API keys, for administrators."""

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from registry.schemas import ApiKeyIn
from registry.services.apikeys import create_api_key, list_api_keys, revoke_api_key
from web.auth import requires
from web.composition import services_of
from web.contract import ApiKeyAnswer, CreatedApiKey, RevokedApiKey, answers


class ApiKeyController(Controller):
    path = "/api/keys"
    tags = ["api keys"]
    opt = requires("admin")

    @get("/", responses=answers(200, list[ApiKeyAnswer], "Every key, never its secret", 401, 403))
    async def list_keys(self, db_session: NamedDependency[AsyncSession]) -> list[dict[str, Any]]:
        return await list_api_keys(db_session)

    @post("/", responses=answers(201, CreatedApiKey, "The new key with its token", 400, 401, 403, 409))
    async def create_key(
        self, request: Request, db_session: NamedDependency[AsyncSession], data: JSONBody[ApiKeyIn]
    ) -> dict[str, Any]:
        """The token is shown once, here; only its digest is stored."""
        async with db_session.begin():
            token = await create_api_key(db_session, data.name, list(data.scopes), request.user.name)
        return {"name": data.name, "scopes": sorted(set(data.scopes)), "token": token}

    @delete("/{name:str}", status_code=200, responses=answers(200, RevokedApiKey, "Revoked", 401, 403, 404))
    async def revoke_key(
        self, request: Request, db_session: NamedDependency[AsyncSession], name: FromPath[str]
    ) -> dict[str, str]:
        async with db_session.begin():
            await revoke_api_key(db_session, name, request.user.name)
        services_of(request.app).api_keys.clear()
        return {"name": name, "status": "revoked"}
