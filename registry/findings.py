"""Registry-wide findings: the guard's rules run over every active party, without a request.

A finding is what would block shares to a party today — no agreement in force, an expired one, a dpa
without its Art. 28(3) clauses or permitting transfers outside the EU/EEA, a place or a sub-processor outside
the EU/EEA, an unapproved or objected sub-processor — or an agreement in force covering a purpose the
controller does not publish. The rules are ``guard.policy.evaluate_party``; this module only builds the snapshot and
lists what the rules say, so the findings and the guard's decisions can never disagree.

The snapshot is built from a registry document (DESIGN §3) both for a file (``registry check --file``,
no database) and for the database (exported as the same document first), so there is one way to build it.
Pure: reading the registry and adding the evidence gaps is ``registry/services/findings.py``'s work.
"""

from datetime import date
from types import MappingProxyType
from typing import Any

from guard.policy import Snapshot, direct_marketing_purposes, evaluate_party, published_with_activities
from guard.views import AgreementView, LocationView, PartyView, Reason, SubProcessorLinkView
from guard.vocabulary import ReasonCode
from registry.schemas import PartyIn, RegistryDocument

DOCUMENT_RULESET = "registry-document"


def _party_view(party: PartyIn) -> PartyView:
    return PartyView.of(
        party,
        (LocationView(territory=loc.territory, kind=loc.kind) for loc in party.locations),
        (SubProcessorLinkView.of(link, link.party) for link in party.sub_processors),
    )


def snapshot_from_document(doc: RegistryDocument, *, ruleset: str = DOCUMENT_RULESET) -> Snapshot:
    """The guard's in-memory view of a validated registry document (pure: no I/O)."""
    agreements_by_party: dict[str, list[AgreementView]] = {}
    for agreement in doc.agreements:
        agreements_by_party.setdefault(agreement.party, []).append(AgreementView.of(agreement, agreement.party))
    activities = [a.model_dump() for a in doc.controller.processing_activities or ()]
    return Snapshot(
        parties=MappingProxyType({p.key: _party_view(p) for p in doc.parties}),
        agreements_by_party=MappingProxyType({k: tuple(v) for k, v in agreements_by_party.items()}),
        ruleset=ruleset,
        published_purposes=published_with_activities(doc.controller.published_purposes, activities),
        direct_marketing_purposes=direct_marketing_purposes(activities),
    )


def finding(party: str, reason: Reason) -> dict[str, Any]:
    """One finding as JSON: the party it blocks, then the reason's fields.

    The reason's own ``party`` is left out: it is either the same party or, for a sub-processor, the last
    link of ``chain``, which names it.
    """
    fields = reason.as_dict()
    fields.pop("party", None)
    return {"party": party, **fields, "blocks": blocks(reason.code)}


def blocks(code: str) -> bool:
    """Whether the guard refuses shares because of a finding with this code: every reason code does (a finding
    from the rules names what the guard refuses); a warning (AGREEMENT_EXPIRING) and an evidence gap the guard
    does not check (AGREEMENT_UNDOCUMENTED) do not."""
    return code in BLOCKING_CODES


BLOCKING_CODES: frozenset[str] = frozenset(str(code) for code in ReasonCode) - {str(ReasonCode.AGREEMENT_EXPIRING)}


def snapshot_findings(snapshot: Snapshot, today: date) -> list[dict[str, Any]]:
    """Every finding for every active party, by party key, each party's in the rules' own order."""
    return [
        finding(key, reason)
        for key in sorted(snapshot.parties)
        if snapshot.parties[key].active
        for reason in evaluate_party(snapshot.parties[key], snapshot, today)
    ]
