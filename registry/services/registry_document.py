"""The whole registry as one document: export, and replace-all import in one transaction (DESIGN §3)."""

from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from registry.errors import FieldError, RegistryValidationError
from registry.models import Agreement, ChangeRecord, ControllerProfile, Location, Party, SubProcessorLink
from registry.models.base import utcnow
from registry.schemas import AgreementIn, PartyIn, RegistryDocument
from registry.services import integrity
from registry.services.agreements import agreement_columns
from registry.services.common import change_record, finish_write, lock_registry_for_write
from registry.services.documents import agreement_document, link_columns, load_registry, party_document
from registry.services.parties import party_columns


def pydantic_field_errors(exc: ValidationError) -> list[FieldError]:
    """`('parties', 3, 'locations', 0, 'territory')` → `parties[3].locations[0].territory`."""
    errors = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = err["msg"].removeprefix("Value error, ")
        errors.append(FieldError(path or "(document)", message))
    return errors


def parse_document(raw: Any) -> RegistryDocument:
    if not isinstance(raw, dict):
        raise RegistryValidationError([FieldError("(document)", "the registry document must be a mapping")])
    try:
        return RegistryDocument.model_validate(raw)
    except ValidationError as exc:
        raise RegistryValidationError(pydantic_field_errors(exc)) from None


def reference_errors(doc: RegistryDocument) -> list[FieldError]:
    """Every cross-reference problem in a document, each with its path."""
    errors = integrity.duplicate_key_errors("parties", [p.key for p in doc.parties])
    errors += integrity.duplicate_key_errors("agreements", [a.key for a in doc.agreements])
    roles = {p.key: p.role for p in doc.parties}
    links = {p.key: [s.party for s in p.sub_processors] for p in doc.parties}
    reported_cycle: set[frozenset[str]] = set()
    for i, party in enumerate(doc.parties):
        path = f"parties[{i}]"
        errors += integrity.sub_processor_link_errors(path, party.key, links[party.key], roles)
        cycle = integrity.find_cycle(links, party.key)
        if cycle and frozenset(cycle) not in reported_cycle:
            reported_cycle.add(frozenset(cycle))
            errors.append(
                FieldError(f"{path}.sub_processors", "sub-processor links form a cycle: " + " → ".join(cycle))
            )
    for i, agreement in enumerate(doc.agreements):
        errors += integrity.agreement_party_errors(f"agreements[{i}]", agreement.kind, agreement.party, roles)
    return errors


async def export_registry(session: AsyncSession) -> dict[str, Any]:
    return (await load_registry(session)).document()


async def import_registry(session: AsyncSession, doc: RegistryDocument, actor: str) -> dict[str, int]:
    """Replace the registry with `doc`: parties and agreements are matched by key, so unchanged entries
    keep their version and history; everything happens in the caller's transaction (all or nothing)."""
    errors = reference_errors(doc)
    if errors:
        raise RegistryValidationError(errors)
    await lock_registry_for_write(session)
    current = await load_registry(session)
    counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
    history: list[ChangeRecord] = []
    now = utcnow()

    # Links and locations are rewritten wholesale below; drop them first so that removed parties can go.
    await session.execute(delete(SubProcessorLink))
    await session.execute(delete(Location))

    wanted_agreements = {a.key for a in doc.agreements}
    for key, agreement_row in current.agreements.items():
        if key not in wanted_agreements:
            history.append(change_record("agreement", key, "delete", actor, current.agreement_docs[key], None))
            await session.delete(agreement_row)
            counts["deleted"] += 1
    await session.flush()
    wanted_parties = {p.key for p in doc.parties}
    for key, party_row in current.parties.items():
        if key not in wanted_parties:
            history.append(change_record("party", key, "delete", actor, current.party_docs[key], None))
            await session.delete(party_row)
            counts["deleted"] += 1
    await session.flush()

    party_ids: dict[str, int] = {}
    new_parties: list[dict[str, Any]] = []
    for party in doc.parties:
        fields = party_columns(party)
        row = current.parties.get(party.key)
        if row is None:
            new_parties.append({"key": party.key, **fields, "version": 1, "created_at": now, "updated_at": now})
            continue
        assert row.id is not None
        party_ids[party.key] = row.id
        before = current.party_docs[party.key]
        after = _party_doc(party)
        if after != before:
            for name, value in fields.items():
                setattr(row, name, value)
            row.version += 1
            row.updated_at = now
            history.append(change_record("party", party.key, "update", actor, before, after))
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    if new_parties:
        result = await session.execute(insert(Party).returning(col(Party.key), col(Party.id)), new_parties)
        for key, party_id in result.all():
            assert party_id is not None  # RETURNING id of an inserted row
            party_ids[key] = party_id
        for party in doc.parties:
            if party.key not in current.parties:
                history.append(change_record("party", party.key, "create", actor, None, _party_doc(party)))
                counts["created"] += 1
    await session.flush()

    locations = [
        {"party_id": party_ids[p.key], "territory": loc.territory, "kind": loc.kind, "position": i}
        for p in doc.parties
        for i, loc in enumerate(p.locations)
    ]
    links = [
        {
            "processor_id": party_ids[p.key],
            "sub_processor_id": party_ids[s.party],
            **link_columns(s),
            "position": i,
        }
        for p in doc.parties
        for i, s in enumerate(p.sub_processors)
    ]
    if locations:
        await session.execute(insert(Location), locations)
    if links:
        await session.execute(insert(SubProcessorLink), links)

    new_agreements = []
    for agreement in doc.agreements:
        doc_form = _agreement_doc(agreement)
        fields = agreement_columns(agreement, party_ids[agreement.party])
        existing = current.agreements.get(agreement.key)
        if existing is None:
            new_agreements.append({"key": agreement.key, **fields, "version": 1, "created_at": now, "updated_at": now})
            history.append(change_record("agreement", agreement.key, "create", actor, None, doc_form))
            counts["created"] += 1
        elif doc_form != current.agreement_docs[agreement.key]:
            for name, value in fields.items():
                setattr(existing, name, value)
            existing.version += 1
            existing.updated_at = now
            history.append(
                change_record(
                    "agreement",
                    agreement.key,
                    "update",
                    actor,
                    current.agreement_docs[agreement.key],
                    doc_form,
                )
            )
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    if new_agreements:
        await session.execute(insert(Agreement), new_agreements)

    controller = doc.controller.model_dump()
    profile = await session.get(ControllerProfile, 1)
    if profile is None:
        session.add(ControllerProfile(id=1, **controller))
    elif current.controller != controller:
        for name, value in controller.items():
            setattr(profile, name, value)
    if current.controller != controller:
        history.append(change_record("controller", "controller", "update", actor, current.controller, controller))
    session.add_all(history)
    await finish_write(session, "registry:import")
    return counts


def _party_doc(party: PartyIn) -> dict[str, Any]:
    """The stored document form of a validated party, to compare with what the database holds."""
    links = [
        (
            SubProcessorLink(processor_id=0, sub_processor_id=0, **link_columns(s)),
            s.party,
        )
        for s in party.sub_processors
    ]
    locations = [Location(party_id=0, territory=loc.territory, kind=loc.kind) for loc in party.locations]
    return party_document(Party(key=party.key, **party_columns(party)), locations, links)


def _agreement_doc(agreement: AgreementIn) -> dict[str, Any]:
    return agreement_document(Agreement(key=agreement.key, **agreement_columns(agreement, 0)), agreement.party)


async def registry_is_empty(session: AsyncSession) -> bool:
    return (await session.execute(select(col(Party.id)).limit(1))).first() is None
