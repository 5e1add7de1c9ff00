"""`registry` exit codes CI can tell apart: 0 ok, 1 findings or denied, 2 bad input or settings, 3 database
unavailable — each failure one line on stderr, no traceback; `registry --version`."""

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port


def _registry(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_SCHEDULER_ENABLED": "false", **environment}
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["check"], ["export"], ["db", "upgrade"], ["apikey", "list"]])
def test_an_unreachable_database_is_exit_3_with_one_line_and_no_traceback(command):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/registry"
    result = _registry(*command, REGISTRY_DATABASE_URL=closed)
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: the registry database is unavailable")
    assert "Traceback" not in result.stderr


def test_a_database_that_does_not_exist_is_exit_3():
    missing = "postgresql://postgres@127.0.0.1:5432/registry_no_such_database"
    result = _registry("check", REGISTRY_DATABASE_URL=missing)
    assert result.returncode == 3, result.stderr
    assert "does not exist" in result.stderr and result.stderr.count("\n") == 1


def test_a_bad_setting_is_exit_2_with_one_line(database):
    result = _registry("check", REGISTRY_DATABASE_URL=database, REGISTRY_SNAPSHOT_MAX_AGE_SECONDS="soon")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "REGISTRY_SNAPSHOT_MAX_AGE_SECONDS" in result.stderr


def test_registry_version_prints_the_version():
    result = _registry("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "registry, version 0.1.0"
