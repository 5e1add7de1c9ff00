"""Settings, read once from environment variables REGISTRY_* (documented in README.md), with pydantic-settings.

A value the service cannot run with stops it at start with one line naming the variable and why: a number
that bounds time must be finite and positive (`nan` or `inf` would switch the snapshot's age bound off, and a
poll interval of 0 would busy-loop against the database). Secrets are SecretStr, so no repr or log shows them.
"""

import base64
import binascii
import hashlib
import ipaddress
import re
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kernel.defaults import DEFAULT_EXPIRING_WITHIN_DAYS
from kernel.text import EMAIL_PATTERN

ENV_PREFIX = "REGISTRY_"
DEFAULT_SEED_FILE = Path(__file__).resolve().parent.parent / "seed" / "offix.yaml"

# The UI's roles a single sign-on claim may map to (registry/services/users.py ROLES).
OIDC_ROLES = ("legal", "ops", "admin")

# Seconds that bound a wait, a retry or an age: finite and above zero.
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def host_name_or_address(value: str) -> str:
    """A host name (RFC 1123) or an IP address, without a port: `smtp.offix.se`, `10.0.0.5`, `::1`."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(value):
        raise ValueError("must be a host name or an IP address, without a port or a scheme")
    return value


def http_url(value: str) -> str:
    """An http:// or https:// URL with a host (and, if any, a port from 1 to 65535)."""
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError:
        raise ValueError("must be an http:// or https:// URL with a host") from None
    return value


def email_address(value: str) -> str:
    """An e-mail address, optionally with a display name: `registry@offix.se`, `Registry <registry@offix.se>`."""
    name, address = parseaddr(value)
    if not address or not EMAIL_PATTERN.match(address) or (not name and address != value.strip()):
        raise ValueError("must be an e-mail address (registry@offix.se, or Registry <registry@offix.se>)")
    return value


WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_KEY_MIN_BYTES = 24  # Standard Webhooks: keys of 24 to 64 random bytes
_SECRET_SEPARATORS = re.compile(r"[\s,]+")


def webhook_signing_keys(secrets: str | None) -> list[bytes]:
    """The signing keys in a webhook secret setting: one or more secrets separated by spaces or commas, each
    `whsec_` + base64 of the key, or any other text taken as its UTF-8 bytes; every key at least 24 bytes.
    ValueError says what is wrong (never showing a secret)."""
    keys = []
    for secret in _SECRET_SEPARATORS.split(secrets or ""):
        if not secret:
            continue
        if secret.startswith(WEBHOOK_SECRET_PREFIX):
            encoded = secret[len(WEBHOOK_SECRET_PREFIX) :]
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("a whsec_ secret must be base64 after the prefix") from None
        else:
            key = secret.encode()
        if len(key) < WEBHOOK_KEY_MIN_BYTES:
            raise ValueError(
                f"each secret must hold at least {WEBHOOK_KEY_MIN_BYTES} bytes of key"
                f' (one has {len(key)}): "whsec_" + base64 of 24 to 64 random bytes'
            )
        keys.append(key)
    return keys


COSIGNATURE_V1 = b"\x04"  # the key ID algorithm byte of C2SP tlog-cosignature Ed25519 keys
_VKEY_NAME = re.compile(r"^[^\s+]+$")  # a signed-note key name: non-empty, no whitespace and no plus sign


def signed_note_vkey(value: str, key_type: bytes, kind: str) -> tuple[str, bytes]:
    """The name and Ed25519 public key of a signed-note vkey ``<name>+<hex key ID>+<base64(type || key)>`` whose
    type byte is `key_type` (0x01 a log's signing key, 0x04 a witness's cosigning key; `kind` names it in the
    error); ValueError saying what does not hold."""
    parts = value.strip().split("+", 2)  # (base64 may hold plus signs; the name and key ID do not)
    if len(parts) != 3 or not _VKEY_NAME.match(parts[0]):
        raise ValueError("must read <name>+<key id>+<base64 key> (a vkey)")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise ValueError("its key ID is not hex or its key not base64") from None
    if len(raw) != 33 or raw[:1] != key_type:
        raise ValueError(f"is not an Ed25519 {kind} key (type 0x{key_type.hex()})")
    if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] != wanted:
        raise ValueError("its key ID does not match its name and key")
    return name, raw[1:]


def cosigner_vkey(value: str) -> tuple[str, bytes]:
    """The name and Ed25519 public key of a witness's cosigning vkey (C2SP tlog-cosignature)."""
    return signed_note_vkey(value, COSIGNATURE_V1, "cosignature")


