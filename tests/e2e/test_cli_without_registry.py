"""A CLI command run where no registry exists says so in one line and creates nothing (issue 14, item 8)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run_without_database(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_DATABASE_URL", "REGISTRY_DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args", [("user", "list"), ("apikey", "list"), ("export",), ("reminders", "run"), ("reminders", "list")]
)
def test_a_command_where_no_registry_exists_says_so_in_one_line_and_creates_no_database(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = _run_without_database(tmp_path, *args)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no registry" in lines[0]
    assert str(tmp_path / ".registry-data") in lines[0]
    assert "REGISTRY_DATA_DIR" in lines[0] and "REGISTRY_DATABASE_URL" in lines[0]
    assert not (tmp_path / ".registry-data").exists()
