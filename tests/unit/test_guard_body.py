"""The guard reads its request body straight off the ASGI channel (web/controllers/guard.py `_body`)."""

import pytest
from litestar import Request
from litestar.exceptions import ClientException

from guard.service import MAX_BODY_BYTES
from web.controllers.guard import _body


def request_receiving(*messages: dict) -> tuple[Request, list[dict]]:
    pending = list(messages)

    async def receive() -> dict:
        return pending.pop(0)

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive), pending  # type: ignore[arg-type]


async def test_a_body_sent_in_pieces_is_read_whole():
    request, _ = request_receiving(
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    )
    assert await _body(request) == b'{"a":1}'


async def test_a_body_in_one_message_without_more_body_is_read_whole():
    request, _ = request_receiving({"type": "http.request", "body": b"{}"})
    assert await _body(request) == b"{}"


async def test_reading_stops_once_the_body_is_past_the_limit():
    piece = b" " * (MAX_BODY_BYTES // 2)
    request, unread = request_receiving(
        *({"type": "http.request", "body": piece, "more_body": True} for _ in range(5)),
        {"type": "http.request", "body": b"{}", "more_body": False},
    )
    body = await _body(request)
    assert MAX_BODY_BYTES < len(body) <= MAX_BODY_BYTES + len(piece)
    assert len(unread) == 3  # the rest was never taken off the channel


async def test_a_client_gone_before_the_body_ends_is_a_client_error_not_a_partial_body():
    request, _ = request_receiving(
        {"type": "http.request", "body": b'{"a":', "more_body": True}, {"type": "http.disconnect"}
    )
    with pytest.raises(ClientException) as refused:
        await _body(request)
    assert refused.value.status_code == 400
    assert "disconnected" in refused.value.detail
