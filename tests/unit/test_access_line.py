"""The access log writes its line without a log record when the access logger is configured as `registry serve`
configures it (web/access_log.py): the line must be the one the configured handler would have written,
character for character, in either format; any other configuration gets ordinary records."""

import asyncio
import io
import json
import logging
import logging.config
import re
import time
from typing import Any

import pytest

from kernel.logs import REQUEST_ID, TEXT_FORMAT, JsonFormatter, RequestIdFilter, logging_dict
from web.access_log import ACCESS_LOGGER_NAME, AccessLog, LineWriter, _access_record, _log_response

ARGUMENTS = ("127.0.0.1:5000", "GET", "/health/live?token=[redacted]", "1.1", 200, 12.345)


def _without_duration(line: str) -> str:
    """The access line without its duration (the milliseconds this run took), which must be there."""
    assert re.search(r" \d+\.\dms$", line), line
    return re.sub(r" \d+\.\dms$", "", line)


# Times across a second boundary, with milliseconds that round differently in binary.
MOMENTS = [1_795_000_000.0, 1_795_000_000.999, 1_795_000_001.0005, 1_795_000_059.123456]


def _handler(formatter: logging.Formatter) -> logging.StreamHandler[io.StringIO]:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    return handler


def _record_at(created: float) -> logging.LogRecord:
    record = _access_record(ARGUMENTS)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


@pytest.mark.parametrize("formatter", [logging.Formatter(TEXT_FORMAT), JsonFormatter()], ids=["text", "json"])
def test_the_written_line_is_the_one_the_handler_would_format(formatter):
    handler = _handler(formatter)
    writer = LineWriter.of(handler)
    assert writer is not None
    token = REQUEST_ID.set("c1eb54b7-2a")
    try:
        for created in MOMENTS:
            record = _record_at(created)
            handler.filter(record)  # the request id, as the handler's filter puts it on the record
            assert writer.line(ARGUMENTS, created) == handler.format(record) + handler.terminator
    finally:
        REQUEST_ID.reset(token)


def test_a_json_access_line_keeps_its_fields():
    writer = LineWriter.of(_handler(JsonFormatter()))
    assert writer is not None
    line = json.loads(writer.line(ARGUMENTS, MOMENTS[1]))
    assert line["time"] == "2026-11-18T11:06:40.999+00:00"
    assert (line["logger"], line["request_id"], line["status"], line["path"], line["duration_ms"]) == (
        ACCESS_LOGGER_NAME,
        "-",
        200,
        "/health/live?token=[redacted]",
        12.3,
    )
    assert line["message"].endswith('"GET /health/live?token=[redacted] HTTP/1.1" 200 12.3ms')


@pytest.mark.parametrize(
    "handler",
    [
        _handler(logging.Formatter("%(levelname)s %(message)s")),
        _handler(logging.Formatter(TEXT_FORMAT, datefmt="%H:%M")),
        logging.StreamHandler(io.StringIO()),  # no request-id filter, no registry format
    ],
    ids=["another format", "another time format", "a bare handler"],
)
def test_a_handler_configured_otherwise_gets_records(handler):
    assert LineWriter.of(handler) is None


def test_a_second_filter_on_the_handler_gets_it_records_again():
    handler = _handler(logging.Formatter(TEXT_FORMAT))
    writer = LineWriter.of(handler)
    assert writer is not None and writer.serves(handler)
    handler.addFilter(lambda record: False)
    assert not writer.serves(handler)


@pytest.fixture
def served_access_logger(monkeypatch):
    """The access logger as `registry serve` configures it, writing to a string instead of stdout."""
    stdout = io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    logger = logging.getLogger(ACCESS_LOGGER_NAME)
    saved = (logger.handlers[:], logger.propagate, logger.level, logger.filters[:])
    config = logging_dict("text")
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": config["filters"],
            "formatters": config["formatters"],
            "handlers": {"access": config["handlers"]["access"]},
            "loggers": {ACCESS_LOGGER_NAME: config["loggers"][ACCESS_LOGGER_NAME]},
        }
    )
    configured = logger.handlers[0]
    yield logger, stdout, configured
    logger.handlers[:], logger.propagate, logger.level, logger.filters[:] = saved


def _only(logger: logging.Logger, handler: logging.Handler) -> None:
    # pytest hangs its own capture handlers on loggers that do not propagate, once the test has begun.
    logger.handlers[:] = [handler]


SCOPE = {
    "type": "http", "method": "GET", "path": "/health/live", "query_string": b"", "http_version": "1.1",
    "client": ("127.0.0.1", 5000), "headers": [],
}  # fmt: skip


async def test_lines_written_in_one_turn_of_the_event_loop_are_flushed_once_it_is_over(served_access_logger):
    logger, stdout, handler = served_access_logger
    _only(logger, handler)
    flushes = []
    original_flush = handler.flush
    handler.flush = lambda: (flushes.append(1), original_flush())
    try:
        _log_response(SCOPE, 200, time.perf_counter())
        _log_response(SCOPE, 404, time.perf_counter())
        assert flushes == []
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    finally:
        del handler.flush
    assert flushes == [1]
    lines = stdout.getvalue().splitlines()
    assert [_without_duration(line.split(" INFO registry.access [-] ")[1]) for line in lines] == [
        '127.0.0.1:5000 - "GET /health/live HTTP/1.1" 200',
        '127.0.0.1:5000 - "GET /health/live HTTP/1.1" 404',
    ]


async def test_a_handler_added_beside_the_configured_one_gets_every_line_as_a_record(served_access_logger):
    logger, stdout, handler = served_access_logger
    _only(logger, handler)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.addHandler(Collect())
    _log_response(SCOPE, 200, time.perf_counter())
    assert [_without_duration(r.getMessage()) for r in records] == ['127.0.0.1:5000 - "GET /health/live HTTP/1.1" 200']
    assert re.search(r'"GET /health/live HTTP/1.1" 200 \d+\.\dms\n$', stdout.getvalue())


async def test_the_served_access_log_sets_the_request_id_for_its_line_and_the_answer(served_access_logger):
    logger, stdout, handler = served_access_logger
    _only(logger, handler)
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {**SCOPE, "headers": [(b"x-request-id", b"trace-4711.a")]}
    await AccessLog(app, request_ids=True)(scope, None, send)
    await asyncio.sleep(0)
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"x-request-id", b"trace-4711.a")]
    assert ' INFO registry.access [trace-4711.a] 127.0.0.1:5000 - "GET /health/live HTTP/1.1" 200' in stdout.getvalue()
    await AccessLog(app)(SCOPE, None, send)  # without request ids: no header added
    assert sent[2]["headers"] == [(b"content-type", b"text/plain")]
