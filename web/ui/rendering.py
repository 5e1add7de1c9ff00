"""UI pages rendered a slice at a time, with the event loop's other work between the slices.

A page's template renders on the event loop the guard answers on; the largest pages (the Art. 30 page's
recipients, a registry of 10,000 parties) took tens to hundreds of milliseconds to render in one go, and every
guard check waited that long (bench/ui_browse_export.py). Jinja renders a template as a stream of small pieces
(`Template.generate`): this response takes them a slice at a time and lets the loop run between slices. The
whole page is rendered before anything is sent, so a page that fails to render is still the app's error page,
and the answer is the same bytes, headers and status that Litestar's own `Template` response gives.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator
from typing import Any, cast

from litestar import Request
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.response import Template
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send, TypeEncodersMap

# Pieces of a page rendered between two turns of the loop: Jinja's pieces are small (a tag, a value), so this
# is well under a millisecond of rendering.
PIECES_PER_SLICE = 500


class _RenderedInSlices(ASGIResponse):
    """An ASGI answer whose body is rendered (in slices) when it is sent, then sent as any other."""

    def __init__(self, pieces: Iterator[str], encoding: str, **answer: Any) -> None:
        super().__init__(body=b"", encoding=encoding, **answer)  # (the attributes a response has, until sent)
        self._pieces, self._encoding, self._answer = pieces, encoding, answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts: list[str] = []
        while True:
            slice_ = list(itertools.islice(self._pieces, PIECES_PER_SLICE))
            parts += slice_
            if len(slice_) < PIECES_PER_SLICE:
                break
            await asyncio.sleep(0)
        body = "".join(parts).encode(self._encoding)
        await ASGIResponse(body=body, encoding=self._encoding, **self._answer)(scope, receive, send)


class SlicedTemplate(Template):
    """Litestar's `Template` response, rendered a slice at a time (see the module's docstring)."""

    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        engine = request.app.template_engine
        if engine is None or self.template_name is None:  # (not this UI's pages: Litestar's way)
            return super().to_asgi_response(
                app,
                request,
                background=background,
                cookies=cookies,
                encoded_headers=encoded_headers,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        template = engine.get_template(cast("str", self.template_name))
        pieces = template.generate(**self.create_template_context(request))
        return _RenderedInSlices(
            pieces,
            self.encoding,
            background=self.background or background,
            content_length=None,
            cookies=self.cookies if cookies is None else itertools.chain(self.cookies, cookies),
            encoded_headers=encoded_headers,
            headers={**headers, **self.headers} if headers is not None else self.headers,
            is_head_response=is_head_response,
            media_type=self.media_type or media_type or MediaType.HTML,
            status_code=self.status_code or status_code,
        )
