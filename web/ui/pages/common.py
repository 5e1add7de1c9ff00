"""What every UI page module shares: rendering a page with its frame's context, the signed-in user, the
controller's clock, the UI's error pages, and the small readers of forms and filters."""

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from functools import partial
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response
from litestar.datastructures import FormMultiDict
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from guard.policy import evaluate_party
from kernel import i18n
from kernel.calendar import zone_or_default
from kernel.db import DATABASE_UNAVAILABLE, database_unavailable
from kernel.errors import ConflictError, NotFoundError, RegistryValidationError
from ledger.queries import list_decisions
from registry.credentials import Principal
from registry.findings import finding
from registry.services.agreement_documents import documents_on_file, undocumented_finding
from registry.services.findings import registry_findings
from registry.services.parties import history
from registry.services.users import PASSWORD_EXPIRED
from web.composition import services_of
from web.ui import forms, views, words
from web.ui.language import request_language
from web.ui.registry_view import RegistryView, registry_view
from web.ui.rendering import SlicedTemplate

# PostgreSQL's OFFSET is a bigint: an absurd page offset must not reach it (past the end is an empty page).
MAX_PAGE_OFFSET = 1_000_000_000
# Rows on one page of a list (parties, agreements).
PAGE_SIZE = 50


def list_order(sort: str | None, order: str | None, columns: Any, default: str) -> dict[str, str]:
    """The list's sort column (one of `columns`, else `default`) and direction ('asc' unless 'desc')."""
    column = sort if sort is not None and sort in columns else default
    return {"column": column, "order": "desc" if order == "desc" else "asc"}


def page_offset(offset: int) -> int:
    return min(max(0, offset), MAX_PAGE_OFFSET)


# The UI's own messages from Python code, in one place (the templates hold the rest); marked for the
# catalogues here, translated where they are shown.
MESSAGES = {
    "server_error": i18n.N_("The registry could not answer this request. Nothing was changed; try again in a moment."),
    "no_such_page": i18n.N_("There is no page at this address."),
    "wrong_method": i18n.N_("This address does not take that kind of request."),
    "login_failed": i18n.N_("The e-mail address or the password is not right."),
    "login_throttled": i18n.N_("Too many failed sign-ins. Wait {seconds} seconds, then try again."),
    "not_a_user": i18n.N_("Only a signed-in user has a password to change."),
    "no_such_record": i18n.N_("There is no record at this address. It may have been removed or never existed."),
    "database_down": i18n.N_(
        "The registry's database cannot be reached just now, so this page cannot be shown. Nothing was changed; "
        "try again in a moment. The guard keeps answering from the registry it holds."
    ),
    "bad_request": i18n.N_("The address asks for something the registry cannot show:"),
    "local_passwords_off": i18n.N_("Sign-in with a password is switched off here: use single sign-on."),
    "no_sign_on": i18n.N_("Single sign-on is not set up for this registry."),
}
# Where a user whose password an admin reset is sent, whatever page they asked for.
PASSWORD_PAGE = "/ui/account/password"


def current_user(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal)
    return principal


def role_of(principal: Principal) -> str:
    if "admin" in principal.scopes:
        return "admin"
    return "legal" if principal.may("registry:write") else "ops"


def page(
    request: Request[Any, Any, Any], name: str, status_code: int = 200, *, language: str | None = None, **context: Any
) -> Template:
    """A UI page in the reader's language: the one place a page's language is chosen (the request's, or
    `language` for a printout asked for in the other one), so no page can fall back to a language of its own."""
    principal = request.user if isinstance(request.scope.get("user"), Principal) else None
    # Error pages are rendered by exception handlers, which run without the before_request step.
    i18n.set_locale(language if language in i18n.LANGUAGES else request_language(request))
    controller = context.pop("controller", None)
    # The controller's own words for taxonomy keys (term_label in the templates).
    context.setdefault("vocabulary", (controller or {}).get("vocabulary"))
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
        taxonomy_names=words.TAXONOMY_NAMES,
        kind_labels=forms.KIND_LABELS,
        renewal_labels=forms.RENEWAL_LABELS,
        when=partial(local_time, zone=zone_of(controller)),
    )
    context.setdefault("errors", {})
    return SlicedTemplate(template_name=name, context=context, status_code=status_code)


