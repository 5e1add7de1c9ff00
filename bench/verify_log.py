"""How long `registry guard verify-log` takes over a large decision log, in full and since the last checkpoint.

Creates a scratch database, fills its decision log with correctly chained synthetic entries (hashed here
exactly as the writer hashes them, inserted in large server-side batches), signs a checkpoint a little before
the end, appends the rest, and times: the first checkpoint (it hashes every entry), a full verification
against the stored checkpoint, and an incremental one (`--since-checkpoint`). See bench/README.md.

    uv run python bench/verify_log.py [--entries 1000000] [--after 10000]
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

from guard.audit import stored_checkpoints, write_checkpoint
from guard.checkpoint import Verifier, load_or_create_signer
from guard.log import (
    _INSERT_BATCH,
    _MOVE_HEAD,
    EMPTY_CHAIN,
    ChainHead,
    DecisionEntry,
    _chained_rows,
    driver_connection,
    verify_log,
)
from registry.db import make_engine, make_sessionmaker, upgrade_schema

SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CHUNK = 20_000
START = datetime(2026, 1, 1, tzinfo=UTC)


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


async def append(connection: asyncpg.Connection, head: ChainHead, count: int) -> ChainHead:
    """`count` more entries chained after `head`, in batches of CHUNK (one statement each); the new head."""
    end = head.seq + count
    while head.seq < end:
        entries = [synthetic(i) for i in range(head.seq, min(head.seq + CHUNK, end))]
        rows, head = _chained_rows(entries, head)
        async with connection.transaction():
            await connection.execute(_INSERT_BATCH, rows)
            await connection.execute(_MOVE_HEAD, head.seq, head.hash)
    return head


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


async def main(entries: int, after: int) -> None:
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
            head = await append(connection, EMPTY_CHAIN, entries - after)
            print(f"filled {head.seq:,} entries: {time.perf_counter() - began:.1f} s", flush=True)
            began = time.perf_counter()
            written = await write_checkpoint(connection, signer)
            print(f"first checkpoint (size {written.checkpoint.size:,}): {time.perf_counter() - began:.1f} s")
            head = await append(connection, head, after)
            print(f"then {after:,} entries after it: {head.seq:,} in all", flush=True)
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
    arguments = parser.parse_args()
    asyncio.run(main(arguments.entries, arguments.after))
