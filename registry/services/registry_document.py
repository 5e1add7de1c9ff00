"""The whole registry as one document: export, and replace-all import in one transaction (DESIGN §3)."""

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kernel.columns import utcnow
from kernel.db import PENDING_REVISION, registry_revision
from kernel.errors import ConflictError, FieldError, RegistryValidationError, pydantic_field_errors
from registry.models import Agreement, ChangeRecord, ControllerProfile, Location, Party, SubProcessorLink
from registry.schemas import ROLE_FOR_AGREEMENT_KIND, AgreementIn, ControllerIn, PartyIn, RegistryDocument
from registry.services import integrity
from registry.services.agreement_documents import keep_removed_documents
from registry.services.agreements import agreement_columns
from registry.services.common import change_record, finish_write, lock_registry_for_write
from registry.services.documents import agreement_document, link_columns, load_registry, party_document
from registry.services.parties import party_columns

try:  # libyaml's loader is several times faster on a large document; PyYAML's own when it is not built in
    from yaml import CSafeLoader as YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as YamlLoader  # type: ignore[assignment]

JSON_MEDIA_TYPES = frozenset({"application/json"})
YAML_MEDIA_TYPES = frozenset({"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"})


def load_document_text(body: bytes, media_type: str | None) -> Any:
    """A registry document's bytes, JSON or YAML (DESIGN §3), as plain data. Slow on a large document: call it
    off the event loop."""
    is_json = (media_type or "application/json") in JSON_MEDIA_TYPES
    try:
        text = body.decode("utf-8")
        return json.loads(text) if is_json else yaml.load(text, Loader=YamlLoader)
    except UnicodeDecodeError as exc:
        raise RegistryValidationError([FieldError("(document)", f"the document is not UTF-8 ({exc.reason})")]) from None
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        what = "JSON" if is_json else "YAML"
        raise RegistryValidationError([FieldError("(document)", f"the document is not valid {what}: {exc}")]) from None


def parse_document(raw: Any) -> RegistryDocument:
    """Validate a document; every problem comes back at once, field problems and reference problems (unknown
    party, cycle, role/kind mismatch) together, each with its path."""
    if not isinstance(raw, dict):
        raise RegistryValidationError([FieldError("(document)", "the registry document must be a mapping")])
    try:
        doc = RegistryDocument.model_validate(raw)
    except ValidationError as exc:
        errors = pydantic_field_errors(exc)
        seen = {(e.field, e.message) for e in errors}
        errors += [e for e in raw_reference_errors(raw) if (e.field, e.message) not in seen]
        raise RegistryValidationError(errors) from None
    errors = reference_errors(doc)
    if errors:
        raise RegistryValidationError(errors)
    return doc


PartyRefs = tuple[str, str, list[str]] | None  # key, role, sub-processor keys; None: too broken to check
AgreementRefs = tuple[str | None, str] | None  # kind (None if not a known kind), party key


def _reference_problems(parties: list[PartyRefs], agreements: list[AgreementRefs]) -> list[FieldError]:
    errors = integrity.duplicate_key_errors("parties", [p[0] if p else f"\0{i}" for i, p in enumerate(parties)])
    roles = {p[0]: p[1] for p in parties if p}
    links = {p[0]: p[2] for p in parties if p}
    reported_cycle: set[frozenset[str]] = set()
    for i, party in enumerate(parties):
        if party is None:
            continue
        key, _, targets = party
        path = f"parties[{i}]"
        errors += integrity.sub_processor_link_errors(path, key, targets, roles)
        cycle = integrity.find_cycle(links, key)
        if cycle and frozenset(cycle) not in reported_cycle:
            reported_cycle.add(frozenset(cycle))
            errors.append(
                FieldError(f"{path}.sub_processors", "sub-processor links form a cycle: " + " → ".join(cycle))
            )
    for i, agreement in enumerate(agreements):
        if agreement is None:
            continue
        kind, party_key = agreement
        if kind is None:
            if party_key not in roles:
                errors.append(
                    FieldError(
                        f"agreements[{i}].party",
                        f"no party with key {party_key!r}",
                        "unknown_party",
                        {"key": party_key},
                    )
                )
        else:
            errors += integrity.agreement_party_errors(f"agreements[{i}]", kind, party_key, roles)
    return errors


def reference_errors(doc: RegistryDocument) -> list[FieldError]:
    """Every cross-reference problem in a document, each with its path."""
    errors = _reference_problems(
        [(p.key, p.role, [s.party for s in p.sub_processors]) for p in doc.parties],
        [(a.kind, a.party) for a in doc.agreements],
    )
    activities = [a.key for a in doc.controller.processing_activities or ()]
    return (
        errors
        + integrity.duplicate_key_errors("agreements", [a.key for a in doc.agreements])
        + integrity.duplicate_key_errors(ACTIVITIES_PATH, activities)
    )


ACTIVITIES_PATH = "controller.processing_activities"


