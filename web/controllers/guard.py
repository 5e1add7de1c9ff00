"""Guard HTTP endpoints (DESIGN §4.1, §4.4): check, check-batch, and the decision log."""

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, cast

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, ServiceUnavailableException, TooManyRequestsException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation
from litestar.params import FromPath, QueryParameter
from litestar.response import Response, Stream
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ASGIApp, ExceptionHandlersMap, HTTPReceiveMessage, Receive, Scope, Send
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from guard.fairness import RETRY_AFTER_SECONDS, too_many_batches
from guard.service import MAX_BODY_BYTES, GuardUnavailable, cannot_decide
from kernel import counters
from kernel.db import database_outage
from kernel.errors import FieldError, NotFoundError, RegistryValidationError
from kernel.logs import current_request_id
from ledger.checkpoint import CheckpointRefused
from ledger.proofs import ProofsBusy, ProofService
from ledger.queries import list_decisions
from web.auth import cached_caller, requires
from web.composition import services_of, started_services
from web.contract import ConsistencyAnswer, DecisionPage, ErrorAnswer, GuardAnswer, ReceiptAnswer, answers
from web.controllers.deps import WITHOUT_NUL, Limit
from web.controllers.exports import decision_csv_response
from web.guard_openapi import CheckBatchOperation, CheckOperation

log = logging.getLogger(__name__)

T = TypeVar("T")

RecipientFilter = Annotated[
    str | None, QueryParameter(max_length=200, pattern=WITHOUT_NUL, description="recipient party key")
]
OutcomeFilter = Annotated[Literal["allowed", "denied"] | None, QueryParameter(description="allowed or denied")]
# Taken as text and parsed here, so that a bad value is reported under the parameter's own name.
Since = Annotated[
    str | None,
    QueryParameter(name="from", max_length=64, description="decided at or after (ISO 8601 date or date and time)"),
]
Until = Annotated[
    str | None, QueryParameter(name="to", max_length=64, description="decided before (ISO 8601 date or date and time)")
]
# Taken as text too, so that a bad cursor is a 400 naming `cursor`.
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=20, description="the `next_cursor` of the page before: continues after its last entry"),
]
DeprecatedOffset = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=10_000_000,
        description="entries to skip (deprecated: it reads what it skips; follow `next_cursor` instead)",
    ),
]


