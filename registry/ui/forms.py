"""Plain HTML forms ↔ the registry's input schemas, and error messages in words a lawyer understands.

The schemas and services keep every rule; this module only moves values between form fields and
documents, and rewords the errors they report so each one can sit next to its field."""

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fideslang import DEFAULT_TAXONOMY
from litestar.datastructures import FormMultiDict
from pydantic import ValidationError

from guard.policy import ART28_CLAUSE_LETTERS, ART28_CLAUSES, SPECIAL_CATEGORY_ROOTS, covers
from registry.errors import FieldError
from registry.schemas import agreement_term_problems
from registry.services.registry_document import pydantic_field_errors

LABELS = {
    "key": "Key",
    "name": "Name",
    "role": "Role",
    "category": "Category",
    "org_number": "Organisation number",
    "established_in": "Established in",
    "locations": "Locations",
    "sub_processors": "Sub-processors",
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
# Each pattern matches the whole message (pydantic appends details such as the pattern or "after validation,
# not 0"); what it matched is replaced, so nothing technical is left over.
_KEY_ADVICE = (
    "Use lower-case letters, digits, - and _ only, starting with a letter or digit "
    "(for example nordfrakt or nordfrakt-dpa-2026)."
)
_TERRITORY_ADVICE = "Use the two-letter ISO code of the country, such as SE, DE or US, or of a region, such as ES-CN."
_REWORDED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Field required$"), "This is required."),
    (re.compile(r"^Input should be a valid date.*$", re.S), "Enter a date as year-month-day, for example 2026-01-31."),
    (re.compile(r"^Input should be a valid integer.*$", re.S), "Enter a whole number."),
    (re.compile(r"^Input should be greater than or equal to (\d+).*$", re.S), r"Enter a number of at least \1."),
    (re.compile(r"^Input should be less than or equal to (\d+).*$", re.S), r"Enter a number of at most \1."),
    (re.compile(r"^Input should be .*'.*$", re.S), "Choose one of the options offered."),
    (re.compile(r"^String should match pattern '\^\[a-z0-9\].*$", re.S), _KEY_ADVICE),
    (
        re.compile(r"^String should match pattern '\^\[0-9a-f\]\{64\}.*$", re.S),
        "A SHA-256 checksum is 64 characters 0-9 and a-f.",
    ),
    (re.compile(r"^String should have at least 1 character.*$", re.S), "This is required."),
    (
        re.compile(r"^String should have at most (\d+) characters?.*$", re.S),
        r"This is too long: at most \1 characters.",
    ),
    (re.compile(r"^List should have at least 1 item.*$", re.S), "Choose at least one."),
    (re.compile(r"^List should have at most (\d+) items?.*$", re.S), r"Choose at most \1."),
    (re.compile(r"^'' is not an ISO 3166 territory code.*$", re.S), "Enter a territory code, such as SE."),
    # Codes people often type for a place that ISO spells otherwise.
    (
        re.compile(r"^'(UK)' is not an ISO 3166 territory code.*$", re.S),
        r"“\1” is not a territory code we know. For the United Kingdom use GB.",
    ),
    (
        re.compile(r"^'(EL)' is not an ISO 3166 territory code.*$", re.S),
        r"“\1” is not a territory code we know. For Greece use GR.",
    ),
    (
        re.compile(r"^'(EU|EEA|EEE)' is not an ISO 3166 territory code.*$", re.S),
        r"“\1” is not a territory: name the country, such as SE or DE.",
    ),
    (
        re.compile(r"^'([^']*)' is not an ISO 3166 territory code.*$", re.S),
        r"“\1” is not a territory code we know. " + _TERRITORY_ADVICE,
    ),
    (re.compile(r"^'([^']*)' is not an e-mail address.*$", re.S), r"“\1” is not an e-mail address."),
    (re.compile(r"^'([^']*)' is listed twice.*$", re.S), r"“\1” is listed twice."),
    (re.compile(r"^no party with key '([^']*)'.*$", re.S), r"There is no party with the key “\1” in the registry."),
    (
        re.compile(r"^expires_on must not be before effective_from.*$", re.S),
        "The expiry date cannot be before the date the agreement takes effect.",
    ),
    (
        re.compile(r"^terminated_on must not be before effective_from.*$", re.S),
        "The termination date cannot be before the date the agreement takes effect.",
    ),
    (
        re.compile(r"^notice_days is required when renewal is auto.*$", re.S),
        "An agreement that renews automatically needs a notice period in days.",
    ),
    (re.compile(r"^Extra inputs are not permitted.*$", re.S), "This field is not part of the form."),
]
# A choice left empty fails the key pattern or the list of options; say what to choose instead.
_EMPTY_CHOICE = re.compile(
    r"^(Field required|String should (match pattern|have at least 1 character)|Input should be '|'' is not an ISO).*$",
    re.S,
)
_EMPTY_LIST = re.compile(r"^List should have at least 1 item.*$", re.S)
_FIELD_ADVICE: list[tuple[re.Pattern[str], re.Pattern[str], str]] = [
    (re.compile(r"^party$"), _EMPTY_CHOICE, "Choose the party the agreement is with."),
    (re.compile(r"^sub_processors\[\d+\]\.party$"), _EMPTY_CHOICE, "Choose the sub-processor, or empty the whole row."),
    (
        re.compile(r"^locations\[\d+\]\.kind$"),
        _EMPTY_CHOICE,
        "Choose what happens there: storage, processing, backup or support access.",
    ),
    (re.compile(r"^locations\[\d+\]\.territory$"), _EMPTY_CHOICE, "Enter the territory code, or empty the whole row."),
    (re.compile(r"^data_categories$"), _EMPTY_LIST, "Choose at least one data category."),
    (re.compile(r"^purposes$"), _EMPTY_LIST, "Choose at least one purpose."),
    (re.compile(r"^data_subjects$"), _EMPTY_LIST, "Choose at least one data subject (Art. 28(3) names them)."),
]


