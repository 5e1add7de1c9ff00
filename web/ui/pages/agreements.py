"""Agreements: the list with its filters, an agreement's page, and the create and edit forms (which warn before
saving what the guard would refuse)."""

from functools import partial
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import NotFoundError
from kernel.i18n import gettext
from registry.schemas import AGREEMENT_KINDS, AgreementIn, AgreementUpdate
from registry.services.agreements import AGREEMENT_SORT_COLUMNS, AgreementFilter, AgreementService
from registry.services.parties import history
from web.auth import requires
from web.ui import forms, views
from web.ui.language import request_language
from web.ui.pages.common import (
    PAGE_SIZE,
    SAVE_FAILURES,
    UiPages,
    current_user,
    expiring_days,
    failed_save,
    list_order,
    page,
    page_offset,
    read_form,
    registry_today,
)
from web.ui.pages.removed import removed_record_page


class AgreementPages(UiPages):
    @get("/agreements", opt=requires("registry:read"))
    async def agreements(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        q: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        state_: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
        sort: FromQuery[str | None] = None,
        order: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        """The database filters, sorts, counts and pages; an agreement's state is the guard's rule
        (views.agreement_state), so a filter on it is applied to the database's ordered list."""
        today, registry = await registry_today(request, db_session)
        window = expiring_days(request)
        sorting = list_order(sort, order, AGREEMENT_SORT_COLUMNS, "key")
        offset = page_offset(offset)
        wanted = AgreementFilter(kind=kind or None, q=(q or "").strip() or None)
        descending = sorting["order"] == "desc"

        async def ordered(limit: int | None, offset: int) -> tuple[list[str], int]:
            return await AgreementService(db_session, "").ordered_keys(
                wanted, sort=sorting["column"], descending=descending, limit=limit, offset=offset
            )

        if state_:
            # Every matching key in order, filtered by the rule's state of every agreement: 30,000 keys took the
            # loop tens of milliseconds to read and filter, so they are, once per snapshot (a registry change
            # makes a new one) and day; then counted and paged.
            async def in_state() -> list[str]:
                ordered_keys, _ = await ordered(None, 0)
                states = await registry.agreement_states(today, window)
                return [k for k in ordered_keys if states.get(k) == state_]

            memo_key = ("agreement_keys", wanted, sorting["column"], descending, state_, today, window)
            matching = await registry.memo(memo_key, in_state)
            total, keys = len(matching), matching[offset : offset + PAGE_SIZE]
        else:
            keys, total = await ordered(PAGE_SIZE, offset)
        rows = []
        for key in keys:
            a = registry.agreement_docs.get(key)
            if a is None:
                continue
            a_state = views.agreement_state(a, today, window)
            rows.append({**a, "state": a_state, "party_name": registry.party_docs[a["party"]]["name"]})
        filters = {"q": q or "", "kind": kind or "", "state": state_ or "", "sort": sort or "", "order": order or ""}
        return page(
            request,
            "agreements.html",
            rows=rows,
            total=total,
            offset=offset,
            limit=PAGE_SIZE,
            sort=sorting,
            filters=filters,
            kinds=AGREEMENT_KINDS,
            today=today,
            controller=registry.controller,
        )

    @get("/agreements/new", opt=requires("registry:write"))
    async def new_agreement(
        self, request: Request, db_session: NamedDependency[AsyncSession], party: FromQuery[str | None] = None
    ) -> Template:
        blank: dict[str, Any] = {
            "key": "",
            "party": party or "",
            "kind": "dpa",
            "signed_on": None,
            "effective_from": None,
            "expires_on": None,
            "terminated_on": None,
            "renewal": "fixed",
            "notice_days": None,
            "owner_email": "",
            "document": None,
            "data_categories": [],
            "purposes": [],
            "data_subjects": [],
            "clauses": [],
            "transfers_outside_eea_permitted": False,
        }
        return await self._agreement_form(request, db_session, blank, creating=True)

    @post("/agreements/new", opt=requires("registry:write"), status_code=200)
    async def create_agreement(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        form = await read_form(request)
        submitted = forms.agreement_from_form(form)
        try:
            data = AgreementIn.model_validate(submitted)
            if (refusals := forms.guard_refusals(submitted)) and not forms.save_anyway(form):
                return await self._agreement_form(
                    request, db_session, submitted, creating=True, errors=refusals, refused=True
                )
            async with db_session.begin():
                await AgreementService(db_session, current_user(request).name).create(data)
        except SAVE_FAILURES as exc:
            taken = gettext("An agreement with the key “%(key)s” exists already; choose another.")
            return await failed_save(
                exc,
                partial(self._agreement_form, request, db_session),
                submitted,
                creating=True,
                also=forms.agreement_cross_checks(submitted),
                key_taken=taken % {"key": submitted.get("key")},
            )
        return Redirect(f"/ui/agreements/{data.key}?saved=1", status_code=303)

    @get("/agreements/{key:str}", opt=requires("registry:read"))
    async def agreement(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        saved: FromQuery[str | None] = None,
    ) -> Template:
        try:
            agreement = await AgreementService(db_session, "").get(key)
        except NotFoundError:  # removed by an import: its history and a restore action (or the 404 page)
            return await removed_record_page(request, db_session, "agreement", key)
        today, state = await registry_today(request, db_session)
        changes, _ = await history(db_session, "agreement", key, 20, 0)
        return page(
            request,
            "agreement.html",
            agreement=agreement,
            party=state.party_docs.get(agreement["party"]),
            state=views.agreement_state(agreement, today, expiring_days(request)),
            clauses=forms.CLAUSE_CHOICES,
            changes=changes,
            today=today,
            saved=bool(saved),
            controller=state.controller,
        )

    @get("/agreements/{key:str}/edit", opt=requires("registry:write"))
    async def edit_agreement(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Template:
        agreement = await AgreementService(db_session, "").get(key)
        return await self._agreement_form(request, db_session, agreement, creating=False)

    @post("/agreements/{key:str}/edit", opt=requires("registry:write"), status_code=200)
    async def update_agreement(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Response[Any]:
        form = await read_form(request)
        submitted = forms.agreement_from_form(form)
        submitted["version"] = forms.form_version(form)
        shown = {**submitted, "key": key}
        try:
            data = AgreementUpdate.model_validate(submitted)
            if (refusals := forms.guard_refusals(submitted)) and not forms.save_anyway(form):
                return await self._agreement_form(
                    request, db_session, shown, creating=False, errors=refusals, refused=True
                )
            async with db_session.begin():
                await AgreementService(db_session, current_user(request).name).update(key, data)
        except SAVE_FAILURES as exc:
            return await failed_save(
                exc,
                partial(self._agreement_form, request, db_session),
                shown,
                creating=False,
                also=forms.agreement_cross_checks(submitted),
                saved_now=partial(AgreementService(db_session, "").get, key),
                session=db_session,
                entity="agreement",
            )
        return Redirect(f"/ui/agreements/{key}?saved=1", status_code=303)

    async def _agreement_form(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        agreement: dict[str, Any],
        *,
        creating: bool,
        errors: dict[str, list[str]] | None = None,
        conflict: dict[str, Any] | None = None,
        status_code: int = 200,
        refused: bool = False,
    ) -> Template:
        _, state = await registry_today(request, session)
        return page(
            request,
            "agreement_form.html",
            status_code=status_code,
            agreement=agreement,
            creating=creating,
            party_options=await state.party_options("name_role", request_language(request)),
            kinds=AGREEMENT_KINDS,
            clauses=forms.CLAUSE_CHOICES,
            taxonomy=forms.taxonomy_for(state.controller),
            errors=errors or {},
            conflict=conflict,
            refused=refused,
            controller=state.controller,
        )


route_handlers = [AgreementPages]
