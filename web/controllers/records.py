"""`/api/records/article-30`: the Art. 30(1) record as JSON, CSV or XLSX; `/api/records/privacy-notice`: the
privacy notice's recipients and transfers section, generated from the processing activities and the registry."""

from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Response

from kernel.i18n import negotiate
from registry import reports
from web.auth import requires
from web.composition import Services
from web.contract import answers
from web.contract_records import Article30Answer, PrivacyNoticeAnswer, PrivacyNoticePublishedAnswer
from web.controllers.exports import XLSX, attachment

From = Annotated[date | None, QueryParameter(name="from", description="first day (YYYY-MM-DD); default a year ago")]
To = Annotated[date | None, QueryParameter(name="to", description="last day (YYYY-MM-DD); default today")]
Format = Annotated[Literal["json", "csv", "xlsx"], QueryParameter(description="json, csv or xlsx")]


def api_language(request: Request[Any, Any, Any]) -> str:
    """The answer's language: Accept-Language's first of Swedish and English, else English (the API's source
    language; codes stay beside the words)."""
    return negotiate(None, None, request.headers.get("accept-language"), "en")


class RecordsController(Controller):
    path = "/api/records"
    tags = ["records"]

    @get(
        "/article-30",
        opt=requires("registry:read"),
        responses=answers(200, Article30Answer, "The record (format=json; csv and xlsx are files)", 400, 401, 403),
    )
    async def article_30(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        start: From = None,
        end: To = None,
        format: Format = "json",
    ) -> Response[Any]:
        """The controller (Art. 30(1)(a)), each processing activity with its derived recipients and transfers
        ((b)-(g)), the recipients with their territories and agreements, and the guard's enforcement in the period,
        in the language of Accept-Language (Swedish or English; English without one). Walks the whole registry:
        built and encoded in the report worker, off the event loop the guard answers on (a period it cannot give
        is refused there, and its error answered here as usual)."""
        language = api_language(request)
        name, body = await services.reports.run(
            reports.article_30, services.settings.database_url, start, end, format, language
        )
        if format == "csv":
            return attachment(body, "text/csv; charset=utf-8", f"{name}.csv")
        if format == "xlsx":
            return attachment(body, XLSX, f"{name}.xlsx")
        return reports.json_response(body)

    @get(
        "/privacy-notice",
        opt=requires("registry:read"),
        responses=answers(200, PrivacyNoticeAnswer, "The section, and whether it is outdated", 401, 403),
    )
    async def privacy_notice(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services]
    ) -> dict[str, Any]:
        """The privacy notice's "to whom do we disclose personal data, and do we transfer it outside the EU/EEA?"
        section, generated from the processing activities and the registry in the language of Accept-Language,
        with when it was last marked published and NOTICE_OUTDATED (blocks nothing) when the registry now
        generates a different text."""
        notice: dict[str, Any] = await services.reports.run(
            reports.privacy_notice, services.settings.database_url, api_language(request)
        )
        return notice

    @post(
        "/privacy-notice/published",
        opt=requires("registry:write"),
        status_code=201,
        responses=answers(201, PrivacyNoticePublishedAnswer, "Marked published", 401, 403),
    )
    async def privacy_notice_published(
        self, request: Request[Any, Any, Any], services: NamedDependency[Services]
    ) -> dict[str, Any]:
        """Mark the section as the registry generates it now (Swedish and English) published on the website."""
        marked: dict[str, Any] = await services.reports.run(
            reports.mark_privacy_notice_published, services.settings.database_url, request.user.name
        )
        return marked


def _handlers() -> list[Any]:
    from web.controllers.agreement_documents import AgreementDocumentController
    from web.controllers.exports import RegistryExportController

    return [RecordsController, RegistryExportController, AgreementDocumentController]


route_handlers: list[Any] = _handlers()
