"""The URL witness speaks C2SP tlog-witness (issue 33), against a real HTTP witness (tests/integration/tlog_witness.py)
and the real PostgreSQL: add-checkpoint with a consistency proof from the size the witness cosigned last, its
cosignatures verified and kept; a 409 retried once with the witness's size; a witness that refuses the proof or
holds another history fails every guard closed; one that is down or does not know the log is counted, not obeyed."""

import dataclasses
import uuid
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from ledger.checkpoint import CosignerKey, WitnessConflict, open_checkpoint, verify_cosignature
from tests.conftest import SEED_ALLOWED_SHARE, free_port, test_settings
from tests.integration.test_decision_log import entry, plain_url
from tests.integration.test_decision_log_audit import logged, run, verifier_of
from tests.integration.tlog_witness import WitnessState, running_witness
from web.app import create_app
from web.composition import services_of


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "log-signing.key"


@pytest.fixture
def state(key_file: Path) -> WitnessState:
    return WitnessState(log_key=verifier_of(key_file).text())


async def fetch(database: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain_url(database))
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def stored_root(database: str, size: int) -> bytes:
    rows = await fetch(database, "SELECT root_hash FROM guard_checkpoint WHERE size = $1", size)
    return bytes.fromhex(rows[0]["root_hash"])


async def open_alarms(database: str) -> list[str]:
    rows = await fetch(database, "SELECT problem FROM guard_evidence_alarm WHERE resolved_at IS NULL")
    return [row["problem"] for row in rows]


async def checkpoint_to(database: str, key_file: Path, url: str | None, key: str | None = None):
    env = {"REGISTRY_CHECKPOINT_WITNESS_URL": url} if url else {}
    if key:
        env["REGISTRY_CHECKPOINT_WITNESS_KEY"] = key
    return await run(database, key_file, "guard", "checkpoint", **env)


def counted(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


# --- Cosigned ------------------------------------------------------------------------------------------------


async def test_each_checkpoint_is_cosigned_with_a_proof_from_the_size_the_witness_cosigned_last_and_kept(
    database, key_file, state
):
    with running_witness(state) as url:
        await logged(database, [entry() for _ in range(3)])
        first = await checkpoint_to(database, key_file, url, state.vkey())
        assert first.exit_code == 0, first.output
        await logged(database, [entry() for _ in range(300)])  # past a stored tile of 256 leaves
        second = await checkpoint_to(database, key_file, url, state.vkey())
        assert second.exit_code == 0, second.output

    assert state.answers == [200, 200]
    assert state.requests[0] == "old 0\n\n" + first.stdout  # nothing cosigned before: no proof
    head, _, note = state.requests[1].partition("\n\n")
    assert note == second.stdout
    assert head.split("\n")[0] == "old 3" and len(head.split("\n")) > 2  # a proof from 3 to 303, a line a hash
    assert (state.size, state.root) == (303, await stored_root(database, 303))

    kept = await fetch(database, "SELECT size, cosignature, witness, verified FROM guard_checkpoint_cosignature")
    assert sorted(row["size"] for row in kept) == [3, 303]
    key = CosignerKey.parse(state.vkey())
    verifier = verifier_of(key_file)
    for row in kept:
        assert (row["witness"], row["verified"]) == (url, True)
        body = (await fetch(database, "SELECT note FROM guard_checkpoint WHERE size = $1", row["size"]))[0]["note"]
        signed = open_checkpoint(body, verifier)
        assert verify_cosignature(row["cosignature"], signed.body(), key) is not None


async def test_a_witness_that_holds_a_size_the_log_never_heard_it_cosign_answers_409_and_is_retried_from_there(
    database, key_file, state
):
    await logged(database, [entry() for _ in range(3)])
    assert (await checkpoint_to(database, key_file, None)).exit_code == 0
    # The witness got size 3 another way (a copy of the log's checkpoint, or a cosignature this store lost).
    state.size, state.root = 3, await stored_root(database, 3)
    await logged(database, [entry() for _ in range(4)])
    with running_witness(state) as url:
        made = await checkpoint_to(database, key_file, url)
    assert made.exit_code == 0, made.output
    assert state.answers == [409, 200]
    assert state.requests[0].startswith("old 0\n\n") and state.requests[1].startswith("old 3\n")
    kept = await fetch(database, "SELECT size, verified FROM guard_checkpoint_cosignature")
    assert [(row["size"], row["verified"]) for row in kept] == [(7, False)]  # (no key configured: kept as received)
    assert await open_alarms(database) == []


# --- Contradicted: fail closed ---------------------------------------------------------------------------------


async def test_a_witness_refusing_the_consistency_proof_fails_every_guard_closed_and_is_counted(
    seeded_database, key_file, state, guard_headers
):
    await logged(seeded_database, [entry() for _ in range(3)])
    # The witness cosigned size 3 of another history: this log's first 3 leaves were rewritten since.
    state.size, state.root = 3, b"\x07" * 32
    await logged(seeded_database, [entry() for _ in range(2)])
    with running_witness(state) as url:
        app = create_app(
            test_settings(
                seeded_database,
                log_signing_key_file=key_file,
                checkpoint_witness_url=url,
                checkpoint_witness_key=state.vkey(),
                checkpoint_seconds=3600,
            )
        )
        async with AsyncTestClient(app) as client:
            before = counted("guard_checkpoints_refused_total")
            publisher = services_of(app).checkpoints
            assert publisher is not None
            with pytest.raises(WitnessConflict, match="refused the consistency proof from its checkpoint at size 3"):
                await publisher.publish_once()
            assert counted("guard_checkpoints_refused_total") == before + 1
            answer = await client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard_headers)
            assert answer.status_code == 503, answer.text
            assert answer.json()["allowed"] is False
    assert state.answers == [409, 422]
    assert state.size == 3  # the witness kept what it had
    alarms = await open_alarms(seeded_database)
    assert len(alarms) == 1 and "HTTP 422" in alarms[0]


