"""`GET /api/registry/findings`: what in the registry would block shares today."""

from datetime import date
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from registry.auth import requires
from registry.contract import FindingsAnswer, answers
from registry.services.findings import registry_findings_report

CheckedOn = Annotated[
    date | None,
    QueryParameter(description="the day to check (YYYY-MM-DD); default: the controller's today"),
]


class RegistryFindingsController(Controller):
    # Its own path, so it does not touch the GET/PUT of the whole document at /api/registry.
    path = "/api/registry/findings"
    tags = ["registry"]

    @get("/", opt=requires("registry:read"), responses=answers(200, FindingsAnswer, "The findings", 400, 401, 403))
    async def list_findings(self, db_session: NamedDependency[AsyncSession], on: CheckedOn = None) -> dict[str, Any]:
        return await registry_findings_report(db_session, today=on)
