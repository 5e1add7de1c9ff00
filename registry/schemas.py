"""Request and document schemas. These validate input (table models skip validation, DESIGN §7); the
rules that need the database (unknown keys, cycles, roles) live in registry/services."""

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from guard.subjects import SubjectError, normalise_subject
from guard.territory import is_iso_territory
from guard.views import ObjectionScope
from guard.vocabulary import ART28_CLAUSES, KNOWN_DATA_CATEGORIES, KNOWN_DATA_SUBJECTS, KNOWN_PURPOSES
from kernel.calendar import DEFAULT_TIMEZONE, calendar_today
from kernel.text import EMAIL_PATTERN, no_nul_characters

Role = Literal["processor", "sub_processor", "independent_controller", "authority"]
PartyCategory = Literal[
    "transport",
    "marketing",
    "it_services",
    "web_platform_payments",
    "manufacturer",
    "supplier",
    "reseller",
    "authority",
    "other",
]
LocationKind = Literal["storage", "processing", "support_access", "backup"]
AgreementKind = Literal["dpa", "data_sharing"]
# Each vocabulary once: the tuples (for choices and checks) are read off the types that validate input.
ROLES: tuple[str, ...] = get_args(Role)
CATEGORIES: tuple[str, ...] = get_args(PartyCategory)
LOCATION_KINDS: tuple[str, ...] = get_args(LocationKind)
AGREEMENT_KINDS: tuple[str, ...] = get_args(AgreementKind)
ROLE_FOR_AGREEMENT_KIND = {"dpa": ("processor", "sub_processor"), "data_sharing": ("independent_controller",)}
Renewal = Literal["fixed", "auto"]

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
KEY_RE = re.compile(KEY_PATTERN)


# The registry's own checks raise typed errors (PydanticCustomError): callers that word messages themselves (the
# UI, in Swedish or English) read the type and its context, never the English text.
def _territory(code: str) -> str:
    if not is_iso_territory(code):
        raise PydanticCustomError(
            "territory_code",
            "{quoted} is not an ISO 3166 territory code; use upper-case ISO 3166-1 alpha-2 (SE) or ISO 3166-2 (ES-CN)",
            {"quoted": repr(code), "value": code},
        )
    return code


def _member_of(known: frozenset[str], what: str) -> Any:
    def check(key: str) -> str:
        if key not in known:
            raise PydanticCustomError(
                "taxonomy_key", "{quoted} is not a {what} of the Fides taxonomy", {"quoted": repr(key), "what": what}
            )
        return key

    return check


def _email(value: str) -> str:
    if not EMAIL_PATTERN.match(value):
        raise PydanticCustomError("email", "{quoted} is not an e-mail address", {"quoted": repr(value), "value": value})
    return value


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise PydanticCustomError(
                "listed_twice", "{quoted} is listed twice", {"quoted": repr(value), "value": str(value)}
            )
        seen.add(value)
    return values


# Dates an agreement or a sub-processor link can plausibly carry. Renewal reminders and the calendar feed
# count days before and after them; at the ends of Python's date range that arithmetic would overflow.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)


def plausible_day(day: date) -> date:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise PydanticCustomError(
            "implausible_date",
            "{day} is not a plausible date: use one from {earliest} to {latest} "
            "(leave an end date empty for an agreement without one)",
            {"day": day.isoformat(), "earliest": EARLIEST_DAY.isoformat(), "latest": LATEST_DAY.isoformat()},
        )
    return day


# Control characters, and the line and paragraph separators U+2028 and U+2029 (which are not control characters
# to Unicode but break lines for e-mail headers, CSV readers and browsers alike).
LINE_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def no_control_characters(value: Any) -> Any:
    """Every text of the registry is one line (names, contacts, e-mail addresses, keys, URIs): a line break or
    other control character would end up in e-mail headers and break reminders, so it is refused here, on its
    field."""
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if isinstance(text, str):
            for i, char in enumerate(text):
                if unicodedata.category(char) in LINE_BREAKING_CATEGORIES:
                    raise ValueError(
                        f"must not contain control characters such as line breaks or tabs (found {char!r} at "
                        f"position {i})"
                    )
    return value


