"""A command that would create a new embedded registry anywhere but where the first one is (run from a
subfolder, or another folder) refuses, says where the registry is, and creates nothing; `--new` creates one."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _registry(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_DATABASE_URL", "REGISTRY_DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def folders() -> Iterator[Path]:
    """Outside pytest's own temporary root: pytest makes that root private (0700) whenever a session starts,
    and the embedded server's user (pgserver, when run as root) must be able to reach the data folder."""
    with tempfile.TemporaryDirectory(prefix="registry-data-dir-safety-") as directory:
        yield Path(directory)


def test_db_upgrade_from_a_subfolder_or_another_folder_refuses_and_names_the_registry(folders: Path):
    tmp_path = folders
    home, sub, elsewhere = tmp_path / "registry", tmp_path / "registry" / "docs", tmp_path / "elsewhere"
    for folder in (sub, elsewhere):
        folder.mkdir(parents=True)
    first = _registry(home, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert (home / ".registry-data" / "pgdata" / "PG_VERSION").is_file()

    for folder in (sub, elsewhere):
        refused = _registry(folder, "db", "upgrade")
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert f"the registry is in {home / '.registry-data'}" in lines[0]
        assert "--new" in lines[0] and "REGISTRY_DATA_DIR" in lines[0]
        assert not (folder / ".registry-data").exists(), "nothing was created"

    # The first registry still opens where it is; --new makes a second one on purpose.
    assert _registry(home, "db", "upgrade").returncode == 0
    second = _registry(elsewhere, "db", "upgrade", "--new")
    assert second.returncode == 0, second.stderr
    assert (elsewhere / ".registry-data" / "pgdata" / "PG_VERSION").is_file()
