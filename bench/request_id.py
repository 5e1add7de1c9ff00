"""Request-id microbenchmark: what `RequestIds` (kernel/logs.py) adds to every request, the guard's included.

Run from the repository root:

    uv run python bench/request_id.py

It calls a trivial ASGI app (one response start, one body) with guard-check-like headers many times, bare and
wrapped in `RequestIds`, in alternating rounds, with and without an incoming X-Request-Id, and prints the added
time per request beside the target: at most 5 µs, a few tenths of a per cent of a guard check on this machine
(bench/guard_load.py answers about 1,000-2,000 checks a second per core, so 500-1,000 µs each).
"""

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel.logs import RequestIds

TARGET_MICROSECONDS = 5.0
CALLS = 100_000
ROUNDS = 5
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"integration/1.0"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer ofx_0123456789abcdef0123456789abcdef0123456789a"),
    (b"content-length", b"123"),
]


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}", "more_body": False})


async def send(message):  # type: ignore[no-untyped-def]
    pass


async def timed(target, headers) -> float:  # type: ignore[no-untyped-def]
    scope = {"type": "http", "headers": headers}
    started = time.perf_counter()
    for _ in range(CALLS):
        await target(scope, None, send)
    return (time.perf_counter() - started) / CALLS * 1e6


async def main() -> int:
    wrapped = RequestIds(app)
    verdicts = []
    for label, headers in (
        ("generated id", HEADERS),
        ("incoming X-Request-Id", [*HEADERS, (b"x-request-id", b"trace-4711.a")]),
    ):
        added = []
        for _ in range(ROUNDS):
            bare = await timed(app, headers)
            with_ids = await timed(wrapped, headers)
            added.append(with_ids - bare)
        median = statistics.median(added)
        verdicts.append(median <= TARGET_MICROSECONDS)
        print(
            f"{label:24} added {median:5.2f} µs per request (median of {ROUNDS} rounds of {CALLS:,}; "
            f"target <= {TARGET_MICROSECONDS} µs)  {'ok' if verdicts[-1] else 'MISSED'}"
        )
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
