"""Legal approves or objects to a sub-processor change in one action (Art. 28(2)): the party page posts
here, the party service records the decision (version check, history, guard reload), and the browser goes
back to the party page."""

from typing import Any
from urllib.parse import quote

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.calendar import controller_today
from kernel.errors import ConflictError, RegistryValidationError
from registry.services.parties import PartyService
from web.auth import requires
from web.ui.pages.common import UiPages, current_user, page, read_form


class SubProcessorDecisionController(UiPages):
    @post("/parties/{key:str}/sub-processors/{sub:str}/decision", opt=requires("registry:write"), status_code=303)
    async def decide(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        sub: FromPath[str],
    ) -> Redirect | Template:
        form = await read_form(request)
        action = str(form.get("action") or "")
        try:
            version = int(str(form.get("version") or ""))
        except ValueError:
            version = 0
        try:
            async with db_session.begin():
                today = await controller_today(db_session)
                await PartyService(db_session, current_user(request).name).decide_link(key, sub, action, today, version)
        except (ConflictError, RegistryValidationError, ValidationError) as exc:
            status = 409 if isinstance(exc, ConflictError) else 400
            return page(request, "error.html", status_code=status, title="Not saved", csrf=False, message=str(exc))
        return Redirect(f"/ui/parties/{quote(key)}?saved=1", status_code=303)


route_handlers = [SubProcessorDecisionController]
