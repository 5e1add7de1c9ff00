"""Settings that would switch safety off are refused at start, in one line, without a traceback."""

import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from kernel.settings import Settings, SettingsError
from ledger.checkpoint import CosignerKey


def _registry(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**clean, "REGISTRY_DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REGISTRY_SNAPSHOT_MAX_AGE_SECONDS", "nan"),
        ("REGISTRY_SNAPSHOT_MAX_AGE_SECONDS", "inf"),
        ("REGISTRY_SNAPSHOT_MAX_AGE_SECONDS", "-1"),
        ("REGISTRY_SNAPSHOT_POLL_SECONDS", "0"),
        ("REGISTRY_REMINDER_RETRY_SECONDS", "nan"),
        ("REGISTRY_SMTP_TLS", "sometimes"),
        ("REGISTRY_SCHEDULER_ENABLED", "maybe"),
        ("REGISTRY_DATABASE_URL", "mysql://db/registry"),
        ("REGISTRY_SMTP_HOST", "25:99"),
        ("REGISTRY_SMTP_HOST", "smtp://mail.offix.se"),
        ("REGISTRY_HOST", "0.0.0.0:8000"),
        ("REGISTRY_PUBLIC_URL", "not a url"),
        ("REGISTRY_PUBLIC_URL", "registry.offix.se"),
        ("REGISTRY_CHECKPOINT_WITNESS_URL", "ftp://witness.example/log"),
        ("REGISTRY_CHECKPOINT_WITNESS_KEY", "witness.example"),
        # A log key (type 0x01), not a cosigning key (0x04); then a cosigning key whose ID was edited.
        ("REGISTRY_CHECKPOINT_WITNESS_KEY", "w.example+2a5d4a3b+AbrNfvgh6s43Yqsm4UuPp4BWBDK2HtgwWF2PXpFnm03N"),
        ("REGISTRY_CHECKPOINT_WITNESS_KEY", "w.example+00000000+BLrNfvgh6s43Yqsm4UuPp4BWBDK2HtgwWF2PXpFnm03N"),
        ("REGISTRY_WEBHOOK_URL", "not a url"),
        ("REGISTRY_SMTP_FROM", "nobody"),
        ("REGISTRY_SMTP_FROM", "two@at@offix.se"),
        ("REGISTRY_WEBHOOK_SECRET", "too-short"),
        ("REGISTRY_WEBHOOK_SECRET", "whsec_c2hvcnQ="),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    message = str(refused.value)
    assert message.startswith(variable + " ") and "\n" not in message, message


def test_a_bad_setting_stops_serve_and_a_cli_command_with_one_line_and_status_2():
    """Each run starts a Python process (seconds on a busy machine): one for serve, one for another command."""
    for command, variable, value in (
        (["serve", "--port", "9"], "REGISTRY_SNAPSHOT_MAX_AGE_SECONDS", "nan"),
        (["apikey", "list"], "REGISTRY_SNAPSHOT_POLL_SECONDS", "0"),
    ):
        result = _registry(*command, **{variable: value})
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and variable in lines[0], result.stderr


def test_secrets_never_show_in_the_settings_repr_nor_in_the_error_about_them():
    hook = "hook-secret-1-of-24-bytes-or-more"
    settings = Settings(smtp_password="smtp-pw-1", webhook_secret=hook, session_secret="session-1")
    shown = repr(settings) + str(settings)
    assert not {"smtp-pw-1", hook, "session-1"} & {s for s in shown.split("'")}
    assert "smtp-pw-1" not in shown and hook not in shown and "session-1" not in shown
    assert settings.smtp_password is not None and settings.smtp_password.get_secret_value() == "smtp-pw-1"


def test_time_bounds_refuse_nan_infinity_and_zero_when_constructed_directly():
    for bad in (float("nan"), float("inf"), 0.0, -5.0):
        with pytest.raises(ValidationError):
            Settings(snapshot_max_age_seconds=bad)


def test_the_environment_keeps_each_documented_variable_name_and_meaning(monkeypatch):
    monkeypatch.setenv("REGISTRY_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("REGISTRY_REMINDER_DAYS", "7, 30,1")
    monkeypatch.setenv("REGISTRY_SEED_FILE", "")
    monkeypatch.setenv("REGISTRY_PUBLIC_URL", "https://registry.example/")
    monkeypatch.setenv("REGISTRY_SMTP_TLS", "STARTTLS")
    monkeypatch.setenv("REGISTRY_SECURE_COOKIES", "off")
    monkeypatch.setenv("REGISTRY_SNAPSHOT_MAX_AGE_SECONDS", "2.5")
    settings = Settings.from_env()
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.reminder_days == (30, 7, 1)
    assert settings.seed_file is None
    assert settings.public_url == "https://registry.example"
    assert settings.smtp_tls == "starttls"
    assert settings.secure_cookies is False
    assert settings.snapshot_max_age_seconds == 2.5


def test_from_env_reports_a_bad_value_as_a_settings_error(monkeypatch):
    monkeypatch.setenv("REGISTRY_SNAPSHOT_MAX_AGE_SECONDS", "nan")
    with pytest.raises(SettingsError, match="REGISTRY_SNAPSHOT_MAX_AGE_SECONDS"):
        Settings.from_env()


def test_hosts_urls_and_addresses_of_the_right_shape_are_taken():
    settings = Settings(
        host="0.0.0.0",
        smtp_host="::1",
        public_url="https://registry.offix.se/",
        checkpoint_witness_url="http://127.0.0.1:8181/witness",
        webhook_url="https://hooks.offix.se/registry",
        webhook_secret="whsec_" + "A" * 32,
        smtp_from="Registry <registry@offix.se>",
    )
    assert (settings.host, settings.smtp_host, settings.public_url) == ("0.0.0.0", "::1", "https://registry.offix.se")
    assert Settings(smtp_host="smtp.offix.se", smtp_from="registry@offix.se").smtp_from == "registry@offix.se"


def test_a_webhook_url_without_a_secret_is_refused_naming_both_settings(monkeypatch):
    monkeypatch.setenv("REGISTRY_WEBHOOK_URL", "https://hooks.offix.se/registry")
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    assert str(refused.value).startswith("REGISTRY_WEBHOOK_SECRET is required when REGISTRY_WEBHOOK_URL is set")


def test_a_witness_key_is_taken_only_with_the_witness_it_belongs_to(monkeypatch):
    key = CosignerKey("witness.example/w1", Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    monkeypatch.setenv("REGISTRY_CHECKPOINT_WITNESS_KEY", key.text())
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    assert "REGISTRY_CHECKPOINT_WITNESS_KEY is set without REGISTRY_CHECKPOINT_WITNESS_URL" in str(refused.value)
    monkeypatch.setenv("REGISTRY_CHECKPOINT_WITNESS_URL", "https://witness.example/w1")
    settings = Settings.from_env()
    assert CosignerKey.parse(settings.checkpoint_witness_key or "") == key


def test_a_badly_typed_setting_stops_serve_with_status_2_naming_it():
    result = _registry("serve", "--port", "9", REGISTRY_SMTP_HOST="25:99")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: REGISTRY_SMTP_HOST must be a host name or an IP address, without a port or a scheme, not '25:99'"
    )
