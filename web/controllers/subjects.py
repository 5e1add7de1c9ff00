"""`/api/restrictions` (Art. 18), `/api/subjects/erasure` (Art. 17) and `/api/subjects/notifications`
(Art. 19). Identifiers come in, digests are stored (registry/services/subjects.py, notifications.py)."""

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from guard.subjects import SubjectKey
from kernel.calendar import controller_today
from registry.schemas import ErasureIn, NotificationIn, RestrictionIn
from registry.services.notifications import notify_recipients
from registry.services.objections import IMPORT_MAX_BYTES, parse_subject_rows
from registry.services.subjects import (
    erase_subject,
    import_restrictions,
    lift_restriction,
    list_restrictions,
    record_restriction,
)
from web.auth import requires
from web.composition import services_of
from web.contract import (
    ErasureAnswer,
    NotificationsAnswer,
    ObjectionImportAnswer,
    RestrictionAnswer,
    RestrictionPage,
    answers,
)
from web.controllers.deps import WITHOUT_NUL, Limit, Offset, Page, page
from web.controllers.objections import DayQuery, SourceQuery, _day


def _subject_key(request: Request[Any, Any, Any]) -> SubjectKey:
    return services_of(request.app).subject_key


async def _obeyed_here(request: Request[Any, Any, Any]) -> None:
    """This instance's guard obeys a committed change before the change is answered; the others on notice
    (the same promise as objections)."""
    await services_of(request.app).obey_subject_rights()


class RestrictionController(Controller):
    path = "/api/restrictions"
    tags = ["subjects"]

    @post(
        "/",
        opt=requires("registry:write"),
        status_code=201,
        responses=answers(201, RestrictionAnswer, "The restriction, in force", 400, 401, 403),
    )
    async def record(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], data: JSONBody[RestrictionIn]
    ) -> dict[str, Any]:
        """Restrict the processing of a person's data (Art. 18): every guard refuses every share naming them
        (SUBJECT_RESTRICTED) until it is lifted."""
        async with db_session.begin():
            recorded = await record_restriction(db_session, _subject_key(request), data, request.user.name)
        await _obeyed_here(request)
        return recorded

    @get("/", opt=requires("registry:read"), responses=answers(200, RestrictionPage, "Restrictions", 400, 401, 403))
    async def list(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        subject: Annotated[str | None, QueryParameter(max_length=320, pattern=WITHOUT_NUL)] = None,
        in_force: Annotated[bool | None, QueryParameter(description="only those in force (or lifted)")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[dict[str, Any]]:
        """Restrictions newest first; `subject` narrows them to one person's (looked up by digest)."""
        items, total = await list_restrictions(
            db_session,
            _subject_key(request),
            subject=subject,
            in_force=in_force,
            limit=limit,
            offset=offset,
        )
        return page(items, total, limit, offset)

    @delete(
        "/{restriction_id:int}",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, RestrictionAnswer, "The restriction, lifted", 401, 403, 404),
    )
    async def lift(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], restriction_id: FromPath[int]
    ) -> dict[str, Any]:
        """Lift a restriction: kept on record and in the history, no longer in force (404 for an unknown id)."""
        async with db_session.begin():
            lifted = await lift_restriction(db_session, restriction_id, request.user.name)
        await _obeyed_here(request)
        return lifted

    @post(
        "/import",
        opt=requires("registry:write"),
        status_code=201,
        request_max_body_size=IMPORT_MAX_BYTES,
        responses=answers(201, ObjectionImportAnswer, "How many rows were recorded", 400, 401, 403),
    )
    async def import_csv(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        source: SourceQuery = "restriction list",
        received_on: DayQuery = None,
    ) -> dict[str, int]:
        """A CSV of people (a header row naming an address column) as restrictions; all rows or none. People
        already restricted are not recorded twice."""
        default_day = _day("received_on", received_on)
        if default_day is None:
            async with db_session.begin():  # (its own transaction: the import's begins afresh below)
                default_day = await controller_today(db_session)
        rows = parse_subject_rows(await request.body(), _subject_key(request), default_day=default_day)
        async with db_session.begin():
            summary = await import_restrictions(db_session, rows, source=source, actor=request.user.name)
        await _obeyed_here(request)
        return summary.as_dict()


class SubjectRightsController(Controller):
    path = "/api/subjects"
    tags = ["subjects"]

    @post(
        "/erasure",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, ErasureAnswer, "What the erasure unlinked", 400, 401, 403),
    )
    async def erasure(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], data: JSONBody[ErasureIn]
    ) -> dict[str, Any]:
        """Erase a person (Art. 17): nothing the service keeps links to the identifier afterwards; an objection
        in force is kept as a suppression entry. Idempotent."""
        async with db_session.begin():
            outcome = await erase_subject(db_session, _subject_key(request), data.subject, request.user.name)
        await _obeyed_here(request)
        return outcome

    @post(
        "/notifications",
        opt=requires("registry:write"),
        status_code=200,
        responses=answers(200, NotificationsAnswer, "Each recipient's delivery", 400, 401, 403),
    )
    async def notifications(self, request: Request[Any, Any, Any], data: JSONBody[NotificationIn]) -> dict[str, Any]:
        """Notify every party that received the person's data (Art. 19) through its webhook or contact e-mail;
        each delivery is kept as evidence, a failed one retried like reminders."""
        state = services_of(request.app)
        return await notify_recipients(state.sessionmaker, state.settings, state.subject_key, data, request.user.name)


route_handlers: list[Any] = [RestrictionController, SubjectRightsController]