def plain_words(message: str, field: str = "") -> str:
    """One validation message in words a lawyer understands; `field` (a form path) sharpens some of them."""
    for field_pattern, message_pattern, advice in _FIELD_ADVICE:
        if field_pattern.match(field) and message_pattern.match(message):
            return advice
    for pattern, replacement in _REWORDED:
        if pattern.search(message):
            return pattern.sub(replacement, message)
    for name, label in LABELS.items():
        message = re.sub(rf"\b{name}\b", label.lower(), message)
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def agreement_cross_checks(doc: dict[str, Any]) -> dict[str, list[str]]:
    """The schema's rules across the agreement's term fields (registry.schemas.agreement_term_problems), in
    plain words. The schema runs them only once every field is valid; the form asks them up front so that
    one save reports every problem, not half of them."""

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(str(doc.get(name) or ""))
        except ValueError:
            return None

    try:
        notice_days = int(doc["notice_days"]) if doc.get("notice_days") not in (None, "") else None
    except (TypeError, ValueError):
        notice_days = -1  # not a number: reported on its own field; it is not missing
    problems = agreement_term_problems(
        day("effective_from"), day("expires_on"), day("terminated_on"), doc.get("renewal"), notice_days
    )
    return {field: [plain_words(message, field)] for field, message in problems}


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
        out.setdefault(path, []).append(plain_words(err.message, path))
    return out


