"""The Art. 30(1) record, built from the registry and from what the guard enforced.

Per processing activity (a)-(g): registry/services/processing_activities.py. For each recipient: who it is, what it
receives and why (from its agreements in force), every territory where it or its sub-processor chain stores,
processes, backs up or reaches the data, its agreements with their dates and document digests, and the transfers to
third countries — none, with the decision log for the period as the evidence: shares allowed and denied, the
categories actually shared, the last share. The counts are summed from the checkpoint writer's daily rollup of the
log (ledger/rollup.py) and the few entries it does not hold yet, so a year of decisions is never loaded into the
application nor counted on a view.
"""

import asyncio
import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from guard.places import walk_chain
from guard.policy import Snapshot
from guard.territory import TerritoryStatus, classify_territory, territory_name
from guard.views import AgreementView, PartyView
from kernel.calendar import calendar_today, zone_or_default
from kernel.errors import FieldError, RegistryValidationError
from kernel.i18n import N_, current, gettext
from ledger.rollup import decision_counts
from registry.findings import snapshot_from_document
from registry.models import Agreement
from registry.services.agreement_documents import documents_on_file
from registry.services.findings import registry_document
from registry.services.processing_activities import (
    activity_entries,
    controller_entry,
    registry_activity_entries,
    with_enforcement,
)

DEFAULT_PERIOD_DAYS = 365
# Recipients in the record: processors first (the ones Art. 28 agreements bind), then their sub-processors.
ROLE_ORDER = {"processor": 0, "sub_processor": 1, "independent_controller": 2, "authority": 3}
MAX_PERIOD_DAYS = 366 * 10
# Trials from the try-a-share page are kept in the log as evidence but are no shares: none of the figures
# below counts them.


def _activities(
    controller: dict[str, Any] | None,
    snapshot: Snapshot,
    as_of: date,
    by_purpose: Mapping[tuple[str, str], tuple[int, int]],
) -> list[dict[str, Any]]:
    return activity_entries(controller, snapshot, as_of, by_purpose, lambda party: territories(party, snapshot.parties))


# The registry's part of the activities (registry_activity_entries) for the snapshot pages read last, by day,
# language and controller profile: seconds at 10,000 parties, the same for every page of the record until the
# registry changes. Only the log's counts are added per page.
_registry_activities: dict[tuple[date, str, str], list[dict[str, Any]]] = {}
_registry_activities_of: list[Snapshot] = []


def _kept_activities(
    controller: dict[str, Any] | None,
    snapshot: Snapshot,
    as_of: date,
    by_purpose: Mapping[tuple[str, str], tuple[int, int]],
) -> list[dict[str, Any]]:
    if not _registry_activities_of or _registry_activities_of[0] is not snapshot:
        _registry_activities.clear()
        _registry_activities_of[:] = [snapshot]
    key = (as_of, current(), json.dumps(controller, sort_keys=True, default=str))
    entries = _registry_activities.get(key)
    if entries is None:
        entries = registry_activity_entries(
            controller, snapshot, as_of, lambda party: territories(party, snapshot.parties)
        )
        _registry_activities[key] = entries
    return with_enforcement(entries, by_purpose)


