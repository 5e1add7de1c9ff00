"""Settings, read once from environment variables (documented in README.md)."""

import os
from dataclasses import dataclass, field
from pathlib import Path


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None


def _int_list(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}, reverse=True))
    except ValueError:
        raise SettingsError(f"{name} must be a comma-separated list of whole numbers, not {raw!r}") from None
    if not values or any(v < 0 for v in values):
        raise SettingsError(f"{name} must list non-negative whole numbers, not {raw!r}")
    return values


def _path(name: str) -> Path | None:
    raw = os.environ.get(name)
    return Path(raw) if raw else None


def _log_origin(origin: str) -> str:
    """The checkpoints' origin line, also the signing key's name: no whitespace, no plus sign (signed-note)."""
    if not origin or any(c.isspace() or c == "+" for c in origin):
        raise SettingsError(f"REGISTRY_LOG_ORIGIN must have no spaces or plus signs, not {origin!r}")
    return origin


def normalise_database_url(url: str) -> str:
    """Accept `postgresql://` as users write it and hand SQLAlchemy the asyncpg dialect."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise SettingsError("REGISTRY_DATABASE_URL must start with postgresql:// or postgresql+asyncpg://")


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = Path(".registry-data")
    seed_file: Path | None = Path(__file__).resolve().parent.parent / "seed" / "offix.yaml"
    public_url: str = "http://127.0.0.1:8000"
    # Largest registry document `PUT /api/registry` accepts (a 10,000-party registry is about 10 MB of JSON).
    registry_import_max_bytes: int = 64 * 1024 * 1024
    # Guard
    expiring_warning_days: int = 30
    snapshot_max_age_seconds: float = 30.0
    snapshot_poll_seconds: float = 5.0
    decision_log_batch_max: int = 500
    # Decision log checkpoints (guard/audit.py); the key file defaults to <data_dir>/log-signing.key
    log_signing_key_file: Path | None = None
    log_origin: str = "offix-registry/guard-decisions"
    checkpoint_seconds: float = 300.0  # 0: none in the background (the CLI still writes them)
    checkpoint_dir: Path | None = None
    checkpoint_witness_url: str | None = None
    # Reminders
    scheduler_enabled: bool = True
    reminder_scan_time: str = "07:00"
    reminder_days: tuple[int, ...] = (90, 30, 7, 1)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: str = "none"  # none | starttls | tls
    smtp_from: str = "registry@offix.example"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    reminder_lapsed_interval_days: int = 7  # after expiry, remind this often while the party is active
    reminder_retry_seconds: float = 300.0  # first retry of a failed send; doubles per attempt
    reminder_retry_max_seconds: float = 21_600.0
    # Web UI
    session_secret: str | None = None
    agreement_document_max_bytes: int = 20 * 1024 * 1024  # a signed PDF on file; past it, 413
    secure_cookies: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Settings":
        raw_url = os.environ.get("REGISTRY_DATABASE_URL") or None
        seed = os.environ.get("REGISTRY_SEED_FILE")
        tls = os.environ.get("REGISTRY_SMTP_TLS", "none").strip().lower()
        if tls not in {"none", "starttls", "tls"}:
            raise SettingsError(f"REGISTRY_SMTP_TLS must be none, starttls or tls, not {tls!r}")
        return cls(
            database_url=normalise_database_url(raw_url) if raw_url else None,
            data_dir=Path(os.environ.get("REGISTRY_DATA_DIR") or ".registry-data"),
            seed_file=(Path(seed) if seed else None) if seed is not None else cls.seed_file,
            public_url=os.environ.get("REGISTRY_PUBLIC_URL", cls.public_url).rstrip("/"),
            registry_import_max_bytes=_int("REGISTRY_IMPORT_MAX_BYTES", 64 * 1024 * 1024, minimum=1),
            expiring_warning_days=_int("REGISTRY_EXPIRING_WARNING_DAYS", 30),
            snapshot_max_age_seconds=_float("REGISTRY_SNAPSHOT_MAX_AGE_SECONDS", 30.0),
            snapshot_poll_seconds=_float("REGISTRY_SNAPSHOT_POLL_SECONDS", 5.0),
            decision_log_batch_max=_int("REGISTRY_DECISION_LOG_BATCH_MAX", 500, minimum=1),
            log_signing_key_file=_path("REGISTRY_LOG_SIGNING_KEY_FILE"),
            log_origin=_log_origin(os.environ.get("REGISTRY_LOG_ORIGIN") or cls.log_origin),
            checkpoint_seconds=_float("REGISTRY_CHECKPOINT_SECONDS", 300.0),
            checkpoint_dir=_path("REGISTRY_CHECKPOINT_DIR"),
            checkpoint_witness_url=os.environ.get("REGISTRY_CHECKPOINT_WITNESS_URL") or None,
            scheduler_enabled=_bool("REGISTRY_SCHEDULER_ENABLED", True),
            reminder_scan_time=os.environ.get("REGISTRY_REMINDER_SCAN_TIME", "07:00"),
            reminder_days=_int_list("REGISTRY_REMINDER_DAYS", (90, 30, 7, 1)),
            smtp_host=os.environ.get("REGISTRY_SMTP_HOST", "127.0.0.1"),
            smtp_port=_int("REGISTRY_SMTP_PORT", 25, minimum=1),
            smtp_username=os.environ.get("REGISTRY_SMTP_USERNAME") or None,
            smtp_password=os.environ.get("REGISTRY_SMTP_PASSWORD") or None,
            smtp_tls=tls,
            smtp_from=os.environ.get("REGISTRY_SMTP_FROM", "registry@offix.example"),
            webhook_url=os.environ.get("REGISTRY_WEBHOOK_URL") or None,
            webhook_secret=os.environ.get("REGISTRY_WEBHOOK_SECRET") or None,
            reminder_lapsed_interval_days=_int("REGISTRY_REMINDER_LAPSED_INTERVAL_DAYS", 7, minimum=1),
            reminder_retry_seconds=_float("REGISTRY_REMINDER_RETRY_SECONDS", 300.0),
            reminder_retry_max_seconds=_float("REGISTRY_REMINDER_RETRY_MAX_SECONDS", 21_600.0),
            session_secret=os.environ.get("REGISTRY_SESSION_SECRET") or None,
            secure_cookies=_bool("REGISTRY_SECURE_COOKIES", True),
            agreement_document_max_bytes=_int("REGISTRY_AGREEMENT_DOCUMENT_MAX_BYTES", 20 * 1024 * 1024, minimum=1),
        )