def could_be_key(text: str) -> bool:
    """Whether `text` has the shape of a party or agreement key; no other can be stored, so lookups of
    anything else (a path with NUL in it, say) answer 404 without asking the database."""
    return KEY_RE.fullmatch(text) is not None


Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
Day = Annotated[date, AfterValidator(plausible_day)]
Territory = Annotated[str, StringConstraints(max_length=12), AfterValidator(_territory)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
DataCategory = Annotated[
    str, StringConstraints(max_length=200), AfterValidator(_member_of(KNOWN_DATA_CATEGORIES, "data category"))
]
Purpose = Annotated[str, StringConstraints(max_length=200), AfterValidator(_member_of(KNOWN_PURPOSES, "data use"))]
DataSubject = Annotated[
    str, StringConstraints(max_length=200), AfterValidator(_member_of(KNOWN_DATA_SUBJECTS, "data subject"))
]
Clause = Literal[
    "instructions",
    "confidentiality",
    "security",
    "sub_processing",
    "data_subject_rights",
    "compliance_assistance",
    "deletion_or_return",
    "audits",
]
assert set(Clause.__args__) == set(ART28_CLAUSES), "clause keys must match the guard's Art. 28(3) list"  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return no_control_characters(no_nul_characters(value))


class LocationIn(Strict):
    territory: Territory
    kind: LocationKind


class SubProcessorLinkIn(Strict):
    """A processor's link to a sub-processor, with how it was authorised (Art. 28(2), DESIGN §2)."""

    party: Key
    authorisation: Literal["specific", "general"] = "specific"
    notified_on: Day | None = None
    objection_deadline: Day | None = None
    approved_on: Day | None = None
    objected_on: Day | None = None

    @field_validator("objection_deadline")
    @classmethod
    def _deadline_after_notice(cls, deadline: date | None, info: ValidationInfo) -> date | None:
        """Art. 28(2): the controller must have a real opportunity to object, so the window closes after the notice."""
        problem = link_dates_problem(info.data.get("notified_on"), deadline)
        if problem is not None:
            raise PydanticCustomError("link_dates", problem, {"field": "objection_deadline"})
        return deadline


def link_dates_problem(notified_on: date | None, objection_deadline: date | None) -> str | None:
    """The rule across a sub-processor link's dates (DESIGN §2, Art. 28(2)); one place for the schema and the form."""
    if notified_on is not None and objection_deadline is not None and objection_deadline <= notified_on:
        return "objection_deadline must be after notified_on"
    return None


class Contact(Strict):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: Email | None = None
    phone: Annotated[str, StringConstraints(max_length=50)] | None = None
    # Where the party takes Art. 19 notifications by machine (Standard Webhooks, signed like reminders).
    webhook: Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[^\s]+$")] | None = None


class PartyFields(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Role
    category: PartyCategory
    org_number: Annotated[str, StringConstraints(max_length=32)] | None = None
    established_in: Territory
    locations: Annotated[list[LocationIn], Field(max_length=200)] = []
    sub_processors: Annotated[list[SubProcessorLinkIn], Field(max_length=200)] = []
    active: bool = True
    # Art. 4(26): a share to an international organisation is a transfer (Art. 44) wherever its office is.
    international_organisation: bool = False
    contact: Contact | None = None

    @field_validator("category")
    @classmethod
    def _authority_category_needs_authority_role(cls, category: str, info: ValidationInfo) -> str:
        """An authority filed with another role would be asked for an agreement and could be auto-allowed; the
        guard treats it as an authority anyway, and the registry refuses the contradiction."""
        role = info.data.get("role")
        if category == "authority" and role is not None and role != "authority":
            raise ValueError(f"category 'authority' requires role 'authority' (role is {role!r})")
        return category

    @field_validator("locations")
    @classmethod
    def _locations_listed_once(cls, locations: list[LocationIn]) -> list[LocationIn]:
        _unique([f"{loc.territory} {loc.kind}" for loc in locations])
        return locations

    @field_validator("sub_processors")
    @classmethod
    def _sub_processors_listed_once(cls, links: list[SubProcessorLinkIn]) -> list[SubProcessorLinkIn]:
        _unique([link.party for link in links])
        return links


class PartyIn(PartyFields):
    """A party as written in the registry document and in `POST /api/parties`."""

    key: Key


class ReadOnlyEcho(Strict):
    """What GET answers can be PUT back: its read-only fields are accepted and ignored (the service refuses a
    changed key, naming it); timestamps are the server's, the version guards against stale edits."""

    key: Key | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class PartyUpdate(ReadOnlyEcho, PartyFields):
    """`PUT /api/parties/{key}`: the whole party, and the version the edit was based on."""

    version: Annotated[int, Field(ge=1)]


class Document(Strict):
    uri: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    # Set when the signed PDF is on file in the registry (PUT /api/agreements/{key}/document).
    size: Annotated[int, Field(ge=0)] | None = None


def agreement_term_problems(
    effective_from: date | None,
    expires_on: date | None,
    terminated_on: date | None,
    renewal: str | None,
    notice_days: int | None,
) -> list[tuple[str, str]]:
    """The rules across an agreement's term fields, as (field, message) pairs.

    One place for them: the schema below raises each on its own field, and the web form asks them all before
    the other fields are valid, so that one save reports every problem."""
    problems: list[tuple[str, str]] = []
    if effective_from is not None:
        if expires_on is not None and expires_on < effective_from:
            problems.append(("expires_on", "expires_on must not be before effective_from"))
        if terminated_on is not None and terminated_on < effective_from:
            problems.append(("terminated_on", "terminated_on must not be before effective_from"))
    if renewal == "auto" and notice_days is None:
        problems.append(("notice_days", "notice_days is required when renewal is auto"))
    return problems


class AgreementFields(Strict):
    party: Key
    kind: AgreementKind
    signed_on: Day | None = None
    effective_from: Day
    expires_on: Day | None = None
    terminated_on: Day | None = None
    renewal: Renewal = "fixed"
    # Checked even when left out: renewal "auto" requires it.
    notice_days: Annotated[int, Field(ge=0, le=3650)] | None = Field(default=None, validate_default=True)
    owner_email: Email
    document: Document | None = None
    data_categories: Annotated[list[DataCategory], Field(min_length=1, max_length=100), AfterValidator(_unique)]
    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=100), AfterValidator(_unique)]
    # Art. 28(3) requires the categories of data subjects in the contract; an agreement naming none covers no one.
    data_subjects: Annotated[list[DataSubject], Field(min_length=1, max_length=50), AfterValidator(_unique)]
    clauses: Annotated[list[Clause], Field(max_length=8), AfterValidator(_unique)] = []
    transfers_outside_eea_permitted: bool = False

    @field_validator("expires_on", "terminated_on", "notice_days")
    @classmethod
    def _term_is_consistent(cls, value: Any, info: ValidationInfo) -> Any:
        """Each cross-field rule fails on the field it names (fields are validated in order, so the ones
        it depends on, effective_from and renewal, are known by then)."""
        name = info.field_name or ""
        term = {**info.data, name: value}
        problems = agreement_term_problems(
            term.get("effective_from"),
            term.get("expires_on"),
            term.get("terminated_on"),
            term.get("renewal"),
            term.get("notice_days"),
        )
        for field, message in problems:
            if field == name:
                raise PydanticCustomError("term_problem", message, {"field": field})
        return value


