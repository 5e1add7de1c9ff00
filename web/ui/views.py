"""What the pages show, derived from registry documents: status badges, places by territory, chains.

Rules stay in the guard: agreement in force is `AgreementView.in_force_on`, inside the EEA is
`guard.territory.is_inside_eea`; this module only arranges their answers for display."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from guard.places import walk_chain
from guard.policy import Snapshot, evaluate_party
from guard.territory import is_inside_eea, is_iso_territory, territory_name
from guard.views import AgreementView, LocationView, PartyView, SubProcessorLinkView
from guard.vocabulary import REQUIRED_AGREEMENT_KIND, ReasonCode
from kernel.calendar import calendar_today
from kernel.i18n import N_, country_name


def controller_today(controller: dict[str, Any] | None, now: datetime | None = None) -> date:
    """The controller's calendar date (DESIGN §4.3): agreements start and end on its days, not UTC's."""
    return calendar_today((controller or {}).get("timezone"), now)


class _Fields:
    """A document (a dict, as the registry's services return them) read by attribute, so that the policy's own
    view builders (`AgreementView.of`, `PartyView.of`, `SubProcessorLinkView.of`) serve the UI too."""

    __slots__ = ("_doc",)

    def __init__(self, doc: dict[str, Any]) -> None:
        self._doc = doc

    def __getattr__(self, name: str) -> Any:
        return self._doc.get(name)


def agreement_view(doc: dict[str, Any]) -> AgreementView:
    return AgreementView.of(_Fields(doc), doc["party"])


@dataclass(frozen=True)
class Badge:
    label: str
    tone: str  # ok | warn | bad | none (CSS classes)


# Labels are English message ids; templates translate them (`translate`) for the reader.
AGREEMENT_BADGES = {
    "in_force": Badge(N_("agreement in force"), "ok"),
    "expiring": Badge(N_("agreement expiring"), "warn"),
    "lapsed": Badge(N_("agreement lapsed"), "bad"),
    "refused": Badge(N_("agreement the guard refuses"), "bad"),
    "none": Badge(N_("no agreement"), "bad"),
    "not_needed": Badge(N_("no agreement needed"), "none"),
}


def agreement_state(doc: dict[str, Any], today: date, expiring_within_days: int) -> str:
    """in_force | expiring | refused | lapsed | pending, for one agreement on the controller's date.

    "In force" only when the guard would accept it: a dpa missing Art. 28(3) clauses, or any agreement that
    permits transfers outside the EEA, is in force by its dates but refused by the guard, and says so.
    "Expiring" uses the guard's own window (REGISTRY_EXPIRING_WARNING_DAYS), so the UI and the
    AGREEMENT_EXPIRING warning agree."""
    view = agreement_view(doc)
    if view.in_force_on(today):
        if view.missing_clauses or view.transfers_outside_eea_permitted:
            return "refused"
        if view.expires_on is not None and view.expires_on <= today + timedelta(days=expiring_within_days):
            return "expiring"
        return "in_force"
    if view.effective_from > today and view.terminated_on is None:
        return "pending"
    return "lapsed"


def party_agreement_status(
    party: dict[str, Any], agreements: list[dict[str, Any]], today: date, expiring_within_days: int
) -> str:
    """The best state among the agreements of the kind the party's role needs."""
    needed = REQUIRED_AGREEMENT_KIND.get(party["role"])
    if needed is None:
        return "not_needed" if party["role"] == "authority" else "none"
    states = {agreement_state(a, today, expiring_within_days) for a in agreements if a["kind"] == needed}
    for state in ("in_force", "expiring", "refused", "lapsed"):
        if state in states:
            return state
    return "none"


# Findings that refuse some shares, not every one: a purpose the privacy policy does not publish.
SOME_SHARES_ONLY = frozenset({ReasonCode.PURPOSE_NOT_PUBLISHED})


def party_status(
    key: str, party: dict[str, Any], agreements: list[dict[str, Any]], snapshot: Snapshot, today: date, window: int
) -> str:
    """A party's badge, filter value and count, from the guard's own rules over its whole chain
    (`guard.policy.evaluate_party`, what the findings and every decision use): the one function behind the
    parties list, its filters, the party page and the dashboard, so that none can call a party fine that the
    guard refuses every share to.

    refused: the guard refuses every share to it for any reason but a missing agreement (its places, a sub-processor
    outside the EEA or not approved, an agreement it refuses); none / lapsed: no agreement in force of the kind its
    role needs (never had one / had one); otherwise the state of its best agreement (in force, expiring), and
    not_needed for an authority."""
    view = snapshot.parties.get(key)
    reasons = [] if view is None else evaluate_party(view, snapshot, today)
    blocking = [r for r in reasons if r.code not in SOME_SHARES_ONLY]
    if any(r.code != ReasonCode.NO_AGREEMENT for r in blocking):
        return "refused"
    if blocking:
        return "lapsed" if any(r.agreement for r in blocking) else "none"
    return party_agreement_status(party, agreements, today, window)


def rules_snapshot(
    parties: Mapping[str, PartyView], agreements: Iterable[dict[str, Any]], published: Iterable[str] | None
) -> Snapshot:
    """A snapshot of the guard's views of registry documents, for pages read from the tables (no usable guard
    snapshot): the same rules over the same registry."""
    by_party: dict[str, list[AgreementView]] = {}
    for doc in agreements:
        by_party.setdefault(doc["party"], []).append(agreement_view(doc))
    return Snapshot(
        parties=parties,
        agreements_by_party={k: tuple(v) for k, v in by_party.items()},
        ruleset="ui-tables",
        published_purposes=None if published is None else frozenset(published),
    )


def eea_badge(code: str) -> Badge:
    if not is_iso_territory(code):
        return Badge(N_("unknown territory"), "bad")
    return Badge(N_("inside EEA"), "ok") if is_inside_eea(code) else Badge(N_("outside EEA"), "bad")


def territory_label(code: str) -> str:
    """'Sverige (SE)' in Swedish, 'Sweden (SE)' in English: pycountry's own translations of ISO names."""
    name = territory_name(code) if is_iso_territory(code) else None
    return f"{country_name(name)} ({code})" if name else code


@dataclass
class Place:
    territory: str
    label: str
    badge: Badge
    kinds: list[str] = field(default_factory=list)


def places_by_territory(party: dict[str, Any]) -> list[Place]:
    """The establishment and every location, grouped by territory (the page's 'map')."""
    places: dict[str, Place] = {}

    def add(code: str, kind: str) -> None:
        place = places.setdefault(code, Place(code, territory_label(code), eea_badge(code)))
        if kind not in place.kinds:
            place.kinds.append(kind)

    add(party["established_in"], "establishment")
    for loc in party["locations"]:
        add(loc["territory"], loc["kind"])
    return sorted(places.values(), key=lambda p: (p.badge.tone == "ok", p.territory))


def party_view(doc: dict[str, Any]) -> PartyView:
    """The guard's view of a party document, so that chains are walked by the guard's own walk."""
    return PartyView.of(
        _Fields(doc),
        (LocationView(territory=loc["territory"], kind=loc["kind"]) for loc in doc["locations"]),
        (SubProcessorLinkView.of(_Fields(link), link["party"]) for link in doc["sub_processors"]),
    )


def party_views(parties: dict[str, dict[str, Any]]) -> dict[str, PartyView]:
    return {key: party_view(doc) for key, doc in parties.items()}


@dataclass(frozen=True)
class Holding:
    """One party holding a recipient's data in one territory: the recipient itself (chain of one) or a
    sub-processor reached through `chain` (keys, recipient first)."""

    territory: str
    party: str
    chain: tuple[str, ...]
    kinds: tuple[str, ...]


def _own_places(view: PartyView) -> dict[str, list[str]]:
    places: dict[str, list[str]] = {view.established_in: ["establishment"]}
    for loc in view.locations:
        kinds = places.setdefault(loc.territory, [])
        if loc.kind not in kinds:
            kinds.append(loc.kind)
    return places


def holdings(key: str, views: Mapping[str, PartyView]) -> list[Holding]:
    """Every place the party's data is held: its own places and those of every sub-processor in its chain,
    walked with the guard's walk_chain. A sub-processor missing from the registry is held at an unknown place
    ("?"), which no one may call inside the EEA."""
    recipient = views.get(key)
    if recipient is None:
        return []
    out = [Holding(t, key, (key,), tuple(kinds)) for t, kinds in _own_places(recipient).items()]
    for chain, link, sub, first in walk_chain(recipient, views):
        if sub is None:
            out.append(Holding("?", link.party, chain, ()))
        elif first:
            out.extend(Holding(t, sub.key, chain, tuple(kinds)) for t, kinds in _own_places(sub).items())
    return out


def _inside(territory: str) -> bool:
    return is_iso_territory(territory) and is_inside_eea(territory)


def outside_through(key: str, views: Mapping[str, PartyView]) -> list[str]:
    """The parties (the party itself or its sub-processors) that hold its data outside the EEA or at an
    unknown place; empty when the whole chain is inside."""
    out: list[str] = []
    for holding in holdings(key, views):
        if not _inside(holding.territory) and holding.party not in out:
            out.append(holding.party)
    return out


@dataclass
class TerritoryHolders:
    territory: str
    label: str
    badge: Badge
    # recipient key → the chains through which it reaches this territory (a chain of one: it holds it itself)
    recipients: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)


