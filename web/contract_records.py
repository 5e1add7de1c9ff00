"""The answers of the records API (Art. 30 record per processing activity, the privacy notice) as types, for the
OpenAPI document: the rest of the contract is web/contract.py."""

from datetime import date, datetime
from typing import Any, Literal, NotRequired, TypedDict

from registry.schemas import LegalBasis, PartyCategory, Role


class ControllerContactAnswer(TypedDict):
    address: NotRequired[str]
    email: NotRequired[str]
    phone: NotRequired[str]


class RecordControllerAnswer(TypedDict):
    """Art. 30(1)(a): the controller's name and contact details."""

    name: str
    established_in: str
    timezone: str
    contact: ControllerContactAnswer


class ActivityEvidenceAnswer(TypedDict):
    shares_allowed: int  # the guard's allowed shares to this recipient for the activity's purposes in the period
    shares_denied: int


class ActivityRecipientAnswer(TypedDict):
    """A recipient of a processing activity, derived from the agreements in force and the sub-processor chains."""

    key: str
    name: str
    role: Role
    role_text: str
    category: PartyCategory
    category_text: str
    via: list[str] | None  # the chain through which a sub-processor receives the data
    agreements: list[str]
    purposes: list[str]
    data_categories: list[str]
    guard: Literal["allowed", "refused"]  # the guard's standing verdict on shares to it
    guard_text: str
    guard_reasons: list[str]  # the reason codes of a refusal
    transfers_outside_eea_permitted: bool  # an agreement of it in force permits transfers outside the EEA
    permitting_agreements: list[str]
    enforcement: ActivityEvidenceAnswer


class ActivityTransferAnswer(TypedDict):
    """A place outside the EEA (or an agreement permitting transfers there): every one refused by policy."""

    recipient: str
    party: str
    territory: str | None
    country: str
    kind: str
    kind_text: str
    chain: list[str] | None
    status: str
    decision: Literal["refused_by_policy"]
    decision_text: str
    safeguards: None  # no safeguard opens a transfer under this policy
    transfers_outside_eea_permitted: bool


class ActivityAnswer(TypedDict):
    """One processing activity's entry of the record (Art. 30(1)(b)-(g)), in the request's language."""

    key: str
    name: str
    purposes: list[str]
    purposes_text: list[str]
    legal_basis: LegalBasis
    legal_basis_text: str
    data_subjects: list[str]
    data_subjects_text: list[str]
    data_categories: list[str]
    data_categories_text: list[str]
    direct_marketing: bool
    recipients: list[ActivityRecipientAnswer]
    transfers: list[ActivityTransferAnswer]
    retention: str
    security_measures: str


class Article30Answer(TypedDict):
    """The record of processing activities (Art. 30(1)) for a period, in the language of Accept-Language: the
    controller, each processing activity, the recipients with their territories and agreements, third-country
    transfers, and the guard's enforcement in the period."""

    record: str
    language: Literal["sv", "en"]
    controller: RecordControllerAnswer | None
    activities: list[ActivityAnswer]
    generated_at: datetime
    as_of: date
    period: dict[str, str]  # from, to (ISO dates) and the controller's timezone
    categories_of_recipients: list[dict[str, Any]]  # role, category, recipients (party keys)
    third_country_transfers_summary: str
    decision_log: dict[str, Any]  # shares_allowed, shares_denied, unregistered_recipients
    recipients: list[dict[str, Any]]
    recipients_total: NotRequired[int]  # a page of recipients (limit, offset): how many in all
    third_country_transfers: list[dict[str, Any]]


class NoticeRecipientAnswer(TypedDict):
    key: str
    name: str
    role: str
    category: str


class NoticeActivityAnswer(TypedDict):
    key: str
    name: str
    recipients: list[NoticeRecipientAnswer]
    text: str


class NoticeWithheldAnswer(TypedDict):
    key: str
    name: str
    reasons: list[str]


class NoticePublicationAnswer(TypedDict):
    published_at: datetime
    published_by: str
    registry_revision: int
    digest: str
    text: str


class NoticeFindingAnswer(TypedDict):
    code: Literal["NOTICE_OUTDATED"]
    blocks: bool
    message: str


class PrivacyNoticeAnswer(TypedDict):
    """The privacy notice's recipients and transfers section, generated in the request's language."""

    language: Literal["sv", "en"]
    as_of: date
    title: str
    paragraphs: list[str]
    activities: list[NoticeActivityAnswer]
    transfer_sentence: str
    text: str  # the whole section as published
    withheld: list[NoticeWithheldAnswer]  # recipients the guard refuses: not named in the text
    digest: str  # SHA-256 of the section in both languages
    registry_revision: int
    published: NoticePublicationAnswer | None
    findings: list[NoticeFindingAnswer]


class PrivacyNoticePublishedAnswer(TypedDict):
    published_at: datetime
    published_by: str
    registry_revision: int
    digest: str
