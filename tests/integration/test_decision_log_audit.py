"""The decision log against an auditor's attacks (issue 18): append-only triggers, signed checkpoints handed to
witnesses, `verify-log --checkpoints`, and receipts with inclusion proofs, on the real PostgreSQL."""

import asyncio
import json
import stat
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from cli.main import main
from kernel.db import downgrade_schema, upgrade_schema
from ledger.append import EMPTY_CHAIN, append_to_chain, chained_rows, own_head
from ledger.checkpoint import (
    LEGACY_WRITER,
    Checkpoint,
    CheckpointError,
    Verifier,
    load_or_create_signer,
    open_checkpoint,
)
from ledger.entries import DecisionEntry
from ledger.merkle import CompactRange, leaf_hash
from ledger.proofs import receipt
from ledger.receipt import verify_receipt
from ledger.seal import CheckpointPublisher, checkpoint_file_name
from tests.conftest import SEED_ALLOWED_SHARE, free_port, test_settings
from tests.integration.test_decision_log import entry, plain_url, write_entries

LOG_TABLES = ("guard_decision", "guard_log_writer", "guard_log_leaf", "guard_checkpoint")
# The one writer `logged` and `rebuild` write as (a careful forger keeps the writers' names).
WRITER = "test-writer"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "log-signing.key"


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    """A witness's folder (in production: synced somewhere the database's editors cannot write)."""
    return tmp_path / "witness"


def verifier_of(key_file: Path) -> Verifier:
    return load_or_create_signer(key_file, "offix-registry/guard-decisions").verifier


def cli(database: str, key_file: Path, *args: str, **env: str):
    environment = {"REGISTRY_DATABASE_URL": plain_url(database), "REGISTRY_LOG_SIGNING_KEY_FILE": str(key_file), **env}
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


async def run(database: str, key_file: Path, *args: str, **env: str):
    return await asyncio.to_thread(cli, database, key_file, *args, **env)


async def checkpoint(database: str, key_file: Path, witness: Path) -> None:
    result = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert result.exit_code == 0, result.output


@asynccontextmanager
async def as_superuser(database: str) -> AsyncIterator[asyncpg.Connection]:
    """A database superuser at work: the append-only triggers lifted, in one transaction, then put back."""
    connection = await asyncpg.connect(plain_url(database))
    try:
        async with connection.transaction():
            for table in LOG_TABLES:
                await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            yield connection
            for table in LOG_TABLES:
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await connection.close()


async def rebuild(database: str, entries: list[DecisionEntry]) -> None:
    """Replace the whole log with a correctly chained one of `entries` by WRITER, sealed in that order (and drop
    the stored checkpoints, as a careful forger would): every hash, the head and the leaves recomputed."""
    async with as_superuser(database) as connection:
        for table in ("guard_log_leaf", "guard_checkpoint", "guard_decision", "guard_log_writer"):
            await connection.execute(f"DELETE FROM {table}")
        await append_to_chain(connection, WRITER, entries, EMPTY_CHAIN, "forger")
        await connection.execute(
            "INSERT INTO guard_log_leaf (leaf_index, seq) SELECT wseq - 1, seq FROM guard_decision"
        )


async def logged(database: str, entries: list[DecisionEntry]) -> None:
    """Append `entries` to WRITER's chain."""
    connection = await asyncpg.connect(plain_url(database))
    try:
        await append_to_chain(connection, WRITER, entries, await own_head(connection, WRITER), "test")
    finally:
        await connection.close()


async def cut_back_to(connection: asyncpg.Connection, seq: int) -> None:
    """Cut the log after entry `seq`: the entries, their leaves, and their writers' heads moved back (the test
    logs have one writer at a time)."""
    await connection.execute("DELETE FROM guard_log_leaf WHERE seq > $1", seq)
    await connection.execute("DELETE FROM guard_decision WHERE seq > $1", seq)
    await connection.execute(
        "UPDATE guard_log_writer w SET last_wseq = d.wseq, last_hash = d.hash FROM guard_decision d"
        " WHERE d.seq = $1 AND w.writer = d.writer",
        seq,
    )


