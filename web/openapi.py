"""The OpenAPI document's configuration, and its docs UI served by the app itself.

Litestar's render plugins load their scripts from a CDN by default; an instance on an internal network (or a
strict content security policy) would show an empty page. Swagger UI's files come from the `swagger-ui-py`
package instead and are served under DOCS_ASSETS, behind the same authentication as the document.
"""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import swagger_ui
from litestar import HttpMethod, Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Reference, Schema
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.types import Method
from litestar.types.internal_types import PathParameterDefinition

from web.contract import ERROR_DESCRIPTIONS
from web.guard_openapi import COMPONENTS, SECURITY, SHARE_REQUEST

DOCS_ASSETS = "/schema-assets"
SWAGGER_UI_FILES = Path(swagger_ui.__file__).parent / "static"
# Where the document is committed (tests/e2e/test_openapi_file.py holds it equal to the served one).
COMMITTED_DOCUMENT = Path(__file__).resolve().parent.parent / "clients" / "openapi.json"
REGENERATE = "uv run python -m web.openapi_file clients/openapi.json"

# Stable operation ids: the names of the functions a generated client has (check_share, list_parties, ...).
# A route missing here gets its handler's name in camelCase; tests hold every id unique.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/health/live"): "getLiveness",
    ("GET", "/health/ready"): "getReadiness",
    ("GET", "/api/parties"): "listParties",
    ("POST", "/api/parties"): "createParty",
    ("GET", "/api/parties/{key}"): "getParty",
    ("PUT", "/api/parties/{key}"): "replaceParty",
    ("PATCH", "/api/parties/{key}"): "patchParty",
    ("DELETE", "/api/parties/{key}"): "deactivateParty",
    ("GET", "/api/parties/{key}/history"): "getPartyHistory",
    ("POST", "/api/parties/{key}/restore"): "restoreParty",
    ("GET", "/api/agreements"): "listAgreements",
    ("POST", "/api/agreements"): "createAgreement",
    ("GET", "/api/agreements/{key}"): "getAgreement",
    ("PUT", "/api/agreements/{key}"): "replaceAgreement",
    ("PATCH", "/api/agreements/{key}"): "patchAgreement",
    ("DELETE", "/api/agreements/{key}"): "terminateAgreement",
    ("GET", "/api/agreements/{key}/history"): "getAgreementHistory",
    ("POST", "/api/agreements/{key}/restore"): "restoreAgreement",
    ("GET", "/api/agreements/{key}/document"): "downloadAgreementDocument",
    ("PUT", "/api/agreements/{key}/document"): "uploadAgreementDocument",
    ("GET", "/api/registry"): "exportRegistry",
    ("PUT", "/api/registry"): "importRegistry",
    ("GET", "/api/registry/removed"): "listRemoved",
    ("GET", "/api/registry/findings"): "listFindings",
    ("GET", "/api/keys"): "listApiKeys",
    ("POST", "/api/keys"): "createApiKey",
    ("DELETE", "/api/keys/{name}"): "revokeApiKey",
    ("GET", "/api/records/article-30"): "getArticle30Record",
    ("GET", "/api/records/privacy-notice"): "getPrivacyNotice",
    ("POST", "/api/records/privacy-notice/published"): "markPrivacyNoticePublished",
    ("GET", "/api/records/registry-csv.zip"): "exportRegistryCsv",
    ("GET", "/api/records/registry.xlsx"): "exportRegistryXlsx",
    ("GET", "/api/objections"): "listObjections",
    ("POST", "/api/objections"): "recordObjection",
    ("DELETE", "/api/objections/{objection_id}"): "withdrawObjection",
    ("POST", "/api/objections/import"): "importObjections",
    ("GET", "/api/subjects/recipients"): "listSubjectRecipients",
    ("GET", "/api/restrictions"): "listRestrictions",
    ("POST", "/api/restrictions"): "recordRestriction",
    ("DELETE", "/api/restrictions/{restriction_id}"): "liftRestriction",
    ("POST", "/api/restrictions/import"): "importRestrictions",
    ("POST", "/api/subjects/erasure"): "eraseSubject",
    ("POST", "/api/subjects/notifications"): "notifySubjectRecipients",
    ("GET", "/metrics"): "getMetrics",
    ("POST", "/api/guard/check"): "checkShare",
    ("POST", "/api/guard/check-batch"): "checkShares",
    ("GET", "/api/guard/decisions"): "listDecisions",
    ("GET", "/api/guard/decisions/{decision_id}"): "getDecisionReceipt",
    ("GET", "/api/renewals"): "listRenewals",
    ("GET", "/api/calendar-feeds"): "listCalendarFeeds",
    ("POST", "/api/calendar-feeds"): "createCalendarFeed",
    ("DELETE", "/api/calendar-feeds/{name}"): "revokeCalendarFeed",
}


