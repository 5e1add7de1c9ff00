"""The guard's policy (DESIGN §4.2, §4.3): a pure decision over an in-memory snapshot of the registry.

No I/O, no clock, no ORM: the caller passes the snapshot and the controller's calendar date, so the same
inputs always give the same decision and the rules can be tested as a table.

Choices made where the design is silent (each one fails closed):

- An unknown ``data_subject`` is reported as ``SUBJECT_NOT_COVERED`` (§4.2 has no ``SUBJECT_UNKNOWN``
  and the codes are stable): no agreement can cover a subject the taxonomy does not know.
- Unknown categories, purpose and subject are reported once, as unknown, and left out of the coverage
  measure (so they do not also produce ``*_NOT_COVERED``). Special categories are a property of the
  request, so they are reported even when the recipient is unknown.
- A sub-processor link to a party missing from the snapshot is ``SUBPROCESSOR_UNAPPROVED`` (a party the
  registry does not hold cannot have been approved), with its chain.
- Inactive sub-processors stay in the chain: the link is the declaration that data may flow there.
  Approval belongs to the link, so it is checked on every link; a party's territories are reported once,
  on the first chain (depth-first) that reaches it. Cycles are walked once.
- An ``approved_on`` after today is not yet an approval.
- A destination is declared by the recipient's own territories only (its establishment and its locations
  of any kind), as §4.2 says: a territory only a sub-processor declares does not declare it. A destination
  subdivision is declared when it or any of its ISO ancestors (parent subdivision, country) is declared:
  declaring ``ES`` declares ``ES-CN``. A country is declared only by itself: declaring ``ES-CN`` does not
  declare all of ``ES``.
- Of the in-force agreements of the kind the role needs, one covering the whole request is chosen first, then
  one with its Art. 28(3) clauses, so a complete covering dpa is never passed over for an incomplete one that
  happens to expire later, and a share only an incomplete dpa covers is refused as ``AGREEMENT_INCOMPLETE``
  (which the registry's findings name), not as a gap of another agreement.
- A request naming no data subject is ``SUBJECT_NOT_COVERED``: no agreement can be checked to cover it (the
  HTTP contract requires the field; the policy fails closed on its own).
- An authority gets ``RECIPIENT_IS_AUTHORITY`` and no agreement check; a role the policy does not know
  gets ``NO_AGREEMENT``.
- ``evaluate_party`` does not ask a sub-processor for its own agreement with the controller (Art. 28(4)
  binds it through its processor), but a dpa it does have is still checked for its clauses.

Choices a legal review confirmed (each defensible under the GDPR and Offix's promise that no
personal data leaves the EU/EEA):

- Svalbard is outside: the EEA Agreement does not apply to it (Protocol 40), and ``SJ`` names Svalbard and Jan
  Mayen with one code, so ``SJ`` is outside; only ``NO-22`` (Jan Mayen alone) is inside.
- Adequacy never opens a share: an Art. 45 decision makes a transfer lawful, but Offix promises no transfer at
  all, so a territory outside the EEA blocks whatever the Commission decided about it.
- A pending sub-processor blocks its whole processor: the processor may not engage it before authorisation
  (Art. 28(2)), and the guard cannot tell which shares the processor routes through it, so every share to the
  processor waits.
- An establishment outside the EEA blocks even when the data stays inside: a party established there is subject
  to its own country's access laws over data it holds anywhere, and remote access from there is a transfer.
- An agreement that permits transfers outside the EEA blocks (``AGREEMENT_PERMITS_TRANSFER``), even when no
  location is outside today: Art. 28(3)(a) makes the transfer instruction part of the contract, and the contract
  lets the processor transfer without asking again. Any agreement of the party in force counts, not only the one
  the share rests on. The same for a sub-processor's own dpa in force.
- An international organisation (Art. 4(26)) blocks (``RECIPIENT_INTERNATIONAL_ORGANISATION``) as a recipient and
  in a sub-processor chain: a share to one is a transfer (Art. 44) wherever its office is.
- A party of category ``authority`` is an authority whatever its role (``RECIPIENT_IS_AUTHORITY``); the registry
  refuses the combination when written, this keeps rows written before that rule from failing open.
- Sub-processor links (Art. 28(2)): a ``specific`` authorisation is in effect from ``approved_on``; a ``general``
  one from ``approved_on`` or from the day after the objection deadline passed without an objection, whichever
  comes first. Silence counts only when the change was notified (``notified_on``) before the deadline: without a
  notice there was no real opportunity to object (the registry refuses a deadline on or before the notice). An
  objected link blocks for good (``SUBPROCESSOR_OBJECTED``), even when also approved.
- Published purposes: when the controller has published its purposes, a share for any other purpose is
  ``PURPOSE_NOT_PUBLISHED``; a purpose entry of an agreement is published when it is equal to or under one of
  them (an agreement covering ``marketing`` when only ``marketing.communications.email`` is published is a
  finding). The check is a property of the request, so it is made even for an unknown recipient.
- A territory and its ISO alias (``RE`` and ``FR-974``) are one place in every rule: the table gives both the
  same status, and a recipient declaring either declares both (see ``territory_enclosures``).
- Data subjects' objections (Art. 21): an objection of scope ``direct_marketing`` covers every direct-marketing
  purpose (Art. 21(3) makes it absolute), one of scope ``all`` every purpose; a covered share is
  ``SUBJECT_OBJECTED``. Direct-marketing purposes are those under ``marketing`` and those the controller's
  processing activities mark ``direct_marketing`` (Offix's ``sales`` outreach: Art. 21(2)-(3), recital 70), with
  everything under them (``Snapshot.direct_marketing_purposes``). A share for a direct-marketing purpose that names
  no subject (``subject_ref``) cannot be checked against objections and is ``SUBJECT_REF_MISSING``. The objections
  come in as data (subject reference → scopes); the policy never sees an identifier, only the keyed digest the
  service made of it.
- Restrictions (Art. 18): while a person's processing is restricted, every share naming them is
  ``SUBJECT_RESTRICTED``, whatever the purpose. They come in as data too (subject reference → restrictions).
"""

import dataclasses
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from importlib.metadata import version
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args

from fideslang import DEFAULT_TAXONOMY

from guard.territory import (
    TABLE_CHECKED_ON,
    TerritoryStatus,
    canonical_territory,
    classify_territory,
    territory_enclosures,
    territory_name,
)
from kernel.defaults import DEFAULT_EXPIRING_WITHIN_DAYS

