"""The answers of the registry's API as types, for the OpenAPI document (the integration contract).

Handlers build their answers as plain dicts (registry/services/documents.py and friends); these TypedDicts
describe those dicts field by field, and the routes name them in their `responses`, so that a client generated
from the document gets typed parties, agreements, decisions, renewals, findings and errors instead of `object`.
They validate nothing at run time. tests/e2e/test_openapi_contract.py holds the document to them.
"""

from datetime import date, datetime
from typing import Any, Literal, NotRequired, TypedDict
from uuid import UUID

from litestar.openapi.datastructures import ResponseSpec

from guard.vocabulary import ReasonCode
from registry.schemas import AgreementKind, Clause, LocationKind, PartyCategory, Renewal, Role


class LocationAnswer(TypedDict):
    territory: str
    kind: LocationKind


class SubProcessorLinkAnswer(TypedDict):
    party: str
    authorisation: Literal["specific", "general"]
    notified_on: date | None
    objection_deadline: date | None
    approved_on: date | None
    objected_on: date | None


class ContactAnswer(TypedDict):
    name: NotRequired[str]
    email: NotRequired[str]
    phone: NotRequired[str]


class Versioned(TypedDict):
    version: int  # send it back with a change (PUT, PATCH, DELETE): 409 when someone changed the record since
    created_at: datetime
    updated_at: datetime


class PartyAnswer(Versioned):
    key: str
    name: str
    role: Role
    category: PartyCategory
    org_number: str | None
    established_in: str
    locations: list[LocationAnswer]
    sub_processors: list[SubProcessorLinkAnswer]
    active: bool
    international_organisation: bool
    contact: ContactAnswer | None


class AgreementDocumentAnswer(TypedDict):
    uri: str
    sha256: str | None
    size: NotRequired[int]  # only when the signed PDF is on file in the registry


class AgreementAnswer(Versioned):
    key: str
    party: str
    kind: AgreementKind
    signed_on: date | None
    effective_from: date
    expires_on: date | None
    terminated_on: date | None
    renewal: Renewal
    notice_days: int | None
    owner_email: str
    document: AgreementDocumentAnswer | None
    data_categories: list[str]
    purposes: list[str]
    data_subjects: list[str]
    clauses: list[Clause]
    transfers_outside_eea_permitted: bool


class PartyPage(TypedDict):
    items: list[PartyAnswer]
    total: int
    limit: int
    offset: int


class AgreementPage(TypedDict):
    items: list[AgreementAnswer]
    total: int
    limit: int
    offset: int


class ChangeAnswer(TypedDict):
    at: datetime
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ChangePage(TypedDict):
    items: list[ChangeAnswer]
    total: int
    limit: int
    offset: int


class ReasonAnswer(TypedDict):
    code: ReasonCode
    message: str
    party: NotRequired[str]
    territory: NotRequired[str]
    agreement: NotRequired[str]
    chain: NotRequired[list[str]]
    clauses: NotRequired[list[str]]
    category: NotRequired[str]


class GuardAnswer(TypedDict):
    """A guard answer (DESIGN §4.1); `allowed` is true only when `reasons` is empty."""

    decision_id: UUID
    allowed: bool
    reasons: list[ReasonAnswer]
    warnings: list[ReasonAnswer]
    agreement: str | None
    ruleset: str
    decided_at: datetime
    sequence: int  # the entry's place in the decision log (GET /api/guard/decisions/{decision_id} proves it)


class DecisionRequest(TypedDict):
    recipient: str
    purpose: str
    data_categories: list[str]
    data_subject: NotRequired[str]
    destination: NotRequired[str]


class DecisionAnswer(TypedDict):
    """One logged guard decision."""

    seq: int
    decision_id: UUID
    decided_at: datetime
    caller: str
    recipient: str
    allowed: bool
    outcome: Literal["allowed", "denied"]
    request: DecisionRequest
    reasons: list[ReasonAnswer]
    warnings: list[ReasonAnswer]
    agreement: str | None
    ruleset: str
    request_id: str | None  # the HTTP request's id (its X-Request-Id); None for entries logged before it was kept


