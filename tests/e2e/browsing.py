"""Helpers for the browser tests: the real service in a thread, Chromium's arguments, screenshots."""

import asyncio
import threading
from pathlib import Path

import uvicorn
from playwright.async_api import Page

from tests.conftest import free_port
from tests.conftest import test_settings as settings_for
from web.app import create_app

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class ServiceThread:
    """The real ASGI service under uvicorn, in a thread with its own event loop."""

    def __init__(self, database: str) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings_for(database, public_url=f"http://127.0.0.1:{self.port}")),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "ServiceThread":
        self.thread.start()
        for _ in range(300):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            await asyncio.sleep(0.05)
        raise RuntimeError("the service did not start")

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 15)


async def shot(page: Page, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
