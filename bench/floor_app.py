"""The framework floor for bench/guard_load.py: a minimal Litestar app with one JSON GET, served by uvicorn
with the settings `registry serve` uses (httptools, uvloop, one worker, no access log of uvicorn's). What no
endpoint of the registry can beat on this machine: the guard and `/health/live` are measured against it."""

from litestar import Litestar, get


@get("/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[live])