def data_map(parties: dict[str, dict[str, Any]]) -> list[TerritoryHolders]:
    """Where our data goes: every territory with the recipients whose data is held there, directly or through
    their chains. Sub-processors appear through the recipients that engage them. Outside the EEA first."""
    views = party_views(parties)
    return data_map_of((key, holdings(key, views)) for key, doc in parties.items() if doc["role"] != "sub_processor")


def data_map_of(recipients: Iterable[tuple[str, list[Holding]]]) -> list[TerritoryHolders]:
    """`data_map` from each recipient's holdings (worked out by the caller, which may take them in slices)."""
    territories: dict[str, TerritoryHolders] = {}
    for key, held in recipients:
        for holding in held:
            entry = territories.setdefault(
                holding.territory,
                TerritoryHolders(
                    holding.territory,
                    territory_label(holding.territory) if holding.territory != "?" else "?",
                    eea_badge(holding.territory),
                ),
            )
            chains = entry.recipients.setdefault(key, [])
            if holding.chain not in chains:
                chains.append(holding.chain)
    return sorted(territories.values(), key=lambda t: (t.badge.tone == "ok", t.territory))


@dataclass
class ChainNode:
    key: str
    name: str
    exists: bool
    approved_on: date | None
    approved: bool
    objection_deadline: date | None
    places: list[Place]
    children: list["ChainNode"]
    repeated: bool = False  # a cycle or a party already shown higher up the chain
    authorisation: str = "specific"
    objected_on: date | None = None