@pytest.mark.parametrize(
    ("held", "refusal"),
    [
        (5, "holds another root at size 5 (rewritten)"),
        (50, "holds a checkpoint at size 50; the log's checkpoints end at 5 (cut back)"),
    ],
)
async def test_a_witness_holding_another_root_at_the_size_or_a_larger_size_raises_an_alarm(
    database, key_file, state, held, refusal
):
    await logged(database, [entry() for _ in range(5)])
    state.size, state.root = held, b"\x07" * 32
    with running_witness(state) as url:
        refused = await checkpoint_to(database, key_file, url)
    assert refused.exit_code == 1, refused.output
    assert refusal in refused.stderr
    assert len(await open_alarms(database)) == 1
    assert state.size == held


# --- Unreachable or unknowing: counted, not obeyed -------------------------------------------------------------


@pytest.mark.parametrize("witness", ["down", "unknown log key", "unknown origin"])
async def test_a_witness_that_is_down_or_does_not_know_the_log_is_counted_and_the_guard_answers(
    seeded_database, key_file, state, guard_headers, witness
):
    await logged(seeded_database, [entry() for _ in range(3)])
    if witness == "unknown log key":
        state.log_key = verifier_of(key_file.parent / "another.key").text()
    elif witness == "unknown origin":
        state.log_key = "another.example/log+00000000+AAAA"
    with running_witness(state) as url:
        witness_url = f"http://127.0.0.1:{free_port()}" if witness == "down" else url
        app = create_app(
            test_settings(
                seeded_database,
                log_signing_key_file=key_file,
                checkpoint_witness_url=witness_url,
                checkpoint_seconds=3600,
            )
        )
        async with AsyncTestClient(app) as client:
            before = counted("guard_witness_failures_total")
            publisher = services_of(app).checkpoints
            assert publisher is not None
            checkpoint = await publisher.publish_once()
            assert checkpoint.size == 3
            assert counted("guard_witness_failures_total") == before + 1
            answer = await client.post("/api/guard/check", json=SEED_ALLOWED_SHARE, headers=guard_headers)
            assert answer.status_code == 200, answer.text
    expected = {"down": [], "unknown log key": [403], "unknown origin": [404]}[witness]
    assert state.answers == expected
    assert await open_alarms(seeded_database) == []
    assert await fetch(seeded_database, "SELECT * FROM guard_checkpoint_cosignature") == []


async def test_a_cosignature_that_does_not_verify_with_the_configured_key_is_reported_and_not_kept(
    database, key_file, state
):
    await logged(database, [entry() for _ in range(2)])
    impostor = dataclasses.replace(state, key=Ed25519PrivateKey.generate())  # the configured name, another key
    with running_witness(state) as url:
        made = await checkpoint_to(database, key_file, url, impostor.vkey())
    assert made.exit_code == 1
    assert f"witness {url}: its answer carries no cosignature by {state.name}" in made.stderr
    assert state.answers == [200]
    assert await fetch(database, "SELECT * FROM guard_checkpoint_cosignature") == []
    assert await open_alarms(database) == []


def test_the_test_witness_cosigns_only_what_it_can_check(key_file):
    """The witness is a fake only of the network's far side: it refuses what a C2SP witness refuses."""
    state = WitnessState(log_key=verifier_of(key_file).text())
    assert state.add_checkpoint("old 0\n")[0] == 400
    assert state.add_checkpoint(f"old 0\n\n{uuid.uuid4()}\n1\nAAAA\n\n")[0] == 404