# --- Reference data -------------------------------------------------------------------------------------

# The rules' own version: raised whenever a rule here changes an answer, so that the decision log tells decisions
# before and after a rule change apart. The ruleset a decision carries is the policy's name, this, the territory
# table's date and the taxonomy's version, then the registry revision the snapshot was built from.
POLICY_VERSION = "rules-2026-12-06-restrictions-international-organisations"
FIDESLANG_VERSION = version("fideslang")
RULES_VERSION = f"{POLICY_VERSION}.t{TABLE_CHECKED_ON}.fides{FIDESLANG_VERSION}"


def ruleset_name(policy: str, registry_revision: int | str) -> str:
    """``eea-only@rules-2026-11-28.t2026-11-28.fides3.1.4+r123``: made once per snapshot, never per check."""
    return f"{policy}@{RULES_VERSION}+r{registry_revision}"


ART28_CLAUSES: tuple[str, ...] = (
    "instructions",
    "confidentiality",
    "security",
    "sub_processing",
    "data_subject_rights",
    "compliance_assistance",
    "deletion_or_return",
    "audits",
)
ART28_CLAUSE_LETTERS: Mapping[str, str] = MappingProxyType(
    {clause: f"({letter})" for clause, letter in zip(ART28_CLAUSES, "abcdefgh", strict=True)}
)

REQUIRED_AGREEMENT_KIND: Mapping[str, str] = MappingProxyType(
    {"processor": "dpa", "sub_processor": "dpa", "independent_controller": "data_sharing"}
)

AGREEMENT_KIND_NAMES: Mapping[str, str] = MappingProxyType(
    {"dpa": "data processing agreement (dpa)", "data_sharing": "data-sharing agreement"}
)

LOCATION_KIND_PHRASES: Mapping[str, str] = MappingProxyType(
    {
        "establishment": "is established in",
        "storage": "stores data in",
        "processing": "processes data in",
        "support_access": "has remote support access to the data from",
        "backup": "keeps backups in",
    }
)

KNOWN_DATA_CATEGORIES: frozenset[str] = frozenset(str(c.fides_key) for c in DEFAULT_TAXONOMY.data_category)
KNOWN_PURPOSES: frozenset[str] = frozenset(str(u.fides_key) for u in DEFAULT_TAXONOMY.data_use)
KNOWN_DATA_SUBJECTS: frozenset[str] = frozenset(str(s.fides_key) for s in DEFAULT_TAXONOMY.data_subject)

# GDPR Art. 9 and Art. 10 data by fideslang key: the policy allows sharing of none of it.
SPECIAL_CATEGORY_ROOTS: tuple[str, ...] = (
    "user.biometric",
    "user.authorization.biometric",
    "user.health_and_medical",  # includes user.health_and_medical.genetic
    "user.demographic.race_ethnicity",
    "user.demographic.political_opinion",
    "user.demographic.religious_belief",
    "user.demographic.sexual_orientation",
    "user.criminal_history",
)

# The decision memo (`Snapshot.decision`) holds at most this many decisions, of requests of at most this many
# categories (a request may name 100 categories of 200 characters: memoizing those could hold hundreds of MB).
DECISION_MEMO_SIZE = 2048
DECISION_MEMO_MAX_CATEGORIES = 20

_TERRITORY_HINTS: Mapping[str, str] = MappingProxyType({"UK": "GB", "EL": "GR"})


def covers(entry: str, key: str) -> bool:
    """An entry covers itself and all under it: ``user.contact`` covers ``user.contact.email``."""
    return key == entry or key.startswith(entry + ".")


@lru_cache(maxsize=8192)
def entries_covering(key: str) -> tuple[str, ...]:
    """Every entry that covers ``key``: itself and each of its dotted prefixes (``user.contact.email``,
    ``user.contact``, ``user``), so that coverage is a set lookup rather than a scan of prefixes."""
    return (key, *(key[:i] for i, character in enumerate(key) if character == "."))


@lru_cache(maxsize=4096)
def special_category_roots_in(category: str) -> tuple[str, ...]:
    """The special-category roots a requested category falls under, or includes when it is an ancestor."""
    return tuple(root for root in SPECIAL_CATEGORY_ROOTS if covers(root, category) or root.startswith(category + "."))


def is_special_category(category: str) -> bool:
    return bool(special_category_roots_in(category))


class ReasonCode(StrEnum):
    RECIPIENT_UNKNOWN = "RECIPIENT_UNKNOWN"
    RECIPIENT_INACTIVE = "RECIPIENT_INACTIVE"
    RECIPIENT_IS_AUTHORITY = "RECIPIENT_IS_AUTHORITY"
    NO_AGREEMENT = "NO_AGREEMENT"
    AGREEMENT_INCOMPLETE = "AGREEMENT_INCOMPLETE"
    CATEGORY_NOT_COVERED = "CATEGORY_NOT_COVERED"
    PURPOSE_NOT_COVERED = "PURPOSE_NOT_COVERED"
    SUBJECT_NOT_COVERED = "SUBJECT_NOT_COVERED"
    CATEGORY_UNKNOWN = "CATEGORY_UNKNOWN"
    PURPOSE_UNKNOWN = "PURPOSE_UNKNOWN"
    SPECIAL_CATEGORY = "SPECIAL_CATEGORY"
    LOCATION_OUTSIDE_EEA = "LOCATION_OUTSIDE_EEA"
    SUBPROCESSOR_OUTSIDE_EEA = "SUBPROCESSOR_OUTSIDE_EEA"
    SUBPROCESSOR_UNAPPROVED = "SUBPROCESSOR_UNAPPROVED"
    DESTINATION_OUTSIDE_EEA = "DESTINATION_OUTSIDE_EEA"
    DESTINATION_UNDECLARED = "DESTINATION_UNDECLARED"
    TERRITORY_UNKNOWN = "TERRITORY_UNKNOWN"
    AGREEMENT_PERMITS_TRANSFER = "AGREEMENT_PERMITS_TRANSFER"
    SUBPROCESSOR_OBJECTED = "SUBPROCESSOR_OBJECTED"
    PURPOSE_NOT_PUBLISHED = "PURPOSE_NOT_PUBLISHED"
    SUBJECT_OBJECTED = "SUBJECT_OBJECTED"
    SUBJECT_REF_MISSING = "SUBJECT_REF_MISSING"
    SUBJECT_RESTRICTED = "SUBJECT_RESTRICTED"
    RECIPIENT_INTERNATIONAL_ORGANISATION = "RECIPIENT_INTERNATIONAL_ORGANISATION"
    # Warnings: never block.
    AGREEMENT_EXPIRING = "AGREEMENT_EXPIRING"