def link_in_effect(link: dict[str, Any], today: date) -> bool:
    """Whether a link's authorisation is in effect today, by the guard's own rule (Art. 28(2))."""
    starts = SubProcessorLinkView(
        party=link["party"],
        approved_on=link.get("approved_on"),
        objection_deadline=link.get("objection_deadline"),
        authorisation=link.get("authorisation") or "specific",
        notified_on=link.get("notified_on"),
        objected_on=link.get("objected_on"),
    ).in_effect_from()
    return starts is not None and starts <= today


def sub_processor_chain(
    key: str, parties: dict[str, dict[str, Any]], today: date, seen: frozenset[str] = frozenset()
) -> list[ChainNode]:
    party = parties.get(key)
    if party is None:
        return []
    nodes = []
    for link in party["sub_processors"]:
        child = parties.get(link["party"])
        approved = link_in_effect(link, today)
        repeated = link["party"] in seen or link["party"] == key
        nodes.append(
            ChainNode(
                key=link["party"],
                name=child["name"] if child else link["party"],
                exists=child is not None,
                approved_on=link["approved_on"],
                approved=approved,
                objection_deadline=link["objection_deadline"],
                places=places_by_territory(child) if child else [],
                children=[] if repeated else sub_processor_chain(link["party"], parties, today, seen | {key}),
                repeated=repeated,
                authorisation=link.get("authorisation") or "specific",
                objected_on=link.get("objected_on"),
            )
        )
    return nodes


def unapproved_links(parties: dict[str, dict[str, Any]], today: date) -> list[dict[str, Any]]:
    out = []
    for party in parties.values():
        for link in party["sub_processors"]:
            if not link_in_effect(link, today):
                out.append({"processor": party, "link": link})
    return out
