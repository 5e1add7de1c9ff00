"""Start-up work for `registry serve`: schema, first seed, first admin key."""

import asyncio
import logging
from pathlib import Path

import yaml

from kernel.db import make_engine, make_sessionmaker, upgrade_schema
from kernel.settings import Settings
from registry.services.apikeys import any_admin_key, create_api_key
from registry.services.common import lock_registry_for_write
from registry.services.registry_document import import_registry, parse_document, registry_is_empty

log = logging.getLogger(__name__)
BOOTSTRAP_KEY_NAME = "bootstrap-admin"


def prepare_database(url: str, settings: Settings) -> str | None:
    """Upgrade the schema; load the seed into an empty registry; create an admin key if none exists.

    Returns the new admin key's token, to be shown once, or None when a key existed already. Safe to run
    from several instances at once: the upgrade and the seeding each hold a PostgreSQL lock.
    """
    upgrade_schema(url)
    # Read here, before the event loop runs: the file is small and the read must not block the loop.
    seed_text = settings.seed_file.read_text(encoding="utf-8") if settings.seed_file is not None else None
    return asyncio.run(_seed_and_key(url, settings.seed_file, seed_text))


async def _seed_and_key(url: str, seed_file: Path | None, seed_text: str | None) -> str | None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await lock_registry_for_write(session)
            if seed_text is not None and await registry_is_empty(session):
                document = parse_document(yaml.safe_load(seed_text))
                counts = await import_registry(session, document, "seed")
                log.info("seeded the registry from %s: %s", seed_file, counts)
            if await any_admin_key(session):
                return None
            return await create_api_key(session, BOOTSTRAP_KEY_NAME, ["admin"], "serve")
    finally:
        await engine.dispose()
