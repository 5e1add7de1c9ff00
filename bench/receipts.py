"""Receipts at 544,000 entries, and what building them costs the guard (issue 33).

The review found that at 544k entries each receipt hashed for 1.7 to 3.7 s on the event loop, and that two readers
(a read-only key suffices) pushed the guard's max latency from 95 ms to 1,929 ms. Receipts are now built from
the stored subtree roots in a worker process, one at a time per key. This measures, on `registry serve
--workers 1`:

1. one receipt (`GET /api/guard/decisions/{id}`, a `registry:read` key, asked for when the proofs worker is
   idle): cold (an entry not asked for before) and warm (the same entries again), median and max over
   `--receipts` random sealed entries;
2. the guard's p99 and max latency under wrk on `POST /api/guard/check` alone, and while two readers (two keys)
   fetch receipts back to back, in alternating rounds.

It creates a scratch database with `--entries` chained decision-log entries (filled as bench/verify_log.py
does) sealed by a checkpoint (which stores the subtree nodes), prints each figure beside its target and
`uptime` at the start and the end, stops the server it started and drops the scratch database, also on
failure. See bench/README.md.

    uv run python bench/receipts.py [--entries 544000] [--receipts 50] [--rounds 3] [--duration 8]
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_load import (
    admin_sql,
    free_port,
    prepare,
    request_mix,
    run_in_registry,
    scratch_url,
    seed_document,
    stop_server,
    wait_ready,
    write_lua,
)
from verify_log import append

from ledger.append import EMPTY_CHAIN
from ledger.checkpoint import load_or_create_signer
from ledger.proofs import MAX_REST_SECONDS
from ledger.seal import write_checkpoint
from registry.services.apikeys import create_api_key

TARGET_RECEIPT_MS = 50.0  # one receipt, cold or warm, median and max
TARGET_P99_WITH_READERS_OVER_ALONE = 1.25  # the guard's p99 while two readers fetch receipts, over alone
TARGET_MAX_WITH_READERS_MS = 100.0  # the guard's max latency while two readers fetch receipts
ORIGIN = "offix-registry/guard-decisions"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def decision_id(index: int) -> uuid.UUID:
    """The id bench/verify_log.py's `synthetic` gives entry `index`."""
    return uuid.UUID(int=index + 1, version=4)


async def fill(url: str, entries: int, key_file: Path) -> None:
    """`entries` chained entries of three writers, sealed by a checkpoint signed with the server's key."""
    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(plain)
    try:
        began = time.perf_counter()
        await append(connection, [EMPTY_CHAIN] * 3, entries)
        print(f"filled {entries:,} entries: {time.perf_counter() - began:.1f} s", flush=True)
        began = time.perf_counter()
        written = await write_checkpoint(connection, load_or_create_signer(key_file, ORIGIN))
        nodes = await connection.fetchval("SELECT count(*) FROM guard_log_node")
        print(
            f"checkpoint at size {written.checkpoint.size:,} ({nodes:,} stored subtree nodes):"
            f" {time.perf_counter() - began:.1f} s",
            flush=True,
        )
    finally:
        await connection.close()


def reader_key(number: int) -> Callable[[Any], Awaitable[str]]:
    """A `registry:read` key of its own for each reader (proofs are built one at a time per key)."""
    return lambda session: create_api_key(session, f"bench-reader-{number}", ["registry:read"], "bench")