class AgreementIn(AgreementFields):
    key: Key


class AgreementUpdate(ReadOnlyEcho, AgreementFields):
    version: Annotated[int, Field(ge=1)]


class Label(Strict):
    """A taxonomy key in the controller's own words, in Swedish and English (either may be left out)."""

    sv: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    en: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


KNOWN_TAXONOMY_KEYS = KNOWN_DATA_CATEGORIES | KNOWN_PURPOSES | KNOWN_DATA_SUBJECTS
TaxonomyKey = Annotated[
    str, StringConstraints(max_length=200), AfterValidator(_member_of(KNOWN_TAXONOMY_KEYS, "taxonomy key"))
]


LegalBasis = Literal[
    "consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"
]  # Art. 6(1)(a)-(f)
LEGAL_BASES: tuple[str, ...] = get_args(LegalBasis)


class LocalText(Strict):
    """A text the controller publishes, in Swedish and English (both: the record and the notice speak either)."""

    sv: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    en: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class ProcessingActivityIn(Strict):
    """One processing activity of the controller (Art. 30(1)(b)-(g), the privacy policy as code, DESIGN §2).
    Its recipients and transfers are derived from the registry, never typed."""

    key: Key
    name: LocalText
    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=100), AfterValidator(_unique)]
    legal_basis: LegalBasis
    data_subjects: Annotated[list[DataSubject], Field(min_length=1, max_length=50), AfterValidator(_unique)]
    data_categories: Annotated[list[DataCategory], Field(min_length=1, max_length=100), AfterValidator(_unique)]
    retention: LocalText
    security_measures: LocalText
    # Outreach to the person (Art. 21(2)-(3), recital 70): its purposes need a subject and obey direct-marketing
    # objections, like those under `marketing`.
    direct_marketing: bool = False


