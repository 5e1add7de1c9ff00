"""What the metrics add to a guard check under `registry serve` (kernel/counters.py): prometheus-client in its
multiprocess mode, each increment written to a memory-mapped file. A microbenchmark: per answered check, one
observation of `guard_check_duration_seconds` (tallied in the process, flushed to its metric once a second);
per group commit, `counters.committed` (here with one decision
and one deny reason, the most a single check's commit costs). Run in a child process whose
PROMETHEUS_MULTIPROC_DIR is set before prometheus-client is imported, as `registry serve` does.

    uv run python bench/metrics_cost.py
"""

import os
import subprocess
import sys
import tempfile

TARGET_MICROSECONDS = 5.0  # per check: a twentieth of a check's CPU time at 10,000 checks/s on one core

CHILD = """
import asyncio
import sys
import time
from kernel import counters

batch = int(sys.argv[1])  # decisions per group commit: 1 when checks come one at a time, tens under load
n = 50_000
outcome = [(False, [{"code": "RECIPIENT_UNKNOWN"}])] * batch

async def measure():
    # On an event loop, as in the server: the check histogram is tallied and reaches its metric once a second,
    # here every 10,000 checks (a second of checks at 10,000 a second).
    for _ in range(2):  # warm up, then measure
        started = time.perf_counter()
        for i in range(n):
            counters.CHECK_SECONDS.observe(0.004)
            if i % batch == 0:
                counters.committed(outcome, 0.002)
            if i % 10_000 == 9_999:
                counters.flush()
        took = time.perf_counter() - started
    return took

print(f"{asyncio.run(measure()) / n * 1e6:.2f}")
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        for batch in (1, 50):
            runs = [
                float(
                    subprocess.run(
                        [sys.executable, "-c", CHILD, str(batch)], env=env, check=True, capture_output=True, text=True
                    ).stdout
                )
                for _ in range(3)
            ]
            print(
                f"metrics per check, {batch:>2} decision(s) a commit, best of 3: {min(runs):.2f} µs"
                f"   target ≤ {TARGET_MICROSECONDS} µs   (runs: {', '.join(f'{r:.2f}' for r in runs)})"
            )
    with open("/proc/loadavg") as load:
        print(f"load average: {load.read().split()[0]}")


if __name__ == "__main__":
    main()
