"""Loaded by every Python process of a `registry serve` a test starts with this folder on PYTHONPATH: in the
processes that serve pages (the web role, or the one process of `--single-process`), `GET /ui/slow-page` is a
page whose handler blocks its event loop with `time.sleep` until the test lets it go. It writes SLOW_PAGE_STARTED
once it holds the loop and returns once SLOW_PAGE_RELEASE exists (or after two minutes)."""

import importlib.abc
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

SLOW_PATH = "/ui/slow-page"


def hold_the_loop() -> None:
    """What the slow page does, on its event loop: nothing else runs on that loop meanwhile."""
    Path(os.environ["SLOW_PAGE_STARTED"]).write_text(str(os.getpid()))
    release = Path(os.environ["SLOW_PAGE_RELEASE"])
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def slowed(app: Any) -> Any:
    async def with_a_slow_page(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != SLOW_PATH:
            await app(scope, receive, send)
            return
        hold_the_loop()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"slow page", "more_body": False})

    return with_a_slow_page


class _AfterWebApp(importlib.abc.MetaPathFinder):
    """Wraps `web.app.create_served_app` once the module is loaded (importing it here would import
    prometheus-client before `registry serve` chose its mode)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "web.app":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader
        load = loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            served = module.create_served_app
            module.create_served_app = lambda: slowed(served())

        loader.exec_module = exec_module
        return spec


if os.environ.get("SLOW_PAGE_STARTED") and os.environ.get("REGISTRY_PROCESS_ROLE", "all") in ("web", "all"):
    sys.meta_path.insert(0, _AfterWebApp())
