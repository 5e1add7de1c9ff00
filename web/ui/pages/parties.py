"""Parties: the list with its filters, a party's page, and the create and edit forms."""

from functools import partial
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.errors import NotFoundError
from kernel.i18n import gettext
from registry.schemas import CATEGORIES, LOCATION_KINDS, ROLES, PartyIn, PartyUpdate
from registry.services.agreements import AgreementFilter, AgreementService
from registry.services.parties import PARTY_SORT_COLUMNS, PartyFilter, PartyService, history
from web.auth import requires
from web.ui import forms, views
from web.ui.language import request_language
from web.ui.pages.common import (
    PAGE_SIZE,
    SAVE_FAILURES,
    UiPages,
    current_user,
    decisions_of,
    expiring_days,
    failed_save,
    findings_of,
    list_order,
    page,
    page_offset,
    read_form,
    registry_today,
)
from web.ui.pages.removed import removed_record_page
from web.ui.reasons import PartyNames
from web.ui.registry_view import in_slices

SPARE_LOCATION_ROWS = 3
SPARE_LINK_ROWS = 2
# A party's agreements on its page: more than any party has; the list is not paged.
MAX_AGREEMENTS_PER_PARTY = 1000


async def _territory_counts(
    held: dict[str, list[views.Holding]],
) -> list[tuple[str, str, views.Badge, int]]:
    """(territory, label, badge, number of recipients holding data there) of every territory, outside the EEA
    first, as views.data_map orders them."""
    every = views.data_map_of(held.items())
    return [(t.territory, t.label, t.badge, len(t.recipients)) for t in every]