def _raw_activity_keys(raw: dict[str, Any]) -> list[str]:
    controller = raw.get("controller")
    activities = controller.get("processing_activities") if isinstance(controller, dict) else None
    keys = []
    for i, entry in enumerate(activities if isinstance(activities, list) else []):
        key = entry.get("key") if isinstance(entry, dict) else None
        keys.append(key.strip() if isinstance(key, str) else f"\0{i}")
    return keys


def raw_reference_errors(raw: dict[str, Any]) -> list[FieldError]:
    """The reference problems of a document that failed validation, as far as its shape allows checking them,
    so that one answer lists them with the field problems."""

    def text(value: Any) -> str | None:
        return value.strip() if isinstance(value, str) else None

    raw_parties, raw_agreements = raw.get("parties"), raw.get("agreements")
    parties: list[PartyRefs] = []
    for entry in raw_parties if isinstance(raw_parties, list) else []:
        key = text(entry.get("key")) if isinstance(entry, dict) else None
        if key is None:
            parties.append(None)
            continue
        links = entry.get("sub_processors")
        targets = [text(s.get("party")) for s in links if isinstance(s, dict)] if isinstance(links, list) else []
        parties.append((key, text(entry.get("role")) or "", [t for t in targets if t is not None]))
    agreements: list[AgreementRefs] = []
    agreement_keys: list[str] = []
    for i, entry in enumerate(raw_agreements if isinstance(raw_agreements, list) else []):
        party_key = text(entry.get("party")) if isinstance(entry, dict) else None
        kind = text(entry.get("kind")) if isinstance(entry, dict) else None
        agreements.append(None if party_key is None else (kind if kind in ROLE_FOR_AGREEMENT_KIND else None, party_key))
        key = text(entry.get("key")) if isinstance(entry, dict) else None
        agreement_keys.append(key if key is not None else f"\0{i}")
    return (
        _reference_problems(parties, agreements)
        + integrity.duplicate_key_errors("agreements", agreement_keys)
        + integrity.duplicate_key_errors(ACTIVITIES_PATH, _raw_activity_keys(raw))
    )


async def export_registry(session: AsyncSession) -> dict[str, Any]:
    return (await load_registry(session)).document()


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


