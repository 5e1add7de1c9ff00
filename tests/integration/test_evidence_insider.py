"""The evidence holds against an insider (issue 33), on the real PostgreSQL: witness folders are never
overwritten and get only checkpoints consistent with what they hold (RFC 6962 consistency proofs); the running
guard fails closed on proof of tampering until an operator resolves it; backdated entries are refused and
flagged; receipts and consistency proofs verify with the Python client and the log's public key alone."""

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from registry_guard_client import ProofError, open_checkpoint, verify_consistency_answer, verify_receipt

from ledger.append import EMPTY_CHAIN, append_to_chain, own_head
from ledger.checkpoint import Checkpoint, CheckpointRefused, WitnessConflict, load_or_create_signer
from ledger.evidence import EvidenceWatch
from ledger.proofs import ProofsBusy, ProofService
from ledger.seal import CheckpointPublisher, WrittenCheckpoint, checkpoint_file_name, write_to_folder
from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key, test_settings
from tests.integration.test_decision_log import entry, plain_url
from tests.integration.test_decision_log_audit import (
    WRITER,
    as_superuser,
    checkpoint,
    cut_back_to,
    logged,
    rebuild,
    run,
)
from web.app import create_app
from web.composition import services_of


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "log-signing.key"


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "witness"


def public_key(key_file: Path) -> str:
    return load_or_create_signer(key_file, "offix-registry/guard-decisions").verifier.text()


