"""The access log `registry serve` writes.

Every answered guard check (a 200 of /api/guard/check or /api/guard/check-batch) is already in the decision
log before it is returned: durably, hash-chained, with the caller's key name, the outcome and its reasons,
and searchable through GET /api/guard/decisions. Writing it to the access log as well doubled what a check
cost to record and, at thousands of checks a second, filled the access log with lines that say less than the
decision log. So those lines are left out; every other request, and every guard request that was refused or
failed (4xx, 5xx: not in the decision log), is logged.

uvicorn's own access log cannot leave a line out cheaply: it builds a log record for every response before a
logging filter can drop it, and that record alone cost about a fifteenth of a guard check's CPU time. So
`registry serve` turns uvicorn's access log off and wraps the app in `AccessLog`, which writes uvicorn's line
(in the format of every other line, kernel/logs.py, on the same stream) itself, and builds no record for an
answered guard check.

Nor does it build one for any other line when the access logger is configured as `registry serve` configures
it (kernel/logs.py: one stream handler, the registry's format, the request-id filter): it writes the line
that handler would write, character for character, straight to the handler's stream, and flushes the stream
once per turn of the event loop rather than once per line. A record, its handler's lock and filter, the
formatter's time formatting and a write system call per request cost about as much as the rest of
`/health/live`. Any other configuration (another handler, a filter, another format, a test's capture) gets
ordinary records, as before.
"""

import asyncio
import logging
import os
import re
import time
from typing import Any, TextIO, cast
from urllib.parse import quote, unquote_plus

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from uvicorn.protocols.utils import get_client_addr

from kernel.logs import REQUEST_ID, TEXT_FORMAT, JsonFormatter, RequestIdFilter, json_line, set_request_id

ACCESS_LOGGER_NAME = "registry.access"
GUARD_ANSWER_PATHS = frozenset({"/api/guard/check", "/api/guard/check-batch"})

_access_log = logging.getLogger(ACCESS_LOGGER_NAME)


def is_answered_guard_check(method: str, path: str, status: int) -> bool:
    """A guard check that got its answer, hence is in the decision log (`path` without its query string)."""
    return status == 200 and method == "POST" and path in GUARD_ANSWER_PATHS


# A path segment that is a credential (the calendar feed's secret token, its URL being all a calendar client
# can send), and query parameters whose names say they carry one, or a data subject's identifier. Logs are read
# by more people, and kept longer, than the secrets they would otherwise hold.
_SECRET_PATH = re.compile(r"^(/calendar/)[^/]+?(\.ics)?$")
_SECRET_QUERY_NAMES = re.compile(r"(?i)(token|key|secret|password|passwd|session|signature|csrf|credential|subject)")
REDACTED = "[redacted]"


# A path of only these characters is logged as it is: quote() would return it unchanged, at some cost per request.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~-]*")


def redacted_path_with_query(scope: HTTPScope) -> str:
    """The request's path and query string as the access log writes them: credentials replaced."""
    path = scope.get("root_path", "") + scope["path"]
    if not _PLAIN_PATH.fullmatch(path):
        path = quote(path)
    if path.startswith("/calendar/"):
        path = _SECRET_PATH.sub(lambda m: m.group(1) + REDACTED + (m.group(2) or ""), path)
    query = scope["query_string"].decode("ascii", errors="replace")
    if not query:
        return path
    parts = []
    for part in query.split("&"):
        name, equals, _ = part.partition("=")
        # The name as the app reads it (`%73ubject` and `subj+ect`-style spellings decoded first).
        secret = _SECRET_QUERY_NAMES.search(name) or ("%" in name and _SECRET_QUERY_NAMES.search(unquote_plus(name)))
        parts.append(f"{name}={REDACTED}" if equals and secret else part)
    return f"{path}?{'&'.join(parts)}"


def _log_response(scope: HTTPScope, status: int, started: float) -> None:
    method = scope["method"]
    if is_answered_guard_check(method, scope["path"], status) or not _access_log.isEnabledFor(logging.INFO):
        return
    # uvicorn's access line and arguments (client, request line, status), and the milliseconds from the request's
    # arrival to its answer's start.
    milliseconds = (time.perf_counter() - started) * 1000
    arguments = (
        get_client_addr(scope),  # type: ignore[arg-type]
        method,
        redacted_path_with_query(scope),
        scope["http_version"],
        status,
        milliseconds,
    )
    writer = _configured_writer()
    if writer is not None:
        writer.write(arguments)
    else:
        _access_log.handle(_access_record(arguments))


_ACCESS_LINE = '%s - "%s %s HTTP/%s" %d %.1fms'


def _access_record(arguments: tuple[Any, ...]) -> logging.LogRecord:
    """The record `_access_log.info(_ACCESS_LINE, *arguments)` would make, made for a fraction of its cost.

    A LogRecord built the usual way looks up its caller's frame, file and function, and the thread's and the
    process's names: more than half of the access line's cost, paid on every request of every endpoint, for
    fields no access line shows. Handlers, filters and formatters see an ordinary record."""
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__.update(_RECORD_FIELDS)
    created = time.time()
    record.args = arguments
    record.created = created
    record.msecs = int(created * 1000) % 1000
    record.relativeCreated = (created - _START) * 1000
    record.process = os.getpid()
    return record