class DecisionPage(TypedDict):
    items: list[DecisionAnswer]
    total: int  # exact when total_exact; past 1,000 matches of a filter, PostgreSQL's estimate
    total_exact: bool
    limit: int
    offset: int
    next_cursor: str | None  # pass as `cursor` for the next (older) page; None on the last


class RenewalAnswer(TypedDict):
    date: date
    kind: str  # what falls due that day: the expiry, or the last day to give notice
    days_left: int
    agreement: str
    agreement_kind: AgreementKind
    party: str
    party_name: str
    renewal: Renewal
    expires_on: date | None
    notice_days: int | None
    owner_email: str


class RenewalsAnswer(TypedDict):
    today: date
    within: int
    items: list[RenewalAnswer]


class FindingAnswer(TypedDict):
    """What would block shares with a party today: the party, then the guard reason's fields."""

    party: str
    code: str  # a guard reason code (ReasonCode), or AGREEMENT_UNDOCUMENTED for a dpa with no signed copy on file
    message: str
    territory: NotRequired[str]
    agreement: NotRequired[str]
    chain: NotRequired[list[str]]
    clauses: NotRequired[list[str]]
    category: NotRequired[str]
    blocks: bool  # whether the guard refuses shares because of it (false: an evidence gap the guard does not check)


class FindingsAnswer(TypedDict):
    findings: list[FindingAnswer]
    count: int
    checked_on: date


class SectionChanges(TypedDict):
    created: list[str]
    updated: dict[str, list[str]]  # key → the fields that changed
    removed: list[str]


class ControllerChanges(TypedDict):
    updated: list[str]


class ChangeSetAnswer(TypedDict):
    controller: ControllerChanges
    parties: SectionChanges
    agreements: SectionChanges


class ImportAnswer(TypedDict):
    """What an import changed, or with `dry_run=true` would change (nothing is written then)."""

    status: Literal["imported", "preview"]
    created: int
    updated: int
    deleted: int
    unchanged: int
    changes: ChangeSetAnswer


class RemovedAnswer(TypedDict):
    entity: Literal["party", "agreement"]
    key: str
    removed_at: datetime
    removed_by: str
    history: str  # its history's URL
    restore: str  # POST here to bring it back


class RemovedList(TypedDict):
    items: list[RemovedAnswer]


class ApiKeyAnswer(TypedDict):
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class CreatedApiKey(TypedDict):
    name: str
    scopes: list[str]
    token: str  # shown once, here: only its digest is stored


class RevokedApiKey(TypedDict):
    name: str
    status: Literal["revoked"]


class HealthLiveAnswer(TypedDict):
    status: Literal["ok"]


class HealthReadyAnswer(TypedDict):
    """Ready (200) or not (503): the database and the guard's snapshot, each with its state."""

    status: Literal["ok", "unavailable"]
    database: NotRequired[str]  # "ok", or the error's class name; absent while the instance is still starting
    guard: dict[str, Any]  # the snapshot's status, revision and age; the objection index's


class ObjectionAnswer(TypedDict):
    id: int
    subject_digest: str  # the person's identifier is never stored, only this keyed digest
    scope: Literal["direct_marketing", "all"]
    received_on: date
    source: str
    recorded_by: str
    recorded_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    in_force: bool


class ObjectionPage(TypedDict):
    items: list[ObjectionAnswer]
    total: int
    limit: int
    offset: int


class ObjectionImportAnswer(TypedDict):
    rows: int
    recorded: int
    already_in_force: int


class SubjectRecipientAnswer(TypedDict):
    party: str
    name: str | None
    role: Role | None
    contact: dict[str, Any] | None  # the party's contact (name, email, phone, webhook)
    established_in: str | None
    territories: list[str]  # the party's own and every sub-processor's in its chain
    # Each {party, name, role, established_in, territories, contact, sub_processors: [...]}, as deep as the chain.
    sub_processors: list[dict[str, Any]]
    purposes: list[str]
    categories: list[str]
    first_shared_at: datetime
    last_shared_at: datetime
    count: int


