"""The Litestar application factory: routes, middleware and error answers; the parts it runs are built by
the composition root (web/composition.py)."""

import logging
import sys
from collections.abc import AsyncGenerator
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import ClientException, InternalServerException, SerializationException
from litestar.middleware import DefineMiddleware
from litestar.types import Scope
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

import web.controllers.guard
from kernel.db import database_outage
from kernel.errors import ConflictError, NotFoundError, RegistryValidationError
from kernel.logs import litestar_logging_config
from kernel.settings import Settings
from web import composition
from web import reminders as jobs
from web.access_log import AccessLog
from web.auth import PUBLIC_PATH_PATTERNS, RegistryAuthenticationMiddleware
from web.controllers.agreements import AgreementController
from web.controllers.apikeys import ApiKeyController
from web.controllers.deps import provide_db_session
from web.controllers.findings import RegistryFindingsController
from web.controllers.health import HealthController
from web.controllers.metrics import MetricsController
from web.controllers.objections import route_handlers as objection_handlers
from web.controllers.parties import PartyController
from web.controllers.records import route_handlers as records_handlers
from web.controllers.registry_document import RegistryDocumentController
from web.controllers.subjects import route_handlers as subject_handlers
from web.openapi import contract_on_startup, docs_assets_router, openapi_config
from web.roles import RoleDispatcher
from web.ui import setup as ui
from web.visibility import wait_until_the_guard_obeys

log = logging.getLogger(__name__)

EXPECTED_CLIENT_ERROR_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 413, 415, 429})

# SQLSTATEs of text PostgreSQL cannot store: NUL in text (22021), \u0000 in JSONB (22P05).
UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})