def period(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """The days asked (both included); by default the year up to today."""
    end = end or today
    start = start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if start > end:
        raise RegistryValidationError([FieldError("from", "from must not be after to")])
    if (end - start).days > MAX_PERIOD_DAYS:
        raise RegistryValidationError([FieldError("from", f"the period may span at most {MAX_PERIOD_DAYS} days")])
    return start, end


def period_bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The period's first and past-the-last moment, in UTC: the days are the controller's calendar days."""
    first = datetime.combine(start, time(), tzinfo=zone).astimezone(UTC)
    after = datetime.combine(end + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return first, after


def _status(code: str) -> str:
    return str(classify_territory(code))


def _place(code: str, kind: str, party: str, chain: tuple[str, ...] | None) -> dict[str, Any]:
    return {
        "territory": code,
        "name": territory_name(code),
        "kind": kind,
        "party": party,
        "chain": list(chain) if chain else None,
        "status": _status(code),
    }


def _places(party: PartyView, chain: tuple[str, ...] | None) -> list[dict[str, Any]]:
    places = [_place(party.established_in, "establishment", party.key, chain)]
    places += [_place(loc.territory, loc.kind, party.key, chain) for loc in party.locations]
    return places


def territories(party: PartyView, parties: Any) -> list[dict[str, Any]]:
    """The party's own places, then every place of its sub-processor chain (the guard's walk), each with the
    chain that reaches it. A sub-processor missing from the registry is listed with no territory."""
    found = _places(party, None)
    for chain, link, sub, first in walk_chain(party, parties):
        if sub is None:
            found.append({**_place("", "unknown", link.party, chain), "name": "not in the registry"})
            found[-1]["status"] = str(TerritoryStatus.UNKNOWN)
        elif first:
            found += _places(sub, chain)
    return found


def _union(views: list[AgreementView], field: str) -> list[str]:
    return sorted({entry for view in views for entry in getattr(view, field)})


async def _enforcement(
    session: AsyncSession, first: datetime, after: datetime
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], tuple[int, int]]]:
    """Per recipient, what the log shows of the period (shares allowed and denied, the categories and
    destinations of the allowed ones, the last); and allowed/denied per (recipient, purpose). Summed from the
    checkpoint writer's daily rollup and the few entries it does not hold (ledger/rollup.py): a year of the log
    costs its recipients and days, not its decisions."""
    counts = await decision_counts(session, first, after)
    result: dict[str, dict[str, Any]] = {}
    for recipient, found in counts.recipients.items():
        result[recipient] = {
            "shares_allowed": found.allowed,
            "shares_denied": found.denied,
            "categories_shared": sorted(found.categories),
            "destinations": sorted(found.destinations),
            "last_share": (
                None
                if found.last_share_at is None
                else {"decided_at": found.last_share_at.astimezone(UTC).isoformat(), "decision_id": found.last_share_id}
            ),
        }
    return result, counts.by_purpose


def _no_enforcement() -> dict[str, Any]:
    return {"shares_allowed": 0, "shares_denied": 0, "categories_shared": [], "destinations": [], "last_share": None}


async def article_30_record(
    session: AsyncSession, start: date | None = None, end: date | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """The record for the days `start`..`end` on the controller's calendar. Reads in one transaction when the
    caller has none open, so the registry and the log are seen at one moment."""
    if session.in_transaction():
        return await _record(session, start, end, now)
    async with session.begin():
        return await _record(session, start, end, now)


async def _record(session: AsyncSession, start: date | None, end: date | None, now: datetime | None) -> dict[str, Any]:
    doc = await registry_document(session)
    zone = zone_or_default(doc.controller.timezone if doc.controller else None)
    today = calendar_today(zone, now)
    start, end = period(start, end, today)
    first, after = period_bounds(start, end, zone)
    as_of = min(end, today)  # what was in force at the period's end (or today, for a period still running)
    snapshot = snapshot_from_document(doc)
    on_file = await documents_on_file(session)
    enforcement, by_purpose = await _enforcement(session, first, after)
    # Each agreement's document entry by key, once: looked up per party's agreement (searching the whole list per
    # party was 10,000 times 30,000 comparisons at 10,000 parties, a minute on the event loop).
    documents = {a.key: a.document for a in doc.agreements}
    keys = recipient_keys(snapshot.parties, enforcement)
    recipients = [
        recipient_entry(key, snapshot, territories(snapshot.parties[key], snapshot.parties), documents, on_file,
                        as_of, enforcement)
        for key in keys
    ]  # fmt: skip
    transfers = [t for r in recipients for t in r["third_country_transfers"]]
    controller = doc.controller.model_dump(mode="json") if doc.controller else None
    summary = record_summary(snapshot, keys, enforcement, controller, (start, end, zone, as_of), len(transfers), now)
    activities = _activities(controller, snapshot, as_of, by_purpose)
    return {**summary, "activities": activities, "recipients": recipients, "third_country_transfers": transfers}


def recipient_keys(parties: Mapping[str, PartyView], enforcement: Mapping[str, Any]) -> list[str]:
    """The record's recipients in its order (by role, then key): the active parties, and any other the guard
    decided about in the period."""
    ordered = sorted(parties, key=lambda k: (ROLE_ORDER.get(parties[k].role, 9), k))
    return [key for key in ordered if parties[key].active or key in enforcement]


def outside(places: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The places of `territories` outside the EEA (or unknown): the transfers to third countries."""
    return [p for p in places if p["status"] != str(TerritoryStatus.INSIDE_EEA)]


# What a transfer that is not a place outside the EEA is recorded as (its `kind` and `status`).
INTERNATIONAL_ORGANISATION = "international_organisation"
AGREEMENT_PERMITS_TRANSFER = "agreement_permits_transfer"


