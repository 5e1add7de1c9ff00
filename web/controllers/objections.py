"""`/api/objections` (data subjects' objections and unsubscribes) and `/api/subjects/recipients` (one person's
recipients). Identifiers come in, digests are stored (registry/services/objections.py)."""

from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from guard.views import OBJECTION_SCOPE_DIRECT_MARKETING, ObjectionScope
from kernel.calendar import controller_today
from kernel.errors import FieldError, RegistryValidationError
from kernel.i18n import gettext
from registry.schemas import ObjectionIn
from registry.services.objections import (
    IMPORT_MAX_BYTES,
    import_unsubscribes,
    list_objections,
    parse_unsubscribes,
    record_objection,
    withdraw_objection,
)
from registry.services.subjects import RECIPIENT_CSV_HEADERS, recipients_csv, subject_recipients
from web.auth import requires
from web.composition import services_of
from web.contract import ObjectionAnswer, ObjectionImportAnswer, ObjectionPage, SubjectRecipientsAnswer, answers
from web.controllers.deps import WITHOUT_NUL, Limit, Offset, Page, page
from web.controllers.exports import attachment

SubjectQuery = Annotated[
    str,
    QueryParameter(
        max_length=320, pattern=WITHOUT_NUL, description="the person's identifier (e-mail address, customer number)"
    ),
]
ScopeQuery = Annotated[
    ObjectionScope,
    QueryParameter(name="scope", description="what the listed people objected to"),
]
SourceQuery = Annotated[
    str, QueryParameter(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="where it came from")
]
DayQuery = Annotated[
    str | None, QueryParameter(max_length=32, description="received on, for rows without a date (default: today)")
]


def _day(parameter: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RegistryValidationError([FieldError(parameter, f"{value[:40]!r} is not an ISO 8601 date")]) from None


async def _obeyed_here(request: Request[Any, Any, Any]) -> None:
    """This instance's guard obeys a committed change before the change is answered; the others on notice."""
    await services_of(request.app).obey_subject_rights()


class ObjectionController(Controller):
    path = "/api/objections"
    tags = ["objections"]

    @post(
        "/",
        opt=requires("registry:write"),
        status_code=201,
        responses=answers(201, ObjectionAnswer, "The objection, in force", 400, 401, 403),
    )
    async def record(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], data: JSONBody[ObjectionIn]
    ) -> dict[str, Any]:
        """Record an objection or unsubscribe: the guards deny covered shares to that person at once."""
        async with db_session.begin():
            recorded = await record_objection(db_session, services_of(request.app).subject_key, data, request.user.name)
        await _obeyed_here(request)
        return recorded

    @get("/", opt=requires("registry:read"), responses=answers(200, ObjectionPage, "Objections", 400, 401, 403))
    async def list(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        subject: Annotated[str | None, QueryParameter(max_length=320, pattern=WITHOUT_NUL)] = None,
        in_force: Annotated[bool | None, QueryParameter(description="only those in force (or withdrawn)")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[dict[str, Any]]:
        """Objections newest first; `subject` narrows them to one person's (looked up by digest)."""
        items, total = await list_objections(
            db_session,
            services_of(request.app).subject_key,
            subject=subject,
            in_force=in_force,
            limit=limit,
            offset=offset,
        )
        return page(items, total, limit, offset)

    @delete(
        "/{objection_id:int}",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, ObjectionAnswer, "The objection, withdrawn", 401, 403, 404),
    )
    async def withdraw(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        # Bounded as the column is (bigint): a larger number is a 400 naming it, not a database error.
        objection_id: Annotated[int, Parameter(ge=1, le=2**63 - 1)],
    ) -> dict[str, Any]:
        """Withdraw an objection: kept on record and in the history, no longer in force."""
        async with db_session.begin():
            withdrawn = await withdraw_objection(db_session, objection_id, request.user.name)
        await _obeyed_here(request)
        return withdrawn

    @post(
        "/import",
        opt=requires("registry:write"),
        status_code=201,
        request_max_body_size=IMPORT_MAX_BYTES,
        responses=answers(201, ObjectionImportAnswer, "What the import recorded", 400, 401, 403, 413),
    )
    async def import_csv(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        objection_scope: ScopeQuery = OBJECTION_SCOPE_DIRECT_MARKETING,
        source: SourceQuery = "unsubscribe list",
        received_on: DayQuery = None,
    ) -> dict[str, int]:
        """A mail tool's unsubscribe export (CSV with a header row naming an address column) as objections;
        all rows or none. Subjects already objecting with that scope are not recorded twice."""
        body = await request.body()
        # One transaction: the controller's day is read in it too (a read before `begin` would start one).
        async with db_session.begin():
            rows = parse_unsubscribes(
                body,
                services_of(request.app).subject_key,
                default_day=_day("received_on", received_on) or await controller_today(db_session),
                scope=objection_scope,
            )
            summary = await import_unsubscribes(
                db_session, rows, scope=objection_scope, source=source, actor=request.user.name
            )
        await _obeyed_here(request)
        return summary.as_dict()


class SubjectController(Controller):
    path = "/api/subjects"
    tags = ["objections"]

    @get(
        "/recipients",
        opt=requires("registry:read"),
        responses=answers(200, SubjectRecipientsAnswer, "The recipients of this person's data", 400, 401, 403),
    )
    async def recipients(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        subject: SubjectQuery,
        answer_format: Annotated[
            Literal["json", "csv"], QueryParameter(name="format", description="json, or csv for the reply")
        ] = "json",
    ) -> Response[Any]:
        """Every recipient the guard allowed a share with this person (Art. 15(1)(c), Art. 19), trials left out:
        with their sub-processor chains, territories and contacts, the period covered and what the answer
        cannot know; `format=csv` for the reply to the person."""
        answer = await subject_recipients(db_session, services_of(request.app).subject_key, subject)
        if answer_format == "csv":
            body = "\ufeff" + recipients_csv(answer, [gettext(h) for h in RECIPIENT_CSV_HEADERS])
            return attachment(body.encode(), "text/csv; charset=utf-8", "recipients.csv")
        return Response(answer)


route_handlers: list[Any] = [ObjectionController, SubjectController]
