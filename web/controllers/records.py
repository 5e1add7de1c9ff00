"""`/api/records/article-30`: the Art. 30(1)(d)-(e) record as JSON, CSV or XLSX."""

from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Response

from registry import reports
from web.auth import requires
from web.composition import Services
from web.contract import Article30Answer, answers
from web.controllers.exports import XLSX, attachment

From = Annotated[date | None, QueryParameter(name="from", description="first day (YYYY-MM-DD); default a year ago")]
To = Annotated[date | None, QueryParameter(name="to", description="last day (YYYY-MM-DD); default today")]
Format = Annotated[Literal["json", "csv", "xlsx"], QueryParameter(description="json, csv or xlsx")]


class RecordsController(Controller):
    path = "/api/records"
    tags = ["records"]

    @get(
        "/article-30",
        opt=requires("registry:read"),
        responses=answers(200, Article30Answer, "The record (format=json; csv and xlsx are files)", 400, 401, 403),
    )
    async def article_30(
        self, services: NamedDependency[Services], start: From = None, end: To = None, format: Format = "json"
    ) -> Response[Any]:
        """Recipients, their territories and agreements, and the guard's enforcement in the period. Walks the whole
        registry: built and encoded in the report worker, off the event loop the guard answers on (a period it
        cannot give is refused there, and its error answered here as usual)."""
        name, body = await services.reports.run(reports.article_30, services.settings.database_url, start, end, format)
        if format == "csv":
            return attachment(body, "text/csv; charset=utf-8", f"{name}.csv")
        if format == "xlsx":
            return attachment(body, XLSX, f"{name}.xlsx")
        return reports.json_response(body)


def _handlers() -> list[Any]:
    from web.controllers.agreement_documents import AgreementDocumentController
    from web.controllers.exports import RegistryExportController

    return [RecordsController, RegistryExportController, AgreementDocumentController]


route_handlers: list[Any] = _handlers()
