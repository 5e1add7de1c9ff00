"""RFC 6962 (Certificate Transparency) Merkle tree hashes and inclusion proofs; pure, standard library only.

The decision log's leaves are its entries' hashes (32 bytes each, `bytes.fromhex(entry.hash)`) in the order
the checkpoint writer sealed them, so a signed checkpoint's root commits to every entry and, through each
hash, to its writer's chain before it. A third
party who holds an entry, its inclusion proof and a signed checkpoint checks the entry with
`verify_inclusion` alone: nothing here talks to the database.
"""

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (RFC 6962 §2.1)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_from_leaf_hashes(leaves[:k]), root_from_leaf_hashes(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1: the audit path of leaf `index` in the tree of `leaves` (leaf hashes)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root_from_leaf_hashes(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root_from_leaf_hashes(leaves[:k])]


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` leads to from leaf hash `leaf` at `index` in a tree of `size` (RFC 9162 §2.1.3.2).

    Raises ValueError when the proof has the wrong length for that index and size."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            raise ValueError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the proof is shorter than the tree is deep")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `proof` shows leaf hash `leaf` at `index` in the tree of `size` leaves whose root is `root`."""
    try:
        return root_from_inclusion_proof(index, size, leaf, proof) == root
    except ValueError:
        return False


class CompactRange:
    """The perfect subtrees that make up a tree of `size` leaves, largest first (one per bit of `size`): enough
    to extend the tree leaf by leaf and to give its root at any size, in O(log n) memory."""

    def __init__(self, size: int = 0, subtrees: Iterable[bytes] = ()) -> None:
        self.size = size
        self.subtrees = list(subtrees)
        if len(self.subtrees) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} perfect subtrees")

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash; merge equal-height subtrees as binary addition carries."""
        node, size = leaf, self.size
        while size & 1:
            node = node_hash(self.subtrees.pop(), node)
            size >>= 1
        self.subtrees.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self.subtrees:
            return EMPTY_ROOT
        root = self.subtrees[-1]
        for subtree in reversed(self.subtrees[:-1]):
            root = node_hash(subtree, root)
        return root
