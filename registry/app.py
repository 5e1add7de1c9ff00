"""The Litestar application factory."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

import guard.controller
import guard.runtime
from registry import jobs, ui
from registry.auth import PUBLIC_PATH_PATTERNS, ApiKeyCache, RegistryAuthenticationMiddleware
from registry.controllers.agreements import AgreementController
from registry.controllers.apikeys import ApiKeyController
from registry.controllers.deps import provide_db_session
from registry.controllers.findings import RegistryFindingsController
from registry.controllers.health import HealthController
from registry.controllers.parties import PartyController
from registry.controllers.registry_document import RegistryDocumentController
from registry.db import make_engine, make_sessionmaker
from registry.errors import ConflictError, NotFoundError, RegistryValidationError
from registry.settings import Settings

log = logging.getLogger(__name__)


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


def _database_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("database unavailable: %s", exc)
    return Response({"status_code": 503, "detail": "the registry database is unavailable"}, status_code=503)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    if not settings.database_url:
        raise RuntimeError("REGISTRY_DATABASE_URL is not set; `registry serve` starts the embedded database")
    database_url = settings.database_url

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        engine = make_engine(database_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.api_keys = ApiKeyCache()
        try:
            yield
        finally:
            await engine.dispose()

    ui_options = ui.app_options()
    return Litestar(
        route_handlers=[
            HealthController,
            PartyController,
            AgreementController,
            RegistryDocumentController,
            RegistryFindingsController,
            ApiKeyController,
            *guard.controller.route_handlers,
            *jobs.route_handlers,
            *ui.route_handlers,
        ],
        lifespan=[database, guard.runtime.lifespan, jobs.lifespan, ui.lifespan],
        dependencies={"db_session": Provide(provide_db_session)},
        middleware=[
            DefineMiddleware(
                RegistryAuthenticationMiddleware,
                exclude=[*PUBLIC_PATH_PATTERNS, *ui.public_path_patterns],
            )
        ],
        exception_handlers={
            RegistryValidationError: _validation_error,
            NotFoundError: _not_found,
            ConflictError: _conflict,
            IntegrityError: _integrity,
            OperationalError: _database_unavailable,
            InterfaceError: _database_unavailable,
            PoolTimeoutError: _database_unavailable,
            ConnectionError: _database_unavailable,
        },
        # Unexpected errors are logged with their traceback; the client sees only a generic 500.
        logging_config=LoggingConfig(log_exceptions="always"),
        openapi_config=OpenAPIConfig(title="Offix processor and recipient registry", version="0.1.0", path="/schema"),
        **ui_options,
    )
