"""The UI's records: the printable Art. 30 record (English or Swedish), the evidence bundle download,
and the signed agreement's upload and download on the agreement page."""

from datetime import date
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import FieldError, RegistryValidationError
from kernel.i18n import set_locale
from registry import reports
from registry.services.agreement_documents import DocumentTooLarge, NotAPdf, read_document, store_document
from registry.services.records import article_30_page
from web.auth import requires
from web.composition import Services, services_of
from web.controllers.agreement_documents import PDF
from web.controllers.exports import XLSX, attachment, content_disposition
from web.ui.language import request_language
from web.ui.pages.common import PAGE_SIZE, UiPages, page, page_offset
from web.ui.registry_view import registry_view

# The labels of the printable record, per language. Swedish for the Swedish authority (IMY); a full
# translation of the UI is another matter (the rest of the UI is in English).
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Record of processing activities",
        "subtitle": "Article 30(1) GDPR",
        "controller": "Controller",
        "period": "Enforcement period",
        "as_of": "Registry as of",
        "generated": "Generated",
        "recipient": "Recipient",
        "role": "Role",
        "category": "Category",
        "data_categories": "Categories of personal data",
        "purposes": "Purposes",
        "data_subjects": "Data subjects",
        "territories": "Territories (storage, processing, backup, access), sub-processor chain included",
        "agreements": "Agreements",
        "transfers": "Transfers to third countries",
        "none": "None",
        "enforcement": "Enforcement by the guard in the period",
        "allowed": "shares allowed",
        "denied": "shares denied",
        "shared": "Categories actually shared",
        "last_share": "Last share",
        "signed": "signed",
        "unsigned": "not signed",
        "in_force": "in force",
        "not_in_force": "not in force",
        "on_file": "signed copy on file",
        "not_on_file": "no signed copy on file",
        "categories_of_recipients": "Categories of recipients",
        "print": "Print / save as PDF",
        "evidence": "Download the evidence bundle",
        "from": "From",
        "to": "To",
        "show": "Show",
        "any_subject": "any",
        "via": "via",
        "roles.processor": "processor",
        "roles.sub_processor": "sub-processor",
        "roles.independent_controller": "independent controller",
        "roles.authority": "authority",
        "kinds.establishment": "establishment",
        "kinds.storage": "storage",
        "kinds.processing": "processing",
        "kinds.backup": "backup",
        "kinds.support_access": "support access",
        "kinds.international_organisation": "an international organisation (Art. 4(26)), wherever its office is",
        "kinds.agreement_permits_transfer": "the agreement permits transfers outside the EU/EEA",
    },
    "sv": {
        "title": "Register över behandlingar",
        "subtitle": "Artikel 30.1 dataskyddsförordningen",
        "controller": "Personuppgiftsansvarig",
        "period": "Period för kontrollen",
        "as_of": "Registret per",
        "generated": "Skapad",
        "recipient": "Mottagare",
        "role": "Roll",
        "category": "Kategori",
        "data_categories": "Kategorier av personuppgifter",
        "purposes": "Ändamål",
        "data_subjects": "Registrerade",
        "territories": "Länder (lagring, behandling, säkerhetskopior, åtkomst), kedjan av underbiträden inräknad",
        "agreements": "Avtal",
        "transfers": "Överföringar till tredjeland",
        "none": "Inga",
        "enforcement": "Spärrens utfall under perioden",
        "allowed": "tillåtna delningar",
        "denied": "nekade delningar",
        "shared": "Kategorier som faktiskt delats",
        "last_share": "Senaste delning",
        "signed": "undertecknat",
        "unsigned": "ej undertecknat",
        "in_force": "gäller",
        "not_in_force": "gäller inte",
        "on_file": "undertecknat exemplar arkiverat",
        "not_on_file": "inget undertecknat exemplar arkiverat",
        "categories_of_recipients": "Kategorier av mottagare",
        "print": "Skriv ut / spara som PDF",
        "evidence": "Ladda ned bevispaketet",
        "from": "Från",
        "to": "Till",
        "show": "Visa",
        "any_subject": "alla",
        "via": "via",
        "roles.processor": "personuppgiftsbiträde",
        "roles.sub_processor": "underbiträde",
        "roles.independent_controller": "självständigt personuppgiftsansvarig",
        "roles.authority": "myndighet",
        "kinds.establishment": "etablering",
        "kinds.storage": "lagring",
        "kinds.processing": "behandling",
        "kinds.backup": "säkerhetskopior",
        "kinds.support_access": "supportåtkomst",
        "kinds.international_organisation": "en internationell organisation (art. 4.26), var dess kontor än ligger",
        "kinds.agreement_permits_transfer": "avtalet tillåter överföringar utanför EU/EES",
    },
}


