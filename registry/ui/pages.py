"""The web UI's pages. Handlers stay thin: registry services do the writes, the guard decides, and
registry/ui/forms.py moves values between forms and documents."""

import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, FormMultiDict, UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from registry.auth import Principal, requires
from registry.errors import ConflictError, FieldError, NotFoundError, RegistryValidationError
from registry.schemas import (
    AGREEMENT_KINDS,
    CATEGORIES,
    LOCATION_KINDS,
    ROLES,
    AgreementIn,
    AgreementUpdate,
    PartyIn,
    PartyUpdate,
)
from registry.services.agreements import AgreementService
from registry.services.apikeys import create_api_key, list_api_keys, revoke_api_key
from registry.services.documents import json_ready, load_registry
from registry.services.parties import PartyService, history
from registry.services.registry_document import export_registry, import_registry, parse_document
from registry.ui import forms, views
from registry.ui.users import ROLES as USER_ROLES
from registry.ui.users import create_user, disable_user, list_users, log_in, log_out

log = logging.getLogger(__name__)

SESSION_COOKIE = "registry_session"
SPARE_LOCATION_ROWS = 3
SPARE_LINK_ROWS = 2
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_PAGE_OFFSET = 1_000_000_000
DEFAULT_ZONE = "Europe/Stockholm"


def _user(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal)
    return principal


def role_of(principal: Principal) -> str:
    if "admin" in principal.scopes:
        return "admin"
    return "legal" if principal.may("registry:write") else "ops"


def page(request: Request[Any, Any, Any], name: str, status_code: int = 200, **context: Any) -> Template:
    principal = request.user if isinstance(request.scope.get("user"), Principal) else None
    context.update(
        user=principal,
        role=role_of(principal) if principal else None,
        may_write=bool(principal and principal.may("registry:write")),
        may_check=bool(principal and principal.may("guard:check")),
        is_admin=bool(principal and "admin" in principal.scopes),
        path=request.url.path,
        badges=views.AGREEMENT_BADGES,
        eea_badge=views.eea_badge,
        territory_label=views.territory_label,
        labels=forms.LABELS,
        show=forms.display_value,
        taxonomy_names=forms.TAXONOMY_NAMES,
        kind_labels=forms.KIND_LABELS,
        renewal_labels=forms.RENEWAL_LABELS,
        when=partial(local_time, zone=_zone(context.pop("controller", None))),
    )
    context.setdefault("errors", {})
    return Template(template_name=name, context=context, status_code=status_code)