@dataclass
class SectionChanges:
    """One section's changes: keys created, keys updated with the fields that changed, keys removed."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": sorted(self.created),
            "updated": dict(sorted(self.updated.items())),
            "removed": sorted(self.removed),
        }


@dataclass
class ChangeSet:
    """What an import changes (or, as a preview, would change), per section."""

    controller: list[str] = field(default_factory=list)  # the controller's changed fields
    parties: SectionChanges = field(default_factory=SectionChanges)
    agreements: SectionChanges = field(default_factory=SectionChanges)
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        sections = (self.parties, self.agreements)
        return {
            "created": sum(len(s.created) for s in sections),
            "updated": sum(len(s.updated) for s in sections),
            "deleted": sum(len(s.removed) for s in sections),
            "unchanged": self.unchanged,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "controller": {"updated": self.controller},
            "parties": self.parties.as_dict(),
            "agreements": self.agreements.as_dict(),
        }

    def lines(self) -> list[str]:
        """The change set for people, one line per record."""
        out = [f"controller: updated {', '.join(self.controller)}"] if self.controller else []
        for section, changes in (("parties", self.parties), ("agreements", self.agreements)):
            out += [f"{section}: created {key}" for key in sorted(changes.created)]
            out += [f"{section}: updated {key}: {', '.join(f)}" for key, f in sorted(changes.updated.items())]
            out += [f"{section}: removed {key}" for key in sorted(changes.removed)]
        return out


async def import_registry(session: AsyncSession, doc: RegistryDocument, actor: str) -> dict[str, int]:
    """Replace the registry with `doc`; the counts of what changed."""
    return (await apply_document(session, doc, actor)).counts()


async def preview_document(session: AsyncSession, doc: RegistryDocument, actor: str) -> ChangeSet:
    """What importing `doc` would change, with nothing written: the import runs in a savepoint that is rolled
    back (its change notice with it), so the preview is exactly what the import would do."""
    savepoint = await session.begin_nested()
    try:
        return await apply_document(session, doc, actor)
    finally:
        await savepoint.rollback()
        session.info.pop(PENDING_REVISION, None)  # the revision it raised went with the savepoint


@dataclass(frozen=True)
class Preview:
    """A previewed import: its change set, and the registry revision it was computed against."""

    changes: ChangeSet
    revision: int


class RegistryChangedSincePreview(ConflictError):
    """The registry moved on after a person looked at a preview: what they approved is not what would happen."""


async def preview_at_revision(session: AsyncSession, doc: RegistryDocument, actor: str) -> Preview:
    """A preview with the revision it holds for, so that a later confirm can insist on exactly this change set."""
    revision = await registry_revision(session)
    return Preview(await preview_document(session, doc, actor), revision)


async def apply_previewed_document(
    session: AsyncSession, doc: RegistryDocument, actor: str, previewed_revision: int
) -> ChangeSet:
    """Import `doc` only if the registry is still at the revision its preview was computed against (every
    registry write holds the write lock while it moves the revision, so the check and the import see the same
    registry); otherwise raise RegistryChangedSincePreview and write nothing."""
    await lock_registry_for_write(session)
    current = await registry_revision(session)
    if current != previewed_revision:
        raise RegistryChangedSincePreview(
            f"The registry changed since the preview (revision {previewed_revision}, now {current})."
        )
    return await apply_document(session, doc, actor)


# An import that touches more records than this is announced as a change of everything: reloading the whole
# snapshot once is then cheaper than reading that many records by key.
IMPORT_CHANGE_MAX_KEYS = 500


async def apply_document(session: AsyncSession, doc: RegistryDocument, actor: str) -> ChangeSet:
    """Replace the registry with `doc`: parties and agreements are matched by key, so unchanged entries
    keep their version and history; everything happens in the caller's transaction (all or nothing).

    A record the document no longer holds is removed with a "delete" entry as its last history entry, so its
    history stays readable and it can be restored from there (registry/services/removed.py)."""
    errors = reference_errors(doc)
    if errors:
        raise RegistryValidationError(errors)
    await lock_registry_for_write(session)
    current = await load_registry(session)
    changes = ChangeSet()
    history: list[ChangeRecord] = []
    now = utcnow()

    # Links and locations are rewritten wholesale below; drop them first so that removed parties can go.
    await session.execute(delete(SubProcessorLink))
    await session.execute(delete(Location))

    wanted_agreements = {a.key for a in doc.agreements}
    await keep_removed_documents(
        session, [row.id for key, row in current.agreements.items() if key not in wanted_agreements and row.id]
    )
    for key, agreement_row in current.agreements.items():
        if key not in wanted_agreements:
            history.append(change_record("agreement", key, "delete", actor, current.agreement_docs[key], None))
            await session.delete(agreement_row)
            changes.agreements.removed.append(key)
    await session.flush()
    wanted_parties = {p.key for p in doc.parties}
    for key, party_row in current.parties.items():
        if key not in wanted_parties:
            history.append(change_record("party", key, "delete", actor, current.party_docs[key], None))
            await session.delete(party_row)
            changes.parties.removed.append(key)
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
            changes.parties.updated[party.key] = changed_fields(before, after)
        else:
            changes.unchanged += 1
    if new_parties:
        result = await session.execute(insert(Party).returning(col(Party.key), col(Party.id)), new_parties)
        for key, party_id in result.all():
            assert party_id is not None  # RETURNING id of an inserted row
            party_ids[key] = party_id
        for party in doc.parties:
            if party.key not in current.parties:
                history.append(change_record("party", party.key, "create", actor, None, _party_doc(party)))
                changes.parties.created.append(party.key)
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
            changes.agreements.created.append(agreement.key)
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
            changes.agreements.updated[agreement.key] = changed_fields(current.agreement_docs[agreement.key], doc_form)
        else:
            changes.unchanged += 1
    if new_agreements:
        await session.execute(insert(Agreement), new_agreements)

    controller = controller_fields(doc.controller)
    profile = await session.get(ControllerProfile, 1)
    if profile is None:
        session.add(ControllerProfile(id=1, **controller))
    elif current.controller != controller:
        for name, value in controller.items():
            setattr(profile, name, value)
        for name in OPTIONAL_CONTROLLER_FIELDS:
            setattr(profile, name, controller.get(name))
    if current.controller != controller:
        history.append(change_record("controller", "controller", "update", actor, current.controller, controller))
        changes.controller = changed_fields(current.controller or {}, controller)
    session.add_all(history)
    changed_parties = [*changes.parties.created, *changes.parties.updated, *changes.parties.removed]
    changed_agreements = [*changes.agreements.created, *changes.agreements.updated, *changes.agreements.removed]
    await finish_write(
        session,
        "registry:import",
        parties=changed_parties,
        agreements=changed_agreements,
        # The controller's profile (published purposes, timezone) and large imports: the guard reloads it all.
        everything=bool(changes.controller) or len(changed_parties) + len(changed_agreements) > IMPORT_CHANGE_MAX_KEYS,
    )
    return changes


# Controller fields a document may leave out: one without them reads back without them (what GET returns can be
# PUT back, and a registry that never had them exports as it did before).
OPTIONAL_CONTROLLER_FIELDS = ("vocabulary", "contact", "processing_activities")


def controller_fields(controller: ControllerIn) -> dict[str, Any]:
    """The controller's stored document form (what `controller_document` reads back)."""
    fields = controller.model_dump(mode="json")
    for name in OPTIONAL_CONTROLLER_FIELDS:
        if fields[name] is None:
            del fields[name]
    if "contact" in fields:
        fields["contact"] = {k: v for k, v in fields["contact"].items() if v is not None}
    return fields


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