# --- The snapshot the guard decides on --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocationView:
    territory: str
    kind: str  # storage | processing | support_access | backup


@dataclass(frozen=True, slots=True)
class SubProcessorLinkView:
    party: str
    approved_on: date | None
    objection_deadline: date | None
    authorisation: str = "specific"  # specific | general (Art. 28(2))
    notified_on: date | None = None
    objected_on: date | None = None

    @classmethod
    def of(cls, record: Any, party: str) -> "SubProcessorLinkView":
        """The view of a document's link or a table row; `party` is the sub-processor's key (a row holds its id)."""
        return cls(
            party=party,
            approved_on=record.approved_on,
            objection_deadline=record.objection_deadline,
            authorisation=record.authorisation or "specific",
            notified_on=record.notified_on,
            objected_on=record.objected_on,
        )

    def in_effect_from(self) -> date | None:
        """The first day the authorisation is in effect; None if it never is (yet). Objected: never."""
        if self.objected_on is not None:
            return None
        if self.authorisation != "general":
            return self.approved_on
        starts = [] if self.approved_on is None else [self.approved_on]
        if self.silence_approves():
            assert self.objection_deadline is not None  # silence_approves says so
            starts.append(self.objection_deadline + timedelta(days=1))
        return min(starts, default=None)

    def silence_approves(self) -> bool:
        """Whether silence can approve this general authorisation (Art. 28(2)): only after a notice, and only when
        the objection deadline is after it, so that the controller had a real opportunity to object. A link
        without a notice date, or with a deadline on or before the notice, is approved only by `approved_on`."""
        return (
            self.authorisation == "general"
            and self.notified_on is not None
            and self.objection_deadline is not None
            and self.notified_on < self.objection_deadline
        )


@dataclass(frozen=True, slots=True)
class PartyView:
    key: str
    name: str
    role: str
    category: str
    established_in: str
    active: bool
    locations: tuple[LocationView, ...]
    sub_processors: tuple[SubProcessorLinkView, ...]
    # Art. 4(26): a share to an international organisation is a transfer (Art. 44) wherever its office is.
    international_organisation: bool = False

    @classmethod
    def of(
        cls, record: Any, locations: Iterable[LocationView], sub_processors: Iterable[SubProcessorLinkView]
    ) -> "PartyView":
        """The view of a document entry or a table row, with the views of its locations and links."""
        return cls(
            key=record.key,
            name=record.name,
            role=record.role,
            category=record.category,
            established_in=record.established_in,
            active=record.active,
            locations=tuple(locations),
            sub_processors=tuple(sub_processors),
            international_organisation=record.international_organisation,
        )


