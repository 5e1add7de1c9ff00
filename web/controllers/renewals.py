"""`/api/renewals`, `/api/calendar-feeds` and the calendar feed `/calendar/{token}.ics`."""

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.calendar import controller_today
from registry.jobs.calendar import (
    FEED_NAME,
    create_feed,
    feed_for_token,
    feed_url,
    list_feeds,
    renewals_calendar,
    revoke_feed,
)
from registry.jobs.renewals import upcoming_renewals
from web.auth import requires
from web.composition import services_of
from web.contract import CalendarFeedAnswer, CreatedCalendarFeed, RenewalsAnswer, RevokedCalendarFeed, answers

Within = Annotated[int, QueryParameter(ge=1, le=3650, description="days ahead to look, 1..3650")]


class CalendarFeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=FEED_NAME.pattern)


class RenewalController(Controller):
    path = "/api/renewals"
    tags = ["renewals"]

    @get("/", opt=requires("registry:read"), responses=answers(200, RenewalsAnswer, "Upcoming dates", 400, 401, 403))
    async def upcoming(self, db_session: NamedDependency[AsyncSession], within: Within = 90) -> dict[str, Any]:
        """Expiries and notice deadlines in the next `within` days, soonest first."""
        today = await controller_today(db_session)
        items = await upcoming_renewals(db_session, today=today, within_days=within)
        return {"today": today.isoformat(), "within": within, "items": items}


class CalendarFeedController(Controller):
    """A feed URL is a credential that bypasses API keys, so handing one out is an administrator's act."""

    path = "/api/calendar-feeds"
    tags = ["renewals"]
    opt = requires("admin")

    @get("/", responses=answers(200, list[CalendarFeedAnswer], "Calendar feeds (never their URLs)", 401, 403))
    async def list_calendar_feeds(self, db_session: NamedDependency[AsyncSession]) -> list[dict[str, Any]]:
        return await list_feeds(db_session)

    @post("/", responses=answers(201, CreatedCalendarFeed, "The new feed and its URL, shown once", 400, 401, 403, 409))
    async def create_calendar_feed(
        self, request: Request, db_session: NamedDependency[AsyncSession], data: JSONBody[CalendarFeedIn]
    ) -> dict[str, Any]:
        """The feed URL is shown once, here; only its token's digest is stored."""
        async with db_session.begin():
            token = await create_feed(db_session, data.name, request.user.name)
        return {"name": data.name, "url": feed_url(services_of(request.app).settings.public_url, token)}

    @delete("/{name:str}", status_code=200, responses=answers(200, RevokedCalendarFeed, "Revoked", 401, 403, 404))
    async def revoke_calendar_feed(
        self, request: Request, db_session: NamedDependency[AsyncSession], name: FromPath[str]
    ) -> dict[str, str]:
        async with db_session.begin():
            await revoke_feed(db_session, name, request.user.name)
        return {"name": name, "status": "revoked"}


class CalendarFeedFile(Controller):
    path = "/calendar"
    include_in_schema = False

    @get("/{filename:str}")
    async def renewals_feed(
        self, request: Request, db_session: NamedDependency[AsyncSession], filename: FromPath[str]
    ) -> Response[bytes]:
        """Public path (see PUBLIC_PATH_PATTERNS): the secret token in the URL is the credential."""
        token = filename.removesuffix(".ics")
        # Unknown, revoked and malformed tokens all get the same 404: the answer tells nothing about which.
        if token == filename or len(token) > 200 or await feed_for_token(db_session, token) is None:
            raise NotFoundException()
        settings = services_of(request.app).settings
        body = await renewals_calendar(db_session, public_url=settings.public_url, language=settings.default_language)
        return Response(
            body,
            media_type="text/calendar; charset=utf-8",
            headers={"Cache-Control": "private, max-age=300", "Content-Disposition": 'inline; filename="renewals.ics"'},
        )
