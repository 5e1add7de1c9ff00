"""Guard load with data subjects' objections and restrictions: `POST /api/guard/check` naming a person in every
request, before and after 100,000 objections and 100,000 restrictions are loaded.

Run from the repository root:

    uv run python bench/guard_objections.py

It creates two scratch databases with the seed registry and starts a `registry serve --workers 1` on each: one
with no data subject recorded, and one into which it imports 100,000 objections (`POST /api/objections/import`, a
mail tool's unsubscribe list; a tenth of the persons in the mix among them, so part of the mix is now denied
with SUBJECT_OBJECTED) and 100,000 restrictions (`POST /api/restrictions/import`, Art. 18; another tenth of the
persons in the mix, denied with SUBJECT_RESTRICTED whatever the purpose). `--restrictions 0` loads the
objections alone. Every request names a person (`subject_ref`). It then drives both with `wrk`, round by round,
a bare JSON slice and a guard slice on each server, the servers' order alternating from round to round.

It prints the table and the figures beside their targets: guard/bare >= 0.5 and p99 <= 10 ms with the subjects
loaded, and loaded/none >= 0.9: the median over rounds of the loaded server's guard throughput over the empty
one's in the same round (an earlier version measured the empty phase, then imported, then the loaded phase, a
minute or more later, and paired each through its bare endpoint: on this machine's drift the ratio spread from
0.80 to 0.90 over four runs). See bench/README.md.
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


def measure_interleaved(
    args: argparse.Namespace, servers: tuple[tuple[str, str, Path], tuple[str, str, Path]]
) -> tuple[load.Series, load.Series, load.Series, load.Series]:
    """`args.rounds` rounds over the two servers side by side, each round a bare slice then a guard slice of
    each, the servers' order alternating (A B, B A, …) so that a drift of the machine's speed within a round
    weighs on both alike. Both servers run the whole time; the one not measured idles."""
    warm_up_done = False
    slices: dict[str, list[load.Measurement]] = {key: [] for key in ("bare_none", "none", "bare_loaded", "loaded")}
    labels = {
        "bare_none": "GET /health/live (bare JSON), no subjects recorded",
        "none": "POST /api/guard/check with subject_ref, no subjects recorded",
        "bare_loaded": "GET /health/live (bare JSON), subjects loaded",
        "loaded": f"POST /api/guard/check, {servers[1][0]}",
    }
    (_, none_base, none_script), (_, loaded_base, loaded_script) = servers
    plan = {
        "none": (f"{none_base}/health/live", f"{none_base}/api/guard/check", none_script, "bare_none", "none"),
        "loaded": (
            f"{loaded_base}/health/live",
            f"{loaded_base}/api/guard/check",
            loaded_script,
            "bare_loaded",
            "loaded",
        ),
    }
    for round_number in range(1, args.rounds + 1):
        order = ("none", "loaded") if round_number % 2 else ("loaded", "none")
        for server in order:
            bare_url, check_url, script, bare_key, guard_key = plan[server]
            if not warm_up_done:
                load.run_wrk(args, bare_url, None, args.warmup)
                load.run_wrk(args, check_url, script, args.warmup)
            slices[bare_key].append(load.parse_wrk(labels[bare_key], load.run_wrk(args, bare_url, None, args.duration)))
            slices[guard_key].append(
                load.parse_wrk(labels[guard_key], load.run_wrk(args, check_url, script, args.duration))
            )
        warm_up_done = True
        n, ld = slices["none"][-1], slices["loaded"][-1]
        print(
            f"  round {round_number} ({' then '.join(order)}): guard, none {n.requests_per_second:>6.0f} req/s"
            f" (p99 {n.p99_ms:5.2f} ms)   loaded {ld.requests_per_second:>6.0f} req/s (p99 {ld.p99_ms:5.2f} ms)"
            f"   loaded/none {ld.requests_per_second / n.requests_per_second:4.2f}",
            flush=True,
        )
    series = {key: load.Series(labels[key], tuple(found)) for key, found in slices.items()}
    return series["bare_none"], series["none"], series["bare_loaded"], series["loaded"]


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
    # The two servers' guard slices of a round are taken seconds apart, each server first in every other round:
    # their ratio needs no bare endpoint to pair through.
    ratio = load.paired_ratio(loaded, none)
    loaded_name = f"{count // 1000:,}k obj." + (f" + {restrictions // 1000:,}k restr." if restrictions else "")
    checks = [
        (f"guard/bare, {loaded_name} {loaded_over_bare:6.2f}", f">= {TARGET_GUARD_OVER_BARE}",
         loaded_over_bare >= TARGET_GUARD_OVER_BARE),
        (f"guard p99, {loaded_name}  {loaded.p99_ms:6.2f} ms", f"<= {TARGET_GUARD_P99_MS} ms",
         loaded.p99_ms <= TARGET_GUARD_P99_MS),
        (f"loaded/none (interleaved rounds) {ratio:6.2f}", f">= {TARGET_OBJECTIONS_OVER_NONE}",
         ratio >= TARGET_OBJECTIONS_OVER_NONE),
        ("errors (non-2xx, socket)", "== 0",
         bare_none.errors + none.errors + bare_loaded.errors + loaded.errors == 0),
    ]  # fmt: skip
    print()
    print(f"guard/bare without subjects: {none_over_bare:.2f}; loaded/none through each server's bare endpoint: "
          f"{loaded_over_bare / none_over_bare:.2f}")  # fmt: skip
    for figure, target, ok in checks:
        print(f"{figure:<44} target {target:<10} {load.verdict(ok)}")
    return all(ok for _, _, ok in checks)


def start_registry(name: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str, str, str]:
    """A scratch database with the seed registry and a `registry serve --workers 1` on it: the server, its base
    address, a guard:check key and an admin key."""
    url = load.scratch_url(name)
    asyncio.run(load.create_scratch(name))
    guard_key, admin_key = asyncio.run(load.prepare(url))
    port = load.free_port()
    base = f"http://127.0.0.1:{port}"
    log_file = workdir / f"{name}.log"
    server = load.start_server(url, port, log_file)
    load.wait_ready(base, server, log_file)
    print(f"registry serve --workers 1 on {base} (pid {server.pid}), database {name}; log {log_file}", flush=True)
    return server, base, guard_key, admin_key


def load_subjects(args: argparse.Namespace, base: str, guard_key: str, admin_key: str, probe: dict[str, Any],
                  bodies: list[dict[str, Any]]) -> None:  # fmt: skip
    """Import the objections (and restrictions) into the registry at `base` and check that its guard obeys them."""
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
        restricted = load.check(base, guard_key, {**bodies[OBJECTED_IN_MIX], "subject_ref": person(OBJECTED_IN_MIX)})
        if [r["code"] for r in restricted["reasons"]] != ["SUBJECT_RESTRICTED"]:
            sys.exit(f"the guard does not obey the imported restrictions: {json.dumps(restricted)}")
    denied = sum(not load.check(base, guard_key, body)["allowed"] for body in bodies)
    print(f"after the imports the guard denies {denied} of the {len(bodies)} bodies (SUBJECT_OBJECTED, "
          "SUBJECT_RESTRICTED)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    load.add_load_options(parser)
    parser.set_defaults(rounds=6)
    parser.add_argument("--objections", type=int, default=OBJECTIONS)
    parser.add_argument("--restrictions", type=int, default=RESTRICTIONS)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")

    run = uuid.uuid4().hex[:8]
    names = (f"registry_bench_{run}_none", f"registry_bench_{run}_loaded")
    servers: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="guard-objections-bench-"))
    # The servers' subject key for this run only: no key file is left behind in the repository.
    os.environ["REGISTRY_SUBJECT_KEY"] = uuid.uuid4().hex + uuid.uuid4().hex
    try:
        bodies, probe = subject_mix(load.seed_document())
        started = []
        for name in names:
            print(f"scratch database {name}: loading the seed registry", flush=True)
            server, base, guard_key, admin_key = start_registry(name, workdir)
            servers.append(server)
            if not all(load.check(base, guard_key, body)["allowed"] for body in bodies):
                sys.exit("the mix is not allowed before any objection: the benchmark would measure denials")
            script = workdir / name / "guard_check.lua"
            script.parent.mkdir()
            started.append((base, guard_key, admin_key, load.write_lua(script.parent, bodies, guard_key)))
        (none_base, _, _, none_script), (loaded_base, loaded_guard, loaded_admin, loaded_script) = started
        load_subjects(args, loaded_base, loaded_guard, loaded_admin, probe, bodies)

        loaded_label = f"{args.objections:,} objections" + (
            f", {args.restrictions:,} restrictions" if args.restrictions else ""
        )
        print(f"request mix: {len(bodies)} bodies, each naming another person; wrk -t{args.threads} "
              f"-c{args.connections}, {args.rounds} rounds of {args.duration} s slices; load average "
              f"{os.getloadavg()[0]:.2f}")  # fmt: skip
        bare_none, none, bare_loaded, loaded = measure_interleaved(
            args, (("no subjects", none_base, none_script), (loaded_label, loaded_base, loaded_script))
        )
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
        return 0 if report(bare_none, none, bare_loaded, loaded, args.objections, args.restrictions) else 1
    finally:
        for server in servers:
            load.stop_server(server)
        for name in names:
            asyncio.run(load.drop_scratch(name))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