class AgreementRecord(Protocol):
    """What an agreement view is built from: a registry-document entry or a table row (read-only)."""

    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def signed_on(self) -> date | None: ...
    @property
    def effective_from(self) -> date: ...
    @property
    def expires_on(self) -> date | None: ...
    @property
    def terminated_on(self) -> date | None: ...
    @property
    def renewal(self) -> str: ...
    @property
    def notice_days(self) -> int | None: ...
    @property
    def owner_email(self) -> str: ...
    @property
    def data_categories(self) -> Sequence[str]: ...
    @property
    def purposes(self) -> Sequence[str]: ...
    @property
    def data_subjects(self) -> Sequence[str]: ...
    @property
    def clauses(self) -> Iterable[str]: ...
    @property
    def transfers_outside_eea_permitted(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class AgreementView:
    key: str
    party: str
    kind: str  # dpa | data_sharing
    signed_on: date | None
    effective_from: date
    expires_on: date | None
    terminated_on: date | None
    renewal: str
    notice_days: int | None
    owner_email: str
    data_categories: tuple[str, ...]
    purposes: tuple[str, ...]
    data_subjects: tuple[str, ...]
    clauses: frozenset[str]
    transfers_outside_eea_permitted: bool
    # Derived once here, because every check against the agreement asks them: the entries as sets (coverage is
    # then a set lookup per request key, see `entries_covering`) and the Art. 28(3) clauses a dpa lacks.
    category_entries: frozenset[str] = field(init=False, repr=False, compare=False)
    purpose_entries: frozenset[str] = field(init=False, repr=False, compare=False)
    subject_entries: frozenset[str] = field(init=False, repr=False, compare=False)
    missing_clauses: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derived = {
            "category_entries": frozenset(self.data_categories),
            "purpose_entries": frozenset(self.purposes),
            "subject_entries": frozenset(self.data_subjects),
            "missing_clauses": (tuple(c for c in ART28_CLAUSES if c not in self.clauses) if self.kind == "dpa" else ()),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @classmethod
    def of(cls, record: AgreementRecord, party: str) -> "AgreementView":
        """The view of a document entry or a table row; `party` is the party's key (a row holds only its id)."""
        return cls(
            key=record.key,
            party=party,
            kind=record.kind,
            signed_on=record.signed_on,
            effective_from=record.effective_from,
            expires_on=record.expires_on,
            terminated_on=record.terminated_on,
            renewal=record.renewal,
            notice_days=record.notice_days,
            owner_email=record.owner_email,
            data_categories=tuple(record.data_categories),
            purposes=tuple(record.purposes),
            data_subjects=tuple(record.data_subjects),
            clauses=frozenset(record.clauses),
            transfers_outside_eea_permitted=record.transfers_outside_eea_permitted,
        )

    def in_force_on(self, day: date) -> bool:
        """DESIGN §4.3: signed, started, not past its last day, and terminated only from a later day.

        The same tests as `_why_not_in_force`, without composing its explanation (asked on every check)."""
        return (
            self.signed_on is not None
            and self.signed_on <= day
            and self.effective_from <= day
            and (self.terminated_on is None or day < self.terminated_on)
            and (self.expires_on is None or day <= self.expires_on)
        )


# Objections as the policy takes them: subject reference → the scopes of that subject's objections in force
# (one entry per objection, so a scope may repeat).
Objections = Mapping[str, Sequence[str]]
NO_OBJECTIONS: Objections = MappingProxyType({})
# What a data subject objects to (DESIGN §2 Objection): the one vocabulary the schemas, services, API, UI and
# CLI all take theirs from.
ObjectionScope = Literal["direct_marketing", "all"]
OBJECTION_SCOPES: tuple[ObjectionScope, ...] = get_args(ObjectionScope)
OBJECTION_SCOPE_ALL: ObjectionScope = "all"
OBJECTION_SCOPE_DIRECT_MARKETING: ObjectionScope = "direct_marketing"
MARKETING = "marketing"
# Stands in for a subject reference in the decision memo: whether a subject was named changes the answer,
# which subject it was only through `objection_reasons`, applied after the memo.
_SOME_SUBJECT = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    parties: Mapping[str, PartyView]
    agreements_by_party: Mapping[str, tuple[AgreementView, ...]]
    ruleset: str
    # The purposes the controller's privacy policy publishes (taxonomy keys); None: not set, so not checked.
    published_purposes: frozenset[str] | None = None
    # Purposes beyond ``marketing`` that are direct marketing: every purpose of a processing activity marked
    # ``direct_marketing`` (`direct_marketing_purposes`); they need a subject and obey direct-marketing objections.
    direct_marketing_purposes: frozenset[str] = frozenset()
    # What each party's places and chain say (see `PlacesVerdict`), worked out the first time a check needs it:
    # a memo of a function of the frozen contents above, so it never changes an answer. Not worked out for all
    # parties up front, because a pathological registry (a chain thousands deep) would stall every reload.
    _places: dict[str, "PlacesVerdict"] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Decisions already taken on this snapshot, by request and day: integrations ask the same few questions over
    # and over (every order of a webshop sends the same recipient, purpose and categories). A memo of `decide`,
    # a pure function of the request, this snapshot and the day, so it never changes an answer; bounded.
    _decisions: dict[tuple["ShareRequest", date, int], "Decision"] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def places_of(self, party: PartyView) -> "PlacesVerdict":
        if self.parties.get(party.key) is not party:
            return _places_verdict(party, self)  # a party from elsewhere, checked against this registry
        verdict = self._places.get(party.key)
        if verdict is None:
            verdict = self._places[party.key] = _places_verdict(party, self)
        return verdict

    def changed(
        self,
        parties: Mapping[str, PartyView],
        agreements_by_party: Mapping[str, tuple[AgreementView, ...]],
        ruleset: str,
        stale: Collection[str],
    ) -> "Snapshot":
        """This snapshot after a registry change: new contents, and the memo of places and chains kept for every
        party not in `stale` (the caller names every party whose places or chain the change may alter: the
        changed parties and every processor whose chain reaches one). Decisions are taken afresh."""
        after = replace(self, parties=parties, agreements_by_party=agreements_by_party, ruleset=ruleset)
        after._places.update((key, verdict) for key, verdict in self._places.items() if key not in stale)
        return after

    def decision(
        self,
        request: "ShareRequest",
        today: date,
        *,
        expiring_within_days: int = DEFAULT_EXPIRING_WITHIN_DAYS,
        objections: Objections = NO_OBJECTIONS,
        restrictions: Objections = NO_OBJECTIONS,
    ) -> "Decision":
        """`decide(request, self, today, ...)`, taken once per distinct request and day; a subject's objections
        and restrictions are applied to the memoized answer, so that one memo entry serves every person."""
        if request.subject_ref is not None and request.subject_ref != _SOME_SUBJECT:
            anyone = dataclasses.replace(request, subject_ref=_SOME_SUBJECT)
            general = self.decision(anyone, today, expiring_within_days=expiring_within_days)
            return with_objections(general, request, objections, self.direct_marketing_purposes, restrictions)
        if len(request.data_categories) > DECISION_MEMO_MAX_CATEGORIES:
            return decide(request, self, today, expiring_within_days=expiring_within_days)
        key = (request, today, expiring_within_days)
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= DECISION_MEMO_SIZE:  # distinct requests must not grow memory without bound
                self._decisions.clear()
            decision = self._decisions[key] = decide(request, self, today, expiring_within_days=expiring_within_days)
        return decision


@dataclass(frozen=True, slots=True)
class ShareRequest:
    recipient: str
    purpose: str
    data_categories: tuple[str, ...]
    destination: str | None = None
    data_subject: str | None = None
    # The one person whose data is shared: their keyed digest once the service has pseudonymised the request
    # (guard/service.py), the key objections are looked up by. None: the request names no one.
    subject_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str
    party: str | None = None
    territory: str | None = None
    agreement: str | None = None
    chain: tuple[str, ...] | None = None
    clauses: tuple[str, ...] | None = None
    category: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of §4.1: absent fields left out, tuples as lists."""
        out: dict[str, Any] = {"code": str(self.code), "message": self.message}
        for name in ("party", "territory", "agreement", "chain", "clauses", "category"):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, slots=True)
class HeldReason:
    """A reason that holds from a day (`since`; None: from always) until a day (`until`, exclusive; None: for
    ever): a sub-processor approved only from a day, a sub-processor's dpa in force for its term."""

    reason: Reason
    until: date | None = None
    since: date | None = None

    def holds_on(self, day: date) -> bool:
        return (self.since is None or self.since <= day) and (self.until is None or day < self.until)


@dataclass(frozen=True, slots=True)
class PlacesVerdict:
    """What a party's own places and its sub-processor chain say against any share to it, whatever the request.

    Worked out once per snapshot rather than on every check: every share to the party meets the same places
    and the same chain, and only the day decides whether an approval dated ahead has taken effect."""

    own: tuple[Reason, ...]
    chain: tuple[HeldReason, ...]
    declared: frozenset[str]  # the party's own territories (establishment and locations), for the message
    # The same territories in their canonical spelling (`canonical_territory`), which a destination's
    # `territory_enclosures` are compared with.
    declared_places: frozenset[str] = frozenset()

    def chain_reasons(self, day: date) -> list[Reason]:
        return [held.reason for held in self.chain if held.holds_on(day)]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...]
    warnings: tuple[Reason, ...]
    agreement: str | None
    ruleset: str
    # The reasons and warnings in their JSON shape, made once: a memoized decision answers many checks.
    reason_documents: list[dict[str, Any]] = field(init=False, repr=False, compare=False)
    warning_documents: list[dict[str, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason_documents", [r.as_dict() for r in self.reasons])
        object.__setattr__(self, "warning_documents", [w.as_dict() for w in self.warnings])


# --- Agreements -------------------------------------------------------------------------------------


def _why_not_in_force(agreement: AgreementView, day: date) -> str | None:
    if agreement.signed_on is None:
        return "is not signed"
    if day < agreement.signed_on:
        return f"is signed only on {agreement.signed_on.isoformat()}"
    if day < agreement.effective_from:
        return f"takes effect only on {agreement.effective_from.isoformat()}"
    if agreement.terminated_on is not None and day >= agreement.terminated_on:
        return f"was terminated on {agreement.terminated_on.isoformat()}"
    if agreement.expires_on is not None and day > agreement.expires_on:
        return f"expired on {agreement.expires_on.isoformat()}"
    return None


@dataclass(slots=True)  # not frozen: made for every agreement in force on every check, and never kept
class _Coverage:
    agreement: AgreementView
    uncovered_categories: tuple[str, ...]
    purpose_uncovered: bool
    subject_uncovered: bool
    missing_clauses: tuple[str, ...]

    @property
    def gaps(self) -> int:
        """How many parts of the request the agreement does not cover."""
        return len(self.uncovered_categories) + self.purpose_uncovered + self.subject_uncovered

    @property
    def reasons_against(self) -> int:
        """How many reasons the agreement would give: one per gap, one if a dpa lacks clauses, and one if it
        permits transfers outside the EEA."""
        return self.gaps + bool(self.missing_clauses) + self.agreement.transfers_outside_eea_permitted


def _covered_by_any(entries: frozenset[str], key: str) -> bool:
    return not entries.isdisjoint(entries_covering(key))


def _coverage(
    agreement: AgreementView, categories: Sequence[str], purpose: str | None, subject: str | None
) -> _Coverage:
    return _Coverage(
        agreement=agreement,
        uncovered_categories=tuple(c for c in categories if not _covered_by_any(agreement.category_entries, c)),
        purpose_uncovered=purpose is not None and not _covered_by_any(agreement.purpose_entries, purpose),
        subject_uncovered=subject is not None and not _covered_by_any(agreement.subject_entries, subject),
        missing_clauses=agreement.missing_clauses,
    )


def _preference(coverage: _Coverage) -> tuple[int, bool, bool, int, int, int, str]:
    """An agreement covering the whole request first, then one with its Art. 28(3) clauses; then the latest expiry
    (open-ended is latest), latest start, and key for ties. Coverage comes first so that a share an agreement in
    force covers is refused, if at all, for what is wrong with that agreement (which the registry's findings name:
    a dpa lacking clauses), not for what another agreement does not cover. Then one not permitting transfers (any
    agreement in force that permits them blocks whichever is chosen, but the share should not rest on it)."""
    agreement = coverage.agreement
    expires = agreement.expires_on
    return (
        coverage.gaps,
        bool(coverage.missing_clauses),
        agreement.transfers_outside_eea_permitted,
        0 if expires is None else 1,
        0 if expires is None else -expires.toordinal(),
        -agreement.effective_from.toordinal(),
        agreement.key,
    )


def _label(party: PartyView) -> str:
    return f"{party.name} ({party.key})"


def is_authority(party: PartyView) -> bool:
    """An authority by role or by category: a row filed as category authority with another role (refused on
    write now, but possibly stored before that check existed) must not fail open."""
    return party.role == "authority" or party.category == "authority"


def _permits_transfer_reason(
    party: PartyView, agreement: AgreementView, chain: tuple[str, ...] | None = None
) -> Reason:
    whose = _label(party) if chain is None else f"sub-processor {_label(party)}, in the chain {' → '.join(chain)}"
    return Reason(
        ReasonCode.AGREEMENT_PERMITS_TRANSFER,
        f"Agreement {agreement.key} with {whose} permits transfers outside the EU/EEA "
        "(transfers_outside_eea_permitted); the policy allows none (Art. 28(3)(a)).",
        party=party.key,
        agreement=agreement.key,
        chain=chain,
    )


def _kind_name(kind: str) -> str:
    return AGREEMENT_KIND_NAMES.get(kind, f"'{kind}' agreement")


def _no_agreement_reason(party: PartyView, agreements: Sequence[AgreementView], kind: str, day: date) -> Reason:
    message = f"{_label(party)} has no {_kind_name(kind)} in force on {day.isoformat()}"
    lapsed = sorted(
        (a for a in agreements if a.kind == kind),
        key=lambda a: (a.expires_on or date.max, a.effective_from, a.key),
        reverse=True,
    )
    if lapsed:
        latest = lapsed[0]
        message += f": agreement {latest.key} {_why_not_in_force(latest, day)}"
        return Reason(ReasonCode.NO_AGREEMENT, message + ".", party=party.key, agreement=latest.key)
    other_kinds = sorted({a.kind for a in agreements})
    if other_kinds:
        message += (
            f": it has only {' and '.join('a ' + _kind_name(k) for k in other_kinds)}, "
            f"and the role {party.role} needs a {_kind_name(kind)}"
        )
    return Reason(ReasonCode.NO_AGREEMENT, message + ".", party=party.key)


def _incomplete_reason(party: PartyView, agreement: AgreementView) -> Reason | None:
    missing = agreement.missing_clauses
    if not missing:
        return None
    listed = ", ".join(f"{ART28_CLAUSE_LETTERS[c]} {c}" for c in missing)
    return Reason(
        ReasonCode.AGREEMENT_INCOMPLETE,
        f"Agreement {agreement.key} with {_label(party)} lacks Art. 28(3) clauses: {listed}.",
        party=party.key,
        agreement=agreement.key,
        clauses=missing,
    )


def _agreement_findings(
    party: PartyView,
    snapshot: Snapshot,
    day: date,
    categories: Sequence[str] = (),
    purpose: str | None = None,
    subject: str | None = None,
    *,
    require: bool = True,
) -> tuple[list[Reason], AgreementView | None]:
    """Choose the in-force agreement of the kind the role needs that best covers the request.

    Returns the reasons against it (or against its absence) and the agreement chosen, if any.
    """
    if is_authority(party):
        return [], None
    kind = REQUIRED_AGREEMENT_KIND.get(party.role)
    if kind is None:
        message = f"{_label(party)} has role '{party.role}', for which the policy knows no agreement."
        return [Reason(ReasonCode.NO_AGREEMENT, message, party=party.key)], None
    agreements = snapshot.agreements_by_party.get(party.key, ())
    # Any agreement in force that permits transfers blocks, whichever one the share rests on (Art. 28(3)(a), 44):
    # the processor may transfer under it without asking again.
    permitting = [
        _permits_transfer_reason(party, a)
        for a in agreements
        if a.transfers_outside_eea_permitted and a.in_force_on(day)
    ]
    in_force = [a for a in agreements if a.kind == kind and a.in_force_on(day)]
    if not in_force:
        return ([_no_agreement_reason(party, agreements, kind, day)] if require else []) + permitting, None

    coverages = [_coverage(a, categories, purpose, subject) for a in in_force]
    best = coverages[0] if len(coverages) == 1 else min(coverages, key=_preference)
    chosen = best.agreement
    about = f"Agreement {chosen.key} with {_label(party)}"
    reasons = [
        Reason(
            ReasonCode.CATEGORY_NOT_COVERED,
            f"{about} does not cover the data category '{category}'.",
            party=party.key,
            agreement=chosen.key,
            category=category,
        )
        for category in best.uncovered_categories
    ]
    if best.purpose_uncovered:
        reasons.append(
            Reason(
                ReasonCode.PURPOSE_NOT_COVERED,
                f"{about} does not cover the purpose '{purpose}'.",
                party=party.key,
                agreement=chosen.key,
            )
        )
    if best.subject_uncovered:
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_NOT_COVERED,
                f"{about} does not cover the data subject '{subject}'.",
                party=party.key,
                agreement=chosen.key,
            )
        )
    incomplete = _incomplete_reason(party, chosen)
    if incomplete is not None:
        reasons.append(incomplete)
    reasons.extend(permitting)
    return reasons, chosen


def _last_day_in_force(agreement: AgreementView) -> date | None:
    """The agreement's last day in force (§4.3): its expiry, or the day before its termination; None if open."""
    ends = [agreement.expires_on] if agreement.expires_on is not None else []
    if agreement.terminated_on is not None:
        ends.append(agreement.terminated_on - timedelta(days=1))
    return min(ends, default=None)


def _successor(
    party: PartyView,
    snapshot: Snapshot,
    ending: AgreementView,
    last_day: date,
    categories: Sequence[str],
    purpose: str | None,
    subject: str | None,
) -> AgreementView | None:
    """An agreement already on file that takes over this share the day after `ending` lapses: same kind, in
    force that day, covering the request with no reason against it."""
    next_day = last_day + timedelta(days=1)
    for candidate in snapshot.agreements_by_party.get(party.key, ()):
        if (
            candidate.key != ending.key
            and candidate.kind == ending.kind
            and candidate.in_force_on(next_day)
            and _coverage(candidate, categories, purpose, subject).reasons_against == 0
        ):
            return candidate
    return None


def _lapse_warning(
    party: PartyView,
    agreement: AgreementView,
    snapshot: Snapshot,
    request: ShareRequest,
    day: date,
    within_days: int,
) -> Reason | None:
    """AGREEMENT_EXPIRING: the agreement this share rests on stops being in force within the window (it
    expires or is terminated) and no successor on file takes the share over."""
    last_day = _last_day_in_force(agreement)
    if last_day is None:
        return None
    days_left = (last_day - day).days
    if not 0 <= days_left <= within_days:
        return None
    if _successor(party, snapshot, agreement, last_day, request.data_categories, request.purpose, request.data_subject):
        return None
    when = "today" if days_left == 0 else f"in {days_left} day{'s' if days_left != 1 else ''}"
    if agreement.expires_on == last_day:
        ends = f"expires on {last_day.isoformat()} ({when})"
    else:
        assert agreement.terminated_on is not None  # the only other way to have a last day
        ends = f"is terminated from {agreement.terminated_on.isoformat()} (its last day in force is {when})"
    message = (
        f"Agreement {agreement.key} with {_label(party)} {ends}; after that the guard blocks shares to "
        f"{party.key} until an agreement in force covers them"
    )
    if agreement.renewal == "auto" and agreement.expires_on == last_day:
        message += " (it renews automatically: record the new term in the registry)"
    return Reason(ReasonCode.AGREEMENT_EXPIRING, message + ".", party=party.key, agreement=agreement.key)


# --- Territories ------------------------------------------------------------------------------------


def _describe_territory(code: str) -> str:
    name = territory_name(code)
    return code if name is None else f"{code} ({name})"


def _unknown_territory_message(code: str, what: str) -> str:
    message = f"The territory code '{code}' of {what} is not an ISO 3166 code the guard knows"
    hint = _TERRITORY_HINTS.get(code)
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
        who, outside_code = _label(party), ReasonCode.LOCATION_OUTSIDE_EEA
    else:
        who = f"Sub-processor {_label(party)}, in the chain {' → '.join(chain)},"
        outside_code = ReasonCode.SUBPROCESSOR_OUTSIDE_EEA
    for kind, territory in _places(party):
        status = classify_territory(territory)
        if status is TerritoryStatus.UNKNOWN:
            what = f"the {kind.replace('_', ' ')} of {_label(party)}"
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
    who = _label(party) if chain is None else f"Sub-processor {_label(party)}, in the chain {' → '.join(chain)},"
    return [
        Reason(
            ReasonCode.RECIPIENT_INTERNATIONAL_ORGANISATION,
            f"{who} is an international organisation (Art. 4(26)): a share to it is a transfer outside the "
            "EU/EEA (Art. 44) wherever its office is; the policy allows none.",
            party=party.key,
            chain=chain,
        )
    ]


def _places_verdict(party: PartyView, snapshot: Snapshot) -> PlacesVerdict:
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
            f"Sub-processor {_label(sub)}, in the chain {via}, was objected to on {link.objected_on.isoformat()}: "
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
        f"Sub-processor {_label(sub)}, in the chain {via}, is not approved: {detail}.",
        party=sub.key,
        chain=chain,
    )
    return HeldReason(reason, until=starts)