def operation_id(
    route_handler: HTTPRouteHandler, http_method: Method, path_components: list[str | PathParameterDefinition]
) -> str:
    """Litestar's operation_id_creator: the stable id of OPERATION_IDS, else the handler's name in camelCase."""
    path = "/" + "/".join(
        f"{{{c.name}}}" if isinstance(c, PathParameterDefinition) else str(c) for c in path_components if c != ""
    )
    stable = OPERATION_IDS.get((HttpMethod(http_method).value, path))
    if stable is not None:
        return stable
    first, *rest = route_handler.handler_name.split("_")
    return first + "".join(word.title() for word in rest)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Offix processor and recipient registry",
        version="0.1.0",
        path="/schema",
        security=SECURITY,
        components=COMPONENTS,
        operation_id_creator=operation_id,
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
    where a body is taken. Public routes (health, calendar feeds) say so: no security requirement; every other
    operation names the bearer scheme itself."""
    public = [re.compile(pattern) for pattern in public_paths]
    _shared_share_request(document)
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
                # Declared on the operation itself, not only globally: generators (openapi-python-client) make a
                # function require an authenticated client only when its operation names the scheme.
                operation.security = SECURITY
                statuses |= {401, 403}
            _typed_files(operation)
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
    _drop_unreferenced_schemas(document)


_SHARE_REQUEST_REF = Reference(ref="#/components/schemas/ShareRequest")
# Answers that are files or text, not JSON: their bytes are the answer.
_TEXT_TYPES = ("text/",)


def _typed_files(operation: Operation) -> None:
    """A file's answer is a binary string and a text answer a string (Litestar leaves the latter untyped)."""
    for response in (operation.responses or {}).values():
        if not isinstance(response, OpenAPIResponse):
            continue
        for media_type, content in (response.content or {}).items():
            if media_type.startswith("application/json") or not isinstance(content.schema, Schema | None):
                continue
            if media_type.startswith(_TEXT_TYPES):
                content.schema = Schema(type=OpenAPIType.STRING)
            else:
                content.schema = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]


def _shared_share_request(document: OpenAPI) -> None:
    """The check bodies name one ShareRequest schema (a generated client gets one ShareRequest model for both)."""
    if document.components is None:
        return
    schemas = document.components.schemas = dict(document.components.schemas or {})
    schemas["ShareRequest"] = SHARE_REQUEST
    for path, item in (document.paths or {}).items():
        operation = item.post
        if not path.startswith("/api/guard/check") or operation is None or operation.request_body is None:
            continue
        body = operation.request_body.content["application/json"]  # type: ignore[union-attr]
        if path.endswith("-batch") and isinstance(body.schema, Schema):
            body.schema.items = _SHARE_REQUEST_REF
        else:
            body.schema = _SHARE_REQUEST_REF


def _referenced(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, found)


def _drop_unreferenced_schemas(document: OpenAPI) -> None:
    """Litestar also files the schema of a handler's return annotation when `responses` documents the answer
    instead (`Page[dict[str, Any]]`): schemas no operation reaches are dropped, or generators make models of them."""
    if document.components is None or not document.components.schemas:
        return
    as_dict = document.to_schema()
    reachable: set[str] = set()
    _referenced(as_dict.get("paths", {}), reachable)
    schemas = as_dict.get("components", {}).get("schemas", {})
    pending = list(reachable)
    while pending:
        found: set[str] = set()
        _referenced(schemas.get(pending.pop(), {}), found)
        pending += list(found - reachable)
        reachable |= found
    document.components.schemas = {k: v for k, v in document.components.schemas.items() if k in reachable}


def contract_on_startup(public_paths: list[str]) -> Callable[[Litestar], None]:
    """An on_startup hook: the document is built once, then completed in place before the first request."""

    def complete(app: Litestar) -> None:
        complete_contract(app.openapi_schema, public_paths)

    return complete


def document_json(document: dict[str, Any]) -> str:
    """The document as committed: sorted keys, two-space indents, one final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
