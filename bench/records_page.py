"""How long the Art. 30 record takes with a year of a large decision log (issue 27: ≤ 1 s at 1,000,000 decisions).

Creates a scratch database, migrates it, loads the seed registry (seed/offix.yaml) and fills the log with
`--entries` decisions over the last 365 days the way bench/decision_log_pages.py does (server-side batches, not
chained; half to the seed's parties, half to 500 other recipients, skewed; one in ten denied), seals all but the
newest `--unsealed` and counts them into the rollup as the checkpoint writer would. Then measures, over the
default period (the year up to today):

- the log's part of the record as it was counted before the rollup (its three queries over the log), once;
- the log's part now (ledger/rollup.py `decision_counts`: the rollup's days plus the unsealed tail);
- `GET /api/records/article-30` through the app in-process, the whole record (the registry's part too),

each `--runs` times, median and worst beside the target, with the load average; then drops the database.

    uv run python bench/records_page.py [--entries 1000000] [--runs 5] [--unsealed 2000] [--keep | --database NAME]
"""

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import yaml
from litestar.testing import AsyncTestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from decision_log_pages import (  # noqa: E402
    CHUNK,
    FILL_TEMPLATE,
    RECIPIENTS,
    SERVER,
    UNSEALED,
    fill,
    load_average,
    scratch,
)

from kernel.db import make_engine, make_sessionmaker, upgrade_schema  # noqa: E402
from kernel.settings import Settings, normalise_database_url  # noqa: E402
from ledger.rollup import decision_counts  # noqa: E402
from registry.services.apikeys import create_api_key  # noqa: E402
from registry.services.registry_document import import_registry, parse_document  # noqa: E402
from web.app import create_app  # noqa: E402

TARGET_MS = 1000.0
SEED_FILE = ROOT / "seed" / "offix.yaml"

# The three queries the record ran over the log before the rollup (registry/services/records.py up to issue 27).
BEFORE = [
    """SELECT recipient, count(*) FILTER (WHERE allowed), count(*) FILTER (WHERE NOT allowed),
              max(decided_at) FILTER (WHERE allowed),
              (array_agg(decision_id::text ORDER BY seq DESC) FILTER (WHERE allowed))[1],
              array_remove(array_agg(DISTINCT request->>'destination') FILTER (WHERE allowed), NULL)
         FROM guard_decision WHERE decided_at >= $1 AND decided_at < $2 AND NOT trial GROUP BY recipient""",
    """SELECT d.recipient, array_agg(DISTINCT c.category ORDER BY c.category)
         FROM guard_decision AS d CROSS JOIN LATERAL jsonb_array_elements_text(
              CASE WHEN jsonb_typeof(d.request->'data_categories') = 'array'
                   THEN d.request->'data_categories' ELSE '[]'::jsonb END) AS c(category)
        WHERE d.allowed AND NOT d.trial AND d.decided_at >= $1 AND d.decided_at < $2 GROUP BY d.recipient""",
    """SELECT recipient, coalesce(request->>'purpose', ''), count(*) FILTER (WHERE allowed),
              count(*) FILTER (WHERE NOT allowed)
         FROM guard_decision WHERE decided_at >= $1 AND decided_at < $2 AND NOT trial GROUP BY 1, 2""",
]


def fill_statement(parties: list[str]) -> str:
    named = "ARRAY[" + ", ".join(f"'{key}'" for key in parties) + "]"
    recipient = (
        f"CASE WHEN random() < 0.5 THEN ({named})[1 + floor(random() * {len(parties)})::int]"
        f" ELSE 'processor-' || floor(power(random(), 2) * {RECIPIENTS})::int END"
    )
    return FILL_TEMPLATE.format(days=365, recipient=recipient, last=CHUNK - 1)


