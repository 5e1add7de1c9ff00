"""Plain HTML forms ↔ the registry's input schemas, and error messages in words a lawyer understands.

The schemas and services keep every rule; this module only moves values between form fields and
documents, and rewords the errors they report so each one can sit next to its field."""

import re
from dataclasses import dataclass, field
from typing import Any

from fideslang import DEFAULT_TAXONOMY
from litestar.datastructures import FormMultiDict
from pydantic import ValidationError

from guard.policy import ART28_CLAUSE_LETTERS, ART28_CLAUSES
from registry.errors import FieldError
from registry.services.registry_document import pydantic_field_errors

LABELS = {
    "key": "Key",
    "name": "Name",
    "role": "Role",
    "category": "Category",
    "org_number": "Organisation number",
    "established_in": "Established in",
    "active": "Active",
    "contact": "Contact",
    "party": "Party",
    "kind": "Kind",
    "territory": "Territory",
    "signed_on": "Signed on",
    "effective_from": "Effective from",
    "expires_on": "Expires on",
    "terminated_on": "Terminated on",
    "renewal": "Renewal",
    "notice_days": "Notice period (days)",
    "owner_email": "Owner e-mail",
    "document": "Document",
    "uri": "Document address",
    "sha256": "Document SHA-256",
    "data_categories": "Data categories",
    "purposes": "Purposes",
    "data_subjects": "Data subjects",
    "clauses": "Art. 28(3) clauses",
    "transfers_outside_eea_permitted": "Transfers outside the EEA permitted",
    "approved_on": "Approved on",
    "objection_deadline": "Objection deadline",
    "email": "E-mail",
    "phone": "Phone",
    "version": "Version",
}

CLAUSE_DESCRIPTIONS = {
    "instructions": "processes only on documented instructions",
    "confidentiality": "people with access are bound to confidentiality",
    "security": "takes the security measures of Art. 32",
    "sub_processing": "engages sub-processors only with authorisation, on the same terms",
    "data_subject_rights": "helps answer data subjects' requests",
    "compliance_assistance": "helps with security, breach notices and impact assessments",
    "deletion_or_return": "deletes or returns the data when the service ends",
    "audits": "allows and contributes to audits and inspections",
}
CLAUSE_CHOICES = [(c, ART28_CLAUSE_LETTERS[c], CLAUSE_DESCRIPTIONS[c]) for c in ART28_CLAUSES]

# Model-wide checks name the field first ("expires_on must not be …"); that field gets the message.
_LEADING_FIELD = re.compile(r"^([a-z_]+) (must|is required)")
_REWORDED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Field required$"), "This is required."),
    (re.compile(r"^Input should be a valid date"), "Enter a date as year-month-day, for example 2026-01-31."),
    (re.compile(r"^Input should be a valid integer"), "Enter a whole number."),
    (re.compile(r"^Input should be greater than or equal to (\d+)"), r"Enter a number of at least \1."),
    (re.compile(r"^Input should be less than or equal to (\d+)"), r"Enter a number of at most \1."),
    (re.compile(r"^Input should be .*'"), "Choose one of the options offered."),
    (
        re.compile(r"^String should match pattern '\^\[a-z0-9\]"),
        "Use lower-case letters, digits, - and _ only, "
        "starting with a letter or digit (for example nordfrakt-dpa-2026).",
    ),
    (
        re.compile(r"^String should match pattern '\^\[0-9a-f\]\{64\}"),
        "A SHA-256 checksum is 64 characters 0-9 and a-f.",
    ),
    (re.compile(r"^String should have at least 1 character"), "This is required."),
    (re.compile(r"^String should have at most (\d+) characters?"), r"This is too long: at most \1 characters."),
    (re.compile(r"^List should have at least 1 item"), "Choose at least one."),
    (re.compile(r"^List should have at most (\d+) items?"), r"Choose at most \1."),
    (
        re.compile(r"^'([^']*)' is not an ISO 3166 territory code.*"),
        r"“\1” is not a territory code we know. Use the "
        "two-letter ISO code of the country, such as SE, DE or US, or of a region, such as ES-CN.",
    ),
    (re.compile(r"^'([^']*)' is not an e-mail address"), r"“\1” is not an e-mail address."),
    (re.compile(r"^'([^']*)' is listed twice"), r"“\1” is listed twice."),
    (re.compile(r"^no party with key '([^']*)'"), r"There is no party with the key “\1” in the registry."),
    (
        re.compile(r"^expires_on must not be before effective_from"),
        "The expiry date cannot be before the date the agreement takes effect.",
    ),
    (
        re.compile(r"^terminated_on must not be before effective_from"),
        "The termination date cannot be before the date the agreement takes effect.",
    ),
    (
        re.compile(r"^notice_days is required when renewal is auto"),
        "An agreement that renews automatically needs a notice period in days.",
    ),
    (re.compile(r"^Extra inputs are not permitted"), "This field is not part of the form."),
]


