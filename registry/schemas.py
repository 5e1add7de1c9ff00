"""Request and document schemas. These validate input (table models skip validation, DESIGN §7); the
rules that need the database (unknown keys, cycles, roles) live in registry/services."""

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from guard.policy import ART28_CLAUSES, KNOWN_DATA_CATEGORIES, KNOWN_DATA_SUBJECTS, KNOWN_PURPOSES
from guard.territory import is_iso_territory

ROLES = ("processor", "sub_processor", "independent_controller", "authority")
CATEGORIES = (
    "transport",
    "marketing",
    "it_services",
    "web_platform_payments",
    "manufacturer",
    "supplier",
    "reseller",
    "authority",
    "other",
)
LOCATION_KINDS = ("storage", "processing", "support_access", "backup")
AGREEMENT_KINDS = ("dpa", "data_sharing")
ROLE_FOR_AGREEMENT_KIND = {"dpa": ("processor", "sub_processor"), "data_sharing": ("independent_controller",)}

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
Renewal = Literal["fixed", "auto"]

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _territory(code: str) -> str:
    if not is_iso_territory(code):
        raise ValueError(
            f"{code!r} is not an ISO 3166 territory code; use upper-case ISO 3166-1 alpha-2 (SE) or ISO 3166-2 (ES-CN)"
        )
    return code


def _member_of(known: frozenset[str], what: str) -> Any:
    def check(key: str) -> str:
        if key not in known:
            raise ValueError(f"{key!r} is not a {what} of the Fides taxonomy")
        return key

    return check


def _email(value: str) -> str:
    if not EMAIL_PATTERN.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
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


class LocationIn(Strict):
    territory: Territory
    kind: LocationKind


class SubProcessorLinkIn(Strict):
    party: Key
    approved_on: date | None = None
    objection_deadline: date | None = None


class Contact(Strict):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: Email | None = None
    phone: Annotated[str, StringConstraints(max_length=50)] | None = None


class PartyFields(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Role
    category: PartyCategory
    org_number: Annotated[str, StringConstraints(max_length=32)] | None = None
    established_in: Territory
    locations: Annotated[list[LocationIn], Field(max_length=200)] = []
    sub_processors: Annotated[list[SubProcessorLinkIn], Field(max_length=200)] = []
    active: bool = True
    contact: Contact | None = None

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


class PartyUpdate(PartyFields):
    """`PUT /api/parties/{key}`: the whole party, and the version the edit was based on."""

    version: Annotated[int, Field(ge=1)]


class Document(Strict):
    uri: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None


class AgreementFields(Strict):
    party: Key
    kind: AgreementKind
    signed_on: date | None = None
    effective_from: date
    expires_on: date | None = None
    terminated_on: date | None = None
    renewal: Renewal = "fixed"
    notice_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    owner_email: Email
    document: Document | None = None
    data_categories: Annotated[list[DataCategory], Field(min_length=1, max_length=100), AfterValidator(_unique)]
    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=100), AfterValidator(_unique)]
    data_subjects: Annotated[list[DataSubject], Field(max_length=50), AfterValidator(_unique)] = []
    clauses: Annotated[list[Clause], Field(max_length=8), AfterValidator(_unique)] = []
    transfers_outside_eea_permitted: bool = False

    @model_validator(mode="after")
    def _dates_in_order(self) -> "AgreementFields":
        if self.expires_on is not None and self.expires_on < self.effective_from:
            raise ValueError("expires_on must not be before effective_from")
        if self.terminated_on is not None and self.terminated_on < self.effective_from:
            raise ValueError("terminated_on must not be before effective_from")
        if self.renewal == "auto" and self.notice_days is None:
            raise ValueError("notice_days is required when renewal is auto")
        return self


class AgreementIn(AgreementFields):
    key: Key


class AgreementUpdate(AgreementFields):
    version: Annotated[int, Field(ge=1)]


class ControllerIn(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    established_in: Territory
    timezone: Annotated[str, StringConstraints(max_length=64)] = "Europe/Stockholm"

    @model_validator(mode="after")
    def _known_timezone(self) -> "ControllerIn":
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from None
        return self


class RegistryDocument(Strict):
    """The whole registry as one document (DESIGN §3)."""

    controller: ControllerIn
    parties: Annotated[list[PartyIn], Field(max_length=50_000)] = []
    agreements: Annotated[list[AgreementIn], Field(max_length=200_000)] = []


class ApiKeyIn(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")]
    scopes: Annotated[list[Literal["registry:read", "registry:write", "guard:check", "admin"]], Field(min_length=1)]