def normalise_database_url(url: str) -> str:
    """Accept `postgresql://` as users write it and hand SQLAlchemy the asyncpg dialect."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise SettingsError("REGISTRY_DATABASE_URL must start with postgresql:// or postgresql+asyncpg://")


# The pid of `registry serve`, in the environment of the processes it starts (cli/roles.py): a supervisor that
# answers no request, left out of the per-process metrics (web/controllers/metrics.py).
SERVE_SUPERVISOR_PID = "REGISTRY_SERVE_SUPERVISOR_PID"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid", validate_default=True
    )

    database_url: str | None = None
    data_dir: Path = Path(".registry-data")
    seed_file: Path | None = DEFAULT_SEED_FILE
    public_url: str = "http://127.0.0.1:8000"
    # Every log line in one format: text, or one JSON object a line (kernel/logs.py)
    log_format: Literal["text", "json"] = "text"
    # Where `registry serve` listens (its --host and --port override them)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # The reverse proxies whose X-Forwarded-For / X-Forwarded-Proto headers are believed (comma-separated
    # addresses or networks, as uvicorn's --forwarded-allow-ips). Empty: none, not even 127.0.0.1, so that a local
    # client cannot name another address (the sign-in throttle counts per address).
    trusted_proxies: str = ""
    # How long `registry serve --workers N` waits for a worker to answer its health check before killing it (at
    # start the answer waits for the app's import and start-up, seconds on a busy machine; uvicorn's default 5 s
    # killed workers that were only starting). Also how long a hung worker lives before it is replaced.
    worker_healthcheck_seconds: int = Field(60, ge=1)
    # Set by `registry serve` for the processes it starts (cli/roles.py), not by an operator: which role this
    # process plays ("all": guard and web in one process, as in-process tests and `serve --single-process` run;
    # "guard": the checks, health and /metrics on the public port, the rest relayed to the web role's private
    # socket; "web": the UI, the registry API, exports and reports), the web role's socket, and which
    # `registry serve` and how many guard-role workers a write waits for (guard/obedience.py).
    process_role: Literal["all", "guard", "web"] = "all"
    web_role_socket: Path | None = None
    guard_role_instance: str = ""
    guard_role_workers: int = Field(1, ge=1, le=64)
    # Largest registry document `PUT /api/registry` accepts (a 10,000-party registry is about 10 MB of JSON).
    registry_import_max_bytes: int = Field(64 * 1024 * 1024, ge=1)
    # Guard
    expiring_warning_days: int = Field(DEFAULT_EXPIRING_WITHIN_DAYS, ge=0)
    snapshot_max_age_seconds: Seconds = 30.0
    snapshot_poll_seconds: Seconds = 5.0
    # The whole registry is read again this often, under the changes applied one by one (a safety net).
    snapshot_full_reload_seconds: Seconds = 3600.0
    # A registry write is answered once this instance's guard obeys it, or after this long (web/visibility.py).
    write_visibility_timeout_seconds: float = Field(2.0, ge=0, allow_inf_nan=False)
    decision_log_batch_max: int = Field(500, ge=1)
    # Group commits in flight at once, each on a chain of its own: with two, a check waits for at most one commit.
    decision_log_chains: int = Field(2, ge=1, le=8)
    # check-batch requests one API key may have in flight at once; one more is answered 429 with Retry-After
    guard_batches_per_key: int = Field(1, ge=1, le=1000)
    # Decision log checkpoints (ledger/seal.py); the key file defaults to <data_dir>/log-signing.key
    log_signing_key_file: Path | None = None
    log_origin: str = "offix-registry/guard-decisions"
    # 0: none in the background (the CLI still writes them)
    checkpoint_seconds: float = Field(300.0, ge=0, allow_inf_nan=False)
    checkpoint_dir: Path | None = None
    # A C2SP tlog-witness's submission prefix (add-checkpoint is POSTed under it) and, optionally, its
    # cosigning key as a vkey (<name>+<key id>+<base64 0x04 || key>): its cosignatures are then verified.
    checkpoint_witness_url: str | None = None
    checkpoint_witness_key: str | None = None
    # Data subjects' identifiers are stored only as HMAC-SHA256 digests under this key (guard/subjects.py);
    # unset: a key file, <data_dir>/subject.key unless subject_key_file names another, created on first use.
    subject_key: SecretStr | None = Field(None, min_length=16)
    subject_key_file: Path | None = None
    # Reminders
    scheduler_enabled: bool = True
    reminder_scan_time: str = "07:00"
    reminder_days: Annotated[tuple[int, ...], NoDecode] = (90, 30, 7, 1)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_from: str = "registry@offix.example"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    reminder_lapsed_interval_days: int = Field(7, ge=1)  # after expiry, remind this often while the party is active
    reminder_retry_seconds: Seconds = 300.0  # first retry of a failed send; doubles per attempt
    reminder_retry_max_seconds: Seconds = 21_600.0
    # Web UI
    session_secret: SecretStr | None = None
    agreement_document_max_bytes: int = Field(20 * 1024 * 1024, ge=1)  # a signed PDF on file; past it, 413
    secure_cookies: bool = True
    # The language of pages without a browser preference, of e-mails to owners without one, and of the calendar.
    # Offix works in Swedish; tests choose English explicitly.
    default_language: Literal["sv", "en"] = "sv"
    # Single sign-on with OpenID Connect (web/ui/oidc.py): the issuer's address (its discovery document is
    # <issuer>/.well-known/openid-configuration), this registry's client at the issuer, and the ID token's claim
    # that names the user's role. Entra ID puts app roles in `roles`.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_role_claim: str = "roles"
    # The claim's values that mean each role: "Registry.Legal=legal,Registry.Ops=ops"; unset: legal, ops, admin.
    oidc_role_map: Annotated[tuple[tuple[str, str], ...], NoDecode] = ()
    # Off: only single sign-on signs users in (the password form is gone and a posted password is refused).
    local_passwords: bool = True

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return normalise_database_url(value)
        except SettingsError:
            raise ValueError("must start with postgresql:// or postgresql+asyncpg://") from None

    @field_validator("host", "smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        return host_name_or_address(value.strip())

    @field_validator("checkpoint_witness_url", "webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value.strip())

    @field_validator("checkpoint_witness_key")
    @classmethod
    def _witness_key(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        cosigner_vkey(value)
        return value.strip()

    @model_validator(mode="after")
    def _witness_key_has_witness(self) -> "Settings":
        if self.checkpoint_witness_key and not self.checkpoint_witness_url:
            raise ValueError("REGISTRY_CHECKPOINT_WITNESS_KEY is set without REGISTRY_CHECKPOINT_WITNESS_URL")
        return self

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        return email_address(value)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            webhook_signing_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _webhook_signed(self) -> "Settings":
        # An unsigned webhook can be forged by anyone who learns the receiver's URL: none is sent.
        if self.webhook_url and not webhook_signing_keys(
            self.webhook_secret.get_secret_value() if self.webhook_secret else None
        ):
            raise ValueError(
                "REGISTRY_WEBHOOK_SECRET is required when REGISTRY_WEBHOOK_URL is set (webhooks are always signed)"
            )
        return self

    @field_validator("log_origin")
    @classmethod
    def _log_origin(cls, value: str) -> str:
        # The checkpoints' origin line, also the signing key's name (signed-note): no whitespace, no plus sign.
        if not value or any(c.isspace() or c == "+" for c in value):
            raise ValueError("must have no spaces or plus signs")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return http_url(value.strip()).rstrip("/")

    @field_validator("seed_file", mode="before")
    @classmethod
    def _seed_file(cls, value: Any) -> Any:
        # REGISTRY_SEED_FILE set but empty means "no seed" (env_ignore_empty would otherwise restore the default).
        return None if value == "" else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("smtp_tls", mode="before")
    @classmethod
    def _smtp_tls(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("reminder_days", mode="before")
    @classmethod
    def _reminder_days(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = [int(part) for part in value.split(",") if part.strip()]
            except ValueError:
                raise ValueError("must be a comma-separated list of whole numbers") from None
        if isinstance(value, list | tuple | set):
            if not value or any(isinstance(v, int) and v < 0 for v in value):
                raise ValueError("must list non-negative whole numbers")
            return tuple(sorted(set(value), reverse=True))
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _oidc_issuer(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be the issuer's https:// address")
        return http_url(value.strip()).rstrip("/")

    @field_validator("oidc_role_map", mode="before")
    @classmethod
    def _oidc_role_map(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs = []
        for part in value.split(","):
            if not part.strip():
                continue
            claim_value, equals, role = part.partition("=")
            if not equals or role.strip() not in OIDC_ROLES or not claim_value.strip():
                raise ValueError("must list claim=role pairs separated by commas, each role legal, ops or admin")
            pairs.append((claim_value.strip(), role.strip()))
        return tuple(pairs)

    @model_validator(mode="after")
    def _oidc_complete(self) -> "Settings":
        if (self.oidc_issuer is None) != (self.oidc_client_id is None):
            raise ValueError("REGISTRY_OIDC_ISSUER and REGISTRY_OIDC_CLIENT_ID are set together or not at all")
        if not self.local_passwords and self.oidc_issuer is None:
            raise ValueError("REGISTRY_LOCAL_PASSWORDS may be off only with single sign-on (REGISTRY_OIDC_ISSUER)")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None and self.oidc_client_id is not None

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings from the environment, or SettingsError naming the first bad variable and why."""
        import os

        # An empty REGISTRY_SEED_FILE means "no seed"; pydantic-settings drops empty values (env_ignore_empty).
        overrides: dict[str, Any] = {"seed_file": None} if os.environ.get("REGISTRY_SEED_FILE") == "" else {}
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line: the variable, why, and the value refused (secrets never shown)."""
    error = exc.errors()[0]
    if not error["loc"]:  # a rule across settings: its message names them
        return str(error["msg"]).removeprefix("Value error, ")
    field = str(error["loc"][0])
    variable = ENV_PREFIX + field.upper()
    reason = str(error["msg"]).removeprefix("Value error, ")
    shown = (
        "" if "secret" in field or "password" in field or field == "subject_key" else f", not {error.get('input')!r}"
    )
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{variable} {reason[:1].lower()}{reason[1:]}{shown}{more}"