def _sub_processor_transfer_reasons(sub: PartyView, snapshot: Snapshot, chain: tuple[str, ...]) -> list[HeldReason]:
    """A sub-processor's own dpa on file that permits transfers, held for the days it is in force."""
    held: list[HeldReason] = []
    for agreement in snapshot.agreements_by_party.get(sub.key, ()):
        if agreement.kind != "dpa" or not agreement.transfers_outside_eea_permitted or agreement.signed_on is None:
            continue
        last_day = _last_day_in_force(agreement)
        held.append(
            HeldReason(
                _permits_transfer_reason(sub, agreement, chain),
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


def _chain_findings(recipient: PartyView, snapshot: Snapshot) -> tuple[HeldReason, ...]:
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


def _destination_findings(
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
                f"for {_label(recipient)} ({', '.join(sorted(declared, key=str))}).",
                party=recipient.key,
                territory=destination,
            )
        )
    return reasons


# --- The request's own references ------------------------------------------------------------------


def _request_findings(
    request: ShareRequest, categories: Sequence[str], snapshot_published: frozenset[str] | None
) -> list[Reason]:
    reasons = [
        Reason(
            ReasonCode.CATEGORY_UNKNOWN,
            f"'{category}' is not a data category of the Fides taxonomy.",
            category=category,
        )
        for category in categories
        if category not in KNOWN_DATA_CATEGORIES
    ]
    if request.purpose not in KNOWN_PURPOSES:
        reasons.append(
            Reason(
                ReasonCode.PURPOSE_UNKNOWN,
                f"'{request.purpose}' is not a purpose (data use) of the Fides taxonomy.",
            )
        )
    if (
        snapshot_published is not None
        and request.purpose in KNOWN_PURPOSES
        and not _covered_by_any(snapshot_published, request.purpose)
    ):
        reasons.append(
            Reason(
                ReasonCode.PURPOSE_NOT_PUBLISHED,
                f"The purpose '{request.purpose}' is not among the purposes the controller's privacy policy "
                f"publishes ({', '.join(sorted(snapshot_published))}).",
            )
        )
    if request.data_subject is None:
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_NOT_COVERED,
                "The request names no data subject, so no agreement can be checked to cover the people whose "
                "data is shared (Art. 28(3)).",
            )
        )
    elif request.data_subject not in KNOWN_DATA_SUBJECTS:
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_NOT_COVERED,
                f"'{request.data_subject}' is not a data subject of the Fides taxonomy, so no agreement can cover it.",
            )
        )
    for category in categories:
        roots = special_category_roots_in(category)
        if not roots:
            continue
        if covers(roots[0], category):
            message = f"'{category}' is special-category data (GDPR Art. 9/10); the policy allows no sharing of it."
        else:
            message = (
                f"'{category}' includes special-category data (GDPR Art. 9/10: {', '.join(roots)}); "
                "the policy allows no sharing of it, so request only the narrower categories needed."
            )
        reasons.append(Reason(ReasonCode.SPECIAL_CATEGORY, message, category=category))
    return reasons


