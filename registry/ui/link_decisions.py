"""Legal approves or objects to a sub-processor change in one action (Art. 28(2), issue 21).

A route of its own, beside the pages, so that it stays out of the way of the pages' split into modules: the
party page posts here, the party service records the decision (version check, history, guard reload), and the
browser goes back to the party page."""

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from guard.snapshot import controller_today
from registry.auth import requires
from registry.errors import ConflictError, NotFoundError, RegistryValidationError
from registry.services.parties import PartyService
from registry.ui.pages import _form, _user, forbidden_page, not_found_page, page, redirect_to_login


class SubProcessorDecisionController(Controller):
    path = "/ui/parties"
    include_in_schema = False
    exception_handlers = {
        NotAuthorizedException: redirect_to_login,
        PermissionDeniedException: forbidden_page,
        NotFoundError: not_found_page,
        NotFoundException: not_found_page,
    }

    @post("/{key:str}/sub-processors/{sub:str}/decision", opt=requires("registry:write"), status_code=303)
    async def decide(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        sub: FromPath[str],
    ) -> Redirect | Template:
        form = await _form(request)
        action = str(form.get("action") or "")
        try:
            version = int(str(form.get("version") or ""))
        except ValueError:
            version = 0
        try:
            async with db_session.begin():
                today = await controller_today(db_session)
                await PartyService(db_session, _user(request).name).decide_link(key, sub, action, today, version)
        except (ConflictError, RegistryValidationError, ValidationError) as exc:
            status = 409 if isinstance(exc, ConflictError) else 400
            return page(request, "error.html", status_code=status, title="Not saved", csrf=False, message=str(exc))
        return Redirect(f"/ui/parties/{quote(key)}?saved=1", status_code=303)


route_handlers = [SubProcessorDecisionController]