def start_server(url: str, port: int, key_file: Path, log_file: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": url,
        "REGISTRY_SCHEDULER_ENABLED": "false",
        "REGISTRY_LOG_SIGNING_KEY_FILE": str(key_file),
        # No background checkpoint during the run: what is measured is receipts against the guard.
        "REGISTRY_CHECKPOINT_SECONDS": "0",
        "REGISTRY_DATA_DIR": str(log_file.parent),
    }
    registry = shutil.which("registry") or str(Path(sys.executable).parent / "registry")
    with log_file.open("wb") as log:
        return subprocess.Popen(
            [registry, "serve", "--workers", "1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def receipt_ms(client: httpx.Client, base: str, index: int) -> float:
    began = time.perf_counter()
    response = client.get(f"{base}/api/guard/decisions/{decision_id(index)}")
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != 200 or response.json()["inclusion_proof"] is None:
        sys.exit(f"receipt of entry {index}: HTTP {response.status_code} {response.text[:300]}")
    return elapsed


def asked_alone(client: httpx.Client, base: str, index: int) -> float:
    """A receipt asked for when the worker is idle: after its rest from the last proof (ledger/proofs.py)."""
    time.sleep(MAX_REST_SECONDS + 0.05)
    return receipt_ms(client, base, index)


@dataclass
class Readers:
    """Two readers, each with its own key, fetching receipts of random entries back to back."""

    base: str
    keys: list[str]
    entries: int
    stop: threading.Event = field(default_factory=threading.Event)
    times: list[float] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def _read(self, key: str, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            while not self.stop.is_set():
                self.times.append(receipt_ms(client, self.base, rng.randrange(self.entries)))

    def __enter__(self) -> "Readers":
        self.stop.clear()
        self.times = []
        self.threads = [
            threading.Thread(target=self._read, args=(key, number), daemon=True) for number, key in enumerate(self.keys)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


@dataclass(frozen=True)
class Load:
    p99_ms: float
    max_ms: float
    requests_per_second: float
    errors: int


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        sys.exit(f"could not read a latency from {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def wrk(args: argparse.Namespace, url: str, script: Path, seconds: int) -> Load:
    # A 30 s timeout: wrk leaves answers slower than its timeout (2 s by default) out of the latencies.
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency", "--timeout=30s"]
    output = subprocess.run([*command, "-s", str(script), url], check=True, capture_output=True, text=True).stdout
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", output)
    p99 = re.search(r"\s99%\s+(\S+)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if latency is None or p99 is None or rate is None:
        sys.exit(f"could not read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return Load(_ms(p99.group(1)), _ms(latency.group(3)), float(rate.group(1)), errors)


def summary(label: str, times: list[float]) -> tuple[float, float]:
    median, worst = statistics.median(times), max(times)
    print(f"  {label:<34} median {median:8.1f} ms   max {worst:8.1f} ms   ({len(times)} receipts)")
    return median, worst


def run(args: argparse.Namespace) -> bool:
    name = f"registry_bench_receipts_{uuid.uuid4().hex[:8]}"
    url = scratch_url(name)
    workdir = Path(tempfile.mkdtemp(prefix="receipts-bench-"))
    key_file = workdir / "log-signing.key"
    server: subprocess.Popen[bytes] | None = None
    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        print(f"scratch database {name}", flush=True)
        guard_key, _ = asyncio.run(prepare(url))
        readers = [
            asyncio.run(
                run_in_registry(url, lambda s, n=n: create_api_key(s, f"bench-reader-{n}", ["registry:read"], "b"))
            )
            for n in range(2)
        ]
        asyncio.run(fill(url, args.entries, key_file))

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_file = workdir / "server.log"
        server = start_server(url, port, key_file, log_file)
        wait_ready(base, server, log_file, timeout=120)
        print(f"registry serve --workers 1 on {base} (pid {server.pid}); server log {log_file}", flush=True)

        # 1. One receipt at a time, cold then warm.
        rng = random.Random(544)
        picked = rng.sample(range(args.entries), args.receipts)
        with httpx.Client(headers={"Authorization": f"Bearer {readers[0]}"}, timeout=60) as client:
            first = receipt_ms(client, base, args.entries - 1)  # (starts the proofs worker process)
            cold = [asked_alone(client, base, index) for index in picked]
            warm = [asked_alone(client, base, index) for index in picked]
        print(
            f"\nreceipts (GET /api/guard/decisions/{{id}}, one at a time; the first, {first:.0f} ms, starts the worker)"
        )
        cold_median, cold_max = summary("cold (entries not asked for yet)", cold)
        warm_median, warm_max = summary("warm (the same entries again)", warm)

        # 2. The guard under wrk, alone and with two readers, in alternating rounds.
        mix = request_mix(seed_document())
        script = write_lua(workdir, [body for body, _ in mix], guard_key)
        check_url = f"{base}/api/guard/check"
        wrk(args, check_url, script, args.warmup)
        load = Readers(base, readers, args.entries)
        alone: list[Load] = []
        loaded: list[Load] = []
        during: list[float] = []
        print(
            f"\nguard under wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds"
            " of alone then with two readers:"
        )
        for number in range(args.rounds):
            alone.append(wrk(args, check_url, script, args.duration))
            with load:
                loaded.append(wrk(args, check_url, script, args.duration))
            during += load.times
            for label, got in (("alone", alone[-1]), ("with two readers", loaded[-1])):
                print(
                    f"  round {number + 1} {label:<17} p99 {got.p99_ms:7.1f} ms  max {got.max_ms:7.1f} ms"
                    f"  {got.requests_per_second:7.0f} req/s  errors {got.errors}"
                )
            print(f"  round {number + 1} readers fetched {len(load.times)} receipts", flush=True)
        if during:
            summary("receipts fetched under the load", during)

        p99_alone = statistics.median(x.p99_ms for x in alone)
        p99_loaded = statistics.median(x.p99_ms for x in loaded)
        max_alone = max(x.max_ms for x in alone)
        max_loaded = max(x.max_ms for x in loaded)
        errors = sum(x.errors for x in alone + loaded)
        ratio = p99_loaded / p99_alone
        target = f"≤ {TARGET_RECEIPT_MS:g} ms"
        checks = [
            ("receipt, cold, median", f"{cold_median:.1f} ms", target, cold_median <= TARGET_RECEIPT_MS),
            ("receipt, cold, max", f"{cold_max:.1f} ms", target, cold_max <= TARGET_RECEIPT_MS),
            ("receipt, warm, median", f"{warm_median:.1f} ms", target, warm_median <= TARGET_RECEIPT_MS),
            ("receipt, warm, max", f"{warm_max:.1f} ms", target, warm_max <= TARGET_RECEIPT_MS),
            (
                "guard p99 with readers / alone",
                f"{ratio:.2f} ({p99_loaded:.1f} / {p99_alone:.1f} ms, medians of the rounds)",
                f"≤ {TARGET_P99_WITH_READERS_OVER_ALONE:g}",
                ratio <= TARGET_P99_WITH_READERS_OVER_ALONE,
            ),
            (
                "guard max with readers",
                f"{max_loaded:.1f} ms (alone: {max_alone:.1f} ms)",
                f"≤ {TARGET_MAX_WITH_READERS_MS:g} ms",
                max_loaded <= TARGET_MAX_WITH_READERS_MS,
            ),
            ("errors (non-2xx, socket)", str(errors), "0", errors == 0),
        ]
        print(f"\n{'figure':<32} {'measured':<44} {'target':<10} verdict")
        for label, measured, target, ok in checks:
            print(f"{label:<32} {measured:<44} {target:<10} {verdict(ok)}")
        return all(ok for *_, ok in checks)
    finally:
        if server is not None:
            stop_server(server)
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"scratch database {name} dropped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=544_000)
    parser.add_argument("--receipts", type=int, default=50, help="random entries whose receipts are timed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the guard alone, then with two readers")
    parser.add_argument("--duration", type=int, default=8, help="seconds of wrk per slice of a round")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before the rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    print(f"uptime at start: {uptime()}", flush=True)
    try:
        ok = run(args)
    finally:
        print(f"uptime at end:   {uptime()}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