class RegistryRequest(Request[Any, Any, Any]):
    """A request whose JSON body fails as a 400 whatever is wrong with it. Litestar turns msgspec's decode
    errors into 400s, but not the RecursionError of a deeply nested body or the UnicodeDecodeError of a string
    that is not UTF-8: those would be 500s. Nor a client that goes away before its whole body arrived."""

    async def stream(self) -> AsyncGenerator[bytes, None]:
        # Litestar's reader raises an InternalServerException (a 500, logged with its traceback) when the client
        # disconnects mid-body: the client's doing, not a server fault, and nobody is left to read the answer.
        # Every body read (JSON, form, raw) goes through here, so every route answers it as a 400.
        try:
            async for chunk in super().stream():
                yield chunk
        except InternalServerException as exc:
            if exc.detail != "client disconnected prematurely":  # "stream consumed": the server's own fault
                raise
            raise ClientException("the client disconnected before the whole body arrived") from None

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise SerializationException("JSON is malformed: the body is nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise SerializationException(f"JSON is malformed: the body is not UTF-8 ({exc.reason})") from None


def _validation_error(_: Request[Any, Any, Any], exc: RegistryValidationError) -> Response[dict[str, Any]]:
    return Response(
        {"status_code": 400, "detail": str(exc), "extra": [e.as_dict() for e in exc.errors]}, status_code=400
    )


def _not_found(_: Request[Any, Any, Any], exc: NotFoundError) -> Response[dict[str, Any]]:
    return Response({"status_code": 404, "detail": str(exc)}, status_code=404)


def _conflict(_: Request[Any, Any, Any], exc: ConflictError) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status_code": 409, "detail": str(exc)}
    if exc.current_version is not None:
        body["current_version"] = exc.current_version
    return Response(body, status_code=409)


def _integrity(_: Request[Any, Any, Any], exc: IntegrityError) -> Response[dict[str, Any]]:
    # Services check first; this catches the race where two writers pass the check at once.
    log.info("integrity error turned into 409: %s", exc.orig)
    return Response({"status_code": 409, "detail": "the change conflicts with existing data"}, status_code=409)


def _database_error(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[dict[str, Any]]:
    """Input is checked before it is written (NUL is refused on its field); this is the net under that."""
    if getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT_SQLSTATES:
        return Response(
            {"status_code": 400, "detail": "the request holds text the registry cannot store (a NUL character)"},
            status_code=400,
        )
    if database_outage(exc) is not None:
        return _database_unavailable(request, exc)
    log.error("database error", exc_info=exc)
    return Response({"status_code": 500, "detail": "Internal Server Error"}, status_code=500)


def _database_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # Logged once, by `log_exception`, as the one line of a known outage.
    return Response({"status_code": 503, "detail": "the registry database is unavailable"}, status_code=503)


def log_exception(logger: logging.Logger, scope: Scope, traceback: list[str]) -> None:
    """Litestar's logging of an exception that reached it: a database outage is one WARNING line naming its
    failure (the request's id is on every line), not a traceback per request while the outage lasts; anything
    else is logged with its traceback, as an unexpected error needs."""
    exc = sys.exc_info()[1]
    reason = database_outage(exc) if exc is not None else None
    if reason is not None:
        logger.warning(
            "the registry database is unavailable (%s): %s %s answered 503", reason, scope.get("method"), scope["path"]
        )
        return
    logger.exception("Uncaught exception (connection_type=%s, path=%r):", scope["type"], scope["path"])


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    if not settings.database_url:
        raise RuntimeError("REGISTRY_DATABASE_URL is not set; `registry serve` starts the embedded database")

    ui_options = ui.app_options()
    app = Litestar(
        route_handlers=[
            HealthController,
            PartyController,
            AgreementController,
            RegistryDocumentController,
            RegistryFindingsController,
            ApiKeyController,
            *records_handlers,
            *objection_handlers,
            *subject_handlers,
            MetricsController,
            docs_assets_router(),
            *web.controllers.guard.route_handlers,
            *jobs.route_handlers,
            *ui.route_handlers,
        ],
        lifespan=[composition.lifespan(settings)],
        on_startup=[contract_on_startup(PUBLIC_PATH_PATTERNS)],
        dependencies={"db_session": Provide(provide_db_session), **composition.dependencies},
        middleware=[
            DefineMiddleware(
                RegistryAuthenticationMiddleware,
                exclude=[*PUBLIC_PATH_PATTERNS, *ui.public_path_patterns],
                # Litestar lets OPTIONS through by default (for CORS preflights, which this app does not serve):
                # the answer would skip the key check, and a route guard would find no caller (a 500).
                exclude_http_methods=[],
            ),
            *ui.middleware,
        ],
        exception_handlers={
            RegistryValidationError: _validation_error,
            NotFoundError: _not_found,
            ConflictError: _conflict,
            IntegrityError: _integrity,
            DBAPIError: _database_error,
            OperationalError: _database_unavailable,
            InterfaceError: _database_unavailable,
            PoolTimeoutError: _database_unavailable,
            ConnectionError: _database_unavailable,
            **ui.exception_handlers,
        },
        # Unexpected errors are logged with their traceback (the client sees only a generic 500); a client's own
        # mistake (a 4xx) is answered, not logged, or a scan of bad requests would bury the real faults.
        logging_config=litestar_logging_config(
            settings.log_format,
            log_exceptions="always",
            exception_logging_handler=log_exception,
            disable_stack_trace={
                *EXPECTED_CLIENT_ERROR_STATUSES,
                RegistryValidationError,
                NotFoundError,
                ConflictError,
            },
        ),
        request_class=RegistryRequest,
        # A committed write's answer waits for this instance's guard; the UI adds its security headers.
        before_send=[wait_until_the_guard_obeys, *ui_options.pop("before_send", [])],
        openapi_config=openapi_config(),
        **ui_options,
    )
    # A guard check by a key the cache holds skips the router and the route's stack (web/controllers/guard.py).
    app.asgi_handler = web.controllers.guard.CheckLane(app.asgi_handler)
    return app


def create_served_app() -> AccessLog | RoleDispatcher:
    """The app as `registry serve` runs it: behind its access log (web/access_log.py), uvicorn's own off,
    which also puts a request id on every log line and answer (kernel/logs.py). On a guard-role process, only
    the guard's own paths reach it; the rest is relayed to the web role (web/roles.py), which logs them."""
    settings = Settings.from_env()
    served = AccessLog(create_app(settings), request_ids=True)
    if settings.process_role != "guard":
        return served
    if settings.web_role_socket is None:
        raise RuntimeError("a guard-role process needs REGISTRY_WEB_ROLE_SOCKET (`registry serve` sets it)")
    return RoleDispatcher(served, settings.web_role_socket)