async def prepare(url: str) -> tuple[str, list[str]]:
    """Load the seed registry; a registry:read key and the seed's party keys."""
    document = yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await import_registry(session, parse_document(document), "bench/records_page.py")
            key = await create_api_key(session, f"bench-reader-{uuid.uuid4().hex[:6]}", ["registry:read"], "bench")
    finally:
        await engine.dispose()
    return key, [party["key"] for party in document["parties"]]


def line(label: str, times: list[float], target: float | None) -> str:
    verdict = "" if target is None else f"   <= {target:g} ms  {'PASS' if max(times) <= target else 'MISS'}"
    return f"  {label:<44} median {statistics.median(times):8.1f} ms, worst {max(times):8.1f} ms{verdict}"


async def measure(url: str, plain: str, key: str, runs: int) -> bool:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    after = datetime.now(UTC) + timedelta(days=1)
    first = after - timedelta(days=366)
    connection = await asyncpg.connect(plain)
    try:
        started = time.perf_counter()
        for statement in BEFORE:
            await connection.fetch(statement, first, after)
        before = [(time.perf_counter() - started) * 1000]
    finally:
        await connection.close()
    engine = make_engine(url, pool_size=1)
    rollup: list[float] = []
    try:
        for _ in range(runs):
            async with make_sessionmaker(engine)() as session, session.begin():
                started = time.perf_counter()
                counts = await decision_counts(session, first, after)
                rollup.append((time.perf_counter() - started) * 1000)
    finally:
        await engine.dispose()
    decided = sum(c.allowed + c.denied for c in counts.recipients.values())
    settings = Settings(database_url=url, scheduler_enabled=False, seed_file=None, checkpoint_seconds=0)
    record: list[float] = []
    async with AsyncTestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(runs + 1):
            started = time.perf_counter()
            response = await client.get("/api/records/article-30", headers=headers)
            record.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                sys.exit(f"article-30: {response.status_code} {response.text[:300]}")
        body = response.json()
    record = record[1:]  # the first warms the app's caches (the registry snapshot)
    logged = sum(r["enforcement"]["shares_allowed"] + r["enforcement"]["shares_denied"] for r in body["recipients"])
    print()
    print(f"Art. 30 record over the last year: {decided:,} decisions counted, {logged:,} of them to registry parties")
    print(f"({load_average()})")
    print(line("log part, before (three queries over the log)", before, None))
    print(line("log part, now (rollup + unsealed tail)", rollup, None))
    print(line("GET /api/records/article-30 (whole record)", record, TARGET_MS))
    return max(record) <= TARGET_MS


async def reader_key(url: str) -> str:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await create_api_key(session, f"bench-reader-{uuid.uuid4().hex[:6]}", ["registry:read"], "bench")
    finally:
        await engine.dispose()


async def run(entries: int, runs: int, unsealed: int, existing: str | None, keep: bool) -> bool:
    if existing is not None:  # filled by an earlier run with --keep: measured only, kept
        url = normalise_database_url(scratch(existing))
        return await measure(url, scratch(existing), await reader_key(url), runs)
    name = f"registry_bench_records_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = normalise_database_url(scratch(name))
        await asyncio.to_thread(upgrade_schema, url)
        key, parties = await prepare(url)
        print(f"scratch database {name}; filling {entries:,} entries over 365 days", flush=True)
        seconds = await fill(scratch(name), entries, unsealed, fill_statement(parties))
        print(f"filled, sealed and analysed in {seconds:.1f} s", flush=True)
        return await measure(url, scratch(name), key, runs)
    finally:
        if keep:
            print(f"kept: measure it again with --database {name}, then drop it")
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--unsealed", type=int, default=UNSEALED, help="the newest entries left unsealed (2000)")
    parser.add_argument("--database", help="measure this database, filled by an earlier run with --keep (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (to measure it again)")
    args = parser.parse_args()
    return 0 if asyncio.run(run(args.entries, args.runs, args.unsealed, args.database, args.keep)) else 1


if __name__ == "__main__":
    sys.exit(main())
