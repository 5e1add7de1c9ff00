"""The durable-commit floor for bench/guard_load.py: a minimal Litestar app whose one POST appends a decision to
the log with the guard's own group commit (ledger/append.py `DecisionLogWriter`, the same batch size and chains
as `registry serve`) and answers once it is durable. Served by uvicorn with the plain floor's settings.

What no check can beat on this machine while it logs every decision before answering: the plain floor
(bench/floor_app.py) leaves out the commit, so guard/floor mixes what the guard computes with what durability
costs; guard/durable-floor isolates the first. Its database is `DURABLE_FLOOR_DSN` (the benchmark's scratch
database, migrated), its chains `REGISTRY_DECISION_LOG_CHAINS` as for the registry.
"""

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from litestar import Litestar, post

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel.columns import utcnow
from kernel.db import asyncpg_dsn
from kernel.settings import Settings
from ledger.append import DecisionLogWriter
from ledger.entries import DecisionEntry

_settings = Settings(database_url=os.environ["DURABLE_FLOOR_DSN"])
writer = DecisionLogWriter(
    asyncpg_dsn(os.environ["DURABLE_FLOOR_DSN"]),
    batch_max=_settings.decision_log_batch_max,
    chains=_settings.decision_log_chains,
    role="bench",
)
_REQUEST = {"recipient": "durable-floor", "purpose": "bench", "data_categories": ["user.contact.email"]}


@post("/commit", status_code=200)
async def commit() -> dict[str, Any]:
    entry = DecisionEntry(
        decision_id=uuid.uuid4(),
        decided_at=utcnow(),
        caller="bench",
        request=_REQUEST,
        allowed=True,
        reasons=[],
        warnings=[],
        agreement=None,
        ruleset="durable-floor",
    )
    (sequence,) = await writer.append([entry])
    return {"allowed": True, "sequence": sequence}


async def _start() -> None:
    writer.start()


app = Litestar(route_handlers=[commit], on_startup=[_start], on_shutdown=[writer.stop])