def zone_of(controller: dict[str, Any] | None) -> ZoneInfo:
    return zone_or_default((controller or {}).get("timezone"))


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


def start_of(day: date, controller: dict[str, Any] | None) -> datetime:
    """Midnight of `day` on the controller's clock."""
    return datetime.combine(day, time.min, tzinfo=zone_of(controller))


def expiring_days(request: Request[Any, Any, Any]) -> int:
    """The one "expiring" window: the guard's AGREEMENT_EXPIRING setting."""
    return int(services_of(request.app).settings.expiring_warning_days)


def safe_next(target: str | None) -> str:
    """Only our own pages: an open redirect after login would help phishing."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


async def read_form(request: Request[Any, Any, Any]) -> FormMultiDict:
    return await request.form()


async def registry_today(request: Request[Any, Any, Any], session: AsyncSession) -> tuple[date, RegistryView]:
    """The controller's today and the registry as the guard of this instance holds it (registry_view)."""
    state = await registry_view(request, session)
    return views.controller_today(state.controller), state


def parse_day(raw: str | None, name: str, errors: dict[str, list[str]]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = [i18n.gettext("Enter a date as year-month-day, for example 2026-01-31.")]
        return None


async def findings_of(
    state: RegistryView, session: AsyncSession, today: date, party: str | None = None
) -> list[dict[str, Any]]:
    """The registry's findings on `today` (those of `party` only, when given), as `GET /api/registry/findings`
    has them: the guard's rules over the snapshot, then the dpas in force without a signed copy on file."""
    if state.snapshot is None:
        found = await registry_findings(session, today=today)
        return [f for f in found if party is None or f.get("party") == party]
    on_file = set(await documents_on_file(session))
    if party is not None:
        view = state.snapshot.parties.get(party)
        if view is None or not view.active:
            return []
        rules = [finding(party, reason) for reason in evaluate_party(view, state.snapshot, today)]
        dpas = [
            (a.key, party)
            for a in state.snapshot.agreements_by_party.get(party, ())
            if a.kind == "dpa" and a.in_force_on(today)
        ]
    else:
        rules, dpas = await state.rule_findings(today), await state.in_force_dpas(today)
    undocumented = [undocumented_finding(key, holder) for key, holder in dpas if key not in on_file]
    return sorted(rules + undocumented, key=lambda f: f["party"])  # each party's rule findings first, as the API


async def decisions_of(session: AsyncSession, **filters: Any) -> list[dict[str, Any]]:
    return (await list_decisions(session, **filters)).items


async def conflict_details(
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


FormPage = Callable[..., Awaitable[Template]]  # a resource's form page: (record shown, creating=…, errors=…, …)


async def failed_save(
    exc: Exception,
    show_form: FormPage,
    shown: dict[str, Any],
    *,
    creating: bool,
    also: dict[str, list[str]] | None = None,
    key_taken: str = "",
    saved_now: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    session: AsyncSession | None = None,
    entity: str = "",
) -> Template:
    """The form again, saying why its save failed: the fields' problems (400); on a create, a key that is taken
    (409, `key_taken`); on an edit, someone else's save first (409: their version, what differs and who)."""
    if isinstance(exc, ValidationError):
        errors = forms.validation_messages(exc, also=also)
        return await show_form(shown, creating=creating, errors=errors, status_code=400)
    if isinstance(exc, RegistryValidationError):
        return await show_form(shown, creating=creating, errors=forms.field_messages(exc.errors), status_code=400)
    if not isinstance(exc, ConflictError):
        raise exc
    if creating or saved_now is None or session is None:
        return await show_form(shown, creating=creating, errors={"key": [key_taken]}, status_code=409)
    saved = await saved_now()
    conflict = await conflict_details(session, entity, str(shown["key"]), exc, saved, shown)
    return await show_form({**shown, "version": saved["version"]}, creating=False, conflict=conflict, status_code=409)


SAVE_FAILURES = (ValidationError, RegistryValidationError, ConflictError)


# --- error pages -----------------------------------------------------------------------------------------


def redirect_to_login(request: Request[Any, Any, Any], _: NotAuthorizedException) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/ui/login?next={quote(target, safe='/')}", status_code=303)


def forbidden_page(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    csrf = "csrf" in str(exc.detail).lower()
    principal = request.scope.get("user")
    if not csrf and isinstance(principal, Principal) and principal.kind == PASSWORD_EXPIRED:
        return Redirect(PASSWORD_PAGE, status_code=303)
    return page(request, "error.html", status_code=403, title=i18n.N_("Not allowed"), csrf=csrf, message=exc.detail)


def not_found_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    title, message = i18n.N_("Not found"), MESSAGES["no_such_record"]
    return page(request, "error.html", status_code=404, title=title, csrf=False, message=message)


def bad_request_page(request: Request[Any, Any, Any], exc: RegistryValidationError) -> Response[Any]:
    """A page's query the registry refuses (a date that is not one): each problem in the reader's words."""
    problems = [
        f"{forms.field_label(field)}: {m}" if field else m
        for field, messages in forms.field_messages(exc.errors).items()
        for m in messages
    ]
    return page(
        request,
        "error.html",
        status_code=400,
        title=i18n.N_("Something went wrong"),
        csrf=False,
        message=MESSAGES["bad_request"],
        problems=problems,
    )


def database_error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A database error: the database down (registry.db.database_unavailable) or a fault (logged with its
    traceback by the app's exception logging)."""
    if database_unavailable(exc):
        return database_down_page(request, exc)
    return server_error_page(request, exc)


def database_down_page(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    """The database cannot be reached: a page saying so (503), logged as one line (registry.logs.log_exception).
    The language comes from the browser (cookie, Accept-Language): the user's remembered choice is in the database."""
    return page(
        request,
        "error.html",
        status_code=503,
        title=i18n.N_("The registry is unavailable"),
        csrf=False,
        message=MESSAGES["database_down"],
    )


def server_error_page(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    """The fault is logged with its traceback before this runs; the page says only that it happened."""
    return page(
        request,
        "error.html",
        status_code=500,
        title=i18n.N_("Something went wrong"),
        csrf=False,
        message=MESSAGES["server_error"],
    )


def http_error_page_or_json(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """App-wide, for answers no UI route gives (an unknown /ui/ address, a method a page does not take): an HTML
    page under /ui/, Litestar's usual JSON body elsewhere."""
    if request.url.path == "/ui" or request.url.path.startswith("/ui/"):
        messages = {
            404: (i18n.N_("Not found"), MESSAGES["no_such_page"]),
            405: (i18n.N_("Not allowed"), MESSAGES["wrong_method"]),
        }
        title, message = messages.get(exc.status_code, (i18n.N_("Something went wrong"), str(exc.detail)))
        return page(request, "error.html", status_code=exc.status_code, title=title, csrf=False, message=message)
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)


# Every UI controller answers with these: no session is a redirect to the login page, a missing scope or a
# failed CSRF check the UI's 403 page, an unknown record its 404 page.
UI_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    NotAuthorizedException: redirect_to_login,
    PermissionDeniedException: forbidden_page,
    NotFoundError: not_found_page,
    NotFoundException: not_found_page,
    RegistryValidationError: bad_request_page,
    **dict.fromkeys(DATABASE_UNAVAILABLE, database_down_page),
    DBAPIError: database_error_page,
    HTTP_500_INTERNAL_SERVER_ERROR: server_error_page,
}


class UiPages(Controller):
    """The base of every UI page controller: under /ui, out of the API schema, answering with HTML pages."""

    path = "/ui"
    include_in_schema = False
    exception_handlers = UI_EXCEPTION_HANDLERS