# --- The triggers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE guard_decision SET allowed = NOT allowed WHERE seq = 2",
        "DELETE FROM guard_decision WHERE seq = 3",
        "TRUNCATE guard_decision",
        "TRUNCATE guard_decision CASCADE",
        "DELETE FROM guard_log_writer",
        "TRUNCATE guard_log_writer",
        "UPDATE guard_log_writer SET last_wseq = 2, last_hash = (SELECT hash FROM guard_decision WHERE seq = 2)",
        "UPDATE guard_log_writer SET last_hash = repeat('0', 64)",
        "UPDATE guard_log_writer SET writer = 'someone-else'",
        "UPDATE guard_log_leaf SET seq = 1 WHERE leaf_index = 2",
        "DELETE FROM guard_log_leaf",
        "TRUNCATE guard_log_leaf",
        "UPDATE guard_checkpoint SET size = 1",
        "DELETE FROM guard_checkpoint",
        "TRUNCATE guard_checkpoint",
    ],
)
async def test_plain_sql_cannot_change_delete_or_truncate_the_log_or_move_its_head_back(
    database, key_file, witness, statement
):
    await write_entries(database, 4)
    await checkpoint(database, key_file, witness)
    connection = await asyncpg.connect(plain_url(database))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"append-only|only moves forward"):
            await connection.execute(statement)
        assert await connection.fetchval("SELECT count(*) FROM guard_decision") == 4
        assert await connection.fetchval("SELECT last_wseq FROM guard_log_writer") == 4
        assert await connection.fetchval("SELECT count(*) FROM guard_log_leaf") == 4
        assert await connection.fetchval("SELECT count(*) FROM guard_checkpoint") == 1
    finally:
        await connection.close()


async def test_the_writer_still_appends_and_moves_the_head_forward(database):
    await write_entries(database, 3)
    await write_entries(database, 2)
    result = await asyncio.to_thread(cli, database, Path("/nonexistent/key"), "guard", "verify-log")
    assert result.exit_code == 0, result.output
    assert "log intact: 5 entries" in result.stdout


# --- Checkpoints ---------------------------------------------------------------------------------------------


async def test_the_checkpoint_command_signs_the_log_with_a_key_it_creates_private_and_prints_it(
    database, key_file, witness
):
    await write_entries(database, 5)
    public = await run(database, key_file, "guard", "public-key")
    assert public.exit_code == 0, public.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    verifier = Verifier.parse(public.stdout.strip())
    assert public.stdout.startswith("offix-registry/guard-decisions+")
    made = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert made.exit_code == 0, made.output
    written = (witness / "checkpoint-000000000005.txt").read_text()
    assert written == made.stdout
    signed = open_checkpoint(written, verifier)
    assert signed.size == 5
    # Nothing new to sign: the same checkpoint, not another one.
    again = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert again.stdout == written
    assert [p.name for p in witness.iterdir()] == ["checkpoint-000000000005.txt"]


async def test_checkpoints_extend_the_tree_and_verify_log_holds_the_log_to_all_of_them(database, key_file, witness):
    for count in (1, 2, 5):  # 1, 3 and 8 entries
        await write_entries(database, count)
        await checkpoint(database, key_file, witness)
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert result.exit_code == 0, result.output
    assert "log intact: 8 entries" in result.stdout
    assert len(list(witness.iterdir())) == 3


async def test_no_checkpoint_is_signed_over_a_log_cut_back_since_the_last_one(database, key_file, witness):
    await write_entries(database, 5)
    await checkpoint(database, key_file, witness)
    async with as_superuser(database) as connection:
        await cut_back_to(connection, 3)
    refused = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert refused.exit_code == 1
    assert "checkpoint refused" in refused.stderr


async def test_a_witness_that_is_down_is_reported_and_the_checkpoint_is_still_stored_and_filed(
    database, key_file, witness
):
    await write_entries(database, 2)
    url = f"http://127.0.0.1:{free_port()}/"  # nobody listens there
    made = await run(
        database, key_file, "guard", "checkpoint", "--dir", str(witness), REGISTRY_CHECKPOINT_WITNESS_URL=url
    )
    assert made.exit_code == 1
    assert f"witness {url}" in made.stderr
    assert (witness / "checkpoint-000000000002.txt").exists()
    since = await run(database, key_file, "guard", "verify-log", "--since-checkpoint")
    assert since.exit_code == 0, since.output


