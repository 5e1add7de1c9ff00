"""Snapshot propagation benchmark: how long a single registry change takes to be obeyed by every instance's
guard, and how a guard check fares while whole-registry reports run on its instance.

Run from the repository root:

    uv run python bench/snapshot_propagation.py                 # 10,000 and 50,000 parties
    uv run python bench/snapshot_propagation.py --sizes 10000   # one size

For each registry size it creates a scratch database, grows the seed registry to that many parties (three
agreements each, bench/guard_load.py's generator), and starts two `registry serve` processes on it: A takes
the writes, B only answers checks. Then:

1. propagation: `--changes` single writes through A's API, alternately deactivating and reactivating one
   generated processor (a different one each pair). From the moment a write is sent, B is asked about that
   processor in a tight loop until its answer says RECIPIENT_INACTIVE (or no longer says it): that time is
   "B obeys". A's own answer is returned only once A's guard obeys (read-your-writes): its latency is
   "A obeys", and its headers say whether A caught up within its bound.
2. reports (first size only, unless --reports-at-every-size): sequential guard checks on A while idle, then
   while one client loops `GET /api/registry/findings` and another `GET /api/records/registry-csv.zip` on A;
   p50/p99 of each, beside the target.

Prints median and worst beside the target (< 250 ms), then stops the servers it started (by pid) and drops
the scratch database.
"""

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import guard_load as gl  # noqa: E402

from registry.services.registry_document import import_registry, parse_document  # noqa: E402

TARGET_PROPAGATION_MS = 250.0
TARGET_CHECK_P99_MS = 20.0


def probe(recipient: str) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "purpose": "essential.service.operations",
        "data_categories": ["user.name"],
        "destination": "SE",
        "data_subject": "customer",
    }


def inactive(client: httpx.Client, base: str, token: str, recipient: str) -> bool:
    response = client.post(
        f"{base}/api/guard/check", json=probe(recipient), headers={"Authorization": f"Bearer {token}"}
    )
    if response.status_code != 200:
        sys.exit(f"{base} answered a check with {response.status_code}: {response.text}")
    return "RECIPIENT_INACTIVE" in {r["code"] for r in response.json()["reasons"]}


def registry_revision(base: str) -> int | None:
    body = httpx.get(f"{base}/health/ready", timeout=5).json()
    revision: int | None = body.get("guard", {}).get("revision")
    return revision