# --- Entry points -----------------------------------------------------------------------------------


def is_marketing(purpose: str, direct_marketing: Collection[str] = frozenset()) -> bool:
    """Whether `purpose` is direct marketing: under ``marketing``, or under one of the purposes the controller's
    processing activities mark as direct marketing (`direct_marketing`)."""
    return covers(MARKETING, purpose) or any(covers(entry, purpose) for entry in direct_marketing)


def direct_marketing_purposes(activities: Iterable[Mapping[str, Any]] | None) -> frozenset[str]:
    """The purposes of the processing activities marked ``direct_marketing`` (DESIGN §2)."""
    return frozenset(p for a in activities or () if a.get("direct_marketing") for p in a.get("purposes") or ())


def published_with_activities(
    published: Iterable[str] | None, activities: Iterable[Mapping[str, Any]] | None
) -> frozenset[str] | None:
    """The published purposes: `published` and every processing activity's purposes (None when neither is
    given: the controller has not published its purposes, so they are not checked)."""
    from_activities = {p for a in activities or () for p in a.get("purposes") or ()}
    if published is None and not from_activities:
        return None
    return frozenset(published or ()) | from_activities


def objection_covers(scope: str, purpose: str, direct_marketing: Collection[str] = frozenset()) -> bool:
    """Whether an objection of `scope` covers a share for `purpose` (an unknown scope covers everything: fail
    closed); `direct_marketing` the controller's direct-marketing purposes beyond ``marketing``."""
    return scope != OBJECTION_SCOPE_DIRECT_MARKETING or is_marketing(purpose, direct_marketing)


