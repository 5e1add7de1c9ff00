"""UI pages are rendered a slice at a time (web/ui/rendering.py): the same answer as Litestar's own
Template response, an error page when rendering fails, and the event loop free between slices."""

import asyncio
from pathlib import Path

from litestar import Litestar, get
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig
from litestar.testing import AsyncTestClient

from web.ui import rendering
from web.ui.rendering import SlicedTemplate

ROWS = 5000


def make_app(folder: Path) -> Litestar:
    (folder / "rows.html").write_text(
        '<ul>{% for r in rows %}<li data-n="{{ r }}">{{ r }} &amp; {{ label }}</li>{% endfor %}</ul>'
    )
    (folder / "broken.html").write_text("<p>{{ rows[0] }}</p>{{ 1 // 0 }}")

    @get("/plain")
    async def plain() -> Template:
        return Template("rows.html", context={"rows": range(ROWS), "label": "<b>"}, status_code=201)

    @get("/sliced")
    async def sliced() -> Template:
        return SlicedTemplate("rows.html", context={"rows": range(ROWS), "label": "<b>"}, status_code=201)

    @get("/broken")
    async def broken() -> Template:
        return SlicedTemplate("broken.html", context={"rows": [1]})

    return Litestar(
        [plain, sliced, broken],
        template_config=TemplateConfig(directory=folder, engine=JinjaTemplateEngine),
        debug=False,
    )


async def test_a_sliced_page_is_the_same_answer_as_litestars_template(tmp_path):
    async with AsyncTestClient(make_app(tmp_path)) as client:
        plain = await client.get("/plain")
        sliced = await client.get("/sliced")
    assert sliced.status_code == plain.status_code == 201
    assert sliced.content == plain.content
    assert sliced.headers["content-type"] == plain.headers["content-type"] == "text/html; charset=utf-8"
    assert sliced.headers["content-length"] == str(len(plain.content))
    assert "&amp; &lt;b&gt;" in sliced.text


async def test_a_page_that_fails_to_render_is_an_error_answer_not_a_cut_off_one(tmp_path):
    async with AsyncTestClient(make_app(tmp_path)) as client:
        answer = await client.get("/broken")
    assert answer.status_code == 500
    assert "<p>1</p>" not in answer.text  # nothing of the page went out before it failed


async def test_other_work_runs_on_the_loop_between_the_slices_of_a_page(monkeypatch):
    """A page of 1,000 pieces in slices of 100: a task started before it ticks between the slices (the page's
    last piece tells how often); rendered in one go, it could not tick at all."""
    monkeypatch.setattr(rendering, "PIECES_PER_SLICE", 100)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    def pieces():
        yield from ("x" for _ in range(1000))
        yield f"|{ticks}"

    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    started = ticks
    answer = rendering._RenderedInSlices(pieces(), "utf-8", status_code=200, media_type="text/html")
    await answer({"type": "http", "method": "GET"}, receive, send)
    stop.set()
    await task
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
    assert body.startswith("x" * 1000)
    assert int(body.split("|")[1]) - started >= 9  # once between each two of the ten slices at least
