"""Small builders for registry entries used by the registry API tests."""

from typing import Any

# Spelled out here rather than taken from guard.policy, so that a wrong list in the product fails the tests.
ALL_CLAUSES = [
    "instructions",
    "confidentiality",
    "security",
    "sub_processing",
    "data_subject_rights",
    "compliance_assistance",
    "deletion_or_return",
    "audits",
]


def party(key: str, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": f"{key.title()} AB",
        "role": "processor",
        "category": "it_services",
        "established_in": "SE",
        "locations": [{"territory": "SE", "kind": "storage"}],
        "sub_processors": [],
    }
    body.update(overrides)
    return body


def agreement(key: str, party_key: str, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "party": party_key,
        "kind": "dpa",
        "signed_on": "2025-01-01",
        "effective_from": "2025-01-01",
        "expires_on": "2028-12-31",
        "renewal": "fixed",
        "owner_email": "legal@offix.example",
        "data_categories": ["user.name", "user.contact.email"],
        "purposes": ["essential.service.operations"],
        "data_subjects": ["customer"],
        "clauses": ALL_CLAUSES,
    }
    body.update(overrides)
    return body


def error_keys(response: Any) -> list[str]:
    """The field paths a 400 answer names."""
    return [e.get("key") for e in response.json().get("extra", [])]


def error_text(response: Any) -> str:
    body = response.json()
    return " ".join(
        [str(body.get("detail", ""))] + [f"{e.get('key')}: {e.get('message')}" for e in body.get("extra", [])]
    )


# The smallest file the registry takes as a signed agreement: a PDF header and trailer.
SIGNED_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def put_every_dpa_on_file(url: str) -> None:
    """Store a signed copy of every dpa in the registry, so that AGREEMENT_UNDOCUMENTED (its own tests in
    test_records.py) does not mix into tests of the guard's rule findings."""
    from sqlalchemy import select
    from sqlmodel import col

    from kernel.db import make_engine, make_sessionmaker
    from registry.models import Agreement
    from registry.services.agreement_documents import store_document

    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            keys = (await session.execute(select(col(Agreement.key)).where(col(Agreement.kind) == "dpa"))).scalars()
            for key in list(keys):
                await store_document(session, key, SIGNED_PDF, f"{key}.pdf", "test")
    finally:
        await engine.dispose()


async def append_history(session: Any, entries: Any) -> list[int]:
    """Decisions dated hours or months back, as a log that has run for a while holds them. A new writer's
    entries dated before its registration are refused by a trigger (migration 0018): the database's owner
    seeding history lifts the triggers for this transaction only (SET LOCAL), as a restore would."""
    from sqlalchemy import text

    from ledger.append import append_decisions

    await session.execute(text("SET LOCAL session_replication_role = replica"))
    return await append_decisions(session, entries)
