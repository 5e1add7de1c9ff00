"""The dashboard: what needs attention today."""

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.queries import denial_summary
from web.auth import requires
from web.ui.pages.common import (
    UiPages,
    expiring_days,
    findings_of,
    page,
    registry_today,
    start_of,
)

# Rows shown in each of the dashboard's tables.
DASHBOARD_ROWS = 50


class DashboardPages(UiPages):
    @get("/", opt=requires("registry:read"))
    async def dashboard(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        today, state = await registry_today(request, db_session)
        findings = await findings_of(state, db_session, today)
        window = expiring_days(request)
        expiring = await state.expiring(today, window)
        unapproved = await state.unapproved(today)
        groups, denied_total = await denial_summary(db_session, since=start_of(today, state.controller))
        # Counts are of everything; the tables show the first rows of each (thousands at 10,000 parties would take
        # the event loop seconds to render).
        return page(
            request,
            "dashboard.html",
            today=today,
            findings=findings[:DASHBOARD_ROWS],
            findings_total=len(findings),
            expiring=expiring[:DASHBOARD_ROWS],
            expiring_total=len(expiring),
            unapproved=unapproved[:DASHBOARD_ROWS],
            unapproved_total=len(unapproved),
            denied_groups=groups,
            denied_total=denied_total,
            expiring_days=window,
            parties=state.party_docs,
            controller=state.controller,
        )


route_handlers = [DashboardPages]
