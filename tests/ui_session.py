"""Helpers for tests that use the web UI as a person would: users, signing in, forms with their CSRF token."""

import re
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from kernel.db import make_engine, make_sessionmaker
from registry.services.users import create_user

PASSWORD = "correct horse battery"


CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def add_user(url: str, email: str, role: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await create_user(session, email, role, PASSWORD, "test")
    finally:
        await engine.dispose()


def as_form(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Repeated fields (rows, multi-selects) as httpx sends them: one key, a list of values."""
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return form


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def log_in(client: AsyncTestClient[Litestar], email: str, password: str = PASSWORD) -> Any:
    page = await client.get("/ui/login")
    return await client.post(
        "/ui/login",
        data={"email": email, "password": password, "next": "/ui/", "_csrf_token": csrf_token(page.text)},
        follow_redirects=False,
    )


async def post_form(client: AsyncTestClient[Litestar], form_page: str, action: str, data: Any) -> Any:
    page = await client.get(form_page)
    assert page.status_code == 200, page.text
    if isinstance(data, dict):
        data = {**data, "_csrf_token": csrf_token(page.text)}
    else:
        data = as_form([*data, ("_csrf_token", csrf_token(page.text))])
    return await client.post(action, data=data, follow_redirects=False)


async def as_user(client: AsyncTestClient[Litestar], email: str) -> AsyncTestClient[Litestar]:
    response = await log_in(client, email)
    assert response.status_code == 303, response.text
    return client
