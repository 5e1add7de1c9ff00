"""Guard load with data subjects' objections and restrictions: `POST /api/guard/check` naming a person in every
request, before and after 100,000 objections and 100,000 restrictions are loaded.

Run from the repository root:

    uv run python bench/guard_objections.py

It creates a scratch database, loads the seed registry, starts `registry serve --workers 1` on a free port and
drives it with `wrk`, each phase as rounds of the bare JSON endpoint then the guard, side by side:

1. the guard with every request naming a person (`subject_ref`), no objection recorded;
2. the same requests once 100,000 objections are imported (`POST /api/objections/import`, a mail tool's
   unsubscribe list), a tenth of the persons in the mix among them (so part of the mix is now denied with
   SUBJECT_OBJECTED), and 100,000 restrictions (`POST /api/restrictions/import`, Art. 18), another tenth of the
   persons in the mix among them (denied with SUBJECT_RESTRICTED whatever the purpose). `--restrictions 0`
   measures the objections alone, as before.

It prints the table and the figures beside their targets: guard/bare >= 0.5 and p99 <= 10 ms with the
objections loaded, and the with/without objections throughput ratio >= 0.9 (each phase against the bare
endpoint of its own rounds, as bench/guard_load.py does for the large registry). See bench/README.md.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import guard_load as load  # noqa: E402

TARGET_GUARD_OVER_BARE = load.TARGET_GUARD_OVER_BARE
TARGET_GUARD_P99_MS = load.TARGET_GUARD_P99_MS
TARGET_OBJECTIONS_OVER_NONE = 0.9
OBJECTIONS = 100_000
PERSONS_IN_MIX = 200
OBJECTED_IN_MIX = 20  # a tenth of the persons the mix names objected to marketing
RESTRICTIONS = 100_000
RESTRICTED_IN_MIX = 20  # another tenth is restricted (persons OBJECTED_IN_MIX … OBJECTED_IN_MIX + 19)


def person(number: int) -> str:
    return f"Customer.{number:06d}@Example.SE"


def subject_mix(seed: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every body of guard_load's allowed mix, each naming a different person in turn; and one marketing body
    (the probe) for watching objections arrive."""
    allowed = [body for body, ok in load.request_mix(seed) if ok]
    bodies = [{**allowed[i % len(allowed)], "subject_ref": person(i)} for i in range(PERSONS_IN_MIX)]
    marketing = next(b for b in allowed if b["purpose"].startswith("marketing"))
    return bodies, marketing


def unsubscribe_csv(count: int) -> bytes:
    """A mail tool's export: the first OBJECTED_IN_MIX persons of the mix, then other addresses."""
    rows = ["Email Address,UNSUB_TIME"]
    rows += [f"{person(i)},2026-10-01 10:00:00" for i in range(OBJECTED_IN_MIX)]
    rows += [f"unsubscribed.{i:07d}@example.org,2026-10-02 11:00:00" for i in range(count - OBJECTED_IN_MIX)]
    return ("\r\n".join(rows) + "\r\n").encode()


def restriction_csv(count: int) -> bytes:
    """A list of restricted people: RESTRICTED_IN_MIX persons of the mix, then other addresses."""
    rows = ["email,received_on"]
    rows += [f"{person(OBJECTED_IN_MIX + i)},2026-10-03" for i in range(min(RESTRICTED_IN_MIX, count))]
    rows += [f"restricted.{i:07d}@example.org,2026-10-04" for i in range(count - min(RESTRICTED_IN_MIX, count))]
    return ("\r\n".join(rows) + "\r\n").encode()


def import_objections(base: str, token: str, content: bytes, what: str = "objections") -> dict[str, int]:
    response = httpx.post(
        f"{base}/api/{what}/import",
        content=content,
        params={"source": f"bench {what} list"},
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        timeout=600,
    )
    if response.status_code != 201:
        sys.exit(f"the import answered {response.status_code}: {response.text[:2000]}")
    summary: dict[str, int] = response.json()
    return summary


def measure_pair(
    args: argparse.Namespace, bare: tuple[str, str], guard: tuple[str, str, Path]
) -> tuple[load.Series, load.Series]:
    """`args.rounds` rounds of a bare slice then a guard slice (guard_load's pairing, without its floor)."""
    (bare_label, bare_url), (guard_label, guard_url, script) = bare, guard
    load.run_wrk(args, bare_url, None, args.warmup)
    load.run_wrk(args, guard_url, script, args.warmup)
    bare_slices: list[load.Measurement] = []
    guard_slices: list[load.Measurement] = []
    for round_number in range(1, args.rounds + 1):
        bare_slices.append(load.parse_wrk(bare_label, load.run_wrk(args, bare_url, None, args.duration)))
        guard_slices.append(load.parse_wrk(guard_label, load.run_wrk(args, guard_url, script, args.duration)))
        b, g = bare_slices[-1], guard_slices[-1]
        print(
            f"  round {round_number}: bare {b.requests_per_second:>6.0f} req/s   guard {g.requests_per_second:>6.0f}"
            f" req/s (p99 {g.p99_ms:5.2f} ms)   guard/bare {g.requests_per_second / b.requests_per_second:4.2f}",
            flush=True,
        )
    return load.Series(bare_label, tuple(bare_slices)), load.Series(guard_label, tuple(guard_slices))


