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
(same format, same formatter, same stream) itself, and builds no record for an answered guard check.
"""

import copy
import logging
from typing import Any, cast

import uvicorn.config
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

ACCESS_LOGGER_NAME = "registry.access"
GUARD_ANSWER_PATHS = frozenset({"/api/guard/check", "/api/guard/check-batch"})

_access_log = logging.getLogger(ACCESS_LOGGER_NAME)


def is_answered_guard_check(method: str, path: str, status: int) -> bool:
    """A guard check that got its answer, hence is in the decision log (`path` without its query string)."""
    return status == 200 and method == "POST" and path in GUARD_ANSWER_PATHS


def _log_response(scope: HTTPScope, status: int) -> None:
    method = scope["method"]
    if is_answered_guard_check(method, scope["path"], status) or not _access_log.isEnabledFor(logging.INFO):
        return
    # uvicorn's access line and arguments, so that its AccessFormatter (client, request line, status) applies.
    _access_log.info(
        '%s - "%s %s HTTP/%s" %d',
        get_client_addr(scope),  # type: ignore[arg-type]
        method,
        get_path_with_query_string(scope),  # type: ignore[arg-type]
        scope["http_version"],
        status,
    )


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


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with `AccessLog`'s logger writing through uvicorn's access handler
    (run uvicorn with `access_log=False`: it would log every request a second time)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"][ACCESS_LOGGER_NAME] = {"handlers": ["access"], "level": "INFO", "propagate": False}
    return config
