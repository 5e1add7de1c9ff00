"""Commands that print records take `--json` (one JSON document on stdout, the same exit status), and show
progress on long work only when stderr is a terminal: piped or captured, stderr holds nothing but errors."""

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import seed_document


def registry(*args: str, database: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_SCHEDULER_ENABLED": "false", "REGISTRY_DATABASE_URL": database}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=180
    )


def test_check_as_json_lists_the_findings_with_the_same_exit_status(seeded_database):
    text = registry("check", database=seeded_database)
    result = registry("check", "--json", database=seeded_database)
    answer = json.loads(result.stdout)
    assert result.returncode == text.returncode
    assert answer["count"] == len(answer["findings"]) == len(text.stdout.splitlines())
    assert {"party", "code", "message"} <= set(answer["findings"][0]) if answer["findings"] else True
    assert answer["checked_on"]
    assert result.stderr == "", "no summary line, no progress: the JSON says it all"


def test_an_import_dry_run_as_json_is_the_change_set_and_writes_nothing(seeded_database, tmp_path):
    document = seed_document()
    removed = document["parties"].pop()["key"]
    document["agreements"] = [a for a in document["agreements"] if a["party"] != removed]
    document["parties"][0]["name"] = "Renamed AB"
    file = tmp_path / "registry.yaml"
    file.write_text(yaml.safe_dump(document))

    result = registry("import", "--dry-run", "--json", str(file), database=seeded_database)

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "preview" and answer["deleted"] >= 1
    assert removed in answer["changes"]["parties"]["removed"]
    assert answer["changes"]["parties"]["updated"][document["parties"][0]["key"]] == ["name"]
    exported = registry("export", "--json", database=seeded_database)
    assert removed in {p["key"] for p in json.loads(exported.stdout)["parties"]}, "a dry run writes nothing"


def test_user_list_apikey_list_and_reminder_list_as_json(seeded_database):
    created = registry(
        "user",
        "create",
        "ann@offix.example",
        "--role",
        "legal",
        "--password-stdin",
        database=seeded_database,
        stdin="a long enough passphrase 42\n",
    )
    assert created.returncode == 0, created.stderr
    users = json.loads(registry("user", "list", "--json", database=seeded_database).stdout)
    assert [(u["email"], u["role"], u["active"]) for u in users] == [("ann@offix.example", "legal", True)]
    registry("apikey", "create", "ci", "--scope", "registry:read", database=seeded_database)
    keys = json.loads(registry("apikey", "list", "--json", database=seeded_database).stdout)
    assert "ci" in {k["name"] for k in keys} and all("token" not in k and "hash" not in k for k in keys)
    assert isinstance(json.loads(registry("reminders", "list", "--json", database=seeded_database).stdout), list)


def test_verify_log_as_json_says_whether_the_log_is_intact(seeded_database):
    result = registry("guard", "verify-log", "--json", database=seeded_database)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ok"] is True and answer["entries"] == 0 and answer["description"].startswith("log intact")


def test_a_reminder_preview_as_json_lists_what_would_be_due_and_sends_nothing(seeded_database):
    result = registry("reminders", "run", "--today", "2027-01-24", "--json", database=seeded_database)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["preview"] is True and answer["day"] == "2027-01-24"
    assert all({"kind", "agreement", "due_date", "recipient"} <= set(d) for d in answer["due"])
    assert json.loads(registry("reminders", "list", "--json", database=seeded_database).stdout) == []


@pytest.mark.parametrize(
    "command",
    [["check"], ["export"], ["guard", "verify-log"], ["reminders", "run", "--today", "2027-01-24"]],
)
def test_no_progress_is_written_when_stderr_is_not_a_terminal(seeded_database, command):
    result = registry(*command, database=seeded_database)
    assert result.returncode in (0, 1), result.stderr
    assert "\r" not in result.stderr and "[" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert all(" finding" in line for line in lines), lines  # at most `check`'s summary of its findings


def test_progress_is_shown_when_stderr_is_a_terminal(seeded_database, tmp_path):
    """stderr on a pseudo-terminal, as in an operator's shell: the export shows its stages."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "REGISTRY_SCHEDULER_ENABLED": "false", "REGISTRY_DATABASE_URL": seeded_database}
    out = tmp_path / "registry.json"
    process = subprocess.run(
        [sys.executable, "-m", "cli", "export", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        timeout=180,
    )
    os.close(terminal)
    shown = b""
    try:
        while chunk := os.read(controller, 4096):
            shown += chunk
    except OSError:  # the terminal's other end is closed: all is read
        pass
    finally:
        os.close(controller)
    assert process.returncode == 0
    assert b"export" in shown and b"reading the registry" in shown, shown
    assert json.loads(Path(out).read_text())["parties"]