async def appears(path: Path) -> None:
    """Wait (a minute at most) for the file to exist."""
    for _ in range(1200):
        if await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def test_the_service_writes_checkpoints_in_the_background_and_hands_them_to_its_witness_folder(
    database, key_file, witness
):
    await write_entries(database, 3)
    settings = test_settings(database, log_signing_key_file=key_file, checkpoint_dir=witness)
    publisher = CheckpointPublisher(plain_url(database), settings, interval=0.05)
    publisher.start()
    try:
        await appears(witness / "checkpoint-000000000003.txt")
        await write_entries(database, 2)
        await appears(witness / "checkpoint-000000000005.txt")
    finally:
        await publisher.stop()
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert result.exit_code == 0, result.output


# --- The attacks -------------------------------------------------------------------------------------------------


async def cut_the_end_and_move_the_head_back(database: str, entries: list[DecisionEntry]) -> None:
    async with as_superuser(database) as connection:
        await cut_back_to(connection, 4)
        await connection.execute("DELETE FROM guard_checkpoint WHERE size > 4")


async def insert_a_forged_entry_with_recomputed_hashes(database: str, entries: list[DecisionEntry]) -> None:
    forged = replace(entry("kvarnberg"), caller="forger")
    await rebuild(database, [*entries[:3], forged, *entries[3:]])


async def rewrite_the_whole_history(database: str, entries: list[DecisionEntry]) -> None:
    await rebuild(database, [replace(e, allowed=not e.allowed, caller="rewriter") for e in entries])


async def wipe_the_log(database: str, entries: list[DecisionEntry]) -> None:
    async with as_superuser(database) as connection:
        await connection.execute("TRUNCATE guard_decision, guard_log_writer, guard_log_leaf, guard_checkpoint")


ATTACKS: list[tuple[Callable[[str, list[DecisionEntry]], Awaitable[None]], str]] = [
    (cut_the_end_and_move_the_head_back, "truncated: the log's order ends at leaf 4, but checkpoint file"),
    (insert_a_forged_entry_with_recomputed_hashes, "rewritten at or before leaf 6"),
    (rewrite_the_whole_history, "rewritten at or before leaf 2"),
    (wipe_the_log, "truncated: the log's order ends at leaf 0"),
]


@pytest.mark.parametrize(("attack", "named"), ATTACKS, ids=[a.__name__ for a, _ in ATTACKS])
async def test_an_attack_the_hash_chain_alone_misses_is_caught_by_the_witness_checkpoints(
    database, key_file, witness, attack, named
):
    entries = [entry() for _ in range(6)]
    await logged(database, entries[:2])
    await checkpoint(database, key_file, witness)  # size 2
    await logged(database, entries[2:])
    await checkpoint(database, key_file, witness)  # size 6
    await attack(database, entries)
    # The database on its own is consistent again: the chain verifies, and no stored checkpoint contradicts it.
    alone = await run(database, key_file, "guard", "verify-log")
    assert alone.exit_code == 0, alone.output
    held = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert held.exit_code == 1, held.output
    assert named in held.stderr


async def test_verify_log_also_holds_the_log_to_its_stored_checkpoints(database, key_file, witness):
    await write_entries(database, 5)
    await checkpoint(database, key_file, witness)
    async with as_superuser(database) as connection:  # the end cut off, the stored checkpoint left alone
        await cut_back_to(connection, 3)
    result = await run(database, key_file, "guard", "verify-log")
    assert result.exit_code == 1
    assert "truncated: the log's order ends at leaf 3, but the stored checkpoint at size 5" in result.stderr


@pytest.mark.parametrize(
    "edit",
    [
        lambda note: note.replace("\n6\n", "\n4\n", 1),  # the size
        lambda note: note.replace("heads ", "heads 0", 1)[:-1],  # the writers' heads
        lambda note: note.replace(note.split("\n")[2], "A" * 43 + "=", 1),  # the root
    ],
    ids=["size", "heads", "root"],
)
async def test_an_edited_checkpoint_file_is_refused(database, key_file, witness, edit):
    await write_entries(database, 6)
    await checkpoint(database, key_file, witness)
    path = witness / "checkpoint-000000000006.txt"
    path.write_text(edit(path.read_text()))
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert result.exit_code == 1
    assert "checkpoint file checkpoint-000000000006.txt is refused" in result.stderr


