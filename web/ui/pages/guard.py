"""The guard from the UI: try a share and read the decision log."""

from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from guard.service import GuardUnavailable, cannot_decide
from kernel.errors import RegistryValidationError
from kernel.i18n import N_, gettext
from kernel.logs import current_request_id
from ledger.queries import list_decisions
from web.auth import requires
from web.composition import services_of
from web.ui import forms
from web.ui.language import request_language
from web.ui.pages.common import (
    MAX_PAGE_OFFSET,
    UiPages,
    current_user,
    page,
    parse_day,
    read_form,
    registry_today,
    start_of,
)
from web.ui.reasons import PartyNames

DECISIONS_PER_PAGE = 50
# A share's required fields, with what the form says when one is missing.
REQUIRED_SHARE_FIELDS = (
    ("recipient", N_("Choose the recipient.")),
    ("purpose", N_("Choose the purpose of the share.")),
    ("data_categories", N_("Choose at least one data category.")),
    ("data_subject", N_("Choose the data subject.")),
)


class GuardPages(UiPages):
    @get("/guard", opt=requires("guard:check"))
    async def try_share_form(
        self, request: Request, db_session: NamedDependency[AsyncSession], recipient: FromQuery[str | None] = None
    ) -> Template:
        _, state = await registry_today(request, db_session)
        share = {
            "recipient": recipient or "",
            "purpose": "",
            "data_categories": [],
            "destination": "",
            "data_subject": "",
            "subject_ref": "",
        }
        return page(
            request,
            "guard.html",
            share=share,
            recipient_options=await state.party_options("name_key", request_language(request)),
            taxonomy=forms.taxonomy_for(state.controller),
            result=None,
            controller=state.controller,
        )

    @post("/guard", opt=requires("guard:check"), status_code=200)
    async def try_share(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        form = await read_form(request)
        share: dict[str, Any] = {
            "recipient": str(form.get("recipient") or "").strip(),
            "purpose": str(form.get("purpose") or "").strip(),
            "data_categories": [str(v) for v in form.getall("data_categories", [])],
            "destination": str(form.get("destination") or "").strip().upper(),
            "data_subject": str(form.get("data_subject") or "").strip(),
            # The person, for marketing and objections; digested by the guard, never stored in clear.
            "subject_ref": str(form.get("subject_ref") or ""),
        }
        errors: dict[str, list[str]] = {
            name: [gettext(message)] for name, message in REQUIRED_SHARE_FIELDS if not share[name]
        }
        _, state = await registry_today(request, db_session)
        context: dict[str, Any] = {
            "share": share,
            "recipient_options": await state.party_options("name_key", request_language(request)),
            "taxonomy": forms.taxonomy_for(state.controller),
            "controller": state.controller,
            "party_names": PartyNames(state.party_docs),
        }
        if errors:
            return page(request, "guard.html", status_code=400, errors=errors, result=None, **context)
        payload = {k: v for k, v in share.items() if v not in ("", None)}
        try:
            # A trial: logged as evidence, never counted as a share of the person (Art. 15, Art. 19).
            guard = services_of(request.app).guard
            status, body = 200, await guard.check(payload, current_user(request).name, current_request_id(), trial=True)
        except RegistryValidationError as exc:
            errors = forms.field_messages(exc.errors) or {"": [str(exc)]}
            return page(request, "guard.html", status_code=400, errors=errors, result=None, **context)
        except GuardUnavailable as exc:
            status, body = 503, {"status_code": 503, **cannot_decide(str(exc))}
        return page(request, "guard.html", status_code=status, result=body, result_status=status, **context)

    @get("/decisions", opt=requires("registry:read"))
    async def decisions(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        recipient: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        reason: Annotated[str | None, QueryParameter(max_length=64)] = None,
        offset: FromQuery[int] = 0,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        errors: dict[str, list[str]] = {}
        before = int(cursor) if cursor and cursor.isascii() and cursor.isdigit() and len(cursor) <= 19 else None
        if cursor and before is None:
            errors["cursor"] = [gettext("This link to older decisions is not valid; start from the newest.")]
        if outcome and outcome not in {"allowed", "denied"}:
            errors["outcome"] = [gettext("Choose allowed or denied.")]
        since_day = parse_day(since, "since", errors)
        until_day = parse_day(until, "until", errors)
        _, state = await registry_today(request, db_session)
        offset = min(max(0, offset), MAX_PAGE_OFFSET)
        rows: list[dict[str, Any]] = []
        total, total_exact, next_cursor = 0, True, None
        if not errors:
            # Older pages by cursor (keyset: as fast at any depth); an offset in an old link still works.
            found = await list_decisions(
                db_session,
                recipient=recipient or None,
                outcome=outcome or None,
                since=start_of(since_day, state.controller) if since_day else None,
                until=start_of(until_day + timedelta(days=1), state.controller) if until_day else None,
                reason=reason or None,
                limit=DECISIONS_PER_PAGE,
                offset=0 if before is not None else offset,
                before=before,
            )
            rows, total, total_exact, next_cursor = found.items, found.total, found.total_exact, found.next_cursor
        filters = {
            "recipient": recipient or "",
            "outcome": outcome or "",
            "since": since or "",
            "until": until or "",
            "reason": reason or "",
        }
        return page(
            request,
            "decisions.html",
            status_code=400 if errors else 200,
            rows=rows,
            total=total,
            total_exact=total_exact,
            next_cursor=next_cursor,
            paged=before is not None or offset > 0,
            offset=offset,
            limit=DECISIONS_PER_PAGE,
            filters=filters,
            errors=errors,
            recipient_options=await state.party_options("name", request_language(request)),
            controller=state.controller,
        )


route_handlers = [GuardPages]
