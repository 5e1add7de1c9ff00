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
(in the format of every other line, registry/logs.py, on the same stream) itself, and builds no record for an
answered guard check.
"""

import logging
import os
import re
import time
from typing import Any, cast
from urllib.parse import quote

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from uvicorn.protocols.utils import get_client_addr

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
        parts.append(f"{name}={REDACTED}" if equals and _SECRET_QUERY_NAMES.search(name) else part)
    return f"{path}?{'&'.join(parts)}"


def _log_response(scope: HTTPScope, status: int) -> None:
    method = scope["method"]
    if is_answered_guard_check(method, scope["path"], status) or not _access_log.isEnabledFor(logging.INFO):
        return
    # uvicorn's access line and arguments, so that its AccessFormatter (client, request line, status) applies.
    arguments = (get_client_addr(scope), method, redacted_path_with_query(scope), scope["http_version"], status)  # type: ignore[arg-type]
    _access_log.handle(_access_record(arguments))


_ACCESS_LINE = '%s - "%s %s HTTP/%s" %d'


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


class AccessLog:
    """ASGI middleware around the whole app: one access-log line per HTTP response, written when it starts
    (as uvicorn does), except for answered guard checks. An app that fails before it answers is logged as the
    500 uvicorn then sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        http_scope = cast("HTTPScope", scope)
        started = False

        async def send_and_log(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                _log_response(http_scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_log)
        except Exception:
            if not started:
                _log_response(http_scope, 500)
            raise