class PartyPages(UiPages):
    @get("/parties", opt=requires("registry:read"))
    async def parties(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        q: FromQuery[str | None] = None,
        role: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        eea: FromQuery[str | None] = None,
        active: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        order: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        """The database filters, sorts, counts and pages; the agreement status and the places (the whole
        sub-processor chain, walked by the guard's walk_chain) come from the guard's rules, so a filter on them
        is applied to the database's ordered list, and its count is of what is left."""
        today, state = await registry_today(request, db_session)
        window = expiring_days(request)
        chains = state.chains

        def row(key: str) -> dict[str, Any]:
            party = state.party_docs[key]
            outside = views.outside_through(key, chains)
            return {
                "party": party,
                "status": state.party_status(key, today, window),
                "inside": not outside,
                # The sub-processors that take the data outside (the party's own places speak for themselves).
                "outside_through": [
                    state.party_docs[k]["name"] if k in state.party_docs else k for k in outside if k != key
                ],
            }

        sorting = list_order(sort, order, PARTY_SORT_COLUMNS, "name")
        offset = page_offset(offset)
        wanted = PartyFilter(
            role=role or None,
            category=category or None,
            active={"yes": True, "no": False}.get(active or ""),
            q=(q or "").strip() or None,
        )
        service = PartyService(db_session, "")
        by_rules = bool(status or eea in {"inside", "outside"})
        descending = sorting["order"] == "desc"

        async def ordered(limit: int | None, offset: int) -> tuple[list[str], int]:
            return await service.ordered_keys(
                wanted, sort=sorting["column"], descending=descending, limit=limit, offset=offset
            )

        if by_rules:  # every matching key, in order, once per snapshot (the rules filter them below)
            memo_key = ("party_keys", wanted, sorting["column"], descending)
            keys, total = await state.memo(memo_key, lambda: ordered(None, 0))
        else:
            keys, total = await ordered(PAGE_SIZE, offset)
        rows = await state.party_rows((key for key in keys if key in state.party_docs), today, window, row)
        if by_rules:
            rows = [
                r
                for r in rows
                if (not status or r["status"] == status)
                and not (eea == "inside" and not r["inside"])
                and not (eea == "outside" and r["inside"])
            ]
            total, rows = len(rows), rows[offset : offset + PAGE_SIZE]
        filters = {
            "q": q or "",
            "role": role or "",
            "category": category or "",
            "status": status or "",
            "eea": eea or "",
            "active": active or "",
            "sort": sort or "",
            "order": order or "",
        }
        return page(
            request,
            "parties.html",
            rows=rows,
            total=total,
            offset=offset,
            limit=PAGE_SIZE,
            sort=sorting,
            filters=filters,
            roles=ROLES,
            categories=CATEGORIES,
            today=today,
            controller=state.controller,
        )

    @get("/data-map", opt=requires("registry:read"))
    async def data_map(
        self, request: Request, db_session: NamedDependency[AsyncSession], offset: FromQuery[int] = 0
    ) -> Template:
        """Where our data goes: every territory with the number of recipients holding data there, directly or
        through a chain, and a page of recipients (by name) with where each holds it and its chain as a tree."""
        today, state = await registry_today(request, db_session)

        async def build() -> tuple[list[tuple[str, dict[str, Any]]], dict[str, list[views.Holding]]]:
            active = {k: p for k, p in state.party_docs.items() if p["active"]}
            active_views = {k: v for k, v in state.chains.items() if k in active}
            shown = sorted(
                ((k, p) for k, p in active.items() if p["role"] != "sub_processor"),
                key=lambda kv: kv[1]["name"].lower(),
            )
            held = await in_slices(shown, lambda kv: (kv[0], views.holdings(kv[0], active_views)))
            return shown, dict(held)

        shown, held = await state.memo(("data_map", today), build)
        counts = await state.memo(("data_map_counts", today), lambda: _territory_counts(held))
        offset = page_offset(offset)
        on_page = shown[offset : offset + PAGE_SIZE]
        recipients = [
            {
                "key": key,
                "name": party["name"],
                "inside": not views.outside_through(key, state.chains),
                "chain": views.sub_processor_chain(key, state.party_docs, today),
            }
            for key, party in on_page
        ]
        territories = views.data_map_of((key, held[key]) for key, _ in on_page)
        by_code = {t.territory: t for t in territories}
        every = [by_code.get(code) or views.TerritoryHolders(code, label, badge) for code, label, badge, _ in counts]
        return page(
            request,
            "data_map.html",
            territories=every,
            recipients_in=dict((code, n) for code, _, _, n in counts),
            recipients=recipients,
            total=len(shown),
            offset=offset,
            limit=PAGE_SIZE,
            parties=state.party_docs,
            today=today,
            controller=state.controller,
        )

    @get("/parties/new", opt=requires("registry:write"))
    async def new_party(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        blank: dict[str, Any] = {
            "key": "",
            "name": "",
            "role": "processor",
            "category": "other",
            "org_number": None,
            "established_in": "",
            "locations": [],
            "sub_processors": [],
            "active": True,
            "international_organisation": False,
            "contact": None,
        }
        return await self._party_form(request, db_session, blank, creating=True)

    @post("/parties/new", opt=requires("registry:write"), status_code=200)
    async def create_party(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        submitted = forms.party_from_form(await read_form(request))
        try:
            data = PartyIn.model_validate(submitted)
            async with db_session.begin():
                await PartyService(db_session, current_user(request).name).create(data)
        except SAVE_FAILURES as exc:
            taken = gettext("A party with the key “%(key)s” exists already; choose another key.")
            return await failed_save(
                exc,
                partial(self._party_form, request, db_session),
                submitted,
                creating=True,
                key_taken=taken % {"key": submitted.get("key")},
            )
        return Redirect(f"/ui/parties/{data.key}?saved=1", status_code=303)

    @get("/parties/{key:str}", opt=requires("registry:read"))
    async def party(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        saved: FromQuery[str | None] = None,
    ) -> Template:
        try:
            party = await PartyService(db_session, "").get(key)
        except NotFoundError:  # removed by an import: its history and a restore action (or the 404 page)
            return await removed_record_page(request, db_session, "party", key)
        today, state = await registry_today(request, db_session)
        agreements, _ = await AgreementService(db_session, "").search(
            AgreementFilter(party=key), MAX_AGREEMENTS_PER_PARTY, 0
        )
        for a in agreements:
            a["state"] = views.agreement_state(a, today, expiring_days(request))
        changes, _ = await history(db_session, "party", key, 20, 0)
        decisions = await decisions_of(db_session, recipient=key, limit=10)
        findings = await findings_of(state, db_session, today, party=key)
        used_by = await state.users_of(key)
        return page(
            request,
            "party.html",
            party=party,
            today=today,
            places=views.places_by_territory(party),
            chain=views.sub_processor_chain(key, state.party_docs, today),
            agreements=agreements,
            status=state.party_status(key, today, expiring_days(request)) if key in state.party_docs else "none",
            changes=changes,
            decisions=decisions,
            findings=findings,
            used_by=used_by,
            party_names=PartyNames(state.party_docs),
            saved=bool(saved),
            controller=state.controller,
        )

    @get("/parties/{key:str}/edit", opt=requires("registry:write"))
    async def edit_party(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Template:
        party = await PartyService(db_session, "").get(key)
        return await self._party_form(request, db_session, party, creating=False)

    @post("/parties/{key:str}/edit", opt=requires("registry:write"), status_code=200)
    async def update_party(
        self, request: Request, db_session: NamedDependency[AsyncSession], key: FromPath[str]
    ) -> Response[Any]:
        form = await read_form(request)
        submitted = forms.party_from_form(form)
        submitted["version"] = forms.form_version(form)
        shown = {**submitted, "key": key}
        try:
            data = PartyUpdate.model_validate(submitted)
            async with db_session.begin():
                await PartyService(db_session, current_user(request).name).update(key, data)
        except SAVE_FAILURES as exc:
            return await failed_save(
                exc,
                partial(self._party_form, request, db_session),
                shown,
                creating=False,
                saved_now=partial(PartyService(db_session, "").get, key),
                session=db_session,
                entity="party",
            )
        return Redirect(f"/ui/parties/{key}?saved=1", status_code=303)

    async def _party_form(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        party: dict[str, Any],
        *,
        creating: bool,
        errors: dict[str, list[str]] | None = None,
        conflict: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> Template:
        _, state = await registry_today(request, session)
        locations = list(party.get("locations") or []) + [{"territory": "", "kind": ""}] * SPARE_LOCATION_ROWS
        links = (
            list(party.get("sub_processors") or [])
            + [{"party": "", "approved_on": None, "objection_deadline": None}] * SPARE_LINK_ROWS
        )
        return page(
            request,
            "party_form.html",
            status_code=status_code,
            party=party,
            creating=creating,
            location_rows=locations,
            link_rows=links,
            sub_processor_options=await state.party_options(
                "name_key", request_language(request), role="sub_processor"
            ),
            roles=ROLES,
            categories=CATEGORIES,
            location_kinds=LOCATION_KINDS,
            errors=errors or {},
            conflict=conflict,
        )


route_handlers = [PartyPages]
