"""Data subjects by keyed digest only: an identifier (an e-mail address, a customer number) is normalised and
replaced by HMAC-SHA256 under the subject key before anything stores or indexes it.

The key lives outside the database (REGISTRY_SUBJECT_KEY, or a key file created on first use beside the log's
signing key), so a copy of the database alone cannot tell whose digest a row holds, nor test a guessed
address against it. Rotating the key changes every digest: objections recorded under the old key no longer
match (re-import them from their sources) and the recipients of a person's data logged before the rotation
can no longer be found by the identifier (docs/guard-contract.md).

Pure apart from the key file; no web framework here.
"""

import hashlib
import hmac
import os
import secrets
import unicodedata
from pathlib import Path
from typing import Any

from kernel.secret_files import create_or_read

# Longer than any e-mail address (RFC 5321: 254) or customer number; past it the input is no identifier.
SUBJECT_MAX_LENGTH = 320
KEY_FILE_NAME = "subject.key"
KEY_BYTES = 32


class SubjectError(ValueError):
    """An identifier that cannot name a data subject (empty, too long, control characters)."""


def _is_control(character: str) -> bool:
    return unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp")


def normalise_subject(identifier: str) -> str:
    """The one spelling of an identifier that is digested: surrounding spaces stripped, Unicode NFC, and an
    e-mail address (anything with an @) case-folded, since mail tools and shops spell addresses in any case.
    A customer number keeps its case: it is the shop's own, exact key."""
    if not isinstance(identifier, str):
        raise SubjectError("must be text")
    if len(identifier) > SUBJECT_MAX_LENGTH:
        raise SubjectError(f"is longer than {SUBJECT_MAX_LENGTH} characters")
    if any(_is_control(c) for c in identifier):
        raise SubjectError("holds control characters")
    text = unicodedata.normalize("NFC", identifier.strip())
    if not text:
        raise SubjectError("is empty")
    return text.casefold() if "@" in text else text


class SubjectKey:
    """The HMAC key digests are made with. Its repr never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a subject key has at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "SubjectKey(…)"

    def digest_normalised(self, normalised: str) -> str:
        """The hex digest of an identifier already normalised (`normalise_subject`)."""
        return hmac.new(self._key, normalised.encode(), hashlib.sha256).hexdigest()

    def digest(self, identifier: str) -> str:
        """The hex digest of an identifier as given (normalised first); SubjectError if it names no one."""
        return self.digest_normalised(normalise_subject(identifier))

    def fingerprint(self) -> str:
        """What the database records of the key (`guard_subject_key`): an HMAC of a fixed text holding a
        control character, which no identifier can (`normalise_subject` refuses them), so it is no subject's
        digest, and tells nothing of the key."""
        return hmac.new(self._key, FINGERPRINT_TEXT, hashlib.sha256).hexdigest()


FINGERPRINT_TEXT = b"\x00offix-registry subject key fingerprint v1"


class SubjectKeyError(RuntimeError):
    """This instance has not the registry's subject key (none, or another one): it must not start, or it would
    digest identifiers no objection matches and allow what another instance denies."""


def subject_key_file(settings: Any) -> Path:
    return settings.subject_key_file or settings.data_dir / KEY_FILE_NAME


def load_or_create_key_file(path: Path, *, create: bool = True) -> bytes:
    """The key in `path` (hex), created there with mode 0600 if there is none yet (SubjectKeyError instead
    when not `create`)."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        if not create:
            raise SubjectKeyError(f"there is no subject key file at {path}") from None
        # Two processes starting at once must not each keep a key of their own, nor read the other's half-written.
        text = create_or_read(path, (secrets.token_hex(KEY_BYTES) + "\n").encode()).decode("ascii", "replace")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"{path} does not hold a hex subject key") from None
    if len(key) < 16:
        raise ValueError(f"{path} holds a subject key shorter than 16 bytes")
    return key


def subject_key_for(settings: Any, *, create: bool = True) -> SubjectKey:
    """REGISTRY_SUBJECT_KEY when set (every instance of one registry must share it), else the key file (created
    if there is none and `create`). Held to the registry's fingerprint by `shared_subject_key`."""
    secret = settings.subject_key
    if secret is not None:
        return SubjectKey(secret.get_secret_value().encode())
    return SubjectKey(load_or_create_key_file(subject_key_file(settings), create=create))


def _provisioning(settings: Any) -> str:
    return (
        f"give every instance the registry's key: the same REGISTRY_SUBJECT_KEY, or a copy of the first instance's"
        f" key file at {subject_key_file(settings)} (README, 'The subject key')"
    )


async def shared_subject_key(connection: Any, settings: Any, created_by: str) -> SubjectKey:
    """This instance's subject key, held to the fingerprint the registry's database records (asyncpg
    `connection`): the first instance of a registry records its key's; every other must have the same key.
    SubjectKeyError when it has none (a key file is never made while the database knows a key) or another."""
    recorded = await connection.fetchval("SELECT fingerprint FROM guard_subject_key WHERE id = 1")
    if recorded is None:
        key = subject_key_for(settings)
        # Two instances starting at once on a new registry: one fingerprint is recorded, the other refused.
        await connection.execute(
            "INSERT INTO guard_subject_key (id, fingerprint, created_at, created_by) VALUES (1, $1, now(), $2)"
            " ON CONFLICT (id) DO NOTHING",
            key.fingerprint(),
            created_by[:200],
        )
        recorded = await connection.fetchval("SELECT fingerprint FROM guard_subject_key WHERE id = 1")
    else:
        try:
            key = subject_key_for(settings, create=False)
        except SubjectKeyError as exc:
            raise SubjectKeyError(
                f"this registry's subject key (fingerprint {recorded[:16]}…) is not here: {exc};"
                f" {_provisioning(settings)}"
            ) from None
    if key.fingerprint() != recorded:
        raise SubjectKeyError(
            f"this instance's subject key (fingerprint {key.fingerprint()[:16]}…) is not the registry's"
            f" (fingerprint {recorded[:16]}…): objections would not match; {_provisioning(settings)}"
        )
    return key


SALT_BYTES = 16


def new_salt() -> str:
    """A fresh random salt for one decision-log entry's subject commitment (hex)."""
    return os.urandom(SALT_BYTES).hex()


def subject_commitment(digest: str, salt: str) -> str:
    """What a decision-log entry's hashed request holds for the person it names: sha256 of the salt and the
    keyed digest. The digest and salt are kept beside the log (`decision_subject`), where an erasure deletes
    them: the commitment alone links to no one (the salt is random), and the entry's hash still verifies."""
    return hashlib.sha256(f"{salt}:{digest}".encode()).hexdigest()