def third_country_transfers(
    party: PartyView, snapshot: Snapshot, places: list[dict[str, Any]], as_of: date
) -> list[dict[str, Any]]:
    """The transfers the record lists for a recipient, the ones the guard refuses shares for (so the record and the
    guard agree): every international organisation it or its chain is (Art. 4(26), 44, wherever its office is),
    every agreement of it in force that permits transfers outside the EEA (Art. 28(3)(a)), then `outside(places)`."""
    found: list[dict[str, Any]] = []
    organisations = [(party, None)] + [(sub, chain) for chain, _, sub, first in walk_chain(party, snapshot.parties)
                                       if sub is not None and first]  # fmt: skip
    for member, chain in organisations:
        if member.international_organisation:
            entry = _place(member.established_in, INTERNATIONAL_ORGANISATION, member.key, chain)
            found.append({**entry, "status": INTERNATIONAL_ORGANISATION})
    for agreement in snapshot.agreements_by_party.get(party.key, ()):
        if agreement.transfers_outside_eea_permitted and agreement.in_force_on(as_of):
            entry = _place("", AGREEMENT_PERMITS_TRANSFER, party.key, None)
            found.append({**entry, "name": None, "status": AGREEMENT_PERMITS_TRANSFER, "agreement": agreement.key})
    return found + outside(places)