async def open_alarm_count(database: str) -> int:
    connection = await asyncpg.connect(plain_url(database))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM guard_evidence_alarm WHERE resolved_at IS NULL"))
    finally:
        await connection.close()


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (half a minute at most) until `condition` holds: a NOTIFY or a poll is asynchronous."""
    for _ in range(600):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


# --- Finding 1: the witness's file replaced ----------------------------------------------------------------


async def test_a_checkpoint_over_a_log_cut_back_and_regrown_never_replaces_the_witness_file(
    database, key_file, witness
):
    await logged(database, [entry() for _ in range(30)])
    await checkpoint(database, key_file, witness)  # the witness holds size 30
    held = witness / "checkpoint-000000000030.txt"
    original = held.read_text()
    # A superuser cuts the log to 22 entries and deletes the stored checkpoints; ordinary checks regrow it.
    async with as_superuser(database) as connection:
        await cut_back_to(connection, 22)
        await connection.execute("DELETE FROM guard_checkpoint")
    await logged(database, [entry() for _ in range(8)])

    refused = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert refused.exit_code == 1, refused.output
    assert "a witness holds another root at size 30" in refused.stderr
    assert held.read_text() == original  # the witness's own file, untouched
    assert [p.name for p in witness.iterdir()] == [held.name]
    # The refusal is evidence: an alarm every guard obeys, and the folder still proves the log was rewritten.
    assert await open_alarm_count(database) == 1
    alarms = await run(database, key_file, "guard", "alarms")
    assert alarms.exit_code == 1 and "checkpoint refused" in alarms.stdout
    verified = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert verified.exit_code == 1, verified.output
    assert "but checkpoint file checkpoint-000000000030.txt was signed at size 30" in verified.stderr


async def test_a_checkpoint_the_witness_holds_no_prefix_of_is_refused_by_its_consistency_proof(
    database, key_file, witness
):
    await logged(database, [entry() for _ in range(30)])
    await checkpoint(database, key_file, witness)
    async with as_superuser(database) as connection:
        await cut_back_to(connection, 22)
        await connection.execute("DELETE FROM guard_checkpoint")
    await logged(database, [entry() for _ in range(13)])  # regrown past the witness's size: 35

    refused = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert refused.exit_code == 1, refused.output
    assert "no consistency proof leads from the witness's checkpoint at size 30 to the log at size 35" in refused.stderr
    assert [p.name for p in witness.iterdir()] == ["checkpoint-000000000030.txt"]
    # While the alarm is open, nothing more is signed; resolving it does not make the witness accept a rewrite.
    withheld = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert withheld.exit_code == 1 and "evidence of tampering is unresolved" in withheld.stderr
    resolved = await run(database, key_file, "guard", "resolve-alarms", "--note", "restoring last night's backup")
    assert resolved.exit_code == 0 and "resolved #1" in resolved.stdout
    again = await run(database, key_file, "guard", "checkpoint", "--dir", str(witness))
    assert again.exit_code == 1 and "no consistency proof" in again.stderr
    assert [p.name for p in witness.iterdir()] == ["checkpoint-000000000030.txt"]


async def test_a_log_that_extends_the_witness_gets_its_checkpoint_even_when_the_store_lost_its_own(
    database, key_file, witness
):
    await logged(database, [entry() for _ in range(5)])
    await checkpoint(database, key_file, witness)
    async with as_superuser(database) as connection:  # the stored checkpoints lost, the log itself intact
        await connection.execute("DELETE FROM guard_checkpoint")
    await logged(database, [entry() for _ in range(4)])
    await checkpoint(database, key_file, witness)  # proven consistent from the leaves: size 5 -> 9
    assert sorted(p.name for p in witness.iterdir()) == ["checkpoint-000000000005.txt", "checkpoint-000000000009.txt"]
    assert await open_alarm_count(database) == 0


def test_the_witness_folder_keeps_the_file_it_holds_when_another_checkpoint_of_that_size_comes(witness, key_file):
    signer = load_or_create_signer(key_file, "offix-registry/guard-decisions")
    first = Checkpoint(signer.name, 3, b"\x01" * 32, "a" * 64)
    other = replace(first, root_hash=b"\x02" * 32)
    held = write_to_folder(witness, WrittenCheckpoint(first, signer.sign(first.body()), True))
    original = held.read_text()
    write_to_folder(witness, WrittenCheckpoint(first, original, True))  # the same note again: no change
    with pytest.raises(WitnessConflict, match="already holds another checkpoint at size 3"):
        write_to_folder(witness, WrittenCheckpoint(other, signer.sign(other.body()), True))
    assert held.read_text() == original
    assert [p.name for p in witness.iterdir()] == [checkpoint_file_name(first)]


# --- Finding 3: the running guard acts on evidence ------------------------------------------------------------


@pytest.fixture
async def guard_app(seeded_database, key_file, witness) -> Litestar:
    return create_app(
        test_settings(seeded_database, log_signing_key_file=key_file, checkpoint_dir=witness, snapshot_poll_seconds=0.2)
    )


async def check(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> Any:
    return await client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=headers)


@pytest.fixture
async def metrics_headers(database: str) -> dict[str, str]:
    return bearer(await make_key(database, "prometheus", "metrics:read"))


async def metric(client: AsyncTestClient[Litestar], headers: dict[str, str], name: str) -> float:
    text = (await client.get("/metrics", headers=headers)).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_the_guard_fails_closed_when_its_own_unsealed_tail_is_cut_off_until_an_operator_resolves_it(
    guard_app, seeded_database, guard_headers, metrics_headers, key_file, witness
):
    async with AsyncTestClient(guard_app) as client:
        for _ in range(5):
            assert (await check(client, guard_headers)).json()["allowed"] is True
        writer = services_of(guard_app).log_writer.writer
        # A superuser cuts the writer's last three (unsealed) entries and moves its head back to match.
        async with as_superuser(seeded_database) as connection:
            await cut_back_to(connection, 2)
        for _ in range(3):  # not one 503 and carrying on: every check fails closed
            answer = await check(client, guard_headers)
            assert answer.status_code == 503, answer.text
            assert answer.json()["allowed"] is False
            assert "evidence of tampering" in answer.json()["detail"]
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["guard"]["evidence"]["status"] == "tampering evidence"
        assert await metric(client, metrics_headers, "guard_evidence_alarm_open") == 1
        assert await metric(client, metrics_headers, "guard_evidence_alarms_total") >= 1
        await eventually(lambda: _alarms_stored(seeded_database, writer), "the alarm is stored")
        # No checkpoint is signed over the gap while the alarm is open.
        withheld = await run(seeded_database, key_file, "guard", "checkpoint", "--dir", str(witness))
        assert withheld.exit_code == 1 and "unresolved" in withheld.stderr

        resolved = await run(seeded_database, key_file, "guard", "resolve-alarms", "--note", "tail lost; reported")
        assert resolved.exit_code == 0, resolved.output

        async def answers_again() -> bool:
            return (await check(client, guard_headers)).status_code == 200

        await eventually(answers_again, "the guard answers once the alarm is resolved")
        assert services_of(guard_app).log_writer.writer != writer  # a new chain, not one built on the cut one
        assert (await client.get("/health/ready")).status_code == 200


async def _alarms_stored(database: str, writer: str) -> bool:
    connection = await asyncpg.connect(plain_url(database))
    try:
        problems = await connection.fetch("SELECT problem FROM guard_evidence_alarm WHERE resolved_at IS NULL")
        return any(writer in row["problem"] for row in problems)
    finally:
        await connection.close()


async def test_a_checkpoint_refused_over_rewritten_sealed_entries_fails_every_guard_closed(
    guard_app, seeded_database, guard_headers, metrics_headers, key_file, witness
):
    async with AsyncTestClient(guard_app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        entries = [entry() for _ in range(4)]
        await logged(seeded_database, entries)
        await checkpoint(seeded_database, key_file, witness)
        # A superuser rewrites a sealed entry with every hash recomputed, and drops the stored checkpoints.
        await rebuild(seeded_database, [replace(entries[1], allowed=False), *entries[2:]])
        await logged(seeded_database, [entry()])
        refused = await run(seeded_database, key_file, "guard", "checkpoint", "--dir", str(witness))
        assert refused.exit_code == 1, refused.output

        async def fails_closed() -> bool:  # this instance hears of the alarm another process raised
            answer = await check(client, guard_headers)
            return answer.status_code == 503 and answer.json()["allowed"] is False

        await eventually(fails_closed, "the guard fails closed")
        assert (await client.get("/health/ready")).status_code == 503
        assert await metric(client, metrics_headers, "guard_evidence_alarm_open") == 1


async def test_the_checkpoint_publisher_counts_a_refusal_and_fails_its_guard_closed_at_once(
    database, key_file, witness
):
    entries = [entry() for _ in range(4)]
    await logged(database, entries)
    await checkpoint(database, key_file, witness)
    async with as_superuser(database) as connection:  # a sealed entry rewritten, the stored checkpoint kept
        await connection.execute("DELETE FROM guard_log_leaf")
        await connection.execute("DELETE FROM guard_decision")
        await connection.execute("DELETE FROM guard_log_writer")
        await append_to_chain(
            connection, WRITER, [replace(entries[0], caller="rewriter"), *entries[1:]], EMPTY_CHAIN, "x"
        )
        await connection.execute(
            "INSERT INTO guard_log_leaf (leaf_index, seq) SELECT wseq - 1, seq FROM guard_decision"
        )
    await logged(database, [entry()])
    watch = EvidenceWatch(plain_url(database), "test", poll_seconds=60)
    settings = test_settings(database, log_signing_key_file=key_file, checkpoint_dir=witness)
    publisher = CheckpointPublisher(plain_url(database), settings, 3600, watch)
    refused_before = REGISTRY.get_sample_value("guard_checkpoints_refused_total") or 0
    try:
        with pytest.raises(CheckpointRefused):
            await publisher.publish_once()
    finally:
        await publisher.stop()
    assert REGISTRY.get_sample_value("guard_checkpoints_refused_total") == refused_before + 1
    assert watch.problem is not None and "checkpoint refused" in watch.problem
    assert await open_alarm_count(database) == 1  # stored by the worker that found it


# --- Finding 4: backdated forged decisions ----------------------------------------------------------------------


async def test_a_backdated_decision_added_by_plain_sql_as_a_new_writer_is_refused(database, key_file, witness):
    await logged(database, [entry() for _ in range(3)])
    await checkpoint(database, key_file, witness)
    connection = await asyncpg.connect(plain_url(database))
    try:
        forged = entry("nordfrakt", at=datetime.now(UTC) - timedelta(days=30))
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="backdated decision log entry is refused"):
            await append_to_chain(connection, "forger", [forged], EMPTY_CHAIN, "forger")
        # Dated before the last checkpoint, by a writer registered long ago: refused too.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="backdated"):
            await append_to_chain(
                connection,
                WRITER,
                [entry(at=datetime.now(UTC) - timedelta(hours=1))],
                await own_head(connection, WRITER),
                "x",
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="registered when it starts"):
            await connection.execute(
                "INSERT INTO guard_log_writer VALUES ('forger', 0, repeat('0', 64), now() - interval '30 days', 'x')"
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="registration does not change"):
            await connection.execute("UPDATE guard_log_writer SET started_at = started_at - interval '30 days'")
        assert await connection.fetchval("SELECT count(*) FROM guard_decision") == 3
    finally:
        await connection.close()


async def test_verify_log_flags_a_backdated_decision_a_superuser_slipped_past_the_trigger(database, key_file, witness):
    await logged(database, [entry() for _ in range(3)])
    await checkpoint(database, key_file, witness)
    async with as_superuser(database) as connection:
        forged = entry("nordfrakt", at=datetime.now(UTC) - timedelta(days=30))
        await append_to_chain(connection, "forger", [forged], EMPTY_CHAIN, "forger")
    # The next checkpoint would seal it: verify-log names it instead.
    verified = await run(database, key_file, "guard", "verify-log", "--checkpoints", str(witness))
    assert verified.exit_code == 1, verified.output
    assert "entry 1 of writer forger" in verified.stderr
    assert "backdated" in verified.stderr and "before its writer's registration" in verified.stderr


# --- Receipts and consistency proofs, verified by the Python client ---------------------------------------------


async def test_the_python_client_verifies_a_receipt_and_a_consistency_proof_between_two_checkpoints(
    seeded_client_app, seeded_database, guard_headers, reader_headers, key_file, witness
):
    client = seeded_client_app
    first = (await check(client, guard_headers)).json()
    await checkpoint(seeded_database, key_file, witness)  # size 1
    for _ in range(6):
        await check(client, guard_headers)
    await checkpoint(seeded_database, key_file, witness)  # size 7
    verifier = public_key(key_file)

    receipt = (await client.get(f"/api/guard/decisions/{first['decision_id']}", headers=reader_headers)).json()
    assert verify_receipt(receipt, verifier).size == 7
    with pytest.raises(ProofError):
        verify_receipt({**receipt, "content": {**receipt["content"], "allowed": False}}, verifier)

    older = open_checkpoint((witness / "checkpoint-000000000001.txt").read_text(), verifier)
    newer = open_checkpoint((witness / "checkpoint-000000000007.txt").read_text(), verifier)
    answer = await client.get("/api/guard/checkpoints/1/consistency/7", headers=reader_headers)
    assert answer.status_code == 200, answer.text
    verify_consistency_answer(answer.json(), older, newer)
    assert answer.json()["second_checkpoint"] == (witness / "checkpoint-000000000007.txt").read_text()
    forged = {**answer.json(), "proof": [base64.b64encode(b"\x00" * 32).decode(), *answer.json()["proof"][1:]]}
    with pytest.raises(ProofError, match="does not extend"):
        verify_consistency_answer(forged, older, newer)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/guard/checkpoints/0/consistency/1", "first"),
        ("/api/guard/checkpoints/3/consistency/2", "first"),
        ("/api/guard/checkpoints/1/consistency/99", "second"),
        ("/api/guard/checkpoints/1/consistency/99999999999999999999999", "second"),
    ],
)
async def test_a_consistency_proof_for_sizes_the_log_has_not_is_a_400_naming_the_size(
    seeded_client_app, seeded_database, guard_headers, reader_headers, key_file, witness, path, field
):
    await check(seeded_client_app, guard_headers)
    await checkpoint(seeded_database, key_file, witness)
    answer = await seeded_client_app.get(path, headers=reader_headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["extra"][0]["key"] == field


@pytest.fixture
async def seeded_client_app(guard_app):
    async with AsyncTestClient(guard_app) as client:
        yield client


# --- Finding 5: receipts from stored subtrees, off the loop, bounded per key ---------------------------------


async def test_receipts_in_a_log_of_several_tiles_are_read_from_stored_subtrees_and_verify(
    seeded_client_app, seeded_database, reader_headers, key_file, witness
):
    entries = [entry() for _ in range(600)]
    await logged(seeded_database, entries)
    await checkpoint(seeded_database, key_file, witness)  # 600 leaves: two stored nodes of 256
    connection = await asyncpg.connect(plain_url(seeded_database))
    try:
        stored = await connection.fetch("SELECT level, index FROM guard_log_node ORDER BY level, index")
    finally:
        await connection.close()
    assert [(r["level"], r["index"]) for r in stored] == [(8, 0), (8, 1)]
    verifier = public_key(key_file)
    for picked in (entries[0], entries[300], entries[599]):
        response = await seeded_client_app.get(f"/api/guard/decisions/{picked.decision_id}", headers=reader_headers)
        assert response.status_code == 200, response.text
        assert verify_receipt(response.json(), verifier).size == 600
    # A stored node rewritten under the checkpoint: the proofs built from it no longer verify.
    async with as_superuser(seeded_database) as connection:
        await connection.execute("ALTER TABLE guard_log_node DISABLE TRIGGER USER")
        await connection.execute("UPDATE guard_log_node SET hash = repeat('0', 64) WHERE index = 0")
        await connection.execute("ALTER TABLE guard_log_node ENABLE TRIGGER USER")
    response = await seeded_client_app.get(f"/api/guard/decisions/{entries[599].decision_id}", headers=reader_headers)
    with pytest.raises(ProofError, match="does not lead to the checkpoint's root"):
        verify_receipt(response.json(), verifier)


async def test_a_key_asking_for_a_second_proof_while_its_first_is_built_is_told_to_retry(database):
    entries = [entry() for _ in range(3)]
    await logged(database, entries)
    proofs = ProofService(plain_url(database))
    try:
        same_key = await asyncio.gather(
            proofs.receipt("reader", entries[0].decision_id),
            proofs.receipt("reader", entries[1].decision_id),
            return_exceptions=True,
        )
        assert isinstance(same_key[0], dict) and isinstance(same_key[1], ProofsBusy)
        other_keys = await asyncio.gather(
            proofs.receipt("reader", entries[0].decision_id), proofs.receipt("auditor", entries[1].decision_id)
        )
        assert [r["wseq"] for r in other_keys if r is not None] == [1, 2]  # (they queue for the one worker)
    finally:
        proofs.close()


async def test_the_proofs_worker_keeps_its_connection_and_opens_another_when_the_server_ends_it(database):
    entries = [entry() for _ in range(3)]
    await logged(database, entries)
    proofs = ProofService(plain_url(database))
    admin = await asyncpg.connect(plain_url(database))
    try:

        async def proof_backends() -> list[int]:
            rows = await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'proofs'"
            )
            return [row["pid"] for row in rows]

        for picked in entries:  # one connection for them all, kept between proofs
            found = await proofs.receipt("reader", picked.decision_id)
            assert found is not None and found["content"]["decision_id"] == str(picked.decision_id)
        kept = await proof_backends()
        assert len(kept) == 1
        await admin.execute("SELECT pg_terminate_backend($1)", kept[0])
        found = await proofs.receipt("reader", entries[0].decision_id)  # answered on a new connection
        assert found is not None and found["wseq"] == 1
        assert len(await proof_backends()) == 1 and await proof_backends() != kept
    finally:
        await admin.close()
        proofs.close()