def _cursor(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise RegistryValidationError(
            [FieldError("cursor", f"{text!r} is not a cursor (pass a page's next_cursor as it was given)")]
        )
    return int(text)


async def _body(request: Request[Any, Any, Any]) -> bytes:
    return await _read_body(request.receive)


async def _read_body(receive: Receive) -> bytes:
    """The body, read straight off the ASGI channel. Litestar's `request.body()` builds the header multidict and
    an async generator first, which on the guard's hot path cost more than the decision. Reading stops once the
    body is past MAX_BODY_BYTES (the parser then refuses it for its size); nothing before the guard reads it."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        message = cast("HTTPReceiveMessage", await receive())
        if message["type"] == "http.disconnect":
            # A client error, not a server fault (Litestar's own reader calls it a 500, logged with a traceback);
            # nobody is left to read the answer, and no decision was taken or logged.
            raise ClientException("the client disconnected before the whole body arrived")
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


# The handlers return their answers already encoded, so the OpenAPI document learns their shape from here.
CHECK_RESPONSES = {
    200: ResponseSpec(
        GuardAnswer, description="The decision, allow and deny alike: obey `allowed`", generate_examples=False
    ),
    400: ResponseSpec(
        ErrorAnswer, description="A structurally bad request; `extra` names each field", generate_examples=False
    ),
    401: ResponseSpec(ErrorAnswer, description="No API key, or an unknown or revoked one", generate_examples=False),
    403: ResponseSpec(ErrorAnswer, description="The key lacks the guard:check scope", generate_examples=False),
    503: ResponseSpec(ErrorAnswer, description='The guard cannot decide: `"allowed": false`', generate_examples=False),
}
CHECK_BATCH_RESPONSES = {
    **CHECK_RESPONSES,
    429: ResponseSpec(
        ErrorAnswer,
        description='The key has its fair share of batches in flight already: `"allowed": false`; retry after '
        "the `Retry-After` header's seconds",
        generate_examples=False,
    ),
    200: ResponseSpec(
        list[GuardAnswer], description="One decision per request, in the order sent", generate_examples=False
    ),
}

_ENCODER = msgspec.json.Encoder()
_RETRY_AFTER = ((b"retry-after", b"%d" % RETRY_AFTER_SECONDS),)


class JsonAnswer:
    """A guard answer as an ASGI app, encoded once. Litestar's `Response` resolves headers, cookies and type
    encoders for every answer, and even its plain `ASGIResponse` builds a mutable header set: on the guard's
    hot path each cost more than the decision itself."""

    __slots__ = ("body", "extra_headers", "status")

    def __init__(self, status: int, content: Any, extra_headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.status = status
        self.body = _ENCODER.encode(content)
        self.extra_headers = extra_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body))]
        if self.extra_headers:
            headers += self.extra_headers
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def bad_request(errors: list[FieldError]) -> tuple[int, dict[str, Any]]:
    """A structurally bad guard request: 400, naming each field."""
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 400, {
        "status_code": 400,
        "detail": f"invalid guard request: {summary}{more}",
        "extra": [e.as_dict() for e in errors],
    }


def unavailable(detail: str) -> tuple[int, dict[str, Any]]:
    """The guard cannot decide: a fail-closed 503 with `"allowed": false`."""
    return 503, {"status_code": 503, **cannot_decide(detail)}


async def _answer(check: Callable[[bytes, str, str | None], Awaitable[Any]], raw: bytes, caller: str) -> JsonAnswer:
    """The HTTP answer of one of the runtime's checks: 200, 400 naming the fields, or the fail-closed 503. The
    request's id (the caller's X-Request-Id, or the one it was given) goes into each decision's log entry."""
    started = time.perf_counter()
    try:
        answer = JsonAnswer(200, await check(raw, caller, current_request_id()))
    except RegistryValidationError as exc:
        return JsonAnswer(*bad_request(exc.errors))
    except GuardUnavailable as exc:
        return JsonAnswer(*unavailable(str(exc)))
    counters.CHECK_SECONDS.observe(time.perf_counter() - started)  # answered checks: the decision log's latency
    return answer