def _zone(controller: dict[str, Any] | None) -> ZoneInfo:
    try:
        return ZoneInfo((controller or {}).get("timezone") or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def local_time(value: Any, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """A stored moment (UTC) on the controller's clock, with the zone named: '2026-11-25 15:13 CET'."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def _expiring_days(request: Request[Any, Any, Any]) -> int:
    """The one "expiring" window: the guard's AGREEMENT_EXPIRING setting."""
    return int(request.app.state.settings.expiring_warning_days)


def _safe_next(target: str | None) -> str:
    """Only our own pages: an open redirect after login would help phishing."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


async def _form(request: Request[Any, Any, Any]) -> FormMultiDict:
    return await request.form()


async def _today(session: AsyncSession) -> tuple[date, Any]:
    state = await load_registry(session)
    return views.controller_today(state.controller), state


# --- error pages -----------------------------------------------------------------------------------------


def redirect_to_login(request: Request[Any, Any, Any], _: NotAuthorizedException) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/ui/login?next={quote(target, safe='/')}", status_code=303)


def forbidden_page(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    csrf = "csrf" in str(exc.detail).lower()
    return page(request, "error.html", status_code=403, title="Not allowed", csrf=csrf, message=exc.detail)


def not_found_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return page(request, "error.html", status_code=404, title="Not found", csrf=False, message=str(exc))


# --- pages ------------------------------------------------------------------------------------------------


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/ui/", status_code=303)


class UiController(Controller):
    path = "/ui"
    include_in_schema = False
    exception_handlers = {
        NotAuthorizedException: redirect_to_login,
        PermissionDeniedException: forbidden_page,
        NotFoundError: not_found_page,
        NotFoundException: not_found_page,
    }

    # Login and logout ----------------------------------------------------------------------------------

    @get("/login")
    async def login_form(
        self, request: Request, next_: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None
    ) -> Template:
        return page(request, "login.html", next=_safe_next(next_), email="", message=None)

    @post("/login", status_code=200)
    async def login(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        form = await _form(request)
        email = str(form.get("email") or "").strip()
        password = str(form.get("password") or "")
        target = _safe_next(str(form.get("next") or ""))
        errors: dict[str, list[str]] = {}
        if not email:
            errors["email"] = ["Enter your e-mail address."]
        if not password:
            errors["password"] = ["Enter your password."]
        if errors:
            return page(request, "login.html", status_code=400, next=target, email=email, errors=errors, message=None)
        async with db_session.begin():
            result = await log_in(db_session, email, password)
        if result.token is None:
            message = (
                "Too many wrong passwords: this account is locked for 15 minutes."
                if result.locked
                else "The e-mail address or the password is not right."
            )
            return page(request, "login.html", status_code=401, next=target, email=email, message=message)
        settings = request.app.state.settings
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=result.token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
        return Redirect(target, status_code=303, cookies=[cookie])

    @post("/logout", status_code=303)
    async def logout(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            async with db_session.begin():
                await log_out(db_session, token)
        response = Redirect("/ui/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # Dashboard ------------------------------------------------------------------------------------------

    @get("/", opt=requires("registry:read"))
    async def dashboard(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        today, state = await _today(db_session)
        findings = await _registry_findings(db_session, today)
        expiring = [
            a
            for a in state.agreement_docs.values()
            if views.agreement_state(a, today, _expiring_days(request)) == "expiring"
        ]
        expiring.sort(key=lambda a: a["expires_on"])
        unapproved = views.unapproved_links(state.party_docs, today)
        denied = await _decisions(db_session, outcome="denied", since=_start_of(today, state.controller), limit=50)
        return page(
            request,
            "dashboard.html",
            today=today,
            findings=findings,
            expiring=expiring,
            unapproved=unapproved,
            denied=denied,
            parties=state.party_docs,
            controller=state.controller,
        )

    # Parties ----------------------------------------------------------------------------------------------

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
    ) -> Template:
        today, state = await _today(db_session)
        by_party: dict[str, list[dict[str, Any]]] = {}
        for a in state.agreement_docs.values():
            by_party.setdefault(a["party"], []).append(a)
        rows = []
        needle = (q or "").strip().lower()
        for party in state.party_docs.values():
            agreement_status = views.party_agreement_status(
                party, by_party.get(party["key"], []), today, _expiring_days(request)
            )
            inside = views.party_inside_eea(party)
            if needle and needle not in party["key"] and needle not in party["name"].lower():
                continue
            if role and party["role"] != role:
                continue
            if category and party["category"] != category:
                continue
            if status and agreement_status != status:
                continue
            if (eea == "inside" and not inside) or (eea == "outside" and inside):
                continue
            if (active == "yes" and not party["active"]) or (active == "no" and party["active"]):
                continue
            rows.append({"party": party, "status": agreement_status, "inside": inside})
        filters = {"q": q or "", "role": role, "category": category, "status": status, "eea": eea, "active": active}
        return page(
            request, "parties.html", rows=rows, filters=filters, roles=ROLES, categories=CATEGORIES, today=today
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
            "contact": None,
        }
        return await self._party_form(request, db_session, blank, creating=True)

    @post("/parties/new", opt=requires("registry:write"), status_code=200)
    async def create_party(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        submitted = forms.party_from_form(await _form(request))
        try:
            data = PartyIn.model_validate(submitted)
            async with db_session.begin():
                await PartyService(db_session, _user(request).name).create(data)
        except ValidationError as exc:
            return await self._party_form(
                request, db_session, submitted, creating=True, errors=forms.validation_messages(exc), status_code=400
            )
        except RegistryValidationError as exc:
            return await self._party_form(
                request, db_session, submitted, creating=True, errors=forms.field_messages(exc.errors), status_code=400
            )
        except ConflictError:
            errors = {"key": [f"A party with the key “{submitted.get('key')}” exists already; choose another key."]}
            return await self._party_form(request, db_session, submitted, creating=True, errors=errors, status_code=409)
        return Redirect(f"/ui/parties/{data.key}?saved=1", status_code=303)

    @get("/parties/{key:str}", opt=requires("registry:read"))
    async def party(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        key: FromPath[str],
        saved: FromQuery[str | None] = None,
    ) -> Template:
        party = await PartyService(db_session, "").get(key)
        today, state = await _today(db_session)
        agreements = [a for a in state.agreement_docs.values() if a["party"] == key]
        for a in agreements:
            a["state"] = views.agreement_state(a, today, _expiring_days(request))
        changes, _ = await history(db_session, "party", key, 20, 0)
        decisions = await _decisions(db_session, recipient=key, limit=10)
        findings = [f for f in (await _registry_findings(db_session, today) or []) if f.get("party") == key]
        used_by = [p for p in state.party_docs.values() if any(s["party"] == key for s in p["sub_processors"])]
        return page(
            request,
            "party.html",
            party=party,
            today=today,
            places=views.places_by_territory(party),
            chain=views.sub_processor_chain(key, state.party_docs, today),
            agreements=agreements,
            status=views.party_agreement_status(party, agreements, today, _expiring_days(request)),
            changes=changes,
            decisions=decisions,
            findings=findings,
            used_by=used_by,
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
        form = await _form(request)
        submitted = forms.party_from_form(form)
        submitted["version"] = forms.form_version(form)
        shown = {**submitted, "key": key}
        try:
            data = PartyUpdate.model_validate(submitted)
            async with db_session.begin():
                await PartyService(db_session, _user(request).name).update(key, data)
        except ValidationError as exc:
            return await self._party_form(
                request, db_session, shown, creating=False, errors=forms.validation_messages(exc), status_code=400
            )
        except RegistryValidationError as exc:
            return await self._party_form(
                request, db_session, shown, creating=False, errors=forms.field_messages(exc.errors), status_code=400
            )
        except ConflictError as exc:
            saved = await PartyService(db_session, "").get(key)
            conflict = await _conflict(db_session, "party", key, exc, saved, submitted)
            return await self._party_form(
                request,
                db_session,
                {**shown, "version": saved["version"]},
                creating=False,
                conflict=conflict,
                status_code=409,
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
        refused: bool = False,
    ) -> Template:
        state = await load_registry(session)
        sub_processors = [p for p in state.party_docs.values() if p["role"] == "sub_processor"]
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
            sub_processor_choices=sub_processors,
            roles=ROLES,
            categories=CATEGORIES,
            location_kinds=LOCATION_KINDS,
            errors=errors or {},
            conflict=conflict,
        )

    # Agreements -----------------------------------------------------------------------------------------

    @get("/agreements", opt=requires("registry:read"))
    async def agreements(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        q: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        state_: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
    ) -> Template:
        state = state_
        today, registry = await _today(db_session)
        rows = []
        for a in registry.agreement_docs.values():
            a_state = views.agreement_state(a, today, _expiring_days(request))
            needle = (q or "").strip().lower()
            if needle and needle not in a["key"] and needle not in a["party"]:
                continue
            if (kind and a["kind"] != kind) or (state and a_state != state):
                continue
            rows.append({**a, "state": a_state, "party_name": registry.party_docs[a["party"]]["name"]})
        filters = {"q": q or "", "kind": kind, "state": state}
        return page(request, "agreements.html", rows=rows, filters=filters, kinds=AGREEMENT_KINDS, today=today)

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
        form = await _form(request)
        submitted = forms.agreement_from_form(form)
        try:
            data = AgreementIn.model_validate(submitted)
            if (refusals := forms.guard_refusals(submitted)) and not forms.save_anyway(form):
                return await self._agreement_form(
                    request, db_session, submitted, creating=True, errors=refusals, refused=True
                )
            async with db_session.begin():
                await AgreementService(db_session, _user(request).name).create(data)
        except ValidationError as exc:
            errors = forms.validation_messages(exc, also=forms.agreement_cross_checks(submitted))
            return await self._agreement_form(
                request, db_session, submitted, creating=True, errors=errors, status_code=400
            )
        except RegistryValidationError as exc:
            return await self._agreement_form(
                request, db_session, submitted, creating=True, errors=forms.field_messages(exc.errors), status_code=400
            )
        except ConflictError:
            errors = {"key": [f"An agreement with the key “{submitted.get('key')}” exists already; choose another."]}
            return await self._agreement_form(
                request, db_session, submitted, creating=True, errors=errors, status_code=409
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
        agreement = await AgreementService(db_session, "").get(key)
        today, state = await _today(db_session)
        changes, _ = await history(db_session, "agreement", key, 20, 0)
        return page(
            request,
            "agreement.html",
            agreement=agreement,
            party=state.party_docs.get(agreement["party"]),
            state=views.agreement_state(agreement, today, _expiring_days(request)),
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
        form = await _form(request)
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
                await AgreementService(db_session, _user(request).name).update(key, data)
        except ValidationError as exc:
            errors = forms.validation_messages(exc, also=forms.agreement_cross_checks(submitted))
            return await self._agreement_form(
                request, db_session, shown, creating=False, errors=errors, status_code=400
            )
        except RegistryValidationError as exc:
            return await self._agreement_form(
                request, db_session, shown, creating=False, errors=forms.field_messages(exc.errors), status_code=400
            )
        except ConflictError as exc:
            saved = await AgreementService(db_session, "").get(key)
            conflict = await _conflict(db_session, "agreement", key, exc, saved, submitted)
            return await self._agreement_form(
                request,
                db_session,
                {**shown, "version": saved["version"]},
                creating=False,
                conflict=conflict,
                status_code=409,
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
        state = await load_registry(session)
        return page(
            request,
            "agreement_form.html",
            status_code=status_code,
            agreement=agreement,
            creating=creating,
            parties=list(state.party_docs.values()),
            kinds=AGREEMENT_KINDS,
            clauses=forms.CLAUSE_CHOICES,
            taxonomy=forms.TAXONOMY,
            errors=errors or {},
            conflict=conflict,
            refused=refused,
        )

    # Try a share --------------------------------------------------------------------------------------------

    @get("/guard", opt=requires("guard:check"))
    async def try_share_form(
        self, request: Request, db_session: NamedDependency[AsyncSession], recipient: FromQuery[str | None] = None
    ) -> Template:
        state = await load_registry(db_session)
        share = {
            "recipient": recipient or "",
            "purpose": "",
            "data_categories": [],
            "destination": "",
            "data_subject": "",
        }
        return page(
            request,
            "guard.html",
            share=share,
            parties=list(state.party_docs.values()),
            taxonomy=forms.TAXONOMY,
            result=None,
        )

    @post("/guard", opt=requires("guard:check"), status_code=200)
    async def try_share(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        from guard.service import check_share

        form = await _form(request)
        share: dict[str, Any] = {
            "recipient": str(form.get("recipient") or "").strip(),
            "purpose": str(form.get("purpose") or "").strip(),
            "data_categories": [str(v) for v in form.getall("data_categories", [])],
            "destination": str(form.get("destination") or "").strip().upper(),
            "data_subject": str(form.get("data_subject") or "").strip(),
        }
        errors: dict[str, list[str]] = {}
        for name, message in (
            ("recipient", "Choose the recipient."),
            ("purpose", "Choose the purpose of the share."),
            ("data_categories", "Choose at least one data category."),
            ("data_subject", "Choose the data subject."),
        ):
            if not share[name]:
                errors[name] = [message]
        state = await load_registry(db_session)
        context = {
            "share": share,
            "parties": list(state.party_docs.values()),
            "taxonomy": forms.TAXONOMY,
            "controller": state.controller,
        }
        if errors:
            return page(request, "guard.html", status_code=400, errors=errors, result=None, **context)
        payload = {k: v for k, v in share.items() if v not in ("", None)}
        status, body = await check_share(request.app.state, payload, _user(request).name)
        if status == 400:
            extra = body.get("extra") or []
            errors = forms.field_messages(
                [FieldError(str(e.get("key", "")), str(e.get("message", ""))) for e in extra if isinstance(e, dict)]
            ) or {"": [str(body.get("detail", "The request is not valid."))]}
            return page(request, "guard.html", status_code=400, errors=errors, result=None, **context)
        return page(
            request,
            "guard.html",
            status_code=200 if status == 200 else status,
            result=body,
            result_status=status,
            **context,
        )

    # Decision log --------------------------------------------------------------------------------------------

    @get("/decisions", opt=requires("registry:read"))
    async def decisions(
        self,
        request: Request,
        db_session: NamedDependency[AsyncSession],
        recipient: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        offset: FromQuery[int] = 0,
    ) -> Template:
        errors: dict[str, list[str]] = {}
        if outcome and outcome not in {"allowed", "denied"}:
            errors["outcome"] = ["Choose allowed or denied."]
        since_day = _parse_day(since, "since", errors)
        until_day = _parse_day(until, "until", errors)
        state = await load_registry(db_session)
        # Past the end is an empty page; PostgreSQL's OFFSET is a bigint, so an absurd one must not reach it.
        offset = min(max(0, offset), MAX_PAGE_OFFSET)
        limit = 50
        rows: list[dict[str, Any]] = []
        total = 0
        if not errors:
            from guard.log import list_decisions

            rows, total = await list_decisions(
                db_session,
                recipient=recipient or None,
                outcome=outcome or None,
                since=_start_of(since_day, state.controller) if since_day else None,
                until=_start_of(until_day + timedelta(days=1), state.controller) if until_day else None,
                limit=limit,
                offset=offset,
            )
        filters = {"recipient": recipient or "", "outcome": outcome or "", "since": since or "", "until": until or ""}
        return page(
            request,
            "decisions.html",
            status_code=400 if errors else 200,
            rows=rows,
            total=total,
            offset=offset,
            limit=limit,
            filters=filters,
            errors=errors,
            parties=list(state.party_docs.values()),
            controller=state.controller,
        )

    # Renewals ---------------------------------------------------------------------------------------------

    @get("/renewals", opt=requires("registry:read"))
    async def renewals(
        self, request: Request, db_session: NamedDependency[AsyncSession], days: FromQuery[int] = 180
    ) -> Template:
        from registry.jobs.renewals import upcoming_renewals

        today, _ = await _today(db_session)
        days = min(max(days, 1), 3650)
        rows = await upcoming_renewals(db_session, today=today, within_days=days)
        return await self._renewals_page(request, db_session, rows=rows, days=days, today=today)

    async def _renewals_page(
        self, request: Request[Any, Any, Any], session: AsyncSession, status_code: int = 200, **context: Any
    ) -> Template:
        from registry.jobs.calendar import list_feeds

        feeds = await list_feeds(session) if "admin" in _user(request).scopes else []
        return page(
            request,
            "renewals.html",
            status_code=status_code,
            feeds=feeds,
            public_url=request.app.state.settings.public_url,
            **context,
        )

    @post("/renewals/feeds", opt=requires("admin"), status_code=200)
    async def create_feed(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        """The feed's secret address is shown once, here, like an API key."""
        from registry.jobs.calendar import create_feed, feed_url
        from registry.jobs.renewals import upcoming_renewals

        form = await _form(request)
        name = str(form.get("feed_name") or "").strip()
        errors: dict[str, list[str]] = {}
        feed_address = None
        try:
            async with db_session.begin():
                token = await create_feed(db_session, name, _user(request).name)
            feed_address = feed_url(request.app.state.settings.public_url, token)
        except RegistryValidationError as exc:
            errors = {"feed_name": [forms.plain_words(e.message) for e in exc.errors]}
        except ConflictError:
            errors = {"feed_name": ["A feed with this name exists already; choose another name."]}
        today, _ = await _today(db_session)
        rows = await upcoming_renewals(db_session, today=today, within_days=180)
        return await self._renewals_page(
            request,
            db_session,
            400 if errors else 200,
            rows=rows,
            days=180,
            today=today,
            errors=errors,
            feed_address=feed_address,
            feed_name=name,
        )

    # Import and export -------------------------------------------------------------------------------------

    @get("/registry", opt=requires("registry:read"))
    async def registry_page(self, request: Request) -> Template:
        return page(request, "registry.html", result=None, import_errors=[])

    @get("/registry/export", opt=requires("registry:read"))
    async def export(
        self,
        db_session: NamedDependency[AsyncSession],
        format_: Annotated[str, QueryParameter(name="format", max_length=8)] = "yaml",
    ) -> Response[str]:
        document = json_ready(await export_registry(db_session))
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        if format_ == "json":
            body, media, ext = json.dumps(document, indent=2, ensure_ascii=False), "application/json", "json"
        else:
            body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
            media, ext = "application/yaml", "yaml"
        return Response(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="registry-{stamp}.{ext}"'}
        )

    @post("/registry/import", opt=requires("registry:write"), status_code=200)
    async def import_document(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        form = await _form(request)
        upload = form.get("file")
        text = str(form.get("text") or "")
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(MAX_IMPORT_BYTES + 1)
            if len(raw) > MAX_IMPORT_BYTES:
                return self._import_failed(request, [("file", "The file is larger than 20 MB.")])
            text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            return self._import_failed(request, [("file", "Choose a YAML or JSON file, or paste the document.")])
        if form.get("confirm") != "on":
            return self._import_failed(
                request, [("confirm", "Tick the box to confirm that the import replaces the whole registry.")]
            )
        try:
            raw_doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return self._import_failed(request, [("(document)", f"This is not valid YAML or JSON: {exc}")])
        try:
            document = parse_document(raw_doc)
            async with db_session.begin():
                counts = await import_registry(db_session, document, _user(request).name)
        except RegistryValidationError as exc:
            return self._import_failed(request, [(e.field, forms.plain_words(e.message)) for e in exc.errors])
        return page(request, "registry.html", result=counts, import_errors=[])

    def _import_failed(self, request: Request[Any, Any, Any], problems: list[tuple[str, str]]) -> Template:
        return page(request, "registry.html", status_code=400, result=None, import_errors=problems)

    # Administration: users and API keys ---------------------------------------------------------------------

    @get("/admin", opt=requires("admin"))
    async def admin(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        return await self._admin_page(request, db_session)

    async def _admin_page(
        self, request: Request[Any, Any, Any], session: AsyncSession, status_code: int = 200, **context: Any
    ) -> Template:
        context.setdefault("new_user", {"email": "", "role": "legal"})
        return page(
            request,
            "admin.html",
            status_code=status_code,
            users=await list_users(session),
            keys=await list_api_keys(session),
            user_roles=USER_ROLES,
            scopes=("registry:read", "registry:write", "guard:check", "metrics:read", "admin"),
            **context,
        )

    @post("/admin/users", opt=requires("admin"), status_code=200)
    async def add_user(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Response[Any]:
        form = await _form(request)
        email, role = str(form.get("email") or ""), str(form.get("role") or "")
        try:
            async with db_session.begin():
                await create_user(db_session, email, role, str(form.get("password") or ""), _user(request).name)
        except RegistryValidationError as exc:
            return await self._admin_page(
                request,
                db_session,
                400,
                errors=forms.field_messages(exc.errors),
                new_user={"email": email, "role": role},
            )
        except ConflictError:
            return await self._admin_page(
                request,
                db_session,
                409,
                errors={"email": ["This user exists already."]},
                new_user={"email": email, "role": role},
            )
        return Redirect("/ui/admin?done=user", status_code=303)

    @post("/admin/users/disable", opt=requires("admin"), status_code=303)
    async def disable(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        form = await _form(request)
        async with db_session.begin():
            await disable_user(db_session, str(form.get("email") or ""), _user(request).name)
        return Redirect("/ui/admin?done=disabled", status_code=303)

    @post("/admin/api-keys", opt=requires("admin"), status_code=200)
    async def add_key(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        form = await _form(request)
        name = str(form.get("name") or "").strip()
        scopes = [str(s) for s in form.getall("scopes", [])]
        errors: dict[str, list[str]] = {}
        token = None
        try:
            if not name:
                raise RegistryValidationError([FieldError("name", "Give the key a name, such as webshop.")])
            async with db_session.begin():
                token = await create_api_key(db_session, name, scopes, _user(request).name)
        except RegistryValidationError as exc:
            errors = forms.field_messages(exc.errors)
        except ConflictError:
            errors = {"name": ["An API key with this name exists already."]}
        return await self._admin_page(
            request, db_session, 400 if errors else 200, errors=errors, new_token=token, new_token_name=name
        )

    @post("/admin/api-keys/revoke", opt=requires("admin"), status_code=303)
    async def revoke_key(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Redirect:
        form = await _form(request)
        async with db_session.begin():
            await revoke_api_key(db_session, str(form.get("name") or ""), _user(request).name)
        request.app.state.api_keys.clear()
        return Redirect("/ui/admin?done=revoked", status_code=303)


def _parse_day(raw: str | None, name: str, errors: dict[str, list[str]]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = ["Enter a date as year-month-day, for example 2026-01-31."]
        return None


def _start_of(day: date, controller: dict[str, Any] | None) -> datetime:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo((controller or {}).get("timezone") or "Europe/Stockholm")
    return datetime.combine(day, time.min, tzinfo=zone)


async def _registry_findings(session: AsyncSession, today: date) -> list[dict[str, Any]] | None:
    try:
        from guard.findings import registry_findings
    except ImportError:  # the findings module ships separately; the dashboard still shows the rest
        log.warning("guard.findings is not installed; the dashboard shows no findings")
        return None
    return await registry_findings(session, today=today)


async def _decisions(session: AsyncSession, **filters: Any) -> list[dict[str, Any]]:
    try:
        from guard.log import list_decisions
    except ImportError:
        log.warning("guard.log is not installed; pages show no guard decisions")
        return []
    rows, _ = await list_decisions(session, **filters)
    return rows


async def _conflict(
    session: AsyncSession,
    entity: str,
    key: str,
    exc: ConflictError,
    saved: dict[str, Any],
    submitted: dict[str, Any],
) -> dict[str, Any]:
    """What an edit form shows when someone else saved first: their version, what differs, and who it was."""
    changes, _ = await history(session, entity, key, 1, 0)
    return {
        "version": exc.current_version,
        "changes": forms.differences(saved, submitted),
        "by": changes[0]["actor"] if changes else None,
    }


route_handlers = [root, UiController]