def objection_reasons(
    request: ShareRequest, objections: Objections, direct_marketing: Collection[str] = frozenset()
) -> tuple[Reason, ...]:
    """SUBJECT_OBJECTED when an objection of the request's subject covers its purpose."""
    if request.subject_ref is None:
        return ()
    scopes = objections.get(request.subject_ref)
    if not scopes:
        return ()
    covering = sorted({scope for scope in scopes if objection_covers(scope, request.purpose, direct_marketing)})
    if not covering:
        return ()
    return (
        Reason(
            ReasonCode.SUBJECT_OBJECTED,
            f"The data subject has objected ({', '.join(covering)}) to processing for '{request.purpose}'.",
        ),
    )


def restriction_reasons(request: ShareRequest, restrictions: Objections) -> tuple[Reason, ...]:
    """SUBJECT_RESTRICTED when the request's subject has a restriction in force (Art. 18): every purpose."""
    if request.subject_ref is None or not restrictions.get(request.subject_ref):
        return ()
    return (
        Reason(
            ReasonCode.SUBJECT_RESTRICTED,
            "The data subject's processing is restricted (Art. 18): no share until the restriction is lifted.",
        ),
    )


def with_objections(
    decision: Decision,
    request: ShareRequest,
    objections: Objections,
    direct_marketing: Collection[str] = frozenset(),
    restrictions: Objections = NO_OBJECTIONS,
) -> Decision:
    """`decision` (taken for any subject) with the request's own subject's objections and restriction added."""
    extra = objection_reasons(request, objections, direct_marketing) + restriction_reasons(request, restrictions)
    if not extra:
        return decision
    return Decision(
        allowed=False,
        reasons=(*decision.reasons, *extra),
        warnings=decision.warnings,
        agreement=decision.agreement,
        ruleset=decision.ruleset,
    )


