"""Signed checkpoints of the decision log: C2SP tlog-checkpoint bodies in C2SP signed-note form, Ed25519.

A checkpoint commits to the log at a size: its body is the origin line, the tree size in decimal, the base64
RFC 6962 Merkle root over the first `size` leaves (the entries' hashes, in the log's sealed order;
ledger/merkle.py), and one extension line ``heads <hex>``, the digest of every writer's chain head at that
size, so that a verifier can check the chains from there on without rebuilding the tree
(`verify-log --since-checkpoint`). Checkpoints of the single chain before migration 0014 carry
``chain <hex>``, that chain's hash, instead. The note is signed with a
key kept outside the database; copies handed to witnesses are what a database editor cannot reach.

Pure apart from the key file: parsing and verifying need only the text and the verifier key.
"""

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kernel.secret_files import create_or_read
from kernel.settings import COSIGNATURE_V1, cosigner_vkey, signed_note_vkey

ED25519 = b"\x01"  # the signed-note signature type of Ed25519
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space begin each signature line
_NAME = re.compile(r"^[^\s+]+$")  # a key name: non-empty, no whitespace and no plus sign


class CheckpointError(ValueError):
    """A checkpoint that is malformed, or whose signature does not verify with the log's key."""


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of the signed-note spec: SHA-256(name || 0x0A || type || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A signed-note verifier key: the name signatures carry and the Ed25519 public key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def text(self) -> str:
        """``<name>+<hex key ID>+<base64(0x01 || public key)>``, as `registry guard public-key` prints it."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(ED25519 + self.public_key).decode()}"

    @classmethod
    def parse(cls, text: str) -> "Verifier":
        try:
            return cls(*signed_note_vkey(text, ED25519, "signing"))
        except ValueError as exc:
            raise CheckpointError(f"the verifier key {exc}") from None


@dataclass(frozen=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, _raw_public(self.private_key.public_key()))

    def sign(self, text: str) -> str:
        """The signed note: the text (ending in a newline), a blank line, and this key's signature line."""
        if not text.endswith("\n"):
            raise ValueError("a note's text ends with a newline")
        signature = self.private_key.sign(text.encode())
        encoded = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {encoded}\n"


def load_or_create_signer(path: Path, name: str) -> Signer:
    """The log's signing key from `path` (PKCS #8 PEM), created there with mode 0600 if there is none yet."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        # Two processes starting at once must not each keep a key of their own, nor read the other's half-written.
        pem = create_or_read(
            path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise CheckpointError(f"{path} does not hold an Ed25519 private key")
    return Signer(name, loaded)


def open_note(note: str, verifier: Verifier) -> str:
    """The text of a signed note whose signature by `verifier` verifies; CheckpointError otherwise."""
    text, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise CheckpointError("not a signed note (no blank line before its signatures)")
    text += "\n"
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("a signature line does not start with an em dash")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if name != verifier.name:
            continue  # another party's signature (a witness cosigning): not ours to check
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise CheckpointError("a signature is not valid base64") from None
        if raw[:4] != verifier.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(raw[4:], text.encode())
        except InvalidSignature:
            raise CheckpointError("its signature does not verify (forged or edited)") from None
        return text
    raise CheckpointError(f"it carries no signature by the log's key {verifier.name}")


# --- Witness cosignatures (C2SP tlog-cosignature, Ed25519) --------------------------------------------------

_COSIGNATURE_HEADER = "cosignature/v1\n"


@dataclass(frozen=True)
class CosignerKey:
    """A witness's Ed25519 cosigning key, read from its vkey ``<name>+<hex key ID>+<base64(0x04 || key)>``."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n" + COSIGNATURE_V1 + self.public_key).digest()[:4]

    def text(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(COSIGNATURE_V1 + self.public_key).decode()}"

    @classmethod
    def parse(cls, text: str) -> "CosignerKey":
        try:
            return cls(*cosigner_vkey(text))
        except ValueError as exc:
            raise CheckpointError(f"the witness key {exc}") from None


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature signs: ``cosignature/v1``, ``time <timestamp>``, then the checkpoint body."""
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


def cosignature_lines(answer: str) -> list[str]:
    """The signature lines of a witness's add-checkpoint answer (each ``— <name> <base64>``); CheckpointError
    if it holds anything else or none."""
    if not answer.endswith("\n"):
        raise CheckpointError("the witness's answer does not end with a newline")
    lines = answer[:-1].split("\n")
    for line in lines:
        name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        if not line.startswith(SIGNATURE_PREFIX) or not _NAME.match(name) or not encoded:
            raise CheckpointError("the witness's answer is not a list of signature lines")
        try:
            base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise CheckpointError("a cosignature is not valid base64") from None
    return lines


def verify_cosignature(line: str, body: str, key: CosignerKey) -> int | None:
    """The timestamp of `line`'s cosignature by `key` on the checkpoint `body`; None when the line is another
    key's (to be ignored); CheckpointError when it is this key's and does not verify."""
    name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
    if name != key.name:
        return None
    raw = base64.b64decode(encoded)
    if raw[:4] != key.key_id:
        return None
    if len(raw) != 4 + 8 + 64:
        raise CheckpointError("the witness's cosignature is not a timestamped Ed25519 signature")
    timestamp = int.from_bytes(raw[4:12], "big")
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[12:], cosigned_message(body, timestamp))
    except InvalidSignature:
        raise CheckpointError(f"the cosignature by {key.name} does not verify") from None
    return timestamp


# The writer of the entries logged before migration 0014: one chain whose entries' hashes cover their `seq`.
LEGACY_WRITER = "legacy"


def heads_digest(heads: Mapping[str, tuple[int, str]]) -> str:
    """SHA-256 (hex) of the writers' heads, a line ``<writer> <wseq> <hash>`` each, sorted by writer: what a
    checkpoint signs of the hash chains (ledger/append.py). Writers with no sealed entry are not listed."""
    lines = "".join(f"{writer} {wseq} {digest}\n" for writer, (wseq, digest) in sorted(heads.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """The log at `size` leaves: the Merkle root over their hashes and a digest of every writer's head there.

    A checkpoint of the single chain before migration 0014 signed that chain's hash instead (`chain_hash`):
    it reads as the digest of the one writer LEGACY_WRITER at `size`, so both kinds are checked alike."""

    origin: str
    size: int
    root_hash: bytes  # the RFC 6962 Merkle root over the first `size` leaves (the entries' hashes)
    heads_digest: str  # `heads_digest` of the writers' heads at `size`
    chain_hash: str | None = None  # (a checkpoint of the single chain: its hash at `size`)

    @classmethod
    def of_chain(cls, origin: str, size: int, root_hash: bytes, chain_hash: str) -> "Checkpoint":
        heads = {LEGACY_WRITER: (size, chain_hash)} if size else {}
        return cls(origin, size, root_hash, heads_digest(heads), chain_hash)

    def body(self) -> str:
        root = base64.b64encode(self.root_hash).decode()
        extension = f"chain {self.chain_hash}" if self.chain_hash is not None else f"heads {self.heads_digest}"
        return f"{self.origin}\n{self.size}\n{root}\n{extension}\n"

    @classmethod
    def parse_body(cls, text: str, origin: str) -> "Checkpoint":
        lines = text.split("\n")
        if len(lines) != 5 or lines[-1] != "":
            raise CheckpointError("a checkpoint body has four lines: origin, size, root hash, writers' heads")
        if lines[0] != origin:
            raise CheckpointError(f"it is a checkpoint of another log ({lines[0]!r}, not {origin!r})")
        if not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]):
            raise CheckpointError("its tree size is not a decimal number")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except binascii.Error:
            raise CheckpointError("its root hash is not base64") from None
        kind, _, digest = lines[3].partition(" ")
        if len(root) != 32 or kind not in {"chain", "heads"} or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise CheckpointError("its root hash or its writers' heads are malformed")
        if kind == "chain":
            return cls.of_chain(lines[0], int(lines[1]), root, digest)
        return cls(lines[0], int(lines[1]), root, digest)


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """The checkpoint in a signed note, once its signature by the log's key verifies."""
    return Checkpoint.parse_body(open_note(note, verifier), verifier.name)


class CheckpointRefused(Exception):
    """The log does not extend its last checkpoint: signing it would bless a rewrite or a truncation."""


class WitnessConflict(CheckpointRefused):
    """The checkpoint is not consistent with what a witness already holds (smaller, another root at its size,
    or no RFC 6962 consistency proof from the witness's latest): it is not handed over, nor signed."""


class CheckpointWithheld(Exception):
    """No checkpoint is signed while evidence of tampering is unresolved (guard/evidence.py)."""
