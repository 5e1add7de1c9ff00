"""RFC 6962 (Certificate Transparency) Merkle tree hashes and inclusion proofs; pure, standard library only.

The decision log's leaves are its entries' hashes (32 bytes each, `bytes.fromhex(entry.hash)`) in the order
the checkpoint writer sealed them, so a signed checkpoint's root commits to every entry and, through each
hash, to its writer's chain before it. A third
party who holds an entry, its inclusion proof and a signed checkpoint checks the entry with
`verify_inclusion` alone: nothing here talks to the database.
"""

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

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


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2: the nodes that show the tree of the first `first` leaves is a prefix
    of the tree of `leaves` (leaf hashes). Empty when `first` is 0 or the whole tree."""
    if not 0 <= first <= len(leaves):
        raise ValueError(f"a tree of {len(leaves)} leaves has no prefix of {first}")
    if first == 0 or first == len(leaves):
        return []
    return _subproof(first, leaves, True)


def _subproof(first: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2."""
    size = len(leaves)
    if first == size:
        return [] if whole else [root_from_leaf_hashes(leaves)]
    k = _split(size)
    if first <= k:
        return [*_subproof(first, leaves[:k], whole), root_from_leaf_hashes(leaves[k:])]
    return [*_subproof(first - k, leaves[k:], False), root_from_leaf_hashes(leaves[:k])]


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when `proof` shows the tree of `first` leaves with root `first_root` is a prefix of the tree of
    `second` leaves with root `second_root` (RFC 9162 §2.1.4.2)."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof  # (the empty tree is a prefix of every tree)
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is itself a node of the second
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
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# --- Proofs from stored subtrees ----------------------------------------------------------------------------
#
# The checkpoint writer stores the root of every perfect subtree of 2**L leaves, for L in STORED_LEVELS, as the
# tree grows (guard/audit.py). Every node a proof needs is the root of a range of the tree that splits into at
# most log2(n) perfect subtrees; each is read from the stored level just below it (fewer than 256 nodes) or,
# below the first stored level, from its leaves (fewer than 256): a proof costs O(log n) reads and hashes,
# however large the log.

STORED_LEVELS = (8, 16, 24, 32, 40, 48)
TILE = 1 << STORED_LEVELS[0]

RootOf = Callable[[int, int], bytes]


def perfect_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect subtrees (level, index) whose roots make up MTH(D[start:end]), largest first, for a range
    the RFC 6962 recursion meets (its start aligned to the largest power of two not above its size)."""
    pieces: list[tuple[int, int]] = []
    while start < end:
        size = end - start
        k = 1 << (size.bit_length() - 1)  # the largest power of two not above size
        if start % k:
            raise ValueError(f"leaves {start}…{end - 1} are not a subtree of the log's tree")
        level = k.bit_length() - 1
        pieces.append((level, start >> level))
        start += k
    return pieces


def root_of_pieces(roots: Sequence[bytes]) -> bytes:
    """MTH of a range from its perfect subtrees' roots, largest first (`perfect_pieces`)."""
    root = roots[-1]
    for piece in reversed(roots[:-1]):
        root = node_hash(piece, root)
    return root


def inclusion_path(index: int, size: int, root_of: RootOf, start: int = 0) -> list[bytes]:
    """PATH(index, D[start:start+size]) with each subtree's root from `root_of(first leaf, end)`."""
    if size == 1:
        return []
    k = _split(size)
    if index < k:
        return [*inclusion_path(index, k, root_of, start), root_of(start + k, start + size)]
    return [*inclusion_path(index - k, size - k, root_of, start + k), root_of(start, start + k)]


def consistency_path(first: int, size: int, root_of: RootOf) -> list[bytes]:
    """PROOF(first, D[0:size]) with each subtree's root from `root_of(first leaf, end)`."""
    if not 0 <= first <= size:
        raise ValueError(f"a tree of {size} leaves has no prefix of {first}")
    if first in (0, size):
        return []

    def subproof(m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [root_of(start, end)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, start, start + k, whole), root_of(start + k, end)]
        return [*subproof(m - k, start + k, end, False), root_of(start, start + k)]

    return subproof(first, 0, size, True)


def ranges_needed(build: Callable[[RootOf], object]) -> list[tuple[int, int]]:
    """The ranges whose roots `build` asks `root_of` for (it is run once with placeholder roots)."""
    asked: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        asked.append((start, end))
        return EMPTY_ROOT

    build(record)
    return asked


def reads_for(piece: tuple[int, int], stored: Mapping[int, int]) -> tuple[int, int, int]:
    """What to read for a perfect subtree (level, index): (stored level, first index, count) of the nodes whose
    root it is, level 0 meaning leaves; from the highest stored level at or below it whose nodes cover it
    (`stored`: how many nodes each stored level holds, from index 0 on)."""
    level, index = piece
    for stored_level in reversed(STORED_LEVELS):
        if stored_level <= level:
            first, count = index << (level - stored_level), 1 << (level - stored_level)
            if first + count <= stored.get(stored_level, 0):
                return stored_level, first, count
    return 0, index << level, 1 << level