class SubjectRecipientsAnswer(TypedDict):
    """Allowed shares that named the person, trials left out (Art. 15(1)(c)); `cannot_know` says what not."""

    subject_digest: str
    period: dict[str, Any]  # {"from": the log's first entry (or null), "to": now}
    recipients: list[SubjectRecipientAnswer]
    cannot_know: str


class RestrictionAnswer(TypedDict):
    id: int
    subject_digest: str  # the person's identifier is never stored, only this keyed digest
    received_on: date
    source: str
    recorded_by: str
    recorded_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None
    in_force: bool


class RestrictionPage(TypedDict):
    items: list[RestrictionAnswer]
    total: int
    limit: int
    offset: int


class ErasureAnswer(TypedDict):
    """What an erasure unlinked; the erasure's id is on record, the identifier nowhere."""

    erasure: str
    unlinked_log_entries: int
    log_entries_still_linked: int  # logged before migration 0017, with the digest inside their hashed request
    objections_kept_as_suppression: int
    withdrawn_objections_unlinked: int
    restrictions_lifted: int


class NotificationDelivery(TypedDict):
    id: int
    party: str
    channel: Literal["email", "webhook", "none"]
    status: Literal["sent", "pending", "failed", "no_contact"]
    action: Literal["rectification", "erasure", "restriction"]
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class NotificationsAnswer(TypedDict):
    batch: str
    recipients: list[NotificationDelivery]


class ConsistencyAnswer(TypedDict):
    """An RFC 6962 consistency proof that the log's tree of `second` leaves extends its tree of `first`, with the
    signed checkpoints at both sizes where the log stores them (a witness checks it without reading the log)."""

    first: int
    second: int
    proof: list[str]  # base64 hashes, RFC 6962 section 2.1.2
    first_checkpoint: str | None  # the signed checkpoint note at `first` leaves (C2SP signed-note), if stored
    second_checkpoint: str | None


class ReceiptAnswer(TypedDict):
    """A logged decision with its proof: the content its hash covers, the hashes chaining it, its leaf in the
    log's Merkle tree and, once a checkpoint covers it, that signed checkpoint and the inclusion proof."""

    sequence: int
    writer: str
    wseq: int
    content: dict[str, Any]  # exactly what the entry's hash covers (canonical JSON of these fields)
    prev_hash: str
    hash: str
    leaf_index: int | None
    checkpoint: str | None  # the signed checkpoint note (C2SP signed-note)
    inclusion_proof: list[str] | None  # base64 hashes, RFC 6962


class CalendarFeedAnswer(TypedDict):
    name: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class CreatedCalendarFeed(TypedDict):
    name: str
    url: str  # shown once, here: only its token's digest is stored


class RevokedCalendarFeed(TypedDict):
    name: str
    status: Literal["revoked"]


class FieldProblem(TypedDict):
    key: str  # the field's path, e.g. parties[3].locations[0].territory
    message: str


class ErrorAnswer(TypedDict):
    """Every 4xx and 5xx: the status, what is wrong, and for a 400 each field by its path."""

    status_code: int
    detail: str
    extra: NotRequired[list[FieldProblem]]
    current_version: NotRequired[int]  # a 409 of a stale version: the version now
    allowed: NotRequired[bool]  # a guard route that could not decide: always false


ERROR_DESCRIPTIONS = {
    400: "Bad input: `extra` names each field by its path",
    401: "No API key, or an unknown or revoked one",
    403: "The key lacks the scope this route needs",
    404: "No such record",
    409: "Stale `version` (the record changed since it was read; `current_version` is now), or a duplicate key",
    413: "The body is larger than this route takes",
    415: "The body's media type is not one this route takes",
    422: "The request is well formed but cannot be carried out",
    429: "Too many requests: retry after the `Retry-After` header's seconds",
}


def answers(status: int, answer: Any, description: str, *errors: int) -> dict[int, ResponseSpec]:
    """A route's `responses`: its typed answer, and the errors it can give (each an `ErrorAnswer`)."""
    documented = {status: ResponseSpec(answer, description=description, generate_examples=False)}
    for code in errors:
        documented[code] = ResponseSpec(ErrorAnswer, description=ERROR_DESCRIPTIONS[code], generate_examples=False)
    return documented
