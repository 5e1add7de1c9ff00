"""Renewals: the agreements coming up for renewal, and the admins' calendar feeds of them."""

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import ConflictError, RegistryValidationError
from kernel.i18n import gettext
from registry.jobs.calendar import create_feed, feed_url, list_feeds
from registry.jobs.renewals import upcoming_renewals
from web.auth import requires
from web.composition import services_of
from web.ui import forms
from web.ui.pages.common import UiPages, current_user, page, read_form, registry_today

DEFAULT_WINDOW_DAYS = 180
MAX_WINDOW_DAYS = 3650


class RenewalPages(UiPages):
    @get("/renewals", opt=requires("registry:read"))
    async def renewals(
        self, request: Request, db_session: NamedDependency[AsyncSession], days: FromQuery[int] = DEFAULT_WINDOW_DAYS
    ) -> Template:
        today, _ = await registry_today(request, db_session)
        days = min(max(days, 1), MAX_WINDOW_DAYS)
        rows = await upcoming_renewals(db_session, today=today, within_days=days)
        return await renewals_page(request, db_session, rows=rows, days=days, today=today)

    @post("/renewals/feeds", opt=requires("admin"), status_code=200)
    async def create_feed(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        """The feed's secret address is shown once, here, like an API key."""
        form = await read_form(request)
        name = str(form.get("feed_name") or "").strip()
        errors: dict[str, list[str]] = {}
        feed_address = None
        try:
            async with db_session.begin():
                token = await create_feed(db_session, name, current_user(request).name)
            feed_address = feed_url(services_of(request.app).settings.public_url, token)
        except RegistryValidationError as exc:
            errors = {"feed_name": [forms.plain_words(e) for e in exc.errors]}
        except ConflictError:
            errors = {"feed_name": [gettext("A feed with this name exists already; choose another name.")]}
        today, _ = await registry_today(request, db_session)
        rows = await upcoming_renewals(db_session, today=today, within_days=DEFAULT_WINDOW_DAYS)
        return await renewals_page(
            request,
            db_session,
            400 if errors else 200,
            rows=rows,
            days=DEFAULT_WINDOW_DAYS,
            today=today,
            errors=errors,
            feed_address=feed_address,
            feed_name=name,
        )


async def renewals_page(
    request: Request[Any, Any, Any], session: AsyncSession, status_code: int = 200, **context: Any
) -> Template:
    feeds = await list_feeds(session) if "admin" in current_user(request).scopes else []
    return page(
        request,
        "renewals.html",
        status_code=status_code,
        feeds=feeds,
        public_url=services_of(request.app).settings.public_url,
        **context,
    )


route_handlers = [RenewalPages]