def language(request: Request[Any, Any, Any], lang: str | None) -> str:
    """`?lang=sv|en` (a record for the authority in another language than the page), else the page's language
    (the user's choice, the switch, Accept-Language, REGISTRY_DEFAULT_LANGUAGE: web.ui.language)."""
    if lang in LABELS:
        return lang
    code = request_language(request)
    return code if code in LABELS else "en"


def _day(text: str | None, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RegistryValidationError(
            [FieldError(field, f"{text!r} is not a date (YYYY-MM-DD)", "date_parsing")]
        ) from None


class RecordsUiController(UiPages):
    # The record and the bundle walk the whole registry (the bundle also rehashes the whole decision log): built in
    # the report worker, off the event loop the guard answers on.
    @get("/records/article-30", opt=requires("registry:read"))
    async def article_30(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        db_session: NamedDependency[AsyncSession],
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
        lang: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        """The record, its recipients a page at a time (the whole record: the CSV, XLSX and JSON exports). Over the
        registry the guard holds (registry_view), a page costs its recipients and the period's decision-log totals;
        without a usable snapshot it is built in the report worker from the tables."""
        first, last = _day(start, "start"), _day(end, "end")
        offset = page_offset(offset)
        code = language(request, lang)
        set_locale(code)  # the whole printable page, its activities' words included, in the record's language
        registry = await registry_view(request, db_session)
        if registry.snapshot is not None:
            counts = await registry.outside_counts(last)
            record = await article_30_page(
                db_session, registry.snapshot, registry.controller, (first, last), (offset, PAGE_SIZE), counts
            )
        else:
            database_url = services.settings.database_url
            record = await services.reports.run(
                reports.article_30_data, database_url, first, last, offset, PAGE_SIZE, code
            )
        filters = {"start": start or "", "end": end or "", "lang": lang or ""}
        template = page(
            request,
            "records/article30.html",
            record=record,
            language=code,
            t=LABELS[code],
            lang=code,
            filters=filters,
            total=record["recipients_total"],
            offset=offset,
            limit=PAGE_SIZE,
        )
        set_locale(code)  # page() set the reader's language; the printable record is rendered in the record's
        return template

    @get("/records/article-30.csv", opt=requires("registry:read"))
    async def article_30_csv(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
        lang: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        """The whole record as CSV for the signed-in browser (the API's export needs a key): in the page's
        language's spreadsheet dialect (';' for Swedish), built in the report worker."""
        return await self._download(request, services, start, end, lang, "csv")

    @get("/records/article-30.xlsx", opt=requires("registry:read"))
    async def article_30_xlsx(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
        lang: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        """The whole record as a workbook for the signed-in browser (real dates, autofilter)."""
        return await self._download(request, services, start, end, lang, "xlsx")

    async def _download(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        start: str | None,
        end: str | None,
        lang: str | None,
        form: str,
    ) -> Response[bytes]:
        first, last = _day(start, "start"), _day(end, "end")
        code = language(request, lang)
        database_url = services.settings.database_url
        name, body = await services.reports.run(reports.article_30, database_url, first, last, form, code)
        media = "text/csv; charset=utf-8" if form == "csv" else XLSX
        return attachment(body, media, f"{name}.{form}")

    @get("/records/evidence.zip", opt=requires("registry:read"))
    async def evidence(
        self,
        services: NamedDependency[Services],
        start: FromQuery[str | None] = None,
        end: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        first, last = _day(start, "start"), _day(end, "end")
        body = await services.reports.run(reports.evidence_zip, services.settings.database_url, first, last)
        return Response(
            body, media_type="application/zip", headers={"Content-Disposition": 'attachment; filename="evidence.zip"'}
        )

    @get("/agreements/{key:str}/document", opt=requires("registry:read"))
    async def download(self, db_session: NamedDependency[AsyncSession], key: FromPath[str]) -> Response[bytes]:
        stored = await read_document(db_session, key)
        return Response(
            stored.content,
            media_type=PDF,
            headers={"Content-Disposition": content_disposition(stored.filename), "X-Content-Type-Options": "nosniff"},
        )

    @post("/agreements/{key:str}/document", opt=requires("registry:write"), request_max_body_size=None)
    async def upload(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Redirect:
        limit = services_of(request.app).settings.agreement_document_max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
            return Redirect(f"/ui/agreements/{key}?document=too_large", status_code=303)
        form = await request.form()
        upload = form.get("document")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return Redirect(f"/ui/agreements/{key}?document=missing", status_code=303)
        content = await upload.read()
        try:
            if len(content) > limit:
                raise DocumentTooLarge(limit)
            async with db_session.begin():
                await store_document(db_session, key, content, upload.filename, request.user.name)
        except DocumentTooLarge:
            return Redirect(f"/ui/agreements/{key}?document=too_large", status_code=303)
        except NotAPdf:
            return Redirect(f"/ui/agreements/{key}?document=not_pdf", status_code=303)
        return Redirect(f"/ui/agreements/{key}?document=stored", status_code=303)


route_handlers: list[Any] = [RecordsUiController]
