"""`registry serve` as a subprocess on a seeded database of its own, for tests that talk to the real service
over HTTP (the hand-written and the generated guard clients, /metrics)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port


class RunningService:
    def __init__(self, database_url: str, log_dir: Path, **environment: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = log_dir / f"serve-{self.port}-{uuid.uuid4().hex[:6]}.err"
        env = {
            **os.environ,
            "REGISTRY_DATABASE_URL": database_url,
            "REGISTRY_SCHEDULER_ENABLED": "false",
            **environment,
        }
        with self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--port", str(self.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def wait_ready(self, within: float = 180.0) -> None:  # generous: the test machine is shared and busy
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited:\n" + self.stderr_path.read_text()
            try:
                if httpx.get(self.url + "/health/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("the server did not become ready:\n" + self.stderr_path.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def running_service(database_url: str, log_dir: Path, **environment: Any) -> Iterator[RunningService]:
    service = RunningService(database_url, log_dir, **environment)
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
