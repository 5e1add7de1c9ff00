"""Reminder scan benchmark: one daily scan over 100,000 agreements.

Run from the repository root:

    uv run python bench/reminder_scan.py [--agreements 100000]

It creates a scratch database on the local PostgreSQL (REGISTRY_BENCH_POSTGRES_URL, default the local
service with trust auth), migrates it, bulk-loads parties and agreements with expiry dates spread from
two years ago to five years ahead (a quarter auto-renewing with notice periods, some parties inactive,
some agreements terminated), then times, in the same run:

1. a trivial baseline: `SELECT count(*) FROM agreement`;
2. the first scan of the day (loads candidate agreements, computes what is due, writes the rows);
3. a second scan of the same day (every row exists already: the cost of an idempotent re-run).

It prints the times and the scan/baseline ratios, then drops the scratch database.
"""

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel.columns import utcnow
from kernel.db import make_engine, make_sessionmaker, upgrade_schema
from kernel.settings import Settings
from registry.jobs.reminders import scan

SERVER_URL = os.environ.get("REGISTRY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TODAY = date(2026, 11, 25)


async def load(url: str, agreements: int, seed: int = 4) -> None:
    rng = random.Random(seed)
    parties = max(agreements // 10, 1)
    now = utcnow()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO controller_profile (id, name, established_in, timezone) VALUES (1, 'Offix AB', 'SE', "
            "'Europe/Stockholm')"
        )
        await conn.copy_records_to_table(
            "party",
            columns=[
                "id",
                "key",
                "name",
                "role",
                "category",
                "established_in",
                "active",
                "version",
                "created_at",
                "updated_at",
            ],
            records=[
                (i, f"party-{i}", f"Party {i} AB", "processor", "it_services", "SE", rng.random() > 0.05, 1, now, now)
                for i in range(1, parties + 1)
            ],
        )
        rows = []
        for i in range(1, agreements + 1):
            expires = TODAY + timedelta(days=rng.randint(-730, 1825))
            auto = rng.random() < 0.25
            rows.append(
                (
                    i,
                    f"agreement-{i}",
                    rng.randint(1, parties),
                    "dpa",
                    expires - timedelta(days=1095),
                    expires,
                    TODAY - timedelta(days=30) if rng.random() < 0.03 else None,
                    "auto" if auto else "fixed",
                    rng.choice([30, 60, 90, 120]) if auto else None,
                    f"owner{i % 50}@offix.example",
                    False,
                    1,
                    now,
                    now,
                )
            )
        await conn.copy_records_to_table(
            "agreement",
            columns=[
                "id",
                "key",
                "party_id",
                "kind",
                "effective_from",
                "expires_on",
                "terminated_on",
                "renewal",
                "notice_days",
                "owner_email",
                "transfers_outside_eea_permitted",
                "version",
                "created_at",
                "updated_at",
            ],
            records=rows,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def timed_scan(url: str, settings: Settings) -> tuple[float, int, int]:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            started = time.perf_counter()
            result = await scan(session, settings, today=TODAY)
            elapsed = time.perf_counter() - started
        return elapsed, len(result.due), result.written
    finally:
        await engine.dispose()


async def baseline(url: str) -> float:
    engine = make_engine(url, pool_size=1)
    try:
        from sqlalchemy import text

        async with make_sessionmaker(engine)() as session:
            await session.execute(text("SELECT 1"))  # connect outside the timing, as the scan's session does
            started = time.perf_counter()
            await session.execute(text("SELECT count(*) FROM agreement"))
            return time.perf_counter() - started
    finally:
        await engine.dispose()


async def main(agreements: int) -> None:
    name = f"registry_bench_reminders_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = SERVER_URL.rpartition("/")
    url = base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    try:
        await asyncio.to_thread(upgrade_schema, url)
        started = time.perf_counter()
        await load(url.replace("+asyncpg", ""), agreements)
        print(f"loaded {agreements:,} agreements in {time.perf_counter() - started:.1f} s")
        # Two channels per reminder (a webhook URL needs its signing secret).
        settings = Settings(database_url=url, webhook_url="http://127.0.0.1:9/hook", webhook_secret="b" * 32)
        count_time = await baseline(url)
        first, due, written = await timed_scan(url, settings)
        second, _, rewritten = await timed_scan(url, settings)
        print(f"{'what':<44} {'seconds':>9} {'x baseline':>11}")
        print(f"{'baseline: SELECT count(*) FROM agreement':<44} {count_time:>9.3f} {1.0:>11.1f}")
        print(f"{f'first scan ({due:,} due, {written:,} rows written)':<44} {first:>9.3f} {first / count_time:>11.1f}")
        print(f"{f'second scan, same day ({rewritten} rows written)':<44} {second:>9.3f} {second / count_time:>11.1f}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreements", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().agreements))
