"""Registry-wide findings (issue 3, item 6): the guard's rules run over every active party, without a request.

A finding is what would block every share to a party today — no agreement in force, an expired one, a dpa
without its Art. 28(3) clauses or permitting transfers outside the EU/EEA, a place or a sub-processor outside
the EU/EEA, an unapproved or objected sub-processor — or an agreement in force covering a purpose the
controller does not publish. The rules are ``guard.policy.evaluate_party``; this module only builds the snapshot and
lists what the rules say, so the findings and the guard's decisions can never disagree.

The snapshot is built from a registry document (DESIGN §3) both for a file (``registry check --file``,
no database) and for the database (exported as the same document first), so there is one way to build it.
"""

from datetime import date, datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from guard.policy import (
    AgreementView,
    LocationView,
    PartyView,
    Reason,
    Snapshot,
    SubProcessorLinkView,
    evaluate_party,
)
from registry.schemas import ControllerIn, PartyIn, RegistryDocument

DEFAULT_TIMEZONE = "Europe/Stockholm"
DOCUMENT_RULESET = "registry-document"

# A registry that was filled party by party may have no controller profile yet; its calendar is the default.
_UNNAMED_CONTROLLER: dict[str, Any] = {"name": "(controller not set)", "established_in": "SE"}


def _party_view(party: PartyIn) -> PartyView:
    return PartyView(
        key=party.key,
        name=party.name,
        role=party.role,
        category=party.category,
        established_in=party.established_in,
        active=party.active,
        locations=tuple(LocationView(territory=loc.territory, kind=loc.kind) for loc in party.locations),
        sub_processors=tuple(
            SubProcessorLinkView(
                party=s.party,
                approved_on=s.approved_on,
                objection_deadline=s.objection_deadline,
                authorisation=s.authorisation,
                notified_on=s.notified_on,
                objected_on=s.objected_on,
            )
            for s in party.sub_processors
        ),
    )


def snapshot_from_document(doc: RegistryDocument, *, ruleset: str = DOCUMENT_RULESET) -> Snapshot:
    """The guard's in-memory view of a validated registry document (pure: no I/O)."""
    agreements_by_party: dict[str, list[AgreementView]] = {}
    for agreement in doc.agreements:
        agreements_by_party.setdefault(agreement.party, []).append(AgreementView.of(agreement, agreement.party))
    published = doc.controller.published_purposes
    return Snapshot(
        parties=MappingProxyType({p.key: _party_view(p) for p in doc.parties}),
        agreements_by_party=MappingProxyType({k: tuple(v) for k, v in agreements_by_party.items()}),
        ruleset=ruleset,
        published_purposes=None if published is None else frozenset(published),
    )


def controller_today(controller: ControllerIn | None, now: datetime | None = None) -> date:
    """Today on the controller's calendar (DESIGN §4.3), not the server's."""
    zone = ZoneInfo(controller.timezone if controller is not None else DEFAULT_TIMEZONE)
    return (now or datetime.now(tz=zone)).astimezone(zone).date()


def finding(party: str, reason: Reason) -> dict[str, Any]:
    """One finding as JSON: the party it blocks, then the reason's fields.

    The reason's own ``party`` is left out: it is either the same party or, for a sub-processor, the last
    link of ``chain``, which names it.
    """
    fields = reason.as_dict()
    fields.pop("party", None)
    return {"party": party, **fields}


def snapshot_findings(snapshot: Snapshot, today: date) -> list[dict[str, Any]]:
    """Every finding for every active party, by party key, each party's in the rules' own order."""
    return [
        finding(key, reason)
        for key in sorted(snapshot.parties)
        if snapshot.parties[key].active
        for reason in evaluate_party(snapshot.parties[key], snapshot, today)
    ]


def document_findings(
    doc: RegistryDocument, *, today: date | None = None, on_file: set[str] | None = None
) -> list[dict[str, Any]]:
    """The rules' findings, then the evidence gaps (AGREEMENT_UNDOCUMENTED), by party key.

    `on_file`: the agreements with a signed copy stored in the registry (None for a file checked alone). A dpa
    without one is a finding, not a reason the guard refuses a share: Art. 28(9) asks for the contract in
    writing (electronic form included), the registry records that and when it was signed, and a copy missing
    from the registry is a gap in the evidence, not proof that there is no contract.
    """
    from registry.services.agreement_documents import undocumented_findings

    day = today or controller_today(doc.controller)
    found = snapshot_findings(snapshot_from_document(doc), day) + undocumented_findings(doc, on_file, day)
    return sorted(found, key=lambda f: f["party"])  # stable: each party's findings stay in the rules' order


async def registry_document(session: AsyncSession) -> RegistryDocument:
    """The registry in the database, as a validated document (the same one `GET /api/registry` gives)."""
    from registry.services.registry_document import export_registry, parse_document

    raw = await export_registry(session)
    if raw["controller"] is None:
        raw["controller"] = _UNNAMED_CONTROLLER
    return parse_document(raw)


async def _read_document(session: AsyncSession) -> tuple[RegistryDocument, set[str]]:
    """Read in one transaction when the caller has not opened one, so all tables are seen at one moment;
    with the keys of the agreements whose signed copy is on file."""
    from registry.services.agreement_documents import documents_on_file

    if session.in_transaction():
        return await registry_document(session), set(await documents_on_file(session))
    async with session.begin():
        return await registry_document(session), set(await documents_on_file(session))


async def registry_findings(session: AsyncSession, *, today: date | None = None) -> list[dict[str, Any]]:
    """Every finding in the registry database on `today` (default: the controller's calendar date)."""
    doc, on_file = await _read_document(session)
    return document_findings(doc, today=today, on_file=on_file)


async def registry_findings_report(session: AsyncSession, *, today: date | None = None) -> dict[str, Any]:
    """The answer of `GET /api/registry/findings`: the findings, their count and the day checked."""
    doc, on_file = await _read_document(session)
    checked_on = today or controller_today(doc.controller)
    findings = document_findings(doc, today=checked_on, on_file=on_file)
    return {"findings": findings, "count": len(findings), "checked_on": checked_on.isoformat()}
