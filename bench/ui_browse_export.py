"""UI and exports beside the guard: page times at 10,000 parties, and the guard's p99 while one client browses
the UI and another exports, side by side with the idle figure (issue 20, item 3).

Run from the repository root:

    uv run python bench/ui_browse_export.py                     # 10,000 parties, 30,000 agreements
    uv run python bench/ui_browse_export.py --duration 5 --loops 2

It creates a scratch database on the local PostgreSQL (BENCH_POSTGRES_URL), migrates it, grows the seed registry
to `--parties` parties and `--agreements` agreements with bench/guard_load.py's generator, creates a `guard:check`
key, an admin key and a legal UI user, and starts `registry serve --workers 1` (REGISTRY_SECURE_COOKIES=false:
the UI's cookies over plain http): as it runs by default, the guard role answering the checks on a process of its
own and relaying the pages and exports to the web role (issue 27, item 1); `--single-process` for the layout
before it, every request on one event loop. Then:

1. idle: `--rounds` wrk slices of `--duration` seconds against `POST /api/guard/check` (guard_load's request mix,
   `--connections` connections, each waiting `--delay-ms` between its requests: a steady load, not a flood);
2. busy: the same wrk slices, repeated until client A has browsed every page `--loops` times, while
   client A (signed in as the legal user, session cookie and CSRF as the browser has them) loops over the
   pages a legal/ops user visits, timing each (back to back, or `--think-ms` apart: a person reading), and
   client B loops over the exports (registry CSV zip and
   XLSX, Art. 30 JSON and CSV, the registry document, the findings, the UI's YAML export, the evidence bundle).

It prints each page's median and worst beside the target (median <= 1 s), the guard's p50/p99 idle and busy
beside the target (median p99 of the slices <= 20 ms while busy, the worst slice's p99 <= 40 ms), and each
export's median duration (a figure, no target); then stops
the server it started (by pid) and drops the scratch database. Exit status 0 when every target is met.
"""

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import guard_load as gl  # noqa: E402

from registry.services.registry_document import import_registry, parse_document  # noqa: E402
from registry.services.users import create_user  # noqa: E402

TARGET_PAGE_MEDIAN_S = 1.0
TARGET_GUARD_P99_MS = 20.0
TARGET_GUARD_WORST_P99_MS = 40.0  # the worst busy slice (issue 27)
EMAIL = "bench-legal@offix.example"
PASSWORD = "bench-password-long-enough"


def pages(parties_pages: int) -> list[tuple[str, str]]:
    """(label, path) of what a legal or ops user opens in a working session."""
    listed = [(f"parties, page {n + 1}", f"/ui/parties?offset={50 * n}") for n in range(parties_pages)]
    return [
        ("dashboard", "/ui/"),
        *listed,
        ("parties, filtered by status", "/ui/parties?status=expiring"),
        ("party (processor with a chain)", "/ui/parties/gen-proc-00001"),
        ("party (sub-processor)", "/ui/parties/gen-sub-00003"),
        ("agreements, page 1", "/ui/agreements"),
        ("agreements, page 2", "/ui/agreements?offset=50"),
        ("agreements, filtered by state", "/ui/agreements?state=expired"),
        ("agreement", "/ui/agreements/gen-proc-00001-dpa-0"),
        ("data map", "/ui/data-map"),
        ("records: Art. 30", "/ui/records/article-30"),
        ("decision log", "/ui/decisions"),
        ("decision log, denied", "/ui/decisions?outcome=denied"),
        ("recipients of a person", "/ui/subjects/recipients?subject=anna%40example.se"),
        ("objections", "/ui/objections"),
        ("renewals", "/ui/renewals"),
        ("import / export page", "/ui/registry"),
        ("try a share", "/ui/guard?recipient=gen-proc-00001"),
        ("new party form", "/ui/parties/new"),
        ("new agreement form", "/ui/agreements/new"),
    ]


