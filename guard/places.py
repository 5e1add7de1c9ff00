"""The rules about places (DESIGN §5): a party's establishment and locations, its
sub-processor chain, the destination of a share."""

from collections.abc import Iterator, Mapping
from datetime import timedelta

from guard.agreements import last_day_in_force, party_label, permits_transfer_reason
from guard.territory import (
    TerritoryStatus,
    canonical_territory,
    classify_territory,
    territory_enclosures,
    territory_name,
)
from guard.views import HeldReason, Holdings, PartyView, PlacesVerdict, Reason, SubProcessorLinkView
from guard.vocabulary import LOCATION_KIND_PHRASES, TERRITORY_HINTS, ReasonCode

# --- Territories ------------------------------------------------------------------------------------


def _describe_territory(code: str) -> str:
    name = territory_name(code)
    return code if name is None else f"{code} ({name})"


def _unknown_territory_message(code: str, what: str) -> str:
    message = f"The territory code '{code}' of {what} is not an ISO 3166 code the guard knows"
    hint = TERRITORY_HINTS.get(code)
    if (
        hint is None
        and isinstance(code, str)
        and classify_territory(code.strip().upper()) is not TerritoryStatus.UNKNOWN
    ):
        hint = code.strip().upper()
    if hint is not None:
        message += f" (did you mean '{hint}'?)"
    return message + ", so the guard cannot tell whether it is inside the EU/EEA."


def _places(party: PartyView) -> Iterator[tuple[str, str]]:
    """The establishment and every location, as (kind, territory), each pair once."""
    seen: set[tuple[str, str]] = set()
    for place in (
        ("establishment", party.established_in),
        *((loc.kind, loc.territory) for loc in party.locations),
    ):
        if place not in seen:
            seen.add(place)
            yield place


def _territory_findings(party: PartyView, chain: tuple[str, ...] | None) -> list[Reason]:
    """Places of the recipient (chain None) or of a sub-processor reached through ``chain``."""
    reasons: list[Reason] = []
    if chain is None:
        who, outside_code = party_label(party), ReasonCode.LOCATION_OUTSIDE_EEA
    else:
        who = f"Sub-processor {party_label(party)}, in the chain {' → '.join(chain)},"
        outside_code = ReasonCode.SUBPROCESSOR_OUTSIDE_EEA
    for kind, territory in _places(party):
        status = classify_territory(territory)
        if status is TerritoryStatus.UNKNOWN:
            what = f"the {kind.replace('_', ' ')} of {party_label(party)}"
            if chain is not None:
                what += f" (sub-processor in the chain {' → '.join(chain)})"
            reasons.append(
                Reason(
                    ReasonCode.TERRITORY_UNKNOWN,
                    _unknown_territory_message(territory, what),
                    party=party.key,
                    territory=territory,
                    chain=chain,
                )
            )
        elif status is TerritoryStatus.OUTSIDE_EEA:
            phrase = LOCATION_KIND_PHRASES.get(kind, f"has a '{kind}' location in")
            reasons.append(
                Reason(
                    outside_code,
                    f"{who} {phrase} {_describe_territory(territory)}, outside the EU/EEA.",
                    party=party.key,
                    territory=territory,
                    chain=chain,
                )
            )
    return reasons


def _international_organisation_reasons(party: PartyView, chain: tuple[str, ...] | None) -> list[Reason]:
    """Art. 4(26), 44: a share to an international organisation is a transfer, wherever its office is; so is
    one a processor passes on to an international organisation in its chain."""
    if not party.international_organisation:
        return []
    who = (
        party_label(party)
        if chain is None
        else f"Sub-processor {party_label(party)}, in the chain {' → '.join(chain)},"
    )
    return [
        Reason(
            ReasonCode.RECIPIENT_INTERNATIONAL_ORGANISATION,
            f"{who} is an international organisation (Art. 4(26)): a share to it is a transfer outside the "
            "EU/EEA (Art. 44) wherever its office is; the policy allows none.",
            party=party.key,
            chain=chain,
        )
    ]


def places_verdict(party: PartyView, snapshot: Holdings) -> PlacesVerdict:
    declared = frozenset(territory for _, territory in _places(party))
    return PlacesVerdict(
        own=(*_international_organisation_reasons(party, None), *_territory_findings(party, chain=None)),
        chain=_chain_findings(party, snapshot),
        declared=declared,
        declared_places=frozenset(canonical_territory(t) for t in declared),
    )