def recipient_entry(
    key: str,
    snapshot: Snapshot,
    places: list[dict[str, Any]],
    documents: Mapping[str, Any],
    on_file: dict[str, tuple[str, int]],
    as_of: date,
    enforcement: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """One recipient of the record; `places` its `territories`, `documents` the agreements' document references
    by key (at least this party's)."""
    party = snapshot.parties[key]
    agreements = snapshot.agreements_by_party.get(key, ())
    in_force = [a for a in agreements if a.in_force_on(as_of)]
    return {
        "key": key,
        "name": party.name,
        "role": party.role,
        "category": party.category,
        "established_in": party.established_in,
        "active": party.active,
        "international_organisation": party.international_organisation,
        "data_categories": _union(in_force, "data_categories"),
        "purposes": _union(in_force, "purposes"),
        "data_subjects": _union(in_force, "data_subjects"),
        "territories": places,
        "agreements": [_agreement(a, documents.get(a.key), on_file, as_of) for a in agreements],
        "third_country_transfers": third_country_transfers(party, snapshot, places, as_of),
        "enforcement": enforcement.get(key, _no_enforcement()),
    }


def record_summary(
    snapshot: Snapshot,
    keys: list[str],
    enforcement: Mapping[str, dict[str, Any]],
    controller: dict[str, Any] | None,
    when: tuple[date, date, ZoneInfo, date],
    transfers: int,
    now: datetime | None,
) -> dict[str, Any]:
    """What the record says beside its recipients (`keys`, in order): the controller, the period, the categories
    of recipients, the number of places outside the EEA (`transfers`) and the decision log's totals."""
    start, end, zone, as_of = when
    by_category: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        party = snapshot.parties[key]
        by_category[f"{party.role}/{party.category}"].append(key)
    unregistered = {k: v for k, v in enforcement.items() if k not in snapshot.parties}
    return {
        "record": "Article 30(1)(a)-(g) GDPR: record of processing activities",
        "language": current(),
        "controller": controller_entry(controller),
        "generated_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "as_of": as_of.isoformat(),
        "period": {"from": start.isoformat(), "to": end.isoformat(), "timezone": zone.key},
        "categories_of_recipients": [
            {"role": group.split("/", 1)[0], "category": group.split("/", 1)[1], "recipients": members}
            for group, members in sorted(by_category.items())
        ],
        "third_country_transfers_summary": "none" if not transfers else f"{transfers} place(s) outside the EU/EEA",
        "decision_log": {
            "shares_allowed": sum(e["shares_allowed"] for e in enforcement.values()),
            "shares_denied": sum(e["shares_denied"] for e in enforcement.values()),
            "unregistered_recipients": [{"recipient": k, **v} for k, v in sorted(unregistered.items())],
        },
    }


async def article_30_page(
    session: AsyncSession,
    snapshot: Snapshot,
    controller: dict[str, Any] | None,
    period_asked: tuple[date | None, date | None],
    page: tuple[int, int],
    outside_counts: Mapping[str, int],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The record over `snapshot` (the registry as the guard holds it) with one page of its recipients
    (`page`: offset and limit) and `recipients_total`; `outside_counts` is each party's number of transfers
    (what `third_country_transfers` gives), for the summary of the whole record. The decision log is
    read for the period as in the full record; only the page's agreements' document references are read."""
    zone = zone_or_default((controller or {}).get("timezone"))
    today = calendar_today(zone, now)
    start, end = period(*period_asked, today)
    first, after = period_bounds(start, end, zone)
    as_of = min(end, today)
    on_file = await documents_on_file(session)
    enforcement, by_purpose = await _enforcement(session, first, after)
    keys = recipient_keys(snapshot.parties, enforcement)
    offset, limit = page
    shown = keys[offset : offset + limit]
    wanted = [a.key for key in shown for a in snapshot.agreements_by_party.get(key, ())]
    rows = await session.execute(
        select(col(Agreement.key), col(Agreement.document_sha256)).where(
            col(Agreement.key).in_(wanted), col(Agreement.document_uri).is_not(None)
        )
    )
    documents = {key: SimpleNamespace(sha256=digest) for key, digest in rows}
    recipients = [
        recipient_entry(key, snapshot, territories(snapshot.parties[key], snapshot.parties), documents, on_file,
                        as_of, enforcement)
        for key in shown
    ]  # fmt: skip
    transfers = sum(outside_counts.get(key, 0) for key in keys)
    summary = record_summary(snapshot, keys, enforcement, controller, (start, end, zone, as_of), transfers, now)
    # Every activity walks the registry's agreements and asks the rules about its recipients: in a thread, so that
    # the loop the guard answers on gets its turn meanwhile (the locale goes along with the context).
    activities = await asyncio.to_thread(_kept_activities, controller, snapshot, as_of, by_purpose)
    return {**summary, "activities": activities, "recipients": recipients, "recipients_total": len(keys)}


def _agreement(view: AgreementView, document: Any, on_file: dict[str, tuple[str, int]], as_of: date) -> dict[str, Any]:
    stored = on_file.get(view.key)
    return {
        "key": view.key,
        "kind": view.kind,
        "signed_on": view.signed_on.isoformat() if view.signed_on else None,
        "effective_from": view.effective_from.isoformat(),
        "expires_on": view.expires_on.isoformat() if view.expires_on else None,
        "terminated_on": view.terminated_on.isoformat() if view.terminated_on else None,
        "in_force": view.in_force_on(as_of),
        "document_sha256": document.sha256 if document is not None else None,
        "document_on_file": stored is not None,
        "document_on_file_sha256": stored[0] if stored else None,
        "document_on_file_size": stored[1] if stored else None,
    }


# --- Flat forms: CSV and XLSX ------------------------------------------------------------------------------

RECORD_COLUMNS = (
    "key",
    "name",
    "role",
    "category",
    "established_in",
    "data_categories",
    "purposes",
    "data_subjects",
    "territories",
    "agreements",
    "third_country_transfers",
    "shares_allowed",
    "shares_denied",
    "categories_shared",
    "last_share",
)


def _joined(values: list[str]) -> str:
    return "; ".join(values)


def _territory_text(place: dict[str, Any]) -> str:
    via = f" via {' > '.join(place['chain'])}" if place["chain"] else ""
    if place.get("agreement"):
        return f"{place['kind']} {place['agreement']} ({place['party']}{via})"
    return f"{place['territory']} {place['kind']} ({place['party']}{via})"


def _agreement_text(a: dict[str, Any]) -> str:
    ends = a["terminated_on"] or a["expires_on"] or "open-ended"
    digest = a["document_on_file_sha256"] or a["document_sha256"] or "no document"
    return (
        f"{a['key']} {a['kind']} signed {a['signed_on'] or 'unsigned'}, {a['effective_from']}..{ends}, sha256 {digest}"
    )


def record_rows(record: dict[str, Any]) -> list[list[Any]]:
    """One row per recipient, lists joined with '; ' (the header is RECORD_COLUMNS)."""
    rows = []
    for r in record["recipients"]:
        e = r["enforcement"]
        rows.append(
            [
                r["key"],
                r["name"],
                r["role"],
                r["category"],
                r["established_in"],
                _joined(r["data_categories"]),
                _joined(r["purposes"]),
                _joined(r["data_subjects"]),
                _joined([_territory_text(p) for p in r["territories"]]),
                _joined([_agreement_text(a) for a in r["agreements"]]),
                _joined([_territory_text(p) for p in r["third_country_transfers"]]) or "none",
                e["shares_allowed"],
                e["shares_denied"],
                _joined(e["categories_shared"]),
                e["last_share"]["decided_at"] if e["last_share"] else "",
            ]
        )
    return rows


# The record per processing activity (Art. 30(1)(a)-(g)), one row per activity and recipient (an activity without
# a recipient: one row), in the reader's language (kernel.i18n's current locale).
ACTIVITY_COLUMNS = (
    N_("Activity"),
    N_("Name of the processing"),
    N_("Purposes"),
    N_("Legal basis"),
    N_("Categories of data subjects"),
    N_("Categories of personal data"),
    N_("Direct marketing"),
    N_("Recipient"),
    N_("Recipient's name"),
    N_("Role"),
    N_("Reached through"),
    N_("The guard"),
    N_("Transfers to third countries"),
    N_("Safeguards"),
    N_("Agreement permits transfers outside the EU/EEA"),
    N_("Shares allowed in the period"),
    N_("Shares refused in the period"),
    N_("Erasure periods"),
    N_("Security measures"),
    N_("Controller"),
    N_("Controller's contact details"),
)


def activity_header() -> list[str]:
    return [gettext(c) for c in ACTIVITY_COLUMNS]


def _transfer_text(t: dict[str, Any]) -> str:
    where = f"{t['territory']} {t['country']}".strip() if t["territory"] else ""
    via = f" ({' > '.join(t['chain'])})" if t["chain"] else ""
    return f"{where + ' ' if where else ''}{t['kind_text']}{via}: {t['decision_text']}"


def activity_rows(record: dict[str, Any]) -> list[list[Any]]:
    controller = record.get("controller") or {}
    contact = "; ".join(v for v in (controller.get("contact") or {}).values() if v)
    yes, no = gettext("yes"), gettext("no")
    rows = []
    for a in record.get("activities") or ():
        common = [a["key"], a["name"], _joined(a["purposes_text"]), a["legal_basis_text"],
                  _joined(a["data_subjects_text"]), _joined(a["data_categories_text"]),
                  yes if a["direct_marketing"] else no]  # fmt: skip
        tail = [a["retention"], a["security_measures"], controller.get("name") or "", contact]
        for r in a["recipients"] or [None]:
            if r is None:
                rows.append([*common, "", "", "", "", "", gettext("none"), "", "", "", "", *tail])
                continue
            mine = [t for t in a["transfers"] if t["recipient"] == r["key"]]
            rows.append(
                [
                    *common,
                    r["key"],
                    r["name"],
                    r["role_text"],
                    " > ".join(r["via"] or []),
                    r["guard_text"] + (f" ({', '.join(r['guard_reasons'])})" if r["guard_reasons"] else ""),
                    _joined([_transfer_text(t) for t in mine]) or gettext("none"),
                    "",  # no safeguard opens a transfer under this policy: every one is refused
                    yes if r["transfers_outside_eea_permitted"] else no,
                    r["enforcement"]["shares_allowed"],
                    r["enforcement"]["shares_denied"],
                    *tail,
                ]
            )
    return rows


def record_csv(record: dict[str, Any], *, delimiter: str = ",") -> bytes:
    """The record as CSV (the shared export mechanics: byte order mark, `delimiter`, cells neutralised)."""
    from registry.services.exports import csv_document

    return csv_document(activity_header(), activity_rows(record), delimiter=delimiter)


def record_xlsx(record: dict[str, Any]) -> bytes:
    """The record as a workbook: the recipients, their territories, their agreements, and the period."""
    from registry.services.exports import workbook

    territories_rows = [
        [r["key"], p["territory"], p["name"] or "", p["kind"], p["party"], " > ".join(p["chain"] or []), p["status"]]
        for r in record["recipients"]
        for p in r["territories"]
    ]
    agreement_rows = [
        [
            r["key"],
            a["key"],
            a["kind"],
            a["signed_on"],
            a["effective_from"],
            a["expires_on"],
            a["terminated_on"],
            a["in_force"],
            a["document_sha256"],
            a["document_on_file_sha256"],
        ]
        for r in record["recipients"]
        for a in r["agreements"]
    ]
    about = [
        ["record", record["record"]],
        ["controller", (record["controller"] or {}).get("name", "")],
        ["from", record["period"]["from"]],
        ["to", record["period"]["to"]],
        ["timezone", record["period"]["timezone"]],
        ["generated_at", record["generated_at"]],
        ["third_country_transfers", record["third_country_transfers_summary"]],
        ["shares_allowed", record["decision_log"]["shares_allowed"]],
        ["shares_denied", record["decision_log"]["shares_denied"]],
    ]
    return workbook(
        [
            (gettext("Processing activities"), activity_header(), activity_rows(record)),
            ("Article 30", list(RECORD_COLUMNS), record_rows(record)),
            ("Territories", ["recipient", "territory", "name", "kind", "party", "chain", "status"], territories_rows),
            (
                "Agreements",
                [
                    "recipient",
                    "agreement",
                    "kind",
                    "signed_on",
                    "effective_from",
                    "expires_on",
                    "terminated_on",
                    "in_force",
                    "document_sha256",
                    "document_on_file_sha256",
                ],
                agreement_rows,
            ),
            ("Period", ["field", "value"], about),
        ]
    )