def decide(
    request: ShareRequest,
    snapshot: Snapshot,
    today: date,
    *,
    expiring_within_days: int = DEFAULT_EXPIRING_WITHIN_DAYS,
    objections: Objections = NO_OBJECTIONS,
    restrictions: Objections = NO_OBJECTIONS,
) -> Decision:
    """The guard's answer to one share: every reason that applies, and allowed only when there is none."""
    decision = _decide(request, snapshot, today, expiring_within_days=expiring_within_days)
    return with_objections(decision, request, objections, snapshot.direct_marketing_purposes, restrictions)


def _decide(request: ShareRequest, snapshot: Snapshot, today: date, *, expiring_within_days: int) -> Decision:
    categories = tuple(dict.fromkeys(request.data_categories))
    recipient = snapshot.parties.get(request.recipient)
    reasons: list[Reason] = []
    warnings: list[Reason] = []
    chosen: AgreementView | None = None
    declared: frozenset[str] = frozenset()
    declared_places: frozenset[str] = frozenset()

    if recipient is None:
        reasons.append(
            Reason(
                ReasonCode.RECIPIENT_UNKNOWN,
                f"The recipient '{request.recipient}' is not in the registry.",
                party=request.recipient,
            )
        )
    else:
        if not recipient.active:
            reasons.append(
                Reason(
                    ReasonCode.RECIPIENT_INACTIVE,
                    f"{_label(recipient)} is marked inactive in the registry.",
                    party=recipient.key,
                )
            )
        if is_authority(recipient):
            reasons.append(
                Reason(
                    ReasonCode.RECIPIENT_IS_AUTHORITY,
                    f"{_label(recipient)} is an authority: disclosures to authorities are made manually "
                    "and logged, never automatically.",
                    party=recipient.key,
                )
            )

    reasons.extend(_request_findings(request, categories, snapshot.published_purposes))
    if request.subject_ref is None and is_marketing(request.purpose, snapshot.direct_marketing_purposes):
        reasons.append(
            Reason(
                ReasonCode.SUBJECT_REF_MISSING,
                f"'{request.purpose}' is direct marketing: name the person (subject_ref) so that their objections "
                "can be checked; send a marketing list through check-batch, one request per person.",
            )
        )

    if recipient is not None:
        agreement_reasons, chosen = _agreement_findings(
            recipient,
            snapshot,
            today,
            [c for c in categories if c in KNOWN_DATA_CATEGORIES],
            request.purpose if request.purpose in KNOWN_PURPOSES else None,
            request.data_subject if request.data_subject in KNOWN_DATA_SUBJECTS else None,
        )
        reasons.extend(agreement_reasons)
        places = snapshot.places_of(recipient)
        reasons.extend(places.own)
        reasons.extend(places.chain_reasons(today))
        declared = places.declared
        declared_places = places.declared_places
        if chosen is not None:
            warning = _lapse_warning(recipient, chosen, snapshot, request, today, expiring_within_days)
            if warning is not None:
                warnings.append(warning)

    if request.destination is not None:
        reasons.extend(_destination_findings(request.destination, recipient, declared, declared_places))

    return Decision(
        allowed=not reasons,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        agreement=None if chosen is None else chosen.key,
        ruleset=snapshot.ruleset,
    )


def evaluate_party(party: PartyView, snapshot: Snapshot, today: date) -> tuple[Reason, ...]:
    """Registry findings for one party, without a request: what would block every share to it.

    Checked the same way as ``decide``: agreement in force (and its Art. 28(3) clauses), the party's
    own places, and its whole sub-processor chain. Whether the party is active is the caller's filter.
    """
    agreement_reasons, _ = _agreement_findings(party, snapshot, today, require=party.role != "sub_processor")
    places = snapshot.places_of(party)
    return (
        *agreement_reasons,
        *_other_incomplete_findings(party, snapshot, today, agreement_reasons),
        *_unpublished_purpose_findings(party, snapshot, today),
        *_special_category_findings(party, snapshot, today),
        *places.own,
        *places.chain_reasons(today),
    )


def _other_incomplete_findings(
    party: PartyView, snapshot: Snapshot, today: date, reported: Sequence[Reason]
) -> list[Reason]:
    """Every other dpa in force that lacks Art. 28(3) clauses: a share only it covers is refused
    (``AGREEMENT_INCOMPLETE``) even when a complete agreement covers other shares."""
    kind = REQUIRED_AGREEMENT_KIND.get(party.role)
    if kind is None or is_authority(party):
        return []
    named = {r.agreement for r in reported if r.code == ReasonCode.AGREEMENT_INCOMPLETE}
    found = (
        _incomplete_reason(party, agreement)
        for agreement in snapshot.agreements_by_party.get(party.key, ())
        if agreement.kind == kind and agreement.key not in named and agreement.in_force_on(today)
    )
    return [reason for reason in found if reason is not None]


def _special_category_findings(party: PartyView, snapshot: Snapshot, today: date) -> list[Reason]:
    """An agreement in force covering special-category data (Art. 9/10): the contract allows shares the guard
    refuses (``SPECIAL_CATEGORY``), like a purpose the controller does not publish."""
    return [
        Reason(
            ReasonCode.SPECIAL_CATEGORY,
            f"Agreement {agreement.key} with {_label(party)} covers the data category '{category}', which is or "
            "includes special-category data (GDPR Art. 9/10); the policy allows no sharing of it.",
            party=party.key,
            agreement=agreement.key,
            category=category,
        )
        for agreement in snapshot.agreements_by_party.get(party.key, ())
        if agreement.in_force_on(today)
        for category in agreement.data_categories
        if special_category_roots_in(category)
    ]


def _unpublished_purpose_findings(party: PartyView, snapshot: Snapshot, today: date) -> list[Reason]:
    """An agreement in force covering a purpose the controller does not publish: a share the guard would refuse
    (``PURPOSE_NOT_PUBLISHED``) that the contract allows, so the contract or the privacy policy is wrong."""
    published = snapshot.published_purposes
    if published is None:
        return []
    return [
        Reason(
            ReasonCode.PURPOSE_NOT_PUBLISHED,
            f"Agreement {agreement.key} with {_label(party)} covers the purpose '{purpose}', which the "
            f"controller's privacy policy does not publish ({', '.join(sorted(published))}).",
            party=party.key,
            agreement=agreement.key,
        )
        for agreement in snapshot.agreements_by_party.get(party.key, ())
        if agreement.in_force_on(today)
        for purpose in agreement.purposes
        if not _covered_by_any(published, purpose)
    ]