def _link_reason(link: SubProcessorLinkView, sub: PartyView, chain: tuple[str, ...]) -> HeldReason:
    """The link's authorisation (Art. 28(2)) as a reason held until it takes effect, for ever if it never does."""
    via = " → ".join(chain)
    if link.objected_on is not None:
        reason = Reason(
            ReasonCode.SUBPROCESSOR_OBJECTED,
            f"Sub-processor {party_label(sub)}, in the chain {via}, was objected to on {link.objected_on.isoformat()}: "
            "the processor may not engage it.",
            party=sub.key,
            chain=chain,
        )
        return HeldReason(reason)
    starts = link.in_effect_from()
    if link.authorisation == "general":
        detail = "under a general authorisation,"
        detail += " notified" if link.notified_on is None else f" notified on {link.notified_on.isoformat()}"
        if starts is None:
            detail += ", with no objection deadline and no approval recorded"
        elif link.approved_on == starts:
            detail += f", approved only from {starts.isoformat()}"
        else:
            assert link.objection_deadline is not None  # the only other start of a general authorisation
            detail += f"; the objection deadline {link.objection_deadline.isoformat()} has not passed"
    elif link.approved_on is None:
        detail = "the change was notified but has not been approved"
        if link.objection_deadline is not None:
            detail += f" (objection deadline {link.objection_deadline.isoformat()})"
    else:
        detail = f"its approval takes effect only on {link.approved_on.isoformat()}"
    reason = Reason(
        ReasonCode.SUBPROCESSOR_UNAPPROVED,
        f"Sub-processor {party_label(sub)}, in the chain {via}, is not approved: {detail}.",
        party=sub.key,
        chain=chain,
    )
    return HeldReason(reason, until=starts)


def _sub_processor_transfer_reasons(sub: PartyView, snapshot: Holdings, chain: tuple[str, ...]) -> list[HeldReason]:
    """A sub-processor's own dpa on file that permits transfers, held for the days it is in force."""
    held: list[HeldReason] = []
    for agreement in snapshot.agreements_by_party.get(sub.key, ()):
        if agreement.kind != "dpa" or not agreement.transfers_outside_eea_permitted or agreement.signed_on is None:
            continue
        last_day = last_day_in_force(agreement)
        held.append(
            HeldReason(
                permits_transfer_reason(sub, agreement, chain),
                since=max(agreement.signed_on, agreement.effective_from),
                until=None if last_day is None else last_day + timedelta(days=1),
            )
        )
    return held


def walk_chain(
    recipient: PartyView, parties: Mapping[str, PartyView]
) -> Iterator[tuple[tuple[str, ...], SubProcessorLinkView, PartyView | None, bool]]:
    """Every link of the sub-processor chain below `recipient`, depth-first, as (chain, link, sub-processor
    or None when it is not in the registry, whether this is the first time the walk reaches it).

    Iterative, with a visited set, so a malformed snapshot (a cycle, a very deep chain) cannot hang it: a
    sub-processor reached again is reported, but the walk does not go below it a second time.
    """
    visited = {recipient.key}
    stack: list[tuple[tuple[str, ...], Iterator[SubProcessorLinkView]]] = [
        ((recipient.key,), iter(recipient.sub_processors))
    ]
    while stack:
        path, links = stack[-1]
        link = next(links, None)
        if link is None:
            stack.pop()
            continue
        chain = (*path, link.party)
        sub = parties.get(link.party)
        first = sub is not None and sub.key not in visited
        yield chain, link, sub, first
        if sub is not None and first:
            visited.add(sub.key)
            stack.append((chain, iter(sub.sub_processors)))


def _chain_findings(recipient: PartyView, snapshot: Holdings) -> tuple[HeldReason, ...]:
    """Walk the sub-processor chain and return its reasons, an unapproved link's held until the day its
    authorisation takes effect."""
    reasons: list[HeldReason] = []
    for chain, link, sub, first in walk_chain(recipient, snapshot.parties):
        if sub is None:
            reason = Reason(
                ReasonCode.SUBPROCESSOR_UNAPPROVED,
                f"Sub-processor {link.party}, in the chain {' → '.join(chain)}, is not in the registry, "
                "so it cannot have been approved.",
                party=link.party,
                chain=chain,
            )
            reasons.append(HeldReason(reason))
            continue
        # Every link gets its authorisation reason, held until it takes effect (for ever when it never does).
        reasons.append(_link_reason(link, sub, chain))
        if first:
            reasons.extend(HeldReason(r) for r in _international_organisation_reasons(sub, chain))
            reasons.extend(HeldReason(r) for r in _territory_findings(sub, chain))
            reasons.extend(_sub_processor_transfer_reasons(sub, snapshot, chain))
    return tuple(reasons)


def _is_declared(destination: str, declared_places: frozenset[str]) -> bool:
    """Declared when the recipient declares the destination, an alias of it, or a place containing it."""
    return not declared_places.isdisjoint(territory_enclosures(destination))


def destination_findings(
    destination: str, recipient: PartyView | None, declared: frozenset[str], declared_places: frozenset[str]
) -> list[Reason]:
    status = classify_territory(destination)
    if status is TerritoryStatus.UNKNOWN:
        message = _unknown_territory_message(destination, "the destination")
        return [Reason(ReasonCode.TERRITORY_UNKNOWN, message, territory=destination)]
    reasons: list[Reason] = []
    if status is TerritoryStatus.OUTSIDE_EEA:
        reasons.append(
            Reason(
                ReasonCode.DESTINATION_OUTSIDE_EEA,
                f"The destination {_describe_territory(destination)} is outside the EU/EEA.",
                territory=destination,
            )
        )
    if recipient is not None and not _is_declared(destination, declared_places):
        reasons.append(
            Reason(
                ReasonCode.DESTINATION_UNDECLARED,
                f"The destination {_describe_territory(destination)} is not among the territories declared "
                f"for {party_label(recipient)} ({', '.join(sorted(declared, key=str))}).",
                party=recipient.key,
                territory=destination,
            )
        )
    return reasons
