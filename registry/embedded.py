"""The embedded PostgreSQL (the `pgserver` package) used when no REGISTRY_DATABASE_URL is set."""

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

log = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) the PostgreSQL server whose data lives in `data_dir/pgdata`.

    pgserver stops the server when this process exits; if a previous run was killed and left its server
    running, pgserver finds it through postmaster.pid, reuses it, and stops it at our exit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pgserver

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgdata)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    database = "registry"
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {database};")
    url = f"postgresql+asyncpg://postgres@/{database}?host={quote(str(pgdata), safe='/')}"
    log.info("embedded PostgreSQL running in %s", pgdata)
    return url, server


def embedded_registry_exists(data_dir: Path) -> bool:
    """Whether `data_dir` holds an embedded PostgreSQL cluster (initdb writes PG_VERSION first)."""
    return (data_dir / "pgdata" / "PG_VERSION").is_file()


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops the server when its last handle (a process id in .handle_pids.json) exits. A run that
    was killed never removes its id, so the server would outlive every later run; drop ids of dead
    processes first."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
