"""One log format for everything `registry serve` writes, and a request id on every line.

uvicorn, Litestar and the registry's own loggers all write through the handlers configured here: the same
format whoever logs (`REGISTRY_LOG_FORMAT`: `text`, the default, or `json`, one object a line), the access
log on stdout as before, everything else on stderr. Each line carries the id of the request it was written
for (`-` outside a request), which the client also gets in the `X-Request-Id` answer header.

`RequestIds` wraps the whole app (outside the access log, so that its lines carry the id too; `registry serve`
has the access log set the id itself, web/access_log.py, one wrapper instead of two). It costs a
header scan, a counter and a context variable per request: the guard's hot path goes through it, so the id is
a process prefix and a counter, not a UUID (bench/request_id.py measures it).
"""

import itertools
import json
import logging
import os
import re
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from litestar.logging.config import LoggingConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["text", "json"]

REQUEST_ID_HEADER = b"x-request-id"
# An incoming id is kept when it looks like one (a proxy's or a client's, for following a request across
# services); anything else (too long, spaces, control characters that could forge log lines) is replaced.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
NO_REQUEST = "-"

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)

# Unique per process and restart: 8 random hex digits, then a counter. Cheaper than a UUID by an order of
# magnitude, and still unique across the instances and workers of one deployment in practice.
_PREFIX = os.urandom(4).hex()
_counter = itertools.count(1)


def current_request_id() -> str | None:
    """The id of the request being answered, None outside one."""
    request_id = REQUEST_ID.get()
    return None if request_id == NO_REQUEST else request_id


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_counter):x}"


def set_request_id(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """Set the request's id (the client's sane `X-Request-Id`, or a new one) for its log lines; the answer's
    header that carries it. Called in the request's own task: the value ends with it."""
    encoded = b""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_REQUEST_ID.fullmatch(value):
                encoded = value
            break
    if encoded:
        request_id = encoded.decode("ascii")
    else:
        request_id = new_request_id()
        encoded = request_id.encode("ascii")
    REQUEST_ID.set(request_id)
    return REQUEST_ID_HEADER, encoded


class RequestIds:
    """ASGI middleware: the request's id (the client's sane `X-Request-Id`, or a new one) set for its log
    lines and returned in the answer's `X-Request-Id` header."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = set_request_id(scope["headers"])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (as `request_id`) before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_ACCESS_LOGGERS = frozenset({"registry.access", "uvicorn.access"})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, request_id, message; an access line also
    its client, method, path, HTTP version and status as fields; an exception its traceback as text."""

    def format(self, record: logging.LogRecord) -> str:
        access = record.args if record.name in _ACCESS_LOGGERS and isinstance(record.args, tuple) else None
        extra: dict[str, str] = {}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            extra["stack"] = self.formatStack(record.stack_info)
        return json_line(
            record.created,
            record.levelname,
            record.name,
            getattr(record, "request_id", NO_REQUEST),
            record.getMessage(),
            access,
            extra,
        )


def json_line(
    created: float,
    level: str,
    logger: str,
    request_id: str,
    message: str,
    access: tuple[Any, ...] | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """A JSON log line (`JsonFormatter`'s; the access log writes its lines through here too, without a record).
    `access`: an access line's arguments (client, method, path, HTTP version, status, milliseconds), as fields."""
    line: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "request_id": request_id,
        "message": message,
    }
    if access is not None and len(access) == 6:  # (the access log's, registry/access_log.py)
        client, method, path, version, status, milliseconds = access
        line.update(
            client=client,
            method=method,
            path=path,
            http_version=version,
            status=status,
            duration_ms=round(milliseconds, 1),
        )
    if extra:
        line.update(extra)
    return json.dumps(line, ensure_ascii=False, default=str)


def logging_dict(log_format: LogFormat) -> dict[str, Any]:
    """The `logging.config.dictConfig` of the whole process: uvicorn is started with it, and Litestar
    applies the same (`litestar_logging_config`) when the app starts, so whichever is applied last, the
    outcome is one format."""
    formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    stream = {"class": "logging.StreamHandler", "formatter": "registry", "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"registry": formatter},
        "handlers": {
            "stderr": {**stream, "stream": "ext://sys.stderr"},
            "access": {**stream, "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            # Off: the app writes the access log itself (web/access_log.py), leaving answered checks out.
            "uvicorn.access": {"handlers": [], "level": "INFO", "propagate": False},
            "registry.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "litestar": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            # httpx names every request's URL at INFO: the guard role relays the web role's requests through it,
            # and a URL may carry a secret (a calendar feed's); the web role's access log leaves those out.
            "httpx": {"level": "WARNING"},
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
    }


def litestar_logging_config(log_format: LogFormat, **options: Any) -> LoggingConfig:
    """Litestar's logging configuration with the same handlers and format (`options`: its exception logging)."""
    config = logging_dict(log_format)
    handlers = dict(config["handlers"])
    # Litestar adds a `console` and a queue handler of its own format unless handlers by those names exist;
    # these write through the registry's format instead (and nothing uses them).
    handlers["console"] = handlers["queue_listener"] = handlers["stderr"]
    return LoggingConfig(
        filters=config["filters"],
        formatters=config["formatters"],
        handlers=handlers,
        loggers=config["loggers"],
        root=config["root"],
        **options,
    )