async def test_a_checkpoint_forged_with_another_key_is_refused(database, key_file, witness, tmp_path):
    await write_entries(database, 3)
    await checkpoint(database, key_file, witness)
    genuine = open_checkpoint((witness / "checkpoint-000000000003.txt").read_text(), verifier_of(key_file))
    forger = load_or_create_signer(tmp_path / "forger.key", genuine.origin)  # same name, a key of its own
    (witness / "checkpoint-000000000009.txt").write_text(forger.sign(replace(genuine, size=9).body()))
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert result.exit_code == 1
    assert "checkpoint-000000000009.txt is refused" in result.stderr


async def test_a_third_party_verifies_with_the_public_key_alone(database, key_file, witness, tmp_path):
    await write_entries(database, 3)
    await checkpoint(database, key_file, witness)
    public = (await run(database, key_file, "guard", "public-key")).stdout.strip()
    elsewhere = tmp_path / "no-such.key"
    result = await run(
        database, elsewhere, "guard", "verify-log", "--checkpoints", str(witness), "--public-key", public
    )
    assert result.exit_code == 0, result.output
    assert not elsewhere.exists()
    without = await run(database, elsewhere, "guard", "verify-log", "--checkpoints", str(witness))
    assert without.exit_code == 2
    assert "--public-key" in without.stderr


# --- Incremental verification ------------------------------------------------------------------------------------


async def test_since_checkpoint_verifies_what_came_after_the_last_checkpoint(database, key_file, witness):
    await write_entries(database, 4)
    await checkpoint(database, key_file, witness)
    await write_entries(database, 3)
    intact = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness), "--since-checkpoint")
    assert intact.exit_code == 0, intact.output
    assert "log intact: 7 entries" in intact.stdout
    async with as_superuser(database) as connection:
        await connection.execute("UPDATE guard_decision SET caller = 'someone-else' WHERE seq = 6")
    edited = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness), "--since-checkpoint")
    assert edited.exit_code == 1
    assert "entry 6" in edited.stderr


async def test_since_checkpoint_catches_a_history_rewritten_before_the_checkpoint(database, key_file, witness):
    entries = [entry() for _ in range(5)]
    await logged(database, entries)
    await checkpoint(database, key_file, witness)
    await rewrite_the_whole_history(database, entries)
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness), "--since-checkpoint")
    assert result.exit_code == 1
    # The forger dropped the stored checkpoints too: the heads the witness's copy signed are gone with them.
    assert "the writers' heads it signed are not stored" in result.stderr
    whole = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert whole.exit_code == 1
    assert "rewritten at or before leaf 5" in whole.stderr


async def test_since_checkpoint_catches_an_entry_rewritten_before_the_checkpoint_with_the_store_left_alone(
    database, key_file, witness
):
    await write_entries(database, 5)
    await checkpoint(database, key_file, witness)
    async with as_superuser(database) as connection:  # the last entry edited, its hash and its head recomputed
        await connection.execute("UPDATE guard_decision SET hash = repeat('b', 64) WHERE seq = 5")
        await connection.execute("UPDATE guard_log_writer SET last_hash = repeat('b', 64)")
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness), "--since-checkpoint")
    assert result.exit_code == 1
    assert "rewritten at or before leaf 5: entry 5 of writer" in result.stderr


async def test_since_checkpoint_catches_a_log_cut_back_before_the_checkpoint(database, key_file, witness):
    await write_entries(database, 5)
    await checkpoint(database, key_file, witness)
    await wipe_the_log(database, [])
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness), "--since-checkpoint")
    assert result.exit_code == 1
    assert "truncated" in result.stderr


# --- Receipts ------------------------------------------------------------------------------------------------------