def report(
    bare_none: load.Series,
    none: load.Series,
    bare_loaded: load.Series,
    loaded: load.Series,
    count: int,
    restrictions: int = 0,
) -> bool:
    print()
    print(f"{'endpoint':<58} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'worst p99':>9} {'requests':>9} {'errors':>6}")
    for m in (bare_none, none, bare_loaded, loaded):
        print(
            f"{m.label:<58} {m.requests_per_second:>7.0f} {m.p50_ms:>7.2f} {m.p99_ms:>7.2f} {m.worst_p99_ms:>9.2f} "
            f"{m.requests:>9} {m.errors:>6}"
        )
    none_over_bare = load.paired_ratio(none, bare_none)
    loaded_over_bare = load.paired_ratio(loaded, bare_loaded)
    ratio = loaded_over_bare / none_over_bare
    loaded_name = f"{count // 1000:,}k obj." + (f" + {restrictions // 1000:,}k restr." if restrictions else "")
    checks = [
        (f"guard/bare, {loaded_name} {loaded_over_bare:6.2f}", f">= {TARGET_GUARD_OVER_BARE}",
         loaded_over_bare >= TARGET_GUARD_OVER_BARE),
        (f"guard p99, {loaded_name}  {loaded.p99_ms:6.2f} ms", f"<= {TARGET_GUARD_P99_MS} ms",
         loaded.p99_ms <= TARGET_GUARD_P99_MS),
        (f"loaded/none loaded              {ratio:6.2f}", f">= {TARGET_OBJECTIONS_OVER_NONE}",
         ratio >= TARGET_OBJECTIONS_OVER_NONE),
        ("errors (non-2xx, socket)", "== 0",
         bare_none.errors + none.errors + bare_loaded.errors + loaded.errors == 0),
    ]  # fmt: skip
    print()
    print(f"guard/bare without objections: {none_over_bare:.2f}; raw throughput ratio without the pairing: "
          f"{loaded.requests_per_second / none.requests_per_second:.2f}")  # fmt: skip
    for figure, target, ok in checks:
        print(f"{figure:<44} target {target:<10} {load.verdict(ok)}")
    return all(ok for _, _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    load.add_load_options(parser)
    parser.add_argument("--objections", type=int, default=OBJECTIONS)
    parser.add_argument("--restrictions", type=int, default=RESTRICTIONS)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")

    name = f"registry_bench_{uuid.uuid4().hex[:10]}"
    url = load.scratch_url(name)
    asyncio.run(load.create_scratch(name))
    server: subprocess.Popen[bytes] | None = None
    workdir = Path(tempfile.mkdtemp(prefix="guard-objections-bench-"))
    # The server's subject key for this run only: no key file is left behind in the repository.
    os.environ["REGISTRY_SUBJECT_KEY"] = uuid.uuid4().hex + uuid.uuid4().hex
    try:
        print(f"scratch database {name}; loading the seed registry", flush=True)
        guard_key, admin_key = asyncio.run(load.prepare(url))
        port = load.free_port()
        base = f"http://127.0.0.1:{port}"
        log_file = workdir / "server.log"
        server = load.start_server(url, port, log_file)
        load.wait_ready(base, server, log_file)
        print(f"registry serve --workers 1 on {base} (pid {server.pid}); server log {log_file}", flush=True)

        bodies, probe = subject_mix(load.seed_document())
        if not all(load.check(base, guard_key, body)["allowed"] for body in bodies):
            sys.exit("the mix is not allowed before any objection: the benchmark would measure denials")
        script = load.write_lua(workdir, bodies, guard_key)
        check_url = f"{base}/api/guard/check"
        bare_url = f"{base}/health/live"
        print(f"request mix: {len(bodies)} bodies, each naming another person; wrk -t{args.threads} "
              f"-c{args.connections}, {args.rounds} rounds of {args.duration} s")  # fmt: skip
        bare_none, none = measure_pair(
            args,
            ("GET /health/live (bare JSON), no objections", bare_url),
            ("POST /api/guard/check with subject_ref, no objections", check_url, script),
        )

        content = unsubscribe_csv(args.objections)
        started = time.monotonic()
        summary = import_objections(base, admin_key, content)
        print(f"imported {summary} ({len(content) / 1e6:.1f} MB CSV) in {time.monotonic() - started:.1f} s",
              flush=True)  # fmt: skip
        objected = load.check(base, guard_key, {**probe, "subject_ref": person(0)})
        if [r["code"] for r in objected["reasons"]] != ["SUBJECT_OBJECTED"]:
            sys.exit(f"the guard does not obey the imported objections: {json.dumps(objected)}")
        if args.restrictions:
            content = restriction_csv(args.restrictions)
            started = time.monotonic()
            summary = import_objections(base, admin_key, content, "restrictions")
            print(f"imported restrictions {summary} ({len(content) / 1e6:.1f} MB CSV) in "
                  f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
            restricted = load.check(
                base, guard_key, {**bodies[OBJECTED_IN_MIX], "subject_ref": person(OBJECTED_IN_MIX)}
            )
            if [r["code"] for r in restricted["reasons"]] != ["SUBJECT_RESTRICTED"]:
                sys.exit(f"the guard does not obey the imported restrictions: {json.dumps(restricted)}")
        denied = sum(not load.check(base, guard_key, body)["allowed"] for body in bodies)
        print(f"after the imports the guard denies {denied} of the {len(bodies)} bodies (SUBJECT_OBJECTED, "
              "SUBJECT_RESTRICTED)")  # fmt: skip

        loaded_label = f"{args.objections:,} objections" + (
            f", {args.restrictions:,} restrictions" if args.restrictions else ""
        )
        bare_loaded, loaded = measure_pair(
            args,
            ("GET /health/live (bare JSON), subjects loaded", bare_url),
            (f"POST /api/guard/check, {loaded_label}", check_url, script),
        )
        return 0 if report(bare_none, none, bare_loaded, loaded, args.objections, args.restrictions) else 1
    finally:
        if server is not None:
            load.stop_server(server)
        asyncio.run(load.drop_scratch(name))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
