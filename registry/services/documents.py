"""Registry state as plain documents (DESIGN §3), loaded in a handful of queries."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from registry.models import Agreement, ControllerProfile, Location, Party, SubProcessorLink

PartyDoc = dict[str, Any]
AgreementDoc = dict[str, Any]


def party_document(party: Party, locations: list[Location], links: list[tuple[SubProcessorLink, str]]) -> PartyDoc:
    return {
        "key": party.key,
        "name": party.name,
        "role": party.role,
        "category": party.category,
        "org_number": party.org_number,
        "established_in": party.established_in,
        "locations": [{"territory": loc.territory, "kind": loc.kind} for loc in locations],
        "sub_processors": [link_document(link, key) for link, key in links],
        "active": party.active,
        "international_organisation": party.international_organisation,
        "contact": party.contact,
    }


def link_document(link: SubProcessorLink, party_key: str) -> dict[str, Any]:
    """A sub-processor link as the registry document writes it (DESIGN §2: how it was authorised)."""
    return {
        "party": party_key,
        "authorisation": link.authorisation,
        "notified_on": link.notified_on,
        "objection_deadline": link.objection_deadline,
        "approved_on": link.approved_on,
        "objected_on": link.objected_on,
    }


def link_columns(link: Any) -> dict[str, Any]:
    """The columns of a validated link (`SubProcessorLinkIn`) other than its two ends and position."""
    return {
        "authorisation": link.authorisation,
        "notified_on": link.notified_on,
        "objection_deadline": link.objection_deadline,
        "approved_on": link.approved_on,
        "objected_on": link.objected_on,
    }


def agreement_document(agreement: Agreement, party_key: str) -> AgreementDoc:
    document: dict[str, Any] | None = None
    if agreement.document_uri is not None:
        document = {"uri": agreement.document_uri, "sha256": agreement.document_sha256}
        if agreement.document_size is not None:  # only a document on file has one (left out, not null, otherwise)
            document["size"] = agreement.document_size
    return {
        "key": agreement.key,
        "party": party_key,
        "kind": agreement.kind,
        "signed_on": agreement.signed_on,
        "effective_from": agreement.effective_from,
        "expires_on": agreement.expires_on,
        "terminated_on": agreement.terminated_on,
        "renewal": agreement.renewal,
        "notice_days": agreement.notice_days,
        "owner_email": agreement.owner_email,
        "document": document,
        "data_categories": list(agreement.data_categories),
        "purposes": list(agreement.purposes),
        "data_subjects": list(agreement.data_subjects),
        "clauses": list(agreement.clauses),
        "transfers_outside_eea_permitted": agreement.transfers_outside_eea_permitted,
    }


def with_metadata(doc: dict[str, Any], row: Party | Agreement) -> dict[str, Any]:
    """API answers carry the version (for optimistic concurrency) and timestamps; documents don't."""
    return {**doc, "version": row.version, "created_at": row.created_at, "updated_at": row.updated_at}


def json_ready(value: Any) -> Any:
    """Dates to ISO strings, for JSONB history columns."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass
class RegistryState:
    controller: dict[str, Any] | None
    parties: dict[str, Party] = field(default_factory=dict)
    party_docs: dict[str, PartyDoc] = field(default_factory=dict)
    agreements: dict[str, Agreement] = field(default_factory=dict)
    agreement_docs: dict[str, AgreementDoc] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "controller": self.controller,
            "parties": list(self.party_docs.values()),
            "agreements": list(self.agreement_docs.values()),
        }


def controller_document(profile: ControllerProfile | None) -> dict[str, Any] | None:
    """The controller's profile as documents and pages read it (None when there is none yet)."""
    if profile is None:
        return None
    return {
        "name": profile.name,
        "established_in": profile.established_in,
        "timezone": profile.timezone,
        "published_purposes": None if profile.published_purposes is None else list(profile.published_purposes),
        # Only when given, so that a registry without one exports exactly as it did before.
        **({"vocabulary": profile.vocabulary} if profile.vocabulary is not None else {}),
        **({"contact": profile.contact} if profile.contact is not None else {}),
        **(
            {"processing_activities": profile.processing_activities}
            if profile.processing_activities is not None
            else {}
        ),
    }


async def load_registry(session: AsyncSession) -> RegistryState:
    controller = await session.get(ControllerProfile, 1)
    parties = list((await session.execute(select(Party).order_by(col(Party.key)))).scalars())
    key_by_id = {p.id: p.key for p in parties}
    locations: dict[int, list[Location]] = defaultdict(list)
    for loc in (
        await session.execute(
            select(Location).order_by(col(Location.party_id), col(Location.position), col(Location.id))
        )
    ).scalars():
        locations[loc.party_id].append(loc)
    links: dict[int, list[tuple[SubProcessorLink, str]]] = defaultdict(list)
    link_rows = (
        await session.execute(
            select(SubProcessorLink).order_by(
                col(SubProcessorLink.processor_id), col(SubProcessorLink.position), col(SubProcessorLink.id)
            )
        )
    ).scalars()
    for link in link_rows:
        links[link.processor_id].append((link, key_by_id[link.sub_processor_id]))
    state = RegistryState(controller=controller_document(controller))
    for party in parties:
        assert party.id is not None
        state.parties[party.key] = party
        state.party_docs[party.key] = party_document(party, locations[party.id], links[party.id])
    for agreement in (await session.execute(select(Agreement).order_by(col(Agreement.key)))).scalars():
        state.agreements[agreement.key] = agreement
        state.agreement_docs[agreement.key] = agreement_document(agreement, key_by_id[agreement.party_id])
    return state