EXPORTS = [
    ("registry CSV zip (API)", "/api/records/registry-csv.zip"),
    ("registry XLSX (API)", "/api/records/registry.xlsx"),
    ("Art. 30 JSON (API)", "/api/records/article-30"),
    ("Art. 30 CSV (API)", "/api/records/article-30?format=csv"),
    ("registry document (API)", "/api/registry"),
    ("findings (API)", "/api/registry/findings"),
    ("registry YAML (UI)", "/ui/registry/export"),
    ("evidence bundle (UI)", "/ui/records/evidence.zip"),
]


def sign_in(base: str) -> httpx.Client:
    """A client with the UI's session cookie and CSRF cookie, as a browser has them after signing in."""
    client = httpx.Client(base_url=base, timeout=600)
    form = client.get("/ui/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
    if token is None:
        sys.exit(f"no CSRF field on the login page ({form.status_code})")
    answer = client.post(
        "/ui/login", data={"email": EMAIL, "password": PASSWORD, "next": "/ui/", "_csrf_token": token.group(1)}
    )
    if answer.status_code != 303:
        sys.exit(f"signing in answered {answer.status_code}: {answer.text[:500]}")
    return client


class Loop(threading.Thread):
    """Requests a list of paths over and over, timing each, until stopped (after the request under way)."""

    def __init__(
        self, client: httpx.Client, paths: list[tuple[str, str]], headers: dict[str, str], think: float = 0.0
    ) -> None:
        super().__init__(daemon=True)
        self.client, self.paths, self.headers, self.think = client, paths, headers, think
        self.times: dict[str, list[float]] = {label: [] for label, _ in paths}
        self.failures: list[str] = []
        self.loops = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for label, path in self.paths:
                if self.stop.is_set():
                    return
                started = time.monotonic()
                try:
                    response = self.client.get(path, headers=self.headers)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{path}: {exc!r}")
                    return
                self.times[label].append(time.monotonic() - started)
                if response.status_code != 200:
                    self.failures.append(f"{path}: {response.status_code} {response.text[:200]!r}")
                self.stop.wait(self.think)  # a person reading the page before the next click
            self.loops += 1


def wrk_slice(args: argparse.Namespace, base: str, script: Path) -> gl.Measurement:
    output = gl.run_wrk(args, f"{base}/api/guard/check", script, args.duration)
    return gl.parse_wrk("guard", output)


def paced_script(workdir: Path, token: str, delay_ms: int) -> Path:
    """guard_load's request mix, each connection waiting `delay_ms` between its requests (wrk's delay() hook)."""
    script = gl.write_lua(workdir, [body for body, _ in gl.request_mix(gl.seed_document())], token)
    if delay_ms > 0:
        with script.open("a", encoding="utf-8") as lua:
            lua.write(f"\nfunction delay()\n  return {delay_ms}\nend\n")
    return script


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(slices: list[gl.Measurement]) -> tuple[float, float, float, float]:
    """(median p50, median p99, worst p99, req/s mean) over the slices."""
    return (
        statistics.median(m.p50_ms for m in slices),
        statistics.median(m.p99_ms for m in slices),
        max(m.p99_ms for m in slices),
        sum(m.requests_per_second for m in slices) / len(slices),
    )


def measure(args: argparse.Namespace, base: str, guard_key: str, admin_key: str, workdir: Path) -> bool:
    script = paced_script(workdir, guard_key, args.delay_ms)
    gl.verify_mix(base, guard_key, gl.request_mix(gl.seed_document()))
    browse = Loop(sign_in(base), pages(args.party_pages), {"Accept-Language": "sv"}, args.think_ms / 1000)
    exporter_ui = sign_in(base)
    exports = Loop(exporter_ui, EXPORTS, {"Authorization": f"Bearer {admin_key}"})
    # The report worker process starts on its first report; its start-up is not what is measured.
    started = time.monotonic()
    first = exporter_ui.get("/api/registry/findings", headers={"Authorization": f"Bearer {admin_key}"})
    print(f"first findings report (report worker starting): {time.monotonic() - started:.1f} s, "
          f"{first.status_code}", flush=True)  # fmt: skip
    gl.run_wrk(args, f"{base}/api/guard/check", script, args.warmup)

    print(f"idle: {args.rounds} wrk slices of {args.duration} s (load average {load_average()})", flush=True)
    idle = []
    for n in range(args.rounds):
        idle.append(wrk_slice(args, base, script))
        m = idle[-1]
        print(f"  idle slice {n + 1}: {m.requests_per_second:6.0f} checks/s p50 {m.p50_ms:6.2f} ms "
              f"p99 {m.p99_ms:7.2f} ms", flush=True)  # fmt: skip

    print(f"busy: client A browses {len(browse.paths)} pages ({args.think_ms} ms between them), client B loops "
          f"{len(EXPORTS)} exports", flush=True)  # fmt: skip
    if args.no_browse:
        browse.paths = []  # the busy phase without client A: what the exports alone cost the guard
    else:
        browse.start()
    if not args.no_exports:
        exports.start()
    busy: list[gl.Measurement] = []
    deadline = time.monotonic() + args.max_busy_seconds
    wanted = 0 if args.no_browse else args.loops
    while len(busy) < args.rounds or (browse.loops < wanted and time.monotonic() < deadline):
        busy.append(wrk_slice(args, base, script))
        m = busy[-1]
        print(f"  busy slice {len(busy)}: {m.requests_per_second:6.0f} checks/s p50 {m.p50_ms:6.2f} ms "
              f"p99 {m.p99_ms:7.2f} ms; A: {browse.loops} loops, B: {exports.loops} loops, "
              f"load average {load_average()}", flush=True)  # fmt: skip
    browse.stop.set()
    exports.stop.set()
    busy_load = load_average()
    for client in (browse, exports):
        if client.is_alive():
            client.join(timeout=600)
    gl.verify_mix(base, guard_key, gl.request_mix(gl.seed_document()))

    ok = True
    print(f"\n{'page (client A, while B exports and wrk checks)':<52} {'n':>3} {'median':>9} {'worst':>9}  target")
    for label, _ in browse.paths:
        times = browse.times[label]
        if not times:
            print(f"{label:<52} {0:>3} {'-':>9} {'-':>9}  not reached")
            ok = False
            continue
        meets = statistics.median(times) <= TARGET_PAGE_MEDIAN_S
        ok &= meets
        print(f"{label:<52} {len(times):>3} {statistics.median(times):>8.3f}s {max(times):>8.3f}s  "
              f"median <= {TARGET_PAGE_MEDIAN_S:g} s {gl.verdict(meets)}")  # fmt: skip
    print(f"\n{'export (client B)':<52} {'n':>3} {'median':>9} {'worst':>9}")
    for label, _ in EXPORTS:
        times = exports.times[label]
        if times:
            print(f"{label:<52} {len(times):>3} {statistics.median(times):>8.3f}s {max(times):>8.3f}s")
    i50, i99, iworst, irate = summary(idle)
    b50, b99, bworst, brate = summary(busy)
    meets = b99 <= TARGET_GUARD_P99_MS
    worst_meets = bworst <= TARGET_GUARD_WORST_P99_MS
    ok &= meets and worst_meets
    print(f"\n{'guard check (wrk -c' + str(args.connections) + ', delay ' + str(args.delay_ms) + ' ms)':<52} "
          f"{'checks/s':>9} {'p50':>8} {'p99':>8} {'worst p99':>9}  target")  # fmt: skip
    print(f"{'idle':<52} {irate:>9.0f} {i50:>6.2f}ms {i99:>6.2f}ms {iworst:>7.2f}ms  (the idle figure)")
    print(f"{'busy: A browsing, B exporting':<52} {brate:>9.0f} {b50:>6.2f}ms {b99:>6.2f}ms {bworst:>7.2f}ms  "
          f"p99 <= {TARGET_GUARD_P99_MS:g} ms {gl.verdict(meets)}, worst slice <= {TARGET_GUARD_WORST_P99_MS:g} ms "
          f"{gl.verdict(worst_meets)}")  # fmt: skip
    errors = sum(m.errors for m in idle + busy)
    failures = browse.failures + exports.failures
    print(f"guard errors (non-2xx, socket): {errors}; page/export failures: {len(failures)}; "
          f"A browsed {browse.loops} full loops, B exported {exports.loops}; load average at the end of the busy "
          f"phase {busy_load}")  # fmt: skip
    for failure in failures[:10]:
        print(f"  {failure}")
    return ok and errors == 0 and not failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parties", type=int, default=gl.LARGE_PARTIES)
    parser.add_argument("--agreements", type=int, default=gl.LARGE_AGREEMENTS)
    parser.add_argument("--rounds", type=int, default=3, help="wrk slices per phase, at least (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk slice (default 5)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of guard warm-up (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--wrk-timeout", type=int, default=60, help="wrk's timeout per check, seconds (60)")
    parser.add_argument("--delay-ms", type=int, default=5, help="each connection's pause between checks (5; 0: flood)")
    parser.add_argument("--loops", type=int, default=2, help="full browsing loops of client A, at least (default 2)")
    parser.add_argument("--think-ms", type=int, default=0, help="client A's pause after each page (0: none)")
    parser.add_argument("--no-browse", action="store_true", help="busy phase without client A (exports only)")
    parser.add_argument("--no-exports", action="store_true", help="busy phase without client B (browsing only)")
    parser.add_argument("--party-pages", type=int, default=3, help="pages of the parties list browsed (default 3)")
    parser.add_argument("--max-busy-seconds", type=float, default=900, help="stop the busy phase after (900)")
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="`registry serve --single-process`: checks, pages and exports on one event loop (the layout before)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    name = f"registry_bench_{uuid.uuid4().hex[:10]}"
    url = gl.scratch_url(name)
    asyncio.run(gl.create_scratch(name))
    server: subprocess.Popen[bytes] | None = None
    workdir = Path(tempfile.mkdtemp(prefix="ui-browse-bench-"))
    try:
        print(f"scratch database {name} (load average {load_average()})", flush=True)
        guard_key, admin_key = asyncio.run(gl.prepare(url))
        asyncio.run(gl.run_in_registry(url, lambda s: create_user(s, EMAIL, "legal", PASSWORD, "bench")))
        document = gl.large_document(gl.seed_document(), args.parties, args.agreements, random.Random(20261125))
        started = time.monotonic()
        asyncio.run(gl.run_in_registry(url, lambda s: import_registry(s, parse_document(document), "bench")))
        print(f"registry: {len(document['parties']):,} parties, {len(document['agreements']):,} agreements "
              f"(imported in {time.monotonic() - started:.1f} s)", flush=True)  # fmt: skip
        port = gl.free_port()
        base = f"http://127.0.0.1:{port}"
        log_file = workdir / "server.log"
        os.environ["REGISTRY_SECURE_COOKIES"] = "false"
        layout = ["--single-process"] if args.single_process else []
        server = gl.start_server(url, port, log_file, *layout)
        gl.wait_ready(base, server, log_file, timeout=600)
        print(f"registry serve --workers 1 {' '.join(layout)} on {base} (pid {server.pid}; "
              f"{'one process' if layout else 'the guard role, the web role behind it'}); server log {log_file}",
              flush=True)  # fmt: skip
        return 0 if measure(args, base, guard_key, admin_key, workdir) else 1
    finally:
        if server is not None:
            gl.stop_server(server)
        asyncio.run(gl.drop_scratch(name))
        if not os.environ.get("BENCH_KEEP_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
