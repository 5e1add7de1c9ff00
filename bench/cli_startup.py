"""How long the `registry` command takes to start: `registry --help` (target < 0.5 s) and, for comparison, a
sub-system's own help, which imports that sub-system. Each figure is the median wall and CPU time of
`--runs` fresh processes (the console script, as a user runs it).

    uv run python bench/cli_startup.py [--runs 15]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

TARGET_HELP_SECONDS = 0.5


def timed(argv: list[str], runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    registry = shutil.which("registry", path=os.path.dirname(sys.executable)) or shutil.which("registry")
    if registry is None:
        print("the `registry` console script is not installed (run through `uv run`)", file=sys.stderr)
        return 2
    timed([registry, "--help"], 2)  # warm the file cache
    rows = [
        ("registry --help", [registry, "--help"], TARGET_HELP_SECONDS),
        ("registry guard --help", [registry, "guard", "--help"], None),
        ("registry user --help", [registry, "user", "--help"], None),
        ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"], None),
    ]
    ok = True
    print(f"{'command':40} {'wall (median)':>14} {'CPU (median)':>13}  target")
    for label, argv, target in rows:
        wall, cpu = timed(argv, args.runs)
        verdict = ""
        if target is not None:
            met = wall < target
            ok &= met
            verdict = f"< {target:.1f} s {'MET' if met else 'MISSED'}"
        print(f"{label:40} {wall:>12.3f} s {cpu:>11.3f} s  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
