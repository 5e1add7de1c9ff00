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
- Of the in-force agreements of the kind the role needs, the one with the fewest reasons against it is
  chosen (a coverage gap or a dpa lacking Art. 28(3) clauses each count), so a complete covering dpa is
  never passed over for an incomplete one that happens to expire later.
- An authority gets ``RECIPIENT_IS_AUTHORITY`` and no agreement check; a role the policy does not know
  gets ``NO_AGREEMENT``.
- ``evaluate_party`` does not ask a sub-processor for its own agreement with the controller (Art. 28(4)
  binds it through its processor), but a dpa it does have is still checked for its clauses.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol

from fideslang import DEFAULT_TAXONOMY

from guard.territory import TerritoryStatus, classify_territory, territory_ancestors, territory_name

# --- Reference data -------------------------------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class Snapshot:
    parties: Mapping[str, PartyView]
    agreements_by_party: Mapping[str, tuple[AgreementView, ...]]
    ruleset: str
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
            return _places_verdict(party, self.parties)  # a party from elsewhere, checked against this registry
        verdict = self._places.get(party.key)
        if verdict is None:
            verdict = self._places[party.key] = _places_verdict(party, self.parties)
        return verdict

    def decision(self, request: "ShareRequest", today: date, *, expiring_within_days: int = 30) -> "Decision":
        """`decide(request, self, today, ...)`, taken once per distinct request and day."""
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
    """A reason that holds until a day (a sub-processor approved only from then), or always (`until` None)."""

    reason: Reason
    until: date | None = None


@dataclass(frozen=True, slots=True)
class PlacesVerdict:
    """What a party's own places and its sub-processor chain say against any share to it, whatever the request.

    Worked out once per snapshot rather than on every check: every share to the party meets the same places
    and the same chain, and only the day decides whether an approval dated ahead has taken effect."""

    own: tuple[Reason, ...]
    chain: tuple[HeldReason, ...]
    declared: frozenset[str]  # the party's own territories (establishment and locations), for the destination

    def chain_reasons(self, day: date) -> list[Reason]:
        return [held.reason for held in self.chain if held.until is None or day < held.until]


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
    def reasons_against(self) -> int:
        """How many reasons the agreement would give: one per gap, and one if a dpa lacks clauses."""
        return (
            len(self.uncovered_categories)
            + self.purpose_uncovered
            + self.subject_uncovered
            + bool(self.missing_clauses)
        )


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


def _preference(coverage: _Coverage) -> tuple[int, int, int, int, str]:
    """Fewest reasons first; then the latest expiry (open-ended is latest), latest start, and key for ties."""
    agreement = coverage.agreement
    expires = agreement.expires_on
    return (
        coverage.reasons_against,
        0 if expires is None else 1,
        0 if expires is None else -expires.toordinal(),
        -agreement.effective_from.toordinal(),
        agreement.key,
    )


def _label(party: PartyView) -> str:
    return f"{party.name} ({party.key})"


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
    if party.role == "authority":
        return [], None
    kind = REQUIRED_AGREEMENT_KIND.get(party.role)
    if kind is None:
        message = f"{_label(party)} has role '{party.role}', for which the policy knows no agreement."
        return [Reason(ReasonCode.NO_AGREEMENT, message, party=party.key)], None
    agreements = snapshot.agreements_by_party.get(party.key, ())
    in_force = [a for a in agreements if a.kind == kind and a.in_force_on(day)]
    if not in_force:
        return ([_no_agreement_reason(party, agreements, kind, day)] if require else []), None

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


def _places_verdict(party: PartyView, parties: Mapping[str, PartyView]) -> PlacesVerdict:
    return PlacesVerdict(
        own=tuple(_territory_findings(party, chain=None)),
        chain=_chain_findings(party, parties),
        declared=frozenset(territory for _, territory in _places(party)),
    )


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


def _chain_findings(recipient: PartyView, parties: Mapping[str, PartyView]) -> tuple[HeldReason, ...]:
    """Walk the sub-processor chain and return its reasons, an unapproved link's held until the day its
    approval takes effect."""
    reasons: list[HeldReason] = []
    for chain, link, sub, first in walk_chain(recipient, parties):
        via = " → ".join(chain)
        if sub is None:
            reason = Reason(
                ReasonCode.SUBPROCESSOR_UNAPPROVED,
                f"Sub-processor {link.party}, in the chain {via}, is not in the registry, "
                "so it cannot have been approved.",
                party=link.party,
                chain=chain,
            )
            reasons.append(HeldReason(reason))
            continue
        # Every link gets its approval reason, held until the approval takes effect (for ever when there is none).
        if link.approved_on is None:
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
        reasons.append(HeldReason(reason, until=link.approved_on))
        if first:
            reasons.extend(HeldReason(r) for r in _territory_findings(sub, chain))
    return tuple(reasons)


def _is_declared(destination: str, declared: frozenset[str]) -> bool:
    return destination in declared or any(a in declared for a in territory_ancestors(destination))


def _destination_findings(destination: str, recipient: PartyView | None, declared: frozenset[str]) -> list[Reason]:
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
    if recipient is not None and not _is_declared(destination, declared):
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


def _request_findings(request: ShareRequest, categories: Sequence[str]) -> list[Reason]:
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
    if request.data_subject is not None and request.data_subject not in KNOWN_DATA_SUBJECTS:
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


def decide(request: ShareRequest, snapshot: Snapshot, today: date, *, expiring_within_days: int = 30) -> Decision:
    """The guard's answer to one share: every reason that applies, and allowed only when there is none."""
    categories = tuple(dict.fromkeys(request.data_categories))
    recipient = snapshot.parties.get(request.recipient)
    reasons: list[Reason] = []
    warnings: list[Reason] = []
    chosen: AgreementView | None = None
    declared: frozenset[str] = frozenset()

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
        if recipient.role == "authority":
            reasons.append(
                Reason(
                    ReasonCode.RECIPIENT_IS_AUTHORITY,
                    f"{_label(recipient)} is an authority: disclosures to authorities are made manually "
                    "and logged, never automatically.",
                    party=recipient.key,
                )
            )

    reasons.extend(_request_findings(request, categories))

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
        if chosen is not None:
            warning = _lapse_warning(recipient, chosen, snapshot, request, today, expiring_within_days)
            if warning is not None:
                warnings.append(warning)

    if request.destination is not None:
        reasons.extend(_destination_findings(request.destination, recipient, declared))

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
    return (*agreement_reasons, *places.own, *places.chain_reasons(today))
