"""Registry-wide findings read from the registry: the guard's rules (registry/findings.py) over the registry as a
document, then the evidence gaps only the registry knows of (a dpa without its signed copy on file)."""

from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.calendar import calendar_today
from registry.findings import snapshot_findings, snapshot_from_document
from registry.schemas import RegistryDocument
from registry.services.agreement_documents import documents_on_file, undocumented_findings
from registry.services.registry_document import export_registry, parse_document

# A registry that was filled party by party may have no controller profile yet; its calendar is the default.
_UNNAMED_CONTROLLER: dict[str, Any] = {"name": "(controller not set)", "established_in": "SE"}


def controller_day(doc: RegistryDocument) -> date:
    """Today on the calendar of the document's controller."""
    return calendar_today(doc.controller.timezone if doc.controller is not None else None)


def document_findings(
    doc: RegistryDocument, *, today: date | None = None, on_file: set[str] | None = None
) -> list[dict[str, Any]]:
    """The rules' findings, then the evidence gaps (AGREEMENT_UNDOCUMENTED), by party key.

    `on_file`: the agreements with a signed copy stored in the registry (None for a file checked alone). A dpa
    without one is a finding, not a reason the guard refuses a share: Art. 28(9) asks for the contract in
    writing (electronic form included), the registry records that and when it was signed, and a copy missing
    from the registry is a gap in the evidence, not proof that there is no contract.
    """
    day = today or controller_day(doc)
    found = snapshot_findings(snapshot_from_document(doc), day) + undocumented_findings(doc, on_file, day)
    return sorted(found, key=lambda f: f["party"])  # stable: each party's findings stay in the rules' order


async def registry_document(session: AsyncSession) -> RegistryDocument:
    """The registry in the database, as a validated document (the same one `GET /api/registry` gives)."""
    raw = await export_registry(session)
    if raw["controller"] is None:
        raw["controller"] = _UNNAMED_CONTROLLER
    return parse_document(raw)


async def _read_document(session: AsyncSession) -> tuple[RegistryDocument, set[str]]:
    """Read in one transaction when the caller has not opened one, so all tables are seen at one moment;
    with the keys of the agreements whose signed copy is on file."""
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
    checked_on = today or controller_day(doc)
    findings = document_findings(doc, today=checked_on, on_file=on_file)
    return {"findings": findings, "count": len(findings), "checked_on": checked_on.isoformat()}
