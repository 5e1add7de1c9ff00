"""Every module of the product imports on its own, in a fresh interpreter.

A module that imports only when another was imported first hides an import cycle: the CLI would work
and a new entry point, a tool or a test importing that module alone would fail.

Starting a new interpreter per module costs seconds each, nearly all of it importing the same third-party
libraries. So one fresh interpreter learns which libraries our modules use (in a child that imports them
all), imports those libraries and none of ours, then forks one child per module: each child starts with
nothing of `guard` or `registry` imported, as a fresh interpreter would, and imports its one module.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernel", "ledger", "guard", "registry", "web", "cli")

FORK_EACH = r"""
import importlib, json, os, sys, traceback
# Our packages by their absolute folder: `-c` puts "" (the working folder) first on sys.path, and whatever
# changes the working folder while the children import (seen once on Python 3.12: every module after some
# point failed with "No module named 'registry'") would make each later import of ours fail.
sys.path.insert(0, sys.argv[3])
modules, at_once = sys.argv[1].split(","), int(sys.argv[2])
ours = lambda name: name.split(".")[0] in ("kernel", "ledger", "guard", "registry", "web", "cli")

def in_child(work):
    # Runs `work` in a forked child; returns (exit status, what it wrote).
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        code = 0
        try:
            out = work()
        except BaseException:
            out, code = traceback.format_exc()[-8000:], 1
        with os.fdopen(write, "w") as pipe:
            pipe.write(out)
        os._exit(code)
    os.close(write)
    return child, read

def collect(child, read):
    with os.fdopen(read) as pipe:  # read before waiting: the child may write more than a pipe holds
        out = pipe.read()
    _, status = os.waitpid(child, 0)
    return status, out

def libraries():
    for module in modules:
        try:
            importlib.import_module(module)
        except BaseException:
            pass  # reported below, in that module's own child
    return "\n".join(name for name in list(sys.modules) if not ours(name))

_, names = collect(*in_child(libraries))
for name in names.splitlines():
    try:
        importlib.import_module(name)
    except BaseException:
        pass  # a library's optional part; whoever needs it imports it again in its child
assert not any(ours(name) for name in sys.modules), "a library imported one of our modules"

failures, running = {}, []
for module in modules:
    if len(running) >= at_once:
        done_module, child, read = running.pop(0)
        status, out = collect(child, read)
        if status != 0:
            failures[done_module] = out or f"exit status {status}"
    running.append((module, *in_child(lambda: importlib.import_module(module) and "")))
for done_module, child, read in running:
    status, out = collect(child, read)
    if status != 0:
        failures[done_module] = out or f"exit status {status}"
print(json.dumps(failures))
"""


def every_module() -> list[str]:
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":  # running it starts the CLI; importing it alone is not its use
                continue
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_every_module_of_the_product_imports_on_its_own_in_a_fresh_interpreter() -> None:
    modules = every_module()
    assert "guard.policy" in modules and "cli.main" in modules
    done = subprocess.run(
        [sys.executable, "-c", FORK_EACH, ",".join(modules), str(max(2, os.cpu_count() or 2)), str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert failures == {}