def plain_words(message: str) -> str:
    for pattern, replacement in _REWORDED:
        if pattern.search(message):
            return pattern.sub(replacement, message)
    for name, label in LABELS.items():
        message = re.sub(rf"\b{name}\b", label.lower(), message)
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def field_messages(errors: list[FieldError], *, prefix: str = "") -> dict[str, list[str]]:
    """Errors by form field path (`locations[0].territory`), each reworded; unplaceable ones under ''."""
    out: dict[str, list[str]] = {}
    for err in errors:
        path = err.field
        for strip in (prefix, "party.", "agreement."):
            if strip and path.startswith(strip):
                path = path[len(strip) :]
        if path in {"(document)", prefix.rstrip("."), "party", "agreement"} and prefix:
            path = ""
        if path in {"(document)"}:
            path = ""
        leading = _LEADING_FIELD.match(err.message)
        if not path and leading:
            path = leading.group(1)
        out.setdefault(path, []).append(plain_words(err.message))
    return out


def validation_messages(exc: ValidationError) -> dict[str, list[str]]:
    return field_messages(pydantic_field_errors(exc))


def _text(form: FormMultiDict, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _optional(form: FormMultiDict, name: str) -> str | None:
    return _text(form, name) or None


def _texts(form: FormMultiDict, name: str) -> list[str]:
    return [v.strip() if isinstance(v, str) else "" for v in form.getall(name, [])]


def party_from_form(form: FormMultiDict) -> dict[str, Any]:
    """A party document as typed; rows left entirely blank are the form's spare rows and are dropped."""
    locations = [
        {"territory": t.upper(), "kind": k}
        for t, k in zip(_texts(form, "loc_territory"), _texts(form, "loc_kind"), strict=False)
        if t or k
    ]
    links = [
        {"party": p, "approved_on": a or None, "objection_deadline": d or None}
        for p, a, d in zip(
            _texts(form, "sub_party"),
            _texts(form, "sub_approved_on"),
            _texts(form, "sub_objection_deadline"),
            strict=False,
        )
        if p or a or d
    ]
    contact = {
        k: v
        for k, v in {
            "name": _optional(form, "contact_name"),
            "email": _optional(form, "contact_email"),
            "phone": _optional(form, "contact_phone"),
        }.items()
        if v
    }
    doc: dict[str, Any] = {
        "name": _text(form, "name"),
        "role": _text(form, "role"),
        "category": _text(form, "category"),
        "org_number": _optional(form, "org_number"),
        "established_in": _text(form, "established_in").upper(),
        "locations": locations,
        "sub_processors": links,
        "active": form.get("active") == "on",
        "contact": contact or None,
    }
    if "key" in form:
        doc["key"] = _text(form, "key")
    return doc


def agreement_from_form(form: FormMultiDict) -> dict[str, Any]:
    uri = _optional(form, "document_uri")
    notice = _text(form, "notice_days")
    doc: dict[str, Any] = {
        "party": _text(form, "party"),
        "kind": _text(form, "kind"),
        "signed_on": _optional(form, "signed_on"),
        "effective_from": _optional(form, "effective_from"),
        "expires_on": _optional(form, "expires_on"),
        "terminated_on": _optional(form, "terminated_on"),
        "renewal": _text(form, "renewal") or "fixed",
        "notice_days": notice or None,
        "owner_email": _text(form, "owner_email"),
        "document": {"uri": uri, "sha256": _optional(form, "document_sha256")} if uri else None,
        "data_categories": _texts(form, "data_categories"),
        "purposes": _texts(form, "purposes"),
        "data_subjects": _texts(form, "data_subjects"),
        "clauses": _texts(form, "clauses"),
        "transfers_outside_eea_permitted": form.get("transfers_outside_eea_permitted") == "on",
    }
    if "key" in form:
        doc["key"] = _text(form, "key")
    return doc


def form_version(form: FormMultiDict) -> int | str:
    raw = _text(form, "version")
    return int(raw) if raw.isdigit() else raw


@dataclass(frozen=True)
class TaxonomyOption:
    key: str
    name: str
    depth: int


def _options(items: Any) -> list[TaxonomyOption]:
    out = [TaxonomyOption(str(i.fides_key), str(i.name or i.fides_key), str(i.fides_key).count(".")) for i in items]
    return sorted(out, key=lambda o: o.key)


TAXONOMY = {
    "data_categories": _options(DEFAULT_TAXONOMY.data_category),
    "purposes": _options(DEFAULT_TAXONOMY.data_use),
    "data_subjects": _options(DEFAULT_TAXONOMY.data_subject),
}


@dataclass
class Changed:
    """One field where the saved record differs from what the user submitted (shown on a conflict)."""

    label: str
    saved: str
    yours: str


def _show(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_show(v)}" for k, v in value.items() if v is not None)
    return str(value)


@dataclass
class Differences:
    fields: list[Changed] = field(default_factory=list)


def differences(saved: dict[str, Any], yours: dict[str, Any]) -> list[Changed]:
    out = []
    for name, value in yours.items():
        if name in {"key", "version"}:
            continue
        theirs = saved.get(name)
        if _show(theirs) != _show(value):
            out.append(Changed(LABELS.get(name, name), _show(theirs), _show(value)))
    return out
