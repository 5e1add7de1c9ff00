"""Checking a receipt (`GET /api/guard/decisions/{id}`) as a third party does: with the log's public key only.

The entry's content (which names its writer and its place in that writer's chain) hashes, with the previous
hash, to its hash; that hash is the entry's leaf in the Merkle tree, at the leaf index the log sealed it at;
the inclusion proof leads from the leaf to the root of a checkpoint signed by the log's key.
"""

import base64
from typing import Any

from ledger.checkpoint import LEGACY_WRITER, Checkpoint, CheckpointError, Verifier, open_checkpoint
from ledger.entries import content_hash
from ledger.merkle import leaf_hash, verify_inclusion


def verify_receipt(receipt: dict[str, Any], verifier: Verifier) -> Checkpoint:
    """The signed checkpoint the receipt's entry is proven in; CheckpointError saying what does not hold."""
    content = receipt["content"]
    # An entry names its place in its writer's chain (the single chain before migration 0014: its `seq`).
    place = (content.get("writer"), content.get("wseq")) if "wseq" in content else (LEGACY_WRITER, content.get("seq"))
    if place != (receipt["writer"], receipt["wseq"]):
        raise CheckpointError("the receipt's writer and place in its chain disagree with the entry's content")
    if content_hash(content, receipt["prev_hash"]) != receipt["hash"]:
        raise CheckpointError("the entry's content does not match its hash")
    if receipt.get("checkpoint") is None or receipt.get("inclusion_proof") is None or receipt["leaf_index"] is None:
        raise CheckpointError("no checkpoint covers this entry yet")
    checkpoint = open_checkpoint(receipt["checkpoint"], verifier)
    proof = [base64.b64decode(p, validate=True) for p in receipt["inclusion_proof"]]
    leaf = leaf_hash(bytes.fromhex(receipt["hash"]))
    if not verify_inclusion(receipt["leaf_index"], checkpoint.size, leaf, proof, checkpoint.root_hash):
        raise CheckpointError("the inclusion proof does not lead to the checkpoint's root")
    return checkpoint
