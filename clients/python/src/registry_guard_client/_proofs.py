"""Checking the decision log's proofs with the log's public key alone: a receipt (an entry, its inclusion proof
and a signed checkpoint) and a consistency proof between two checkpoints (RFC 6962 / RFC 9162 Merkle trees,
C2SP tlog-checkpoint bodies in C2SP signed-note form, Ed25519).

Nothing here trusts the service: every hash is recomputed, every signature checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_ED25519 = b"\x01"
_SIGNATURE_PREFIX = "\u2014 "
_LEGACY_WRITER = "legacy"


class ProofError(ValueError):
    """A receipt, checkpoint or proof that does not hold (says what does not)."""


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `proof` leads from leaf hash `leaf` at `index` to `root`, in a tree of `size` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = _node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = _node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when `proof` shows the tree of `first` leaves (root `first_root`) is a prefix of the tree of `second`
    leaves (root `second_root`): RFC 9162 §2.1.4.2."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node_hash(node, fr), _node_hash(node, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node_hash(sr, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose signature by the log's key has verified: the log at `size` leaves has `root_hash`."""

    origin: str
    size: int
    root_hash: bytes


def open_checkpoint(note: str, verifier_key: str) -> SignedCheckpoint:
    """The checkpoint in a signed note, once its signature by the log's verifier key (``<name>+<key id>+<base64
    key>``, as `registry guard public-key` prints it) verifies; ProofError otherwise."""
    try:
        name, key_id_hex, encoded = verifier_key.strip().split("+", 2)
        raw_key = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise ProofError("the verifier key reads <name>+<key id>+<base64 key>") from None
    if len(raw_key) != 33 or raw_key[:1] != _ED25519:
        raise ProofError("the verifier key is not an Ed25519 key")
    key_id = hashlib.sha256(name.encode() + b"\n" + raw_key).digest()[:4]
    if key_id.hex() != key_id_hex:
        raise ProofError("the verifier key's ID does not match its name and key")
    text, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise ProofError("not a signed note")
    text += "\n"
    for line in signatures[:-1].split("\n"):
        if not line.startswith(_SIGNATURE_PREFIX):
            raise ProofError("a signature line does not start with an em dash")
        signer, _, signature = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise ProofError("a signature is not valid base64") from None
        if signer != name or blob[:4] != key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(raw_key[1:]).verify(blob[4:], text.encode())
        except InvalidSignature:
            raise ProofError("the checkpoint's signature does not verify (forged or edited)") from None
        lines = text.split("\n")
        if len(lines) != 5 or lines[0] != name or not lines[1].isdigit():
            raise ProofError("the checkpoint's body is malformed")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except binascii.Error:
            raise ProofError("the checkpoint's root hash is not base64") from None
        if len(root) != 32:
            raise ProofError("the checkpoint's root hash is not 32 bytes")
        return SignedCheckpoint(lines[0], int(lines[1]), root)
    raise ProofError(f"the checkpoint carries no signature by the log's key {name}")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_receipt(receipt: Mapping[str, Any], verifier_key: str) -> SignedCheckpoint:
    """Check a receipt (`GET /api/guard/decisions/{id}`) with the log's public key alone: the entry's content
    hashes, with its previous hash, to its hash; its leaf is in the signed checkpoint's tree. The checkpoint
    it is proven in; ProofError saying what does not hold."""
    content = receipt["content"]
    place = (content.get("writer"), content.get("wseq")) if "wseq" in content else (_LEGACY_WRITER, content.get("seq"))
    if place != (receipt.get("writer"), receipt.get("wseq")):
        raise ProofError("the receipt's writer and place disagree with the entry's content")
    digest = hashlib.sha256(_canonical(content) + str(receipt["prev_hash"]).encode()).hexdigest()
    if digest != receipt["hash"]:
        raise ProofError("the entry's content does not match its hash")
    if receipt.get("checkpoint") is None or receipt.get("inclusion_proof") is None or receipt.get("leaf_index") is None:
        raise ProofError("no checkpoint covers this entry yet")
    checkpoint = open_checkpoint(receipt["checkpoint"], verifier_key)
    try:
        proof = [base64.b64decode(p, validate=True) for p in receipt["inclusion_proof"]]
    except binascii.Error:
        raise ProofError("the inclusion proof is not base64") from None
    leaf = _leaf_hash(bytes.fromhex(receipt["hash"]))
    if not verify_inclusion(int(receipt["leaf_index"]), checkpoint.size, leaf, proof, checkpoint.root_hash):
        raise ProofError("the inclusion proof does not lead to the checkpoint's root")
    return checkpoint


def verify_consistency_answer(answer: Mapping[str, Any], older: SignedCheckpoint, newer: SignedCheckpoint) -> None:
    """Check `GET /api/guard/checkpoints/{a}/consistency/{b}` against two checkpoints the caller holds (opened
    with `open_checkpoint`, e.g. from a witness): the newer extends the older. ProofError otherwise."""
    if (answer.get("first"), answer.get("second")) != (older.size, newer.size):
        raise ProofError("the proof is for other sizes than the checkpoints'")
    try:
        proof = [base64.b64decode(p, validate=True) for p in answer["proof"]]
    except (binascii.Error, KeyError, TypeError):
        raise ProofError("the proof is not a list of base64 hashes") from None
    if not verify_consistency(older.size, newer.size, older.root_hash, newer.root_hash, proof):
        raise ProofError(
            f"the checkpoint at size {newer.size} does not extend the one at size {older.size} (the log was rewritten)"
        )
