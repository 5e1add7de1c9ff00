"""ledger/merkle.py against the RFC 6962 test vectors of Certificate Transparency's reference implementations."""

import pytest

from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves and the roots of their prefixes used by certificate-transparency-go and the C++ log.
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path) from the same test suites.
PROOFS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
HASHES = [leaf_hash(data) for data in LEAVES]


def test_the_empty_tree_has_the_hash_of_the_empty_string():
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_tree_roots_match_the_rfc_6962_vectors(size):
    assert root_from_leaf_hashes(HASHES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize("size", range(9))
def test_a_compact_range_grown_leaf_by_leaf_gives_the_same_roots(size):
    compact = CompactRange()
    for leaf in HASHES[:size]:
        compact.append(leaf)
    assert compact.root() == root_from_leaf_hashes(HASHES[:size])
    # Rebuilt from its stored subtrees, it carries on where it left off.
    resumed = CompactRange(compact.size, compact.subtrees)
    for leaf in HASHES[size:]:
        resumed.append(leaf)
    assert resumed.root().hex() == ROOTS[-1]


@pytest.mark.parametrize(("index", "size", "path"), PROOFS)
def test_inclusion_proofs_match_the_rfc_6962_vectors_and_verify(index, size, path):
    proof = inclusion_proof(index, HASHES[:size])
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(index, size, HASHES[index], proof, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize("size", range(1, 9))
def test_every_leaf_of_every_tree_proves_its_inclusion(size):
    root = root_from_leaf_hashes(HASHES[:size])
    for index in range(size):
        assert verify_inclusion(index, size, HASHES[index], inclusion_proof(index, HASHES[:size]), root)


def test_a_proof_for_another_leaf_index_or_size_or_a_tampered_leaf_is_refused():
    proof = inclusion_proof(5, HASHES)
    root = bytes.fromhex(ROOTS[-1])
    assert not verify_inclusion(4, 8, HASHES[5], proof, root)
    assert not verify_inclusion(5, 7, HASHES[5], proof, bytes.fromhex(ROOTS[6]))
    assert not verify_inclusion(5, 8, leaf_hash(b"forged"), proof, root)
    assert not verify_inclusion(5, 8, HASHES[5], proof[:-1], root)
    assert not verify_inclusion(5, 8, HASHES[5], [*proof, proof[0]], root)
    assert not verify_inclusion(8, 8, HASHES[5], proof, root)


def test_a_compact_range_refuses_subtrees_that_do_not_fit_its_size():
    with pytest.raises(ValueError):
        CompactRange(5, [EMPTY_ROOT])


def test_a_consistency_proof_shows_every_prefix_of_a_tree_and_the_python_client_checks_it_alike():
    from registry_guard_client import verify_consistency as client_verify

    leaves = [leaf_hash(bytes([i, i * 7 % 256])) for i in range(40)]
    for size in range(1, 41):
        root = root_from_leaf_hashes(leaves[:size])
        for first in range(1, size + 1):
            proof = consistency_proof(first, leaves[:size])
            first_root = root_from_leaf_hashes(leaves[:first])
            assert verify_consistency(first, size, first_root, root, proof), (first, size)
            assert client_verify(first, size, first_root, root, proof), (first, size)


def test_a_consistency_proof_fails_for_another_history_a_changed_node_or_other_sizes():
    leaves = [leaf_hash(bytes([i])) for i in range(13)]
    other = [*leaves[:4], leaf_hash(b"rewritten"), *leaves[5:]]
    proof = consistency_proof(7, leaves)
    root = root_from_leaf_hashes(leaves)
    assert not verify_consistency(7, 13, root_from_leaf_hashes(other[:7]), root, proof)
    assert not verify_consistency(7, 13, root_from_leaf_hashes(leaves[:7]), root_from_leaf_hashes(other), proof)
    assert not verify_consistency(7, 13, root_from_leaf_hashes(leaves[:7]), root, [proof[0][::-1], *proof[1:]])
    assert not verify_consistency(6, 13, root_from_leaf_hashes(leaves[:6]), root, proof)
    assert not verify_consistency(7, 13, root_from_leaf_hashes(leaves[:7]), root, proof[:-1])
    assert not verify_consistency(8, 7, root, root, [])


# (first size, second size, consistency proof) from the same test suites.
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.mark.parametrize(("first", "second", "expected"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors_and_verify(first, second, expected):
    leaves = [leaf_hash(leaf) for leaf in LEAVES[:second]]
    proof = consistency_proof(first, leaves)
    assert [node.hex() for node in proof] == expected
    first_root, second_root = bytes.fromhex(ROOTS[first - 1]), bytes.fromhex(ROOTS[second - 1])
    assert verify_consistency(first, second, first_root, second_root, proof)


def test_proofs_built_from_subtree_roots_are_the_proofs_built_from_the_leaves():
    from ledger.merkle import consistency_path, inclusion_path, perfect_pieces, ranges_needed, root_of_pieces

    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(300)]

    def from_pieces(start: int, end: int) -> bytes:
        pieces = perfect_pieces(start, end)
        return root_of_pieces([root_from_leaf_hashes(leaves[i << lv : (i + 1) << lv]) for lv, i in pieces])

    for size in (1, 2, 3, 7, 8, 9, 255, 256, 257, 300):
        for index in {0, size // 3, size - 1}:
            assert inclusion_path(index, size, from_pieces) == inclusion_proof(index, leaves[:size])
        for first in {1, size // 2 or 1, size - 1 or 1, size}:
            assert consistency_path(first, size, from_pieces) == consistency_proof(first, leaves[:size])
        # Every node a proof needs is a range of at most log2(n) perfect subtrees.
        asked = ranges_needed(lambda r, size=size: inclusion_path(size - 1, size, r))
        assert all(len(perfect_pieces(a, b)) <= size.bit_length() for a, b in asked)


def test_a_subtree_is_read_from_the_highest_stored_level_that_covers_it_else_from_its_leaves():
    from ledger.merkle import reads_for

    assert reads_for((10, 3), {8: 100}) == (8, 12, 4)  # four stored nodes of 256 leaves each
    assert reads_for((10, 30), {8: 100}) == (0, 30 << 10, 1 << 10)  # past the stored nodes: its leaves
    assert reads_for((5, 7), {8: 100}) == (0, 7 << 5, 32)  # below the first stored level
    assert reads_for((17, 1), {8: 2048, 16: 8}) == (16, 2, 2)