_BLANK_RECORD = logging.LogRecord(ACCESS_LOGGER_NAME, logging.INFO, __file__, 0, _ACCESS_LINE, (), None)
_RECORD_FIELDS = {
    **_BLANK_RECORD.__dict__,
    "funcName": "_log_response",
    "thread": None,
    "threadName": None,
    "processName": None,
}
_START: float = getattr(logging, "_startTime", time.time())  # (what LogRecord counts relativeCreated from)


_TEXT_TIME_FORMAT = logging.Formatter.default_time_format
_TEXT_PREFIX = f" INFO {ACCESS_LOGGER_NAME} ["


class LineWriter:
    """Writes the access line `handler` would write for the record `_access_record` makes, without the record:
    for the registry's text or JSON format (kernel/logs.py) on a plain stream handler with the request-id
    filter. The stream is flushed once the event loop's current turn is over (at once outside an event loop)."""

    __slots__ = ("_flush_pending", "_second", "_stamp", "formatter", "handler", "json", "stream")

    def __init__(self, handler: logging.StreamHandler[TextIO], formatter: logging.Formatter, json: bool) -> None:
        self.handler = handler
        self.formatter = formatter
        self.stream = handler.stream
        self.json = json
        self._second = -1
        self._stamp = ""
        self._flush_pending = False

    @classmethod
    def of(cls, handler: logging.Handler) -> "LineWriter | None":
        """The writer for `handler`, or None when its lines are not (only) what this writer would write."""
        if type(handler) is not logging.StreamHandler or handler.level > logging.INFO:
            return None
        if len(handler.filters) != 1 or type(handler.filters[0]) is not RequestIdFilter:
            return None
        formatter = handler.formatter
        if type(formatter) is JsonFormatter:
            return cls(handler, formatter, json=True)
        if (
            type(formatter) is logging.Formatter
            and formatter._fmt == TEXT_FORMAT
            and type(formatter._style) is logging.PercentStyle
            and formatter.datefmt is None
            and formatter.default_time_format == _TEXT_TIME_FORMAT
            and formatter.default_msec_format == "%s,%03d"
            and formatter.converter is time.localtime
        ):
            return cls(handler, formatter, json=False)
        return None

    def serves(self, handler: logging.Handler) -> bool:
        """Still the writer of `handler`, as configured when it was made (cheap enough for every request)."""
        return (
            handler is self.handler
            and handler.formatter is self.formatter
            and self.handler.stream is self.stream
            and len(handler.filters) == 1
            and handler.level <= logging.INFO
        )

    def line(self, arguments: tuple[Any, ...], created: float) -> str:
        """The line, terminator included, that the handler writes for the access record of `arguments`."""
        message = _ACCESS_LINE % arguments
        if self.json:
            return json_line(created, "INFO", ACCESS_LOGGER_NAME, REQUEST_ID.get(), message, arguments) + "\n"
        second = int(created)
        if second != self._second:  # the date and time down to the second, formatted once a second
            self._stamp = time.strftime(_TEXT_TIME_FORMAT, time.localtime(created))
            self._second = second
        milliseconds = int((created - second) * 1000)
        return f"{self._stamp},{milliseconds:03d}{_TEXT_PREFIX}{REQUEST_ID.get()}] {message}\n"

    def write(self, arguments: tuple[Any, ...]) -> None:
        try:
            text = self.line(arguments, time.time())
            with self.handler.lock:  # type: ignore[union-attr]
                self.stream.write(text)
        except Exception:
            self.handler.handleError(_access_record(arguments))
            return
        if not self._flush_pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_pending = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        try:
            self.handler.flush()
        except Exception:  # what the handler's own emit does with a failed write (a closed stdout, a full disk)
            self.handler.handleError(_BLANK_RECORD)


_writer: LineWriter | None = None


def _configured_writer() -> LineWriter | None:
    """The writer of the access logger's only handler, when nothing but that handler would see its records
    (no logger filter, no propagation) and the handler is one `LineWriter` writes for; None otherwise."""
    global _writer
    logger = _access_log
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters:
        return None
    handler = handlers[0]
    writer = _writer
    if writer is None or not writer.serves(handler):
        writer = _writer = LineWriter.of(handler)
    return writer


class AccessLog:
    """ASGI middleware around the whole app: one access-log line per HTTP response, written when it starts
    (as uvicorn does), except for answered guard checks. An app that fails before it answers is logged as the
    500 uvicorn then sends.

    With `request_ids`, it also does what `kernel.logs.RequestIds` around it would (the request's id for its
    log lines and in the answer's X-Request-Id header): what `registry serve` runs, one wrapper (and one send
    wrapper per request) instead of two."""

    __slots__ = ("app", "request_ids")

    def __init__(self, app: ASGIApp, *, request_ids: bool = False) -> None:
        self.app = app
        self.request_ids = request_ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        http_scope = cast("HTTPScope", scope)
        arrived = time.perf_counter()
        header = set_request_id(http_scope["headers"]) if self.request_ids else None
        started = False

        async def send_and_log(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                _log_response(http_scope, message["status"], arrived)
                if header is not None:
                    message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_and_log)
        except Exception:
            if not started:
                _log_response(http_scope, 500, arrived)
            raise