def validation_messages(exc: ValidationError, also: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The schema's errors by field; `also` adds checks for fields that have none of their own yet."""
    out = field_messages(pydantic_field_errors(exc))
    for name, messages in (also or {}).items():
        if name not in out:
            out[name] = messages
    return out


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
    parties = _texts(form, "sub_party")
    rows = len(parties)

    def column(name: str) -> list[str]:
        # How each link was authorised (issue 21) rides along in hidden fields, so that saving the form keeps it;
        # a form without them (an older page) leaves the defaults.
        values = _texts(form, name)
        return (values + [""] * rows)[:rows]

    links = [
        {
            "party": p,
            "authorisation": authorisation or "specific",
            "notified_on": notified or None,
            "objection_deadline": d or None,
            "approved_on": a or None,
            "objected_on": objected or None,
        }
        for p, a, d, authorisation, notified, objected in zip(
            parties,
            column("sub_approved_on"),
            column("sub_objection_deadline"),
            column("sub_authorisation"),
            column("sub_notified_on"),
            column("sub_objected_on"),
            strict=True,
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


def guard_refusals(doc: dict[str, Any]) -> dict[str, list[str]]:
    """What in this agreement makes the guard refuse every share under it, in plain words, by field: asked
    before saving, so that legal staff save such an agreement only knowingly ("save anyway")."""
    refusals: dict[str, list[str]] = {}
    if doc.get("kind") == "dpa":
        missing = [c for c in ART28_CLAUSES if c not in (doc.get("clauses") or [])]
        if missing:
            named = ", ".join(f"{ART28_CLAUSE_LETTERS[c]} {c.replace('_', ' ')}" for c in missing)
            refusals["clauses"] = [
                f"The guard will refuse every share under this agreement: it lacks Art. 28(3) {named}."
            ]
    if doc.get("transfers_outside_eea_permitted"):
        refusals["transfers_outside_eea_permitted"] = [
            "The guard will refuse every share under this agreement: it permits transfers outside the EEA."
        ]
    return refusals


def save_anyway(form: FormMultiDict) -> bool:
    """The user has seen the guard's refusals and saves the agreement all the same."""
    return form.get("save_anyway") == "on"


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
    special: str = ""  # "special" (Art. 9/10 data), "includes" (an entry above such data) or ""


def _special(key: str) -> str:
    if any(covers(root, key) for root in SPECIAL_CATEGORY_ROOTS):
        return "special"
    return "includes" if any(root.startswith(key + ".") for root in SPECIAL_CATEGORY_ROOTS) else ""


def _options(items: Any, *, mark_special: bool = False) -> list[TaxonomyOption]:
    out = [
        TaxonomyOption(
            str(i.fides_key),
            str(i.name or i.fides_key),
            str(i.fides_key).count("."),
            _special(str(i.fides_key)) if mark_special else "",
        )
        for i in items
    ]
    return sorted(out, key=lambda o: o.key)


TAXONOMY = {
    "data_categories": _options(DEFAULT_TAXONOMY.data_category, mark_special=True),
    "purposes": _options(DEFAULT_TAXONOMY.data_use),
    "data_subjects": _options(DEFAULT_TAXONOMY.data_subject),
}
TAXONOMY_NAMES = {o.key: o.name for options in TAXONOMY.values() for o in options}

KIND_LABELS = {"dpa": "processing agreement (Art. 28)", "data_sharing": "data-sharing agreement"}
RENEWAL_LABELS = {"fixed": "fixed term", "auto": "renews automatically"}


@dataclass
class Changed:
    """One field where the saved record differs from what the user submitted (shown on a conflict)."""

    label: str
    saved: str
    yours: str


def display_value(value: Any, name: str = "") -> str:
    """A stored value as a reader sees it: rows and links in words, not JSON."""
    if value is None or value == [] or value == "" or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "locations" and isinstance(value, list):
        return ", ".join(
            f"{v.get('territory')} ({str(v.get('kind') or '').replace('_', ' ')})" if isinstance(v, dict) else str(v)
            for v in value
        )
    if name == "sub_processors" and isinstance(value, list):
        return ", ".join(_link_text(v) if isinstance(v, dict) else str(v) for v in value)
    if name in {"kind"} and isinstance(value, str):
        return KIND_LABELS.get(value, value)
    if name in {"renewal"} and isinstance(value, str):
        return RENEWAL_LABELS.get(value, value)
    if isinstance(value, list):
        return ", ".join(display_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(
            f"{LABELS.get(str(k), str(k)).lower()}: {display_value(v)}" for k, v in value.items() if v not in (None, "")
        )
    return str(value).replace("_", " ") if name in {"role", "category"} else str(value)


def _link_text(link: dict[str, Any]) -> str:
    if link.get("approved_on"):
        return f"{link.get('party')} (approved {link['approved_on']})"
    deadline = link.get("objection_deadline")
    return f"{link.get('party')} (not approved{f'; objection deadline {deadline}' if deadline else ''})"


@dataclass
class Differences:
    fields: list[Changed] = field(default_factory=list)


def differences(saved: dict[str, Any], yours: dict[str, Any]) -> list[Changed]:
    out = []
    for name, value in yours.items():
        if name in {"key", "version"}:
            continue
        theirs = saved.get(name)
        if display_value(theirs, name) != display_value(value, name):
            out.append(Changed(LABELS.get(name, name), display_value(theirs, name), display_value(value, name)))
    return out