def wait_same_revision(bases: list[str], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        revisions = {registry_revision(b) for b in bases}
        if len(revisions) == 1 and None not in revisions:
            return
        time.sleep(0.2)
    sys.exit(f"the instances did not agree on a registry revision within {timeout:.0f} s")


def write(client: httpx.Client, base: str, token: str, key: str, deactivate: bool) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    party = client.get(f"{base}/api/parties/{key}", headers=headers).json()
    if deactivate:
        return client.delete(f"{base}/api/parties/{key}", params={"version": party["version"]}, headers=headers)
    body = {k: v for k, v in party.items() if k not in ("key", "created_at", "updated_at")}
    return client.put(f"{base}/api/parties/{key}", json={**body, "active": True}, headers=headers)


def propagation(a: str, b: str, admin: str, guard: str, changes: int) -> tuple[list[float], list[float], int]:
    """(ms until B obeys, ms until A's write returned, writes A answered before its guard caught up)."""
    b_times: list[float] = []
    a_times: list[float] = []
    behind = 0
    with httpx.Client(timeout=30) as writer, httpx.Client(timeout=30) as checker:
        for n in range(changes):
            key = f"gen-proc-{n // 2:05d}"
            deactivate = n % 2 == 0
            if inactive(checker, b, guard, key) == deactivate:
                sys.exit(f"{key} is already {'in' if deactivate else ''}active on B")
            answer: dict[str, Any] = {}

            def send(key: str = key, deactivate: bool = deactivate, answer: dict[str, Any] = answer) -> None:
                started = time.monotonic()
                response = write(writer, a, admin, key, deactivate)
                answer["ms"] = (time.monotonic() - started) * 1000
                answer["response"] = response

            # The GET for the version is part of `send`; time B from the write itself as closely as we can:
            # from just before the thread starts (so B's figure includes the write's own latency).
            started = time.monotonic()
            thread = threading.Thread(target=send)
            thread.start()
            while inactive(checker, b, guard, key) != deactivate:
                if time.monotonic() - started > 30:
                    sys.exit(f"B did not obey the change to {key} within 30 s")
            b_ms = (time.monotonic() - started) * 1000
            thread.join()
            response: httpx.Response = answer["response"]
            if response.status_code != 200:
                sys.exit(f"the write answered {response.status_code}: {response.text}")
            if response.headers.get("Registry-Guard-Revision") != response.headers.get("Registry-Revision"):
                behind += 1
            a_times.append(answer["ms"])
            b_times.append(b_ms)
            print(
                f"  change {n + 1:2d}: {'deactivate' if deactivate else 'reactivate'} {key}: "
                f"A's write returned (A obeys) in {answer['ms']:7.1f} ms, B obeys after {b_ms:7.1f} ms",
                flush=True,
            )
            time.sleep(0.2)
    return b_times, a_times, behind


def check_latencies(base: str, token: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    body = probe("nordfrakt")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=60) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = client.post(f"{base}/api/guard/check", json=body, headers=headers)
            latencies.append((time.monotonic() - started) * 1000)
            if response.status_code != 200:
                sys.exit(f"a check answered {response.status_code}: {response.text}")
            time.sleep(0.005)
    return latencies


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def reports_while_checking(base: str, admin: str, guard: str, seconds: float) -> tuple[list[float], list[float], int]:
    # One report first: the report worker process starts on first use, and its start-up is not what is measured.
    started = time.monotonic()
    first = httpx.get(f"{base}/api/registry/findings", headers={"Authorization": f"Bearer {admin}"}, timeout=600)
    if first.status_code != 200:
        sys.exit(f"/api/registry/findings answered {first.status_code}: {first.text[:500]}")
    print(
        f"  first GET /api/registry/findings (report worker starting): {time.monotonic() - started:.1f} s, "
        f"{first.json()['count']} findings",
        flush=True,
    )
    idle = check_latencies(base, guard, seconds)
    stop = threading.Event()
    done = [0]

    def loop(path: str) -> None:
        with httpx.Client(timeout=300) as client:
            while not stop.is_set():
                response = client.get(f"{base}{path}", headers={"Authorization": f"Bearer {admin}"})
                if response.status_code != 200:
                    print(f"  {path} answered {response.status_code}", flush=True)
                done[0] += 1

    workers = [
        threading.Thread(target=loop, args=(path,), daemon=True)
        for path in ("/api/registry/findings", "/api/records/registry-csv.zip")
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # both reports under way
    busy = check_latencies(base, guard, seconds)
    stop.set()
    for worker in workers:
        worker.join(timeout=300)
    return idle, busy, done[0]


def run_size(args: argparse.Namespace, parties: int, with_reports: bool) -> list[tuple[str, float, float, str]]:
    name = f"registry_bench_{uuid.uuid4().hex[:10]}"
    url = gl.scratch_url(name)
    asyncio.run(gl.create_scratch(name))
    servers: list[Any] = []
    workdir = Path(tempfile.mkdtemp(prefix="propagation-bench-"))
    rows: list[tuple[str, float, float, str]] = []
    try:
        print(f"\n== {parties:,} parties: scratch database {name}", flush=True)
        guard_key, admin_key = asyncio.run(gl.prepare(url))
        document = gl.large_document(
            gl.seed_document(), parties, parties * args.agreements_per_party, random.Random(20261128)
        )
        started = time.monotonic()
        asyncio.run(gl.run_in_registry(url, lambda s: import_registry(s, parse_document(document), "bench")))
        print(
            f"registry: {len(document['parties']):,} parties, {len(document['agreements']):,} agreements "
            f"(imported in {time.monotonic() - started:.1f} s)",
            flush=True,
        )
        bases = []
        for label in ("A", "B"):
            port = gl.free_port()
            log_file = workdir / f"server-{label}.log"
            server = gl.start_server(url, port, log_file)
            servers.append(server)
            base = f"http://127.0.0.1:{port}"
            gl.wait_ready(base, server, log_file, timeout=600)
            bases.append(base)
            print(f"instance {label}: registry serve on {base} (pid {server.pid})", flush=True)
        wait_same_revision(bases)
        a, b = bases
        b_ms, a_ms, behind = propagation(a, b, admin_key, guard_key, args.changes)
        rows.append((f"{parties:,} parties: B obeys a change", statistics.median(b_ms), max(b_ms), "< 250 ms"))
        rows.append((f"{parties:,} parties: A obeys (write returned)", statistics.median(a_ms), max(a_ms), "< 250 ms"))
        print(f"  writes answered before A's guard caught up: {behind} of {len(a_ms)}")
        if with_reports:
            idle, busy, reports = reports_while_checking(a, admin_key, guard_key, args.report_seconds)
            print(
                f"  guard checks on A: idle p50 {p(idle, 0.5):.1f} ms p99 {p(idle, 0.99):.1f} ms ({len(idle)} checks); "
                f"with findings + CSV export running p50 {p(busy, 0.5):.1f} ms p99 {p(busy, 0.99):.1f} ms "
                f"({len(busy)} checks, {reports} reports finished)",
                flush=True,
            )
            rows.append((f"{parties:,} parties: check p50/p99, idle", p(idle, 0.5), p(idle, 0.99), "p99 ≤ 20 ms"))
            rows.append(
                (f"{parties:,} parties: check p50/p99, reports running", p(busy, 0.5), p(busy, 0.99), "p99 ≤ 20 ms")
            )
    finally:
        for server in servers:
            gl.stop_server(server)
        asyncio.run(gl.drop_scratch(name))
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000", help="registry sizes in parties (default 10000,50000)")
    parser.add_argument("--agreements-per-party", type=int, default=3)
    parser.add_argument("--changes", type=int, default=10, help="single writes per size (default 10)")
    parser.add_argument("--report-seconds", type=float, default=10.0, help="seconds of checks per phase (10)")
    parser.add_argument("--reports-at-every-size", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    for i, size in enumerate(int(s) for s in args.sizes.split(",")):
        rows += run_size(args, size, with_reports=i == 0 or args.reports_at_every_size)
    print(f"\n{'figure':<52} {'median/p50':>11} {'worst/p99':>10}  target   verdict")
    ok = True
    for label, middle, worst, target in rows:
        limit = TARGET_CHECK_P99_MS if "check" in label else TARGET_PROPAGATION_MS
        meets = worst <= limit if "check" in label else middle < limit
        if "idle" not in label:
            ok = ok and meets
        print(f"{label:<52} {middle:9.1f} ms {worst:7.1f} ms  {target:<8} {gl.verdict(meets)}")
    print("(propagation: the verdict is on the median; the worst is printed beside it)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
