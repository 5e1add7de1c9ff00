"""What the registry's own stack costs a request over the framework floor, measured in the process.

Run from the repository root:

    uv run python bench/app_overhead.py                 # CPU time per request
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/app_overhead.py --callgrind   # instructions per request, then:
    grep -H '^summary\\|^desc: Trigger' /tmp/cg.*

It creates a scratch database with the seed and a guard key (as bench/guard_load.py does), builds the app as
`registry serve` runs it (`create_served_app`, its logging configured as `registry serve` configures it, the
access log written to a scratch file), runs its lifespan, and calls it as an ASGI app, 32 requests at a time,
without a server or a socket: the floor app's `GET /live` (bench/floor_app.py), the registry's
`GET /health/live`, and `POST /api/guard/check`. It prints the process's CPU time per request of each and their
ratios to the floor. Without uvicorn, the kernel and wrk, the figures isolate the app, and they hold still on
a loaded machine far better than wrk's; bench/guard_load.py's ratios include the server around the app.

With `--callgrind`, under valgrind as above, each measured slice is also counted in instructions (callgrind's
client requests, through a helper built with the C compiler and valgrind's headers): one dump per slice, its
`desc` naming it and the request count. Instruction counts do not drift with the machine's load at all.
"""

import argparse
import asyncio
import ctypes
import json
import logging.config
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import guard_load  # noqa: E402
import uvloop  # noqa: E402

from kernel.logs import logging_dict  # noqa: E402

CONCURRENCY = 32
CALLGRIND_HELPER = """
#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void stop(const char *name) { CALLGRIND_DUMP_STATS_AT(name); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def callgrind_helper(directory: Path) -> Any:
    source, library = directory / "callgrind_helper.c", directory / "callgrind_helper.so"
    source.write_text(CALLGRIND_HELPER)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return ctypes.CDLL(str(library))


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555), "scheme": "http", "method": method,
        "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"", "headers": headers,
        "state": {},
    }  # fmt: skip


async def drive(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes, n: int) -> None:
    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise AssertionError(f"{method} {path} answered {message['status']}")

    async def one() -> None:
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await asyncio.sleep(3600)  # (nobody reads past the body)
            return {"type": "http.disconnect"}

        await app(http_scope(method, path, headers), receive, send)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(n // CONCURRENCY) for _ in range(CONCURRENCY)))


class Slices:
    def __init__(self, args: argparse.Namespace, helper: Any) -> None:
        self.args = args
        self.helper = helper

    async def measure(
        self, label: str, app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> float:
        n = self.args.requests
        await drive(app, method, path, headers, body, self.args.warmup)
        started = time.process_time()
        if self.helper is not None:
            self.helper.start()
        await drive(app, method, path, headers, body, n)
        if self.helper is not None:
            self.helper.stop(f"{label} requests={n}".encode())
        return (time.process_time() - started) / n * 1e6


async def run(args: argparse.Namespace, workdir: Path) -> None:
    helper = callgrind_helper(workdir) if args.callgrind else None
    name = f"registry_bench_{uuid.uuid4().hex[:10]}"
    url = guard_load.scratch_url(name)
    await guard_load.create_scratch(name)
    stdout = sys.stdout
    try:
        guard_key, _ = await guard_load.prepare(url)
        if args.parties:  # the registry grown as bench/guard_load.py grows it for its large phase
            import random

            from registry.services.registry_document import import_registry, parse_document

            document = guard_load.large_document(
                guard_load.seed_document(), args.parties, args.parties * 3, random.Random(20261125)
            )
            await guard_load.run_in_registry(url, lambda s: import_registry(s, parse_document(document), "bench"))
        os.environ["REGISTRY_DATABASE_URL"] = url
        os.environ["REGISTRY_SCHEDULER_ENABLED"] = "false"
        logging.config.dictConfig(logging_dict("text"))
        sys.stdout = (workdir / "access.log").open("w")  # the access log's stream, as `registry serve` has it
        import floor_app

        from web.app import create_served_app

        served = create_served_app()
        litestar_app: Any = served.app
        while not hasattr(litestar_app, "lifespan"):  # (under however many wrappers the served app has)
            litestar_app = litestar_app.app
        async with litestar_app.lifespan():
            share = json.dumps(guard_load.request_mix(guard_load.seed_document())[0][0]).encode()
            check_headers = [
                (b"host", b"127.0.0.1:8000"),
                (b"authorization", b"Bearer " + guard_key.encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(share)).encode()),
            ]
            slices = Slices(args, helper)
            print(
                f"{'round':>5} {'floor':>10} {'/health/live':>13} {'guard check':>12}   (µs CPU per request)",
                file=stdout,
            )
            for number in range(1, args.rounds + 1):
                floor = await slices.measure("floor GET /live", floor_app.app, "GET", "/live", [(b"host", b"x")])
                live = await slices.measure("GET /health/live", served, "GET", "/health/live", [(b"host", b"x")])
                check = await slices.measure(
                    "POST /api/guard/check", served, "POST", "/api/guard/check", check_headers, share
                )
                print(
                    f"{number:>5} {floor:10.1f} {live:13.1f} {check:12.1f}   "
                    f"/health/live over floor {live / floor:4.2f}, guard over floor {check / floor:4.2f} "
                    f"(load average {os.getloadavg()[0]:.2f})",
                    file=stdout,
                    flush=True,
                )  # fmt: skip
    finally:
        sys.stdout = stdout
        await guard_load.drop_scratch(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per slice")
    parser.add_argument("--warmup", type=int, default=2_000, help="requests before each slice")
    parser.add_argument("--parties", type=int, default=0, help="grow the registry to this many parties first")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (run under valgrind)")
    args = parser.parse_args()
    if args.callgrind and args.requests > 4_096:
        args.requests, args.warmup = 1_024, 512  # callgrind runs some fifty times slower
    with tempfile.TemporaryDirectory(prefix="app-overhead-") as workdir:
        uvloop.run(run(args, Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
