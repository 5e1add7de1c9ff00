"""`/api/records/article-30`: the Art. 30(1)(d)-(e) record as JSON, CSV or XLSX."""

from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Response
from sqlalchemy.ext.asyncio import AsyncSession

from registry.auth import requires
from registry.controllers.exports import XLSX, attachment
from registry.services.records import article_30_record, record_csv, record_xlsx

From = Annotated[date | None, QueryParameter(name="from", description="first day (YYYY-MM-DD); default a year ago")]
To = Annotated[date | None, QueryParameter(name="to", description="last day (YYYY-MM-DD); default today")]
Format = Annotated[Literal["json", "csv", "xlsx"], QueryParameter(description="json, csv or xlsx")]


class RecordsController(Controller):
    path = "/api/records"
    tags = ["records"]

    @get("/article-30", opt=requires("registry:read"))
    async def article_30(
        self,
        db_session: NamedDependency[AsyncSession],
        start: From = None,
        end: To = None,
        format: Format = "json",
    ) -> Response[Any]:
        """Recipients, their territories and agreements, and the guard's enforcement in the period."""
        record = await article_30_record(db_session, start, end)
        name = f"article-30-{record['period']['from']}-{record['period']['to']}"
        if format == "csv":
            return attachment(record_csv(record), "text/csv; charset=utf-8", f"{name}.csv")
        if format == "xlsx":
            return attachment(record_xlsx(record), XLSX, f"{name}.xlsx")
        return Response(record)


def _handlers() -> list[Any]:
    from registry.controllers.agreement_documents import AgreementDocumentController
    from registry.controllers.exports import RegistryExportController

    return [RecordsController, RegistryExportController, AgreementDocumentController]


route_handlers: list[Any] = _handlers()
