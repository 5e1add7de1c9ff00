"""What the guard decides on and answers with, as pure values:
the views of parties, locations, sub-processor links and agreements, the snapshot, a share request, a reason
and a decision."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args

from guard.vocabulary import ART28_CLAUSES

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


class Holdings(Protocol):
    """What the rules read of a snapshot: its parties and each party's agreements (guard/policy.py `Snapshot`
    has both). The rules name this, not the snapshot, which memoises their answers and so imports them."""

    @property
    def parties(self) -> Mapping[str, PartyView]: ...

    @property
    def agreements_by_party(self) -> Mapping[str, tuple[AgreementView, ...]]: ...