async def test_each_answer_carries_its_sequence_and_its_receipt_proves_it_in_a_signed_checkpoint(
    seeded_client, seeded_database, guard_headers, reader_headers, key_file, witness
):
    first = (await seeded_client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard_headers)).json()
    batch = await seeded_client.post("/api/guard/check-batch", json=[SEED_ALLOWED_SHARE] * 4, headers=guard_headers)
    sequences = [first["sequence"]] + [a["sequence"] for a in batch.json()]
    assert sequences == [1, 2, 3, 4, 5]
    pending = await seeded_client.get(f"/api/guard/decisions/{first['decision_id']}", headers=reader_headers)
    assert pending.status_code == 200, pending.text
    assert pending.json()["checkpoint"] is None
    with pytest.raises(CheckpointError, match="no checkpoint"):
        verify_receipt(pending.json(), verifier_of(key_file))

    await checkpoint(seeded_database, key_file, witness)
    verifier = Verifier.parse((await run(seeded_database, key_file, "guard", "public-key")).stdout.strip())
    for answer in [first, *batch.json()]:
        response = await seeded_client.get(f"/api/guard/decisions/{answer['decision_id']}", headers=reader_headers)
        assert response.status_code == 200, response.text
        receipt = response.json()
        assert receipt["sequence"] == answer["sequence"]
        assert receipt["content"]["decision_id"] == answer["decision_id"]
        assert receipt["content"]["allowed"] is answer["allowed"]
        assert verify_receipt(receipt, verifier).size == 5

    receipt = (await seeded_client.get(f"/api/guard/decisions/{first['decision_id']}", headers=reader_headers)).json()
    for tampered in (
        {**receipt, "content": {**receipt["content"], "allowed": False}},
        {**receipt, "hash": receipt["prev_hash"]},
        {**receipt, "inclusion_proof": receipt["inclusion_proof"][::-1]},
        {**receipt, "checkpoint": (witness / checkpoint_file_name(verify_receipt(receipt, verifier))).read_text()[1:]},
    ):
        with pytest.raises(CheckpointError):
            verify_receipt(tampered, verifier)


async def test_a_receipt_for_an_unknown_or_malformed_decision_id_is_a_404_or_a_400(seeded_client, reader_headers):
    missing = await seeded_client.get(f"/api/guard/decisions/{uuid.uuid4()}", headers=reader_headers)
    assert missing.status_code == 404
    bad = await seeded_client.get("/api/guard/decisions/not-a-uuid", headers=reader_headers)
    assert bad.status_code == 400
    assert "decision_id" in bad.text


async def test_the_command_line_check_prints_its_sequence(seeded_database, key_file):
    result = await run(
        seeded_database,
        key_file,
        "guard",
        "check",
        "--recipient",
        SEED_ALLOWED_SHARE["recipient"],
        "--purpose",
        SEED_ALLOWED_SHARE["purpose"],
        *[f"--category={c}" for c in SEED_ALLOWED_SHARE["data_categories"]],
        "--data-subject",
        SEED_ALLOWED_SHARE["data_subject"],
    )
    assert '"sequence": 1' in result.stdout


# --- The single chain before migration 0014 ------------------------------------------------------------------

_LEGACY_INSERT = """
INSERT INTO guard_decision (seq, decision_id, decided_at, caller, recipient, allowed, request, reasons, warnings,
                            agreement, ruleset, prev_hash, hash, subject_digest)
SELECT * FROM json_to_recordset($1::json) AS b(
    seq bigint, decision_id uuid, decided_at timestamptz, caller text, recipient text, allowed boolean,
    request jsonb, reasons jsonb, warnings jsonb, agreement text, ruleset text, prev_hash text, hash text,
    subject_digest text)
"""


async def test_a_log_and_checkpoints_from_before_chains_per_writer_still_verify_and_grow_after_the_upgrade(
    private_database, key_file, witness
):
    """A log as migration 0013 left it (one chain, its head row, a checkpoint signing the chain hash) is
    upgraded: its hashes still verify, the witness's old checkpoint still holds, and new writers' entries
    and new checkpoints extend it."""
    database = private_database
    await asyncio.to_thread(downgrade_schema, database, "0013_decision_log_indexes")
    old_entries = [entry() for _ in range(5)]
    rows, head = chained_rows(LEGACY_WRITER, old_entries, EMPTY_CHAIN)  # (the legacy writer hashes as the old one)
    hashes = [row["hash"] for row in json.loads(rows)]
    compact = CompactRange()
    for digest in hashes[:3]:
        compact.append(leaf_hash(bytes.fromhex(digest)))
    signer = load_or_create_signer(key_file, "offix-registry/guard-decisions")
    old_note = signer.sign(Checkpoint.of_chain(signer.name, 3, compact.root(), hashes[2]).body())
    witness.mkdir()
    (witness / "checkpoint-000000000003.txt").write_text(old_note)
    connection = await asyncpg.connect(plain_url(database))
    try:
        await connection.execute(_LEGACY_INSERT, rows)
        await connection.execute(
            "INSERT INTO guard_decision_head (id, last_seq, last_hash) VALUES (1, $1, $2)", head.wseq, head.hash
        )
        await connection.execute(
            "INSERT INTO guard_checkpoint (size, root_hash, chain_hash, subtrees, note, created_at)"
            " VALUES (3, $1, $2, $3::jsonb, $4, now())",
            compact.root().hex(),
            hashes[2],
            json.dumps([s.hex() for s in compact.subtrees]),
            old_note,
        )
    finally:
        await connection.close()

    await asyncio.to_thread(upgrade_schema, database)
    upgraded = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert upgraded.exit_code == 0, upgraded.output
    assert "log intact: 5 entries" in upgraded.stdout

    await write_entries(database, 2)  # a writer of the new kind
    await checkpoint(database, key_file, witness)  # seals the old chain's last two entries and the new ones
    grown = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert grown.exit_code == 0, grown.output
    assert "log intact: 7 entries" in grown.stdout
    since = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness), "--since-checkpoint")
    assert since.exit_code == 0, since.output

    connection = await asyncpg.connect(plain_url(database))
    try:
        old_receipt = await receipt(connection, uuid.UUID(str(old_entries[1].decision_id)))
        writers = await connection.fetch("SELECT writer, last_wseq FROM guard_log_writer ORDER BY started_at")
    finally:
        await connection.close()
    assert old_receipt is not None
    assert (old_receipt["writer"], old_receipt["wseq"], old_receipt["leaf_index"]) == (LEGACY_WRITER, 2, 1)
    assert verify_receipt(old_receipt, signer.verifier).size == 7
    assert [r["last_wseq"] for r in writers if r["writer"] == LEGACY_WRITER] == [5]
    assert len(writers) == 2