class ControllerContact(Strict):
    """The controller's contact details (Art. 30(1)(a))."""

    address: Annotated[str, StringConstraints(max_length=400)] | None = None
    email: Email | None = None
    phone: Annotated[str, StringConstraints(max_length=50)] | None = None


class ControllerIn(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    established_in: Territory
    timezone: Annotated[str, StringConstraints(max_length=64)] = DEFAULT_TIMEZONE
    # The purposes the privacy policy publishes (taxonomy keys); left out (null): not set, not checked. An empty
    # list is refused rather than read as "publishes nothing", which would silently block every share.
    published_purposes: (
        Annotated[list[Purpose], Field(min_length=1, max_length=100), AfterValidator(_unique)] | None
    ) = None
    # The controller's vocabulary: labels for the taxonomy keys it uses, shown before the keys in the UI.
    vocabulary: Annotated[dict[TaxonomyKey, Label], Field(max_length=2000)] | None = None
    contact: ControllerContact | None = None
    # The processing activities (left out: none kept); their purposes are published too.
    processing_activities: Annotated[list[ProcessingActivityIn], Field(max_length=500)] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {timezone!r} is not an IANA time zone") from None
        return timezone


class RegistryDocument(Strict):
    """The whole registry as one document (DESIGN §3)."""

    controller: ControllerIn
    parties: Annotated[list[PartyIn], Field(max_length=50_000)] = []
    agreements: Annotated[list[AgreementIn], Field(max_length=200_000)] = []


Scope = Literal["registry:read", "registry:write", "guard:check", "metrics:read", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)


class ApiKeyIn(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")]
    scopes: Annotated[list[Scope], Field(min_length=1)]


def _subject_identifier(value: str) -> str:
    try:
        return normalise_subject(value)
    except SubjectError as exc:
        raise ValueError(f"the identifier {exc}") from None


def _not_after_tomorrow(day: date) -> date:
    # (Tomorrow: a request received late in the evening abroad may be dated a day ahead of Stockholm.)
    if day > calendar_today(None) + timedelta(days=1):
        raise ValueError(f"{day.isoformat()} is in the future: the date the objection was received")
    return day


# A data subject's identifier (an e-mail address, a customer number), held only until it is digested.
SubjectIdentifier = Annotated[str, StringConstraints(max_length=320), AfterValidator(_subject_identifier)]


class ObjectionIn(Strict):
    """An objection or unsubscribe as received: `subject` is digested before anything stores it."""

    subject: SubjectIdentifier
    scope: ObjectionScope
    received_on: Annotated[Day, AfterValidator(_not_after_tomorrow)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RestrictionIn(Strict):
    """A restriction of processing (Art. 18) as received: `subject` is digested before anything stores it."""

    subject: SubjectIdentifier
    received_on: Annotated[Day, AfterValidator(_not_after_tomorrow)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ErasureIn(Strict):
    """An erasure (Art. 17) of one person: `subject` is digested and never stored."""

    subject: SubjectIdentifier


NotificationAction = Literal["rectification", "erasure", "restriction"]


class NotificationIn(Strict):
    """An Art. 19 notification of the recipients of one person's data."""

    subject: SubjectIdentifier
    action: NotificationAction
