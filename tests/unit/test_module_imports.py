"""Every module of the registry and the guard imports on its own, in a fresh interpreter.

A module that imports only when another was imported first hides an import cycle: the CLI would work
and a new entry point, a tool or a test importing that module alone would fail.

Starting a new interpreter per module costs a few seconds each, nearly all of it importing the same
third-party libraries. So one fresh interpreter imports those libraries (none of ours), then forks one
child per module: each child starts with none of `guard` or `registry` imported, as a fresh interpreter
would, and imports its one module.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("guard", "registry")

# Libraries only: importing them first changes nothing about the order our own modules import in.
THIRD_PARTY = (
    "asyncpg",
    "click",
    "cryptography",
    "fideslang",
    "httpx",
    "jinja2",
    "litestar",
    "msgspec",
    "pycountry",
    "pydantic",
    "sqlalchemy",
    "sqlmodel",
    "yaml",
)

FORK_EACH = r"""
import importlib, json, os, sys, traceback
for library in sys.argv[2].split(","):
    importlib.import_module(library)
assert not any(name.split(".")[0] in ("guard", "registry") for name in sys.modules)
at_once = int(sys.argv[3])
failures, running = {}, {}

def reap():
    child, status = os.wait()
    module, read = running.pop(child)
    with os.fdopen(read, "rb") as pipe:  # a traceback fits in the pipe's buffer: the child never blocks on it
        message = pipe.read().decode()
    if status != 0:
        failures[module] = message or f"exit status {status}"

for module in sys.argv[1].split(","):
    while len(running) >= at_once:
        reap()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        code = 0
        try:
            importlib.import_module(module)
        except BaseException:
            os.write(write, traceback.format_exc()[-8000:].encode())
            code = 1
        os._exit(code)
    os.close(write)
    running[child] = (module, read)
while running:
    reap()
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


def test_every_module_of_the_guard_and_the_registry_imports_on_its_own_in_a_fresh_interpreter() -> None:
    modules = every_module()
    assert "guard.policy" in modules and "registry.cli" in modules
    done = subprocess.run(
        [sys.executable, "-c", FORK_EACH, ",".join(modules), ",".join(THIRD_PARTY), str(max(2, os.cpu_count() or 2))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert failures == {}
