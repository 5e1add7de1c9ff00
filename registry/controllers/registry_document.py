"""`/api/registry`: the whole registry as one document (export, replace-all import)."""

from typing import Any

from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from registry.auth import requires
from registry.services.registry_document import export_registry, import_registry, parse_document


class RegistryDocumentController(Controller):
    path = "/api/registry"
    tags = ["registry"]

    @get("/", opt=requires("registry:read"))
    async def export_document(self, db_session: NamedDependency[AsyncSession]) -> dict[str, Any]:
        async with db_session.begin():  # one snapshot of every table
            return await export_registry(db_session)

    @put("/", opt=requires("registry:write"))
    async def replace_document(
        self, request: Request, db_session: NamedDependency[AsyncSession], data: JSONBody[dict[str, Any]]
    ) -> dict[str, Any]:
        """Replace the registry: all or nothing; every error comes back with its path."""
        document = parse_document(data)
        async with db_session.begin():
            counts = await import_registry(db_session, document, request.user.name)
        return {"status": "imported", **counts}