# Route-level handlers also catch what the authentication middleware raises before the handler runs. Litestar
# picks the handler of the first class in the exception's MRO found in the app's and the route's maps merged,
# so every class the app maps to a plain 503 (ConnectionError before OSError, OperationalError and
# InterfaceError before DBAPIError) is named here again, or the app's 503 without `"allowed": false` wins.
# The status-code keys catch a 503 raised as an HTTP exception, and (500) any exception no class names.
DATABASE_ERRORS = (
    DBAPIError,
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    OSError,
    ConnectionError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def failure_answer(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """What keeps a check from being answered, as both check paths answer it: the fail-closed 503 with
    `"allowed": false`, naming a database failure (the API key lookup included) as such."""
    if isinstance(exc, DATABASE_ERRORS):
        return unavailable(f"the registry database is unavailable ({type(exc).__name__})")
    return unavailable(f"an unexpected error ({type(exc).__name__})")


def _fail_closed(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The route's exception handler: any failure is the fail-closed 503 (an unexpected one is also logged with
    its traceback by the app's logging config, as any unexpected error)."""
    status, body = failure_answer(exc)
    return Response(body, status_code=status)


CHECK_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    **dict.fromkeys(DATABASE_ERRORS, _fail_closed),
    HTTP_503_SERVICE_UNAVAILABLE: _fail_closed,
    HTTP_500_INTERNAL_SERVER_ERROR: _fail_closed,
}


def _moment(parameter: str, text: str | None) -> datetime | None:
    """An ISO 8601 date or date and time from a query parameter, in UTC. Without an offset it is taken as UTC,
    the log's own zone; a date alone means its midnight."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None:
        raise RegistryValidationError(
            [FieldError(parameter, f"{text!r} is not an ISO 8601 date or date and time (2026-01-31T12:00:00Z)")]
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise RegistryValidationError([FieldError(parameter, f"{text!r} is out of range")]) from None


def _check_route(path: str, responses: dict[int, ResponseSpec], operation_class: type[Operation]) -> post:
    """A guard check route: POST with the `guard:check` scope, 200 for allow and deny alike, any database
    failure a fail-closed 503, and its answers described for the OpenAPI document."""
    return post(
        path,
        opt=requires("guard:check"),
        status_code=200,
        exception_handlers=CHECK_EXCEPTION_HANDLERS,
        responses=responses,
        operation_class=operation_class,
    )


class GuardController(Controller):
    path = "/api/guard"
    tags = ["guard"]

    @_check_route("/check", CHECK_RESPONSES, CheckOperation)
    async def check(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """Ask before sharing: 200 for allow and deny alike; obey `allowed`."""
        runtime = services_of(request.app).guard
        return await _answer(runtime.check_body, await _body(request), request.user.name)

    @_check_route("/check-batch", CHECK_BATCH_RESPONSES, CheckBatchOperation)
    async def check_batch(self, request: Request[Any, Any, Any]) -> ASGIApp:
        """A JSON array of up to 1,000 requests; the answers come back as an array in the same order. Each key
        has a fair share of batches in flight (REGISTRY_GUARD_BATCHES_PER_KEY); past it, 429 with Retry-After."""
        services = services_of(request.app)
        caller = request.user.name
        admission = services.batches
        if not admission.admit(caller):
            return JsonAnswer(429, too_many_batches(admission.per_key), _RETRY_AFTER)
        try:
            return await _answer(services.guard.check_batch_body, await _body(request), caller)
        finally:
            admission.release(caller)

    @get(
        "/decisions",
        opt=requires("registry:read"),
        responses=answers(200, DecisionPage, "A page of logged decisions (format=json)", 400, 401, 403),
    )
    async def decisions(
        self,
        db_session: NamedDependency[AsyncSession],
        recipient: RecipientFilter = None,
        outcome: OutcomeFilter = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = 50,
        offset: DeprecatedOffset = 0,
        cursor: Cursor = None,
        format: Annotated[Literal["json", "csv"], QueryParameter(description="csv: the whole period")] = "json",
    ) -> DecisionPage | Stream:
        """The decision log, newest first, a page at a time: follow `next_cursor` (as `cursor`) to the older
        entries; `format=csv`: every decision of the period, oldest first, streamed."""
        if format == "csv":
            return decision_csv_response(db_session, _moment("from", since), _moment("to", until))
        before = _cursor(cursor)
        if before is not None and offset:
            raise RegistryValidationError([FieldError("offset", "give cursor or offset, not both")])
        found = await list_decisions(
            db_session,
            recipient=recipient,
            outcome=outcome,
            since=_moment("from", since),
            until=_moment("to", until),
            limit=limit,
            offset=offset,
            before=before,
        )
        return DecisionPage(
            items=found.items,  # type: ignore[typeddict-item]
            total=found.total,
            total_exact=found.total_exact,
            limit=limit,
            offset=offset,
            next_cursor=found.next_cursor,
        )

    @get(
        "/decisions/{decision_id:str}",
        opt=requires("registry:read"),
        responses=answers(200, ReceiptAnswer, "The logged decision with its proof", 400, 401, 403, 404),
    )
    async def decision_receipt(self, request: Request[Any, Any, Any], decision_id: FromPath[str]) -> dict[str, Any]:
        """One logged decision with what a third party needs to check it against a signed checkpoint: the
        content its hash covers, its hashes, its sequence, its writer and place in that writer's chain, and,
        once a checkpoint has sealed it, its leaf index and an RFC 6962 inclusion proof to the latest checkpoint
        that covers it (`ledger/receipt.py` verifies one with the log's public key)."""
        try:
            wanted = uuid.UUID(decision_id)
        except ValueError:
            raise RegistryValidationError([FieldError("decision_id", f"{decision_id[:64]!r} is not a UUID")]) from None
        # Built in a worker process, one at a time per key: the leaves' hashes up to the checkpoint are read
        # and hashed, which on the guard's event loop would hold its checks for seconds in a large log.
        found = await _proofs(request, lambda proofs: proofs.receipt(request.user.name, wanted))
        if found is None:
            raise NotFoundError(f"no logged decision {wanted}")
        return found

    @get(
        "/checkpoints/{first:int}/consistency/{second:int}",
        opt=requires("registry:read"),
        responses=answers(
            200, ConsistencyAnswer, "An RFC 6962 consistency proof between two tree sizes", 400, 401, 403
        ),
    )
    async def checkpoint_consistency(
        self, request: Request[Any, Any, Any], first: FromPath[int], second: FromPath[int]
    ) -> dict[str, Any]:
        """The RFC 6962 consistency proof that the log's tree of `second` leaves extends its tree of `first`
        (0 < first <= second <= the latest checkpoint's size), with the checkpoints signed at those sizes when
        there are some: what a witness checks before it accepts a newer checkpoint
        (`registry_guard_client.verify_consistency` checks one)."""
        for name, size in (("first", first), ("second", second)):
            if not 0 < size <= MAX_TREE_SIZE:
                raise RegistryValidationError([FieldError(name, f"{size} is not a tree size (1 to {MAX_TREE_SIZE})")])
        if first > second:
            raise RegistryValidationError([FieldError("first", f"{first} is larger than second ({second})")])
        try:
            return await _proofs(request, lambda proofs: proofs.consistency(request.user.name, first, second))
        except ValueError as exc:
            raise RegistryValidationError([FieldError("second", str(exc))]) from None


MAX_TREE_SIZE = 2**62  # (sizes are bigint in the database)


async def _proofs(request: Request[Any, Any, Any], build: Callable[[ProofService], Awaitable[T]]) -> T:
    """A proof built by the proofs worker: 429 while the caller's key has one being built already."""
    try:
        return await build(services_of(request.app).proofs)
    except ProofsBusy as exc:
        raise TooManyRequestsException(str(exc), headers={"Retry-After": "1"}) from None
    except CheckpointRefused as exc:  # the stored tree has lost nodes or leaves: evidence, not a proof
        raise ServiceUnavailableException(f"no proof can be built: {exc}") from None


route_handlers: list[Any] = [GuardController]


CHECK_PATH = "/api/guard/check"
CHECK_SCOPE = "guard:check"


class CheckLane:
    """`POST /api/guard/check` answered in front of Litestar's router when the caller's key is one the key cache
    holds with the guard:check scope: the same check (`runtime.check_body`), the same answers (`JsonAnswer`), the
    same body reading, for a third fewer instructions per check (bench/README.md, "Framework floor"). Routing,
    the route's middleware stack, its request object, signature model and exception-handler resolution cost
    more per check than the decision and its log entry together.

    Everything else takes the full route, which stays what the OpenAPI document describes: another path or
    method, a missing or malformed Authorization header, a key the cache does not hold (the route looks it up,
    then tells unknown from revoked and from a database failure), a key without the scope, an app whose guard has
    not started. Wrapped around the app's ASGI handler (inside `Litestar.__call__`), so the app's `before_send`
    hooks still see the answer and the access log and request id around the app see it as before. An error the
    check cannot answer itself is the same fail-closed 503 the route's handlers give, logged with its traceback."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHECK_PATH or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        services = started_services(scope["app"])
        principal = cached_caller(services, scope["headers"], CHECK_SCOPE) if services is not None else None
        if services is None or principal is None:
            await self.app(scope, receive, send)
            return
        scope["user"], scope["auth"] = principal, "api_key"  # (as the authentication middleware leaves them)
        try:
            answer = await _answer(services.guard.check_body, await _read_body(receive), principal.name)
        except ClientException as exc:  # the client went away mid-body: nobody reads this, the access log does
            answer = JsonAnswer(exc.status_code, {"status_code": exc.status_code, "detail": exc.detail})
        except Exception as exc:
            outage = database_outage(exc)
            if outage is not None:  # a known outage: one line, as the app logs it (web/app.py log_exception)
                log.warning("the registry database is unavailable (%s): POST %s answered 503", outage, CHECK_PATH)
            else:
                log.error("a guard check failed unexpectedly", exc_info=exc)
            answer = JsonAnswer(*failure_answer(exc))
        await answer(scope, receive, send)