async def test_a_log_of_several_writers_does_not_go_back_to_one_chain(private_database):
    await write_entries(private_database, 2)
    with pytest.raises(Exception, match="several writers"):
        await asyncio.to_thread(downgrade_schema, private_database, "0013_decision_log_indexes")


# --- Sealing and verifying while instances append -------------------------------------------------------------


async def test_checkpoints_and_verification_while_three_writers_append_agree_with_the_log_afterwards(
    database, key_file, witness
):
    """The checkpoint writer seals what is committed while writers go on appending, and verify-log walks a log
    that grows under it: neither may miss an entry, seal one twice, or report a log that is only growing as
    broken."""
    from ledger.seal import write_checkpoint
    from tests.integration.test_decision_log import running_writers, verify

    signer = load_or_create_signer(key_file, "offix-registry/guard-decisions")
    stop = asyncio.Event()

    async def keep_appending(writer) -> int:
        written = 0
        while not stop.is_set():
            await writer.append([entry() for _ in range(3)])
            written += 3
        return written

    async with running_writers(database, 3, batch_max=5) as writers:
        appending = [asyncio.ensure_future(keep_appending(w)) for w in writers]
        connection = await asyncpg.connect(plain_url(database))
        sizes, verdicts = [], []
        try:
            for _ in range(6):
                await asyncio.sleep(0.05)
                sizes.append((await write_checkpoint(connection, signer)).checkpoint.size)
                verdicts.append(await verify(database))
        finally:
            stop.set()
            written = sum(await asyncio.gather(*appending))
            await connection.close()
    assert all(v.ok for v in verdicts), [v.describe() for v in verdicts if not v.ok]
    assert sizes == sorted(sizes) and sizes[-1] > 0
    last = await run(database, key_file, "guard", "checkpoint")
    assert last.exit_code == 0, last.output
    held = await run(database, key_file, "guard", "verify-log")  # held to every stored checkpoint
    assert held.exit_code == 0, held.output
    assert f"log intact: {written} entries" in held.stdout
    connection = await asyncpg.connect(plain_url(database))
    try:
        leaves = await connection.fetchval("SELECT count(*) FROM guard_log_leaf")
        distinct = await connection.fetchval("SELECT count(DISTINCT seq) FROM guard_log_leaf")
    finally:
        await connection.close()
    assert leaves == distinct == written  # every entry sealed, once


async def test_an_entry_edited_before_it_was_sealed_is_sealed_by_its_hash_and_still_named_as_edited(
    database, key_file, witness
):
    await write_entries(database, 3)
    async with as_superuser(database) as connection:
        await connection.execute("UPDATE guard_decision SET allowed = NOT allowed WHERE seq = 2")
    await checkpoint(database, key_file, witness)  # it signs the stored hashes, which the edit did not change
    result = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert result.exit_code == 1
    assert "log entry 2" in result.stderr
    assert "edited" in result.stderr
