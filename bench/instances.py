"""Do instances add up? 1, 2 and 3 `registry serve` instances on one database, in one run.

    uv run python bench/instances.py [--duration 8] [--rounds 2]

Creates a scratch database with the seed registry, starts three instances (`--workers 1` each, on free ports),
and in each round measures the guard with 1, then 2, then 3 of them under load: one wrk per instance, the 32
connections split among them, the request mix of bench/guard_load.py. Prints the total checks/s, its ratio to
one instance of the same round, the CPU per check of the servers (from /proc/<pid>/stat), and each instance's
decision-log writer summary (entries, group commits, entries a commit). See bench/README.md.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import guard_load

TARGET_TWO_OVER_ONE = 1.0  # on this 2-core machine: two must not serve less than one


def _own_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # (a process that ended meanwhile)
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def cpu_seconds(pid: int) -> float:
    """The CPU time of `registry serve` and every process below it: since issue 27 the checks are answered by a
    guard-role child of serve (and pages by a web-role child), not by the process started."""
    return _own_cpu_seconds(pid) + sum(cpu_seconds(child) for child in _children(pid))


def run(args: argparse.Namespace, count: int, servers: list[tuple[subprocess.Popen[bytes], str]], script: Path):
    """One measurement with the first `count` instances: (total checks/s, CPU µs per check, errors)."""
    used = servers[:count]
    connections = max(args.connections // count, 2)
    results: list[guard_load.Measurement] = []
    before = [cpu_seconds(server.pid) for server, _ in used]

    class Options:
        threads = max(args.threads // count, 1)

    Options.connections = connections  # type: ignore[attr-defined]

    def drive(base: str) -> None:
        output = guard_load.run_wrk(Options, f"{base}/api/guard/check", script, args.duration)  # type: ignore[arg-type]
        results.append(guard_load.parse_wrk(base, output))

    threads = [threading.Thread(target=drive, args=(base,)) for _, base in used]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = sum(cpu_seconds(server.pid) for server, _ in used) - sum(before)
    requests = sum(m.requests for m in results)
    return sum(m.requests_per_second for m in results), cpu / max(requests, 1) * 1e6, sum(m.errors for m in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    name = f"registry_bench_instances_{uuid.uuid4().hex[:8]}"
    url = guard_load.scratch_url(name)
    asyncio.run(guard_load.create_scratch(name))
    workdir = Path(tempfile.mkdtemp(prefix="instances-bench-"))
    servers: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        key, _ = asyncio.run(guard_load.prepare(url))
        for index in range(3):
            port = guard_load.free_port()
            log_file = workdir / f"server{index}.log"
            server = guard_load.start_server(url, port, log_file)
            servers.append((server, f"http://127.0.0.1:{port}"))
            guard_load.wait_ready(servers[-1][1], server, log_file, timeout=180)
        mix = guard_load.request_mix(guard_load.seed_document())
        for _, base in servers:
            guard_load.verify_mix(base, key, mix)
        script = guard_load.write_lua(workdir, [body for body, _ in mix], key)
        print(f"3 instances on {name}; wrk {args.connections} connections split among those measured", flush=True)
        for count in (1, 2, 3):  # warm-up
            run(argparse.Namespace(**{**vars(args), "duration": 2}), count, servers, script)
        rounds: list[dict[int, tuple[float, float, int]]] = []
        for number in range(1, args.rounds + 1):
            measured = {count: run(args, count, servers, script) for count in (1, 2, 3)}
            rounds.append(measured)
            print(
                f"  round {number}: "
                + "   ".join(
                    f"{count}: {rate:6.0f} checks/s, {cpu:5.1f} µs CPU a check"
                    for count, (rate, cpu, _) in measured.items()
                ),
                flush=True,
            )
    finally:
        for server, _ in servers:
            guard_load.stop_server(server)
        asyncio.run(guard_load.drop_scratch(name))
    print()
    print(f"{'instances':<10} {'checks/s':>9} {'vs one':>7} {'CPU µs/check':>13}")
    ok = True
    for count in (1, 2, 3):
        rate = statistics.median(r[count][0] for r in rounds)
        ratio = statistics.median(r[count][0] / r[1][0] for r in rounds)
        cpu = statistics.median(r[count][1] for r in rounds)
        print(f"{count:<10} {rate:>9.0f} {ratio:>7.2f} {cpu:>13.1f}")
        if count == 2:
            ok &= ratio >= TARGET_TWO_OVER_ONE
    errors = sum(r[c][2] for r in rounds for c in r)
    print(f"two over one: target >= {TARGET_TWO_OVER_ONE:g}  {'PASS' if ok else 'MISS'}; errors {errors}")
    for index, _ in enumerate(servers):
        text = (workdir / f"server{index}.log").read_text(errors="replace")
        summary = [line for line in text.splitlines() if "group commits" in line]
        print(f"instance {index + 1}: {summary[-1].split(' - ')[-1] if summary else '(no writer summary in its log)'}")
    return 0 if ok and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
