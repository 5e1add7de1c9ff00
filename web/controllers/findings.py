"""`GET /api/registry/findings`: what in the registry would block shares today."""

from datetime import date
from typing import Annotated, Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from registry.reports import findings_report, json_response
from web.auth import requires
from web.composition import Services
from web.contract import FindingsAnswer, answers

CheckedOn = Annotated[
    date | None,
    QueryParameter(description="the day to check (YYYY-MM-DD); default: the controller's today"),
]


class RegistryFindingsController(Controller):
    # Its own path, so it does not touch the GET/PUT of the whole document at /api/registry.
    path = "/api/registry/findings"
    tags = ["registry"]

    @get("/", opt=requires("registry:read"), responses=answers(200, FindingsAnswer, "The findings", 400, 401, 403))
    async def list_findings(
        self, services: NamedDependency[Services], on: CheckedOn = None
    ) -> Response[dict[str, Any]]:
        """Every finding, their count and the day checked. Walks the whole registry: built and encoded in the
        report worker, off the event loop the guard answers on."""
        return json_response(await services.reports.run(findings_report, services.settings.database_url, on))
