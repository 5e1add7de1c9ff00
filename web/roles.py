"""The guard role's front door: `registry serve` answers guard checks on processes of their own, so that no page,
export or report shares the guard's event loop (a dashboard view or a snapshot's first view holds a loop for
a second or more; every check queued behind it would wait as long).

The guard role's processes listen on the public port. They answer the guard checks, the health probes and
/metrics themselves and stream every other request, body and answer alike, to the web role over a Unix socket
in a directory only this user can open (cli/roles.py). The web role believes the X-Forwarded-For and
X-Forwarded-Proto headers the relay sets, and only those: its socket is reachable by the relay alone, and the
relay drops whatever X-Forwarded-* headers the client sent before it names the client's address (the one the
guard role's uvicorn settled on, behind `REGISTRY_TRUSTED_PROXIES` as before), so the sign-in throttle still
counts per real address.
"""

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
from litestar.types import ASGIApp, HTTPReceiveMessage, HTTPScope, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# What the guard role answers itself; everything else is the web role's.
GUARD_ROLE_PATHS = frozenset(
    {"/api/guard/check", "/api/guard/check-batch", "/health/live", "/health/ready", "/metrics"}
)
# Headers of one connection, not of the message (RFC 9110 §7.6.1); uvicorn frames each side itself.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
_UNAVAILABLE = b'{"status_code":503,"detail":"the registry\'s web role is not answering"}'


class ClientWentAway(Exception):
    """The client disconnected before its whole body was relayed."""


class RoleDispatcher:
    """ASGI app of a guard-role process: `guard` for GUARD_ROLE_PATHS (and the lifespan), a streaming relay to
    the web role's socket for the rest."""

    def __init__(self, guard: ASGIApp, web_role_socket: Path) -> None:
        self.guard = guard
        self.socket = web_role_socket
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in GUARD_ROLE_PATHS:
            await self._relay(cast("HTTPScope", scope), receive, send)
        elif scope["type"] == "lifespan":
            await self.guard(scope, receive, self._closing_on_shutdown(send))
        else:
            await self.guard(scope, receive, send)

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self._client is not None:
                client, self._client = self._client, None
                await client.aclose()
            await send(message)

        return lifespan_send

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=str(self.socket)),
                # An export or an import may take minutes: no read bound; a web role that does not accept is
                # answered 503 at once.
                timeout=httpx.Timeout(None, connect=5.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            )
        return self._client

    async def _relay(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name not in _HOP_BY_HOP and not name.startswith(b"x-forwarded-")
        ]
        client_address = scope.get("client")
        if client_address:
            headers.append((b"x-forwarded-for", str(client_address[0]).encode("latin-1")))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        has_body = any(name == b"content-length" for name, _ in headers) or any(
            name == b"transfer-encoding" for name, _ in scope["headers"]
        )
        request = self.client().build_request(
            scope["method"],
            httpx.URL("http://web-role" + target.decode("latin-1")),
            headers=headers,
            content=_body(receive) if has_body else None,
        )
        try:
            response = await self.client().send(request, stream=True)
        except ClientWentAway:
            return  # nobody is left to answer
        except httpx.TransportError as exc:
            log.warning("the web role did not answer %s %s: %s", scope["method"], scope["path"], exc)
            await _answer_unavailable(send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TransportError as exc:  # the answer started: all that is left is to cut it short
            log.warning("the web role's answer to %s %s broke off: %s", scope["method"], scope["path"], exc)
            raise
        finally:
            await response.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = cast("HTTPReceiveMessage", await receive())
        if message["type"] == "http.disconnect":
            raise ClientWentAway
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _answer_unavailable(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_UNAVAILABLE)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAVAILABLE, "more_body": False})
