"""The log's stored subtree roots (`guard_log_node`): the root of every 2^8, 2^16, ... leaves, written by the
checkpoint writer when it seals, read by receipts and consistency proofs so that a proof costs O(log n) reads."""

import asyncpg

from ledger.checkpoint import CheckpointRefused
from ledger.merkle import (
    STORED_LEVELS,
    RootOf,
    leaf_hash,
    perfect_pieces,
    reads_for,
    root_from_leaf_hashes,
    root_of_pieces,
)


async def stored_node_counts(connection: asyncpg.Connection) -> dict[int, int]:
    """How many nodes each stored level of the tree holds (they are written from index 0 on, none skipped)."""
    rows = await connection.fetch(
        "SELECT s.level, (SELECT max(n.index) + 1 FROM guard_log_node n WHERE n.level = s.level) AS count"
        " FROM unnest($1::smallint[]) AS s(level)",
        list(STORED_LEVELS),
    )
    return {int(row["level"]): int(row["count"] or 0) for row in rows}


async def _leaf_hashes_at(connection: asyncpg.Connection, indexes: list[int]) -> dict[int, bytes]:
    rows = await connection.fetch(
        "SELECT l.leaf_index, d.hash FROM guard_log_leaf l JOIN guard_decision d ON d.seq = l.seq"
        " WHERE l.leaf_index = ANY($1::bigint[])",
        indexes,
    )
    return {int(row["leaf_index"]): leaf_hash(bytes.fromhex(row["hash"])) for row in rows}


async def stored_roots(connection: asyncpg.Connection, ranges: list[tuple[int, int]]) -> RootOf:
    """`root_of(start, end)` for the ranges given, from the stored nodes (and, below the first stored level or
    past the last stored node, the leaves): O(log n) reads and hashes per range (guard/merkle.py)."""
    counts = await stored_node_counts(connection)
    pieces = {piece for start, end in ranges for piece in perfect_pieces(start, end)}
    reads = {piece: reads_for(piece, counts) for piece in pieces}
    node_keys = sorted({(lv, i) for lv, first, n in reads.values() if lv for i in range(first, first + n)})
    leaf_indexes = sorted({i for lv, first, n in reads.values() if not lv for i in range(first, first + n)})
    nodes: dict[tuple[int, int], bytes] = {}
    if node_keys:
        rows = await connection.fetch(
            "SELECT n.level, n.index, n.hash FROM guard_log_node n"
            " JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, index) ON n.level = k.level AND n.index = k.index",
            [lv for lv, _ in node_keys],
            [i for _, i in node_keys],
        )
        nodes = {(int(r["level"]), int(r["index"])): bytes.fromhex(r["hash"]) for r in rows}
    leaves = await _leaf_hashes_at(connection, leaf_indexes) if leaf_indexes else {}
    piece_roots: dict[tuple[int, int], bytes] = {}
    for piece, (lv, first, n) in reads.items():
        try:
            children = [nodes[(lv, i)] if lv else leaves[i] for i in range(first, first + n)]
        except KeyError:
            raise CheckpointRefused(f"the log's tree is missing nodes under leaf {first << lv} (deleted)") from None
        piece_roots[piece] = root_from_leaf_hashes(children)

    def root_of(start: int, end: int) -> bytes:
        return root_of_pieces([piece_roots[piece] for piece in perfect_pieces(start, end)])

    return root_of


async def store_nodes(connection: asyncpg.Connection, size: int) -> None:
    """Store the roots of the perfect subtrees of each stored level that the first `size` leaves complete and
    that are not stored yet (the first checkpoint after migration 0018 stores those of the whole log)."""
    counts = await stored_node_counts(connection)
    below = 0
    for level in STORED_LEVELS:
        have, want = counts.get(level, 0), size >> level
        if want <= have:
            break
        children_per_node = 1 << (level - below)
        first, end = have * children_per_node, want * children_per_node
        if below == 0:
            found = await _leaf_hashes_at(connection, list(range(first, end)))
            children = [found[i] for i in range(first, end)]
        else:
            rows = await connection.fetch(
                "SELECT hash FROM guard_log_node WHERE level = $1 AND index >= $2 AND index < $3 ORDER BY index",
                below,
                first,
                end,
            )
            children = [bytes.fromhex(r["hash"]) for r in rows]
        if len(children) != end - first:
            raise CheckpointRefused(f"the log's tree is missing nodes or leaves at level {below} (deleted)")
        roots = [
            root_from_leaf_hashes(children[i : i + children_per_node])
            for i in range(0, len(children), children_per_node)
        ]
        await connection.execute(
            "INSERT INTO guard_log_node (level, index, hash) SELECT $1, * FROM unnest($2::bigint[], $3::text[])",
            level,
            list(range(have, want)),
            [r.hex() for r in roots],
        )
        below = level
