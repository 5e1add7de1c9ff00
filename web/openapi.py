"""The OpenAPI document's configuration, and its docs UI served by the app itself.

Litestar's render plugins load their scripts from a CDN by default; an instance on an internal network (or a
strict content security policy) would show an empty page. Swagger UI's files come from the `swagger-ui-py`
package instead and are served under DOCS_ASSETS, behind the same authentication as the document.
"""

import re
from collections.abc import Callable
from pathlib import Path

import swagger_ui
from litestar import Litestar
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, Operation, Reference
from litestar.router import Router
from litestar.static_files import create_static_files_router

from web.contract import ERROR_DESCRIPTIONS
from web.guard_openapi import COMPONENTS, SECURITY

DOCS_ASSETS = "/schema-assets"
SWAGGER_UI_FILES = Path(swagger_ui.__file__).parent / "static"


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Offix processor and recipient registry",
        version="0.1.0",
        path="/schema",
        security=SECURITY,
        components=COMPONENTS,
        render_plugins=[
            SwaggerRenderPlugin(
                path=["/", "/swagger"],
                js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{DOCS_ASSETS}/favicon-32x32.png'>",
            ),
            JsonRenderPlugin(),
            YamlRenderPlugin(),
        ],
    )


def docs_assets_router() -> Router:
    return create_static_files_router(path=DOCS_ASSETS, directories=[SWAGGER_UI_FILES], include_in_schema=False)


# Errors a route gives beyond what its shape tells (`complete_contract` infers the rest).
_ROUTE_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("put", "/api/registry"): (413, 415),
    ("put", "/api/agreements/{key}/document"): (404, 413, 415),
    ("get", "/api/agreements/{key}/document"): (404,),
    ("post", "/api/keys"): (409,),
    ("post", "/api/calendar-feeds"): (409,),
}
_ERROR_SCHEMA = Reference(ref="#/components/schemas/ErrorAnswer")


def _error(status: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=ERROR_DESCRIPTIONS[status], content={"application/json": OpenAPIMediaType(schema=_ERROR_SCHEMA)}
    )


def complete_contract(document: OpenAPI, public_paths: list[str]) -> None:
    """Every operation's errors, as the routes give them, each an `ErrorAnswer` (web/contract.py).

    Routes name their typed answers and errors themselves (`web.contract.answers`); this documents what
    holds for all of them: 401 and 403 on every route that needs a key, 400 where there are parameters or a
    body (Litestar's own generic 400 schema replaced by the registry's), 404 where a path names a record, 413
    where a body is taken. Public routes (health, calendar feeds) say so: no security requirement."""
    public = [re.compile(pattern) for pattern in public_paths]
    for path, item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method)
            if operation is None:
                continue
            responses = operation.responses = dict(operation.responses or {})
            statuses: set[int] = set(_ROUTE_ERRORS.get((method, path), ()))
            if any(pattern.search(path) for pattern in public):
                operation.security = []
            else:
                statuses |= {401, 403}
            if operation.parameters or operation.request_body:
                statuses.add(400)
            if "{" in path:
                statuses.add(404)
            # Litestar's body limit answers 413 where it reads the body; the guard reads its own and answers
            # an oversized one as the 400 of a bad request.
            if (operation.request_body or method in ("put", "patch")) and not path.startswith("/api/guard/"):
                statuses.add(413)
            for status in statuses:
                existing = responses.get(str(status))
                generic = existing is not None and "Validation Exception" in str(getattr(existing, "content", ""))
                if existing is None or generic:
                    responses[str(status)] = _error(status)


def contract_on_startup(public_paths: list[str]) -> Callable[[Litestar], None]:
    """An on_startup hook: the document is built once, then completed in place before the first request."""

    def complete(app: Litestar) -> None:
        complete_contract(app.openapi_schema, public_paths)

    return complete
