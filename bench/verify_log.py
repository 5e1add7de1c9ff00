"""How long `registry guard verify-log` takes over a large decision log, in full and since the last checkpoint.

Creates a scratch database, fills its decision log with correctly chained synthetic entries of several writers
(hashed and inserted exactly as the guard's writer does, in large batches), signs a checkpoint (sealing them
into the log's order) a little before the end, appends the rest, and times: the first checkpoint (it hashes
every entry), a full verification against the stored checkpoint, and an incremental one
(`--since-checkpoint`). See bench/README.md.

    uv run python bench/verify_log.py [--entries 1000000] [--after 10000] [--writers 3]
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel.db import make_engine, make_sessionmaker, upgrade_schema
from ledger.append import EMPTY_CHAIN, ChainHead, append_to_chain, driver_connection
from ledger.checkpoint import Verifier, load_or_create_signer
from ledger.entries import DecisionEntry
from ledger.seal import stored_checkpoints, write_checkpoint
from ledger.verify import verify_log

SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CHUNK = 20_000
# Dated from when the run starts: an entry dated before its writer's registration is refused (migration 0018).
START = datetime.now(UTC).replace(microsecond=0)


def synthetic(index: int) -> DecisionEntry:
    """A plausible entry: the request, reasons and sizes of real ones, every third one denied."""
    allowed = index % 3 != 0
    return DecisionEntry(
        decision_id=uuid.UUID(int=index + 1, version=4),
        decided_at=START + timedelta(microseconds=index * 250_000),
        caller=f"integration-{index % 7}",
        request={
            "recipient": f"processor-{index % 500}",
            "purpose": "essential.service.operations",
            "data_categories": ["user.name", "user.contact.address"],
            "destination": "SE",
        },
        allowed=allowed,
        reasons=[] if allowed else [{"code": "NO_AGREEMENT", "message": "no agreement in force covers the share"}],
        warnings=[],
        agreement=f"processor-{index % 500}-dpa" if allowed else None,
        ruleset="eea-only@bench",
    )


async def append(connection: asyncpg.Connection, heads: list[ChainHead], count: int) -> list[ChainHead]:
    """`count` more entries, round-robin over the writers whose chains end at `heads`, in batches of CHUNK (one
    statement each, as the guard's writer appends them); the new heads."""
    heads = list(heads)
    done = sum(head.wseq for head in heads)
    end = done + count
    while done < end:
        index = (done // CHUNK) % len(heads)
        entries = [synthetic(i) for i in range(done, min(done + CHUNK, end))]
        heads[index], _ = await append_to_chain(connection, f"bench-{index}", entries, heads[index], "bench")
        done += len(entries)
    return heads


async def timed_verify(url: str, verifier: Verifier, *, incremental: bool) -> tuple[float, str]:
    """verify_log held to the stored checkpoints (read and signature-checked inside the timing)."""
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            began = time.perf_counter()
            known = await stored_checkpoints(await driver_connection(session), verifier)
            result = await verify_log(session, known, since=known[-1] if incremental else None)
            return time.perf_counter() - began, result.describe()
    finally:
        await engine.dispose()


async def main(entries: int, after: int, writers: int) -> None:
    name = f"registry_bench_verify_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = SERVER.rsplit("/", 1)[0] + "/" + name
    async_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await asyncio.to_thread(upgrade_schema, async_url)
        signer = load_or_create_signer(Path(tempfile.mkdtemp()) / "bench.key", "bench.example/log")
        connection = await asyncpg.connect(url)
        try:
            began = time.perf_counter()
            heads = await append(connection, [EMPTY_CHAIN] * writers, entries - after)
            print(f"filled {entries - after:,} entries by {writers} writers: {time.perf_counter() - began:.1f} s")
            began = time.perf_counter()
            written = await write_checkpoint(connection, signer)
            print(f"first checkpoint (size {written.checkpoint.size:,}): {time.perf_counter() - began:.1f} s")
            heads = await append(connection, heads, after)
            print(f"then {after:,} entries after it: {sum(h.wseq for h in heads):,} in all", flush=True)
        finally:
            await connection.close()
        full, described = await timed_verify(async_url, signer.verifier, incremental=False)
        print(f"full verification: {full:.1f} s ({described})", flush=True)
        incremental, described = await timed_verify(async_url, signer.verifier, incremental=True)
        print(f"incremental verification (--since-checkpoint): {incremental:.2f} s ({described})", flush=True)
        connection = await asyncpg.connect(url)
        try:
            began = time.perf_counter()
            written = await write_checkpoint(connection, signer)
            print(f"next checkpoint (size {written.checkpoint.size:,}): {time.perf_counter() - began:.2f} s")
        finally:
            await connection.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--after", type=int, default=10_000, help="entries after the last checkpoint")
    parser.add_argument("--writers", type=int, default=3, help="writers (chains) the entries are spread over")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.entries, arguments.after, arguments.writers))
