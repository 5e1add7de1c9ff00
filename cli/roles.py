"""The processes `registry serve` starts and watches (the guard role, the web role: web/roles.py), and their entry
point `python -m cli.roles guard|web` (started by `serve` with the settings in the environment, not by hand)."""

import argparse
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from kernel.settings import SERVE_SUPERVISOR_PID, Settings

STOP_SECONDS = 30.0
# The web role (and the report worker it starts) runs at a lower CPU priority than the guard role: on a machine
# with few cores an export or a dashboard view would otherwise take the CPU a check waits for, although it no
# longer holds the check's event loop. A niceness of 10 gives the guard about ten times the web role's share of
# a contended core, and the web role all of an idle one.
WEB_ROLE_NICENESS = 10
_PR_SET_PDEATHSIG = 1


def _die_with_the_supervisor() -> None:
    """In the child before it runs: Linux sends it SIGTERM if `registry serve` dies without stopping it (a
    SIGKILL), so that no role keeps the port or the embedded database's connections."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class RoleSupervisor:
    """Starts the web role, then (once its socket accepts) the guard role on the public port; stops both when
    either exits (an error: exit status 1) or when `registry serve` is asked to stop (SIGTERM, SIGINT: 0)."""

    def __init__(self, settings: Settings, host: str, port: int, workers: int) -> None:
        self.settings = settings
        self.host, self.port, self.workers = host, port, workers
        self.stopping: str | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def _asked_to_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = signal.Signals(signum).name

    def _start(self, role: str, environment: dict[str, str], *arguments: str) -> None:
        self.children[role] = subprocess.Popen(
            [sys.executable, "-m", "cli.roles", role, *arguments],
            env={**environment, "REGISTRY_PROCESS_ROLE": role},
            preexec_fn=_die_with_the_supervisor,
        )

    def _exited(self) -> tuple[str, int] | None:
        for role, child in self.children.items():
            code = child.poll()
            if code is not None:
                return role, code
        return None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._asked_to_stop)
        signal.signal(signal.SIGINT, self._asked_to_stop)
        # mkdtemp makes the directory 0700: nobody else can reach the web role's socket (it believes the relay's
        # X-Forwarded-For).
        private = Path(tempfile.mkdtemp(prefix="registry-roles-"))
        web_socket = private / "web.sock"
        environment = {
            **os.environ,
            "REGISTRY_WEB_ROLE_SOCKET": str(web_socket),
            "REGISTRY_GUARD_ROLE_INSTANCE": secrets.token_hex(8),
            "REGISTRY_GUARD_ROLE_WORKERS": str(self.workers),
            SERVE_SUPERVISOR_PID: str(os.getpid()),
        }
        exited: tuple[str, int] | None = None
        try:
            self._start("web", environment)
            deadline = time.monotonic() + self.settings.worker_healthcheck_seconds
            while not self.stopping and not _accepts(web_socket):
                exited = self._exited()
                if exited or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if not self.stopping and exited is None and _accepts(web_socket):
                self._start("guard", environment, "--host", self.host, "--port", str(self.port))
                while not self.stopping and exited is None:
                    time.sleep(0.2)
                    exited = self._exited()
        finally:
            self._stop_all()
            shutil.rmtree(private, ignore_errors=True)
        if self.stopping:
            return 0
        if exited is None:
            print(
                f"error: the web role did not start within {self.settings.worker_healthcheck_seconds} s",
                file=sys.stderr,
            )
        else:
            role, code = exited
            print(f"error: the {role} role exited (status {code}); the other was stopped", file=sys.stderr)
        return 1

    def _stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)


def forwarded_header_options(trusted_proxies: str) -> dict[str, Any]:
    """Uvicorn's handling of X-Forwarded-* headers: believed only from the proxies configured. (Uvicorn's own
    default believes them from 127.0.0.1, so any local process could pick the address the throttle counts.)"""
    proxies = ",".join(p.strip() for p in trusted_proxies.split(",") if p.strip())
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or "127.0.0.1"}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from kernel.logs import logging_dict

    parser = argparse.ArgumentParser(prog="python -m cli.roles")
    parser.add_argument("role", choices=["guard", "web"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    common = {
        "factory": True,
        "log_level": "info",
        "log_config": logging_dict(settings.log_format),
        "access_log": False,  # the app writes its own (web/access_log.py)
    }
    if args.role == "web":
        assert settings.web_role_socket is not None, "REGISTRY_WEB_ROLE_SOCKET is not set"
        os.nice(WEB_ROLE_NICENESS)
        uvicorn.run(
            "web.app:create_served_app",
            uds=str(settings.web_role_socket),
            # Only the guard role's relay reaches this socket; it names the client (web/roles.py).
            proxy_headers=True,
            forwarded_allow_ips="*",
            server_header=False,  # the guard role's uvicorn adds its own
            date_header=False,
            **common,  # type: ignore[arg-type]
        )
    else:
        uvicorn.run(
            "web.app:create_served_app",
            host=args.host,
            port=args.port,
            workers=settings.guard_role_workers,
            # Every worker gets this long to import the app and start (uvicorn's 5 s killed some at start).
            timeout_worker_healthcheck=settings.worker_healthcheck_seconds,
            **forwarded_header_options(settings.trusted_proxies),
            **common,  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
