"""Plain HTML forms ↔ the registry's input schemas, and error messages in words a lawyer understands.

The schemas and services keep every rule; this module only moves values between form fields and
documents, and rewords the errors they report so each one can sit next to its field."""

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from fideslang import DEFAULT_TAXONOMY
from litestar.datastructures import FormMultiDict
from pydantic import ValidationError

from guard.vocabulary import ART28_CLAUSE_LETTERS, ART28_CLAUSES, SPECIAL_CATEGORY_ROOTS, covers
from kernel.errors import FieldError, pydantic_field_errors
from kernel.i18n import N_, _
from registry.schemas import agreement_term_problems
from web.ui.words import category_label, location_kind, role_label

LABELS = {
    "key": N_("Key"),
    "name": N_("Name"),
    "role": N_("Role"),
    "category": N_("Category"),
    "org_number": N_("Organisation number"),
    "established_in": N_("Established in"),
    "locations": N_("Locations"),
    "sub_processors": N_("Sub-processors"),
    "active": N_("Active"),
    "international_organisation": N_("International organisation"),
    "contact": N_("Contact"),
    "party": N_("Party"),
    "kind": N_("Kind"),
    "territory": N_("Territory"),
    "signed_on": N_("Signed on"),
    "effective_from": N_("Effective from"),
    "expires_on": N_("Expires on"),
    "terminated_on": N_("Terminated on"),
    "renewal": N_("Renewal"),
    "notice_days": N_("Notice period (days)"),
    "owner_email": N_("Owner e-mail"),
    "document": N_("Document"),
    "uri": N_("Document address"),
    "sha256": N_("Document SHA-256"),
    "size": N_("Document size (bytes)"),
    "start": N_("From"),
    "end": N_("To"),
    "data_categories": N_("Data categories"),
    "purposes": N_("Purposes"),
    "data_subjects": N_("Data subjects"),
    "clauses": N_("Art. 28(3) clauses"),
    "transfers_outside_eea_permitted": N_("Transfers outside the EEA permitted"),
    "approved_on": N_("Approved on"),
    "objection_deadline": N_("Objection deadline"),
    "notified_on": N_("Notified on"),
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "version": N_("Version"),
}

CLAUSE_DESCRIPTIONS = {
    "instructions": N_("processes only on documented instructions"),
    "confidentiality": N_("people with access are bound to confidentiality"),
    "security": N_("takes the security measures of Art. 32"),
    "sub_processing": N_("engages sub-processors only with authorisation, on the same terms"),
    "data_subject_rights": N_("helps answer data subjects' requests"),
    "compliance_assistance": N_("helps with security, breach notices and impact assessments"),
    "deletion_or_return": N_("deletes or returns the data when the service ends"),
    "audits": N_("allows and contributes to audits and inspections"),
}
CLAUSE_CHOICES = [(c, ART28_CLAUSE_LETTERS[c], CLAUSE_DESCRIPTIONS[c]) for c in ART28_CLAUSES]

# Validation errors are worded from their type (pydantic's `missing`, `string_too_long`, ... and the schema's own
# `territory_code`, `email`, ...) and its context, never from pydantic's English text, so each can be said in the
# reader's language. Each entry: the message in English (the catalogue's key) and the context values it uses.
_REQUIRED = N_("This is required.")
_BY_TYPE: dict[str, str] = {
    "missing": _REQUIRED,
    "string_too_short": _REQUIRED,
    "date_parsing": N_("Enter a date as year-month-day, for example 2026-01-31."),
    "no_address_column": N_(
        "The file has no column of e-mail addresses or customer numbers. Its header row has %(found)s; a column "
        "named one of these is needed: %(looked_for)s."
    ),
    "date_from_datetime_parsing": N_("Enter a date as year-month-day, for example 2026-01-31."),
    "date_from_datetime_inexact": N_("Enter a date as year-month-day, for example 2026-01-31."),
    "date_type": N_("Enter a date as year-month-day, for example 2026-01-31."),
    "implausible_date": N_("Use a date from %(earliest)s to %(latest)s (leave an end date empty if there is none)."),
    "int_parsing": N_("Enter a whole number."),
    "int_type": N_("Enter a whole number."),
    "int_from_float": N_("Enter a whole number."),
    "greater_than_equal": N_("Enter a number of at least %(ge)s."),
    "greater_than": N_("Enter a number greater than %(gt)s."),
    "less_than_equal": N_("Enter a number of at most %(le)s."),
    "literal_error": N_("Choose one of the options offered."),
    "enum": N_("Choose one of the options offered."),
    "bool_parsing": N_("Choose yes or no."),
    "bool_type": N_("Choose yes or no."),
    "too_short": N_("Choose at least one."),
    "too_long": N_("Choose at most %(max_length)s."),
    "string_too_long": N_("This is too long: at most %(max_length)s characters."),
    "string_type": N_("Enter text."),
    "extra_forbidden": N_("This field is not part of the form."),
    "email": N_("“%(value)s” is not an e-mail address."),
    "listed_twice": N_("“%(value)s” is listed twice."),
    "unknown_party": N_("There is no party with the key “%(key)s” in the registry."),
    "taxonomy_key": N_("This is not one of the taxonomy's entries; choose one from the list."),
}
_KEY_ADVICE = N_(
    "Use lower-case letters, digits, - and _ only, starting with a letter or digit "
    "(for example nordfrakt or nordfrakt-dpa-2026)."
)
_SHA256_ADVICE = N_("A SHA-256 checksum is 64 characters 0-9 and a-f.")
_PATTERN_ADVICE = N_("This is not in the expected form.")
_TERRITORY_ADVICE = N_(
    "“%(value)s” is not a territory code we know. Use the two-letter ISO code of the country, such as SE, DE or US, "
    "or of a region, such as ES-CN."
)
# Codes people often type for a place that ISO spells otherwise.
_TERRITORY_MISTAKES = {
    "": N_("Enter a territory code, such as SE."),
    "UK": N_("“UK” is not a territory code we know. For the United Kingdom use GB."),
    "EL": N_("“EL” is not a territory code we know. For Greece use GR."),
    "EU": N_("“%(value)s” is not a territory: name the country, such as SE or DE."),
    "EEA": N_("“%(value)s” is not a territory: name the country, such as SE or DE."),
    "EEE": N_("“%(value)s” is not a territory: name the country, such as SE or DE."),
}
# The registry's own cross-field rules (registry.schemas.agreement_term_problems), by field.
_TERM_PROBLEMS = {
    "expires_on": N_("The expiry date cannot be before the date the agreement takes effect."),
    "terminated_on": N_("The termination date cannot be before the date the agreement takes effect."),
    "notice_days": N_("An agreement that renews automatically needs a notice period in days."),
}
_LINK_DATES_ADVICE = N_(
    "The objection deadline must be after the day the sub-processor change was notified (Art. 28(2)): "
    "otherwise there was no real opportunity to object."
)
# A choice left empty: say what to choose instead. Keyed by the field's path with row numbers taken out.
_EMPTY_CHOICE_TYPES = frozenset({"missing", "string_pattern_mismatch", "string_too_short", "literal_error"})
_CHOICE_ADVICE = {
    "party": N_("Choose the party the agreement is with."),
    "sub_processors[].party": N_("Choose the sub-processor, or empty the whole row."),
    "locations[].kind": N_("Choose what happens there: storage, processing, backup or support access."),
    "locations[].territory": N_("Enter the territory code, or empty the whole row."),
}
_LIST_ADVICE = {
    "data_categories": N_("Choose at least one data category."),
    "purposes": N_("Choose at least one purpose."),
    "data_subjects": N_("Choose at least one data subject (Art. 28(3) names them)."),
}


def _row_free(field: str) -> str:
    """`locations[2].territory` → `locations[].territory`: advice is per column, not per row."""
    out, skipping = [], False
    for char in field:
        if char == "[":
            skipping = True
            out.append("[")
        elif char == "]":
            skipping = False
            out.append("]")
        elif not skipping:
            out.append(char)
    return "".join(out)


def _format(message: str, params: dict[str, Any]) -> str:
    translated = _(message)
    try:
        return translated % {k: v for k, v in params.items()} if "%(" in translated else translated
    except (KeyError, TypeError, ValueError):
        return translated


def field_label(name: str) -> str:
    return _(LABELS[name]) if name in LABELS else name


def plain_words(error: FieldError | str, field: str | None = None) -> str:
    """One problem in words a lawyer understands, in the reader's language; `field` (a form path) sharpens some.
    A bare message (no type known) is shown as it is, with field names as their labels."""
    if isinstance(error, str):
        error = FieldError(field or "", error)
    field = error.field if field is None else field
    code, params = error.code, error.params
    column = _row_free(field)
    if column in _CHOICE_ADVICE and (
        code in _EMPTY_CHOICE_TYPES or (code == "territory_code" and not params.get("value"))
    ):
        return _(_CHOICE_ADVICE[column])
    if column in _LIST_ADVICE and code == "too_short":
        return _(_LIST_ADVICE[column])
    if code == "territory_code":
        value = str(params.get("value") or "")
        return _format(_TERRITORY_MISTAKES.get(value, _TERRITORY_ADVICE), {"value": value})
    if code == "string_pattern_mismatch":
        pattern = str(params.get("pattern") or "")
        if pattern.startswith("^[a-z0-9]"):
            return _(_KEY_ADVICE)
        return _(_SHA256_ADVICE) if pattern.startswith("^[0-9a-f]{64}") else _(_PATTERN_ADVICE)
    if code == "term_problem" and column in _TERM_PROBLEMS:
        return _(_TERM_PROBLEMS[column])
    if code == "link_dates":
        return _(_LINK_DATES_ADVICE)
    if code in _BY_TYPE:
        return _format(_BY_TYPE[code], params)
    # A problem without a known type (a service's own sentence): its text, with field names as their labels.
    message = error.message
    for name in LABELS:
        message = message.replace(name, field_label(name).lower())
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
    return {field: [plain_words(FieldError(field, message, "term_problem"))] for field, message in problems}


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
        if not path and err.code == "term_problem":
            path = err.params.get("field", "")
        out.setdefault(path, []).append(plain_words(err, path))
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
        "international_organisation": form.get("international_organisation") == "on",
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
                _("The guard will refuse every share under this agreement: it lacks Art. 28(3) %(clauses)s.")
                % {"clauses": named}
            ]
    if doc.get("transfers_outside_eea_permitted"):
        refusals["transfers_outside_eea_permitted"] = [
            _("The guard will refuse every share under this agreement: it permits transfers outside the EEA.")
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
    published: bool = False  # a purpose the controller's privacy policy publishes
    own: bool = False  # a key the controller's vocabulary labels (a key it uses)


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


def taxonomy_for(controller: dict[str, Any] | None) -> dict[str, list[TaxonomyOption]]:
    """The pickers' options for this controller: its published purposes first (in the order it publishes
    them), then the keys its vocabulary labels (the ones it uses), then the rest of the taxonomy."""
    published = list((controller or {}).get("published_purposes") or [])
    vocabulary = (controller or {}).get("vocabulary") or {}
    out: dict[str, list[TaxonomyOption]] = {}
    for name, options in TAXONOMY.items():
        marked = [
            replace(o, published=name == "purposes" and o.key in published, own=o.key in vocabulary) for o in options
        ]
        rank = {key: i for i, key in enumerate(published)}
        out[name] = sorted(
            marked,
            key=lambda o: (not o.published, rank.get(o.key, 0), not o.own, o.key),
        )
    return out


KIND_LABELS = {"dpa": N_("processing agreement (Art. 28)"), "data_sharing": N_("data-sharing agreement")}
RENEWAL_LABELS = {"fixed": N_("fixed term"), "auto": N_("renews automatically")}


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
        return _("yes") if value else _("no")
    if name == "locations" and isinstance(value, list):
        return ", ".join(
            f"{v.get('territory')} ({location_kind(str(v.get('kind') or ''))})" if isinstance(v, dict) else str(v)
            for v in value
        )
    if name == "sub_processors" and isinstance(value, list):
        return ", ".join(_link_text(v) if isinstance(v, dict) else str(v) for v in value)
    if name in {"kind"} and isinstance(value, str):
        return _(KIND_LABELS[value]) if value in KIND_LABELS else value
    if name in {"renewal"} and isinstance(value, str):
        return _(RENEWAL_LABELS[value]) if value in RENEWAL_LABELS else value
    if isinstance(value, list):
        return ", ".join(display_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(
            f"{field_label(str(k)).lower()}: {display_value(v)}" for k, v in value.items() if v not in (None, "")
        )
    if name == "role":
        return role_label(str(value))
    return category_label(str(value)) if name == "category" else str(value)


def _link_text(link: dict[str, Any]) -> str:
    # The messages stay outside f-strings: Python 3.11's tokenizer hides calls inside one from the extractor.
    party = link.get("party")
    if link.get("approved_on"):
        approved = _("approved %(day)s") % {"day": link["approved_on"]}
        return f"{party} ({approved})"
    deadline = link.get("objection_deadline")
    objection = "; " + _("objection deadline %(day)s") % {"day": deadline} if deadline else ""
    not_approved = _("not approved")
    return f"{party} ({not_approved}{objection})"


def differences(saved: dict[str, Any], yours: dict[str, Any]) -> list[Changed]:
    out = []
    for name, value in yours.items():
        if name in {"key", "version"}:
            continue
        theirs = saved.get(name)
        if display_value(theirs, name) != display_value(value, name):
            out.append(Changed(LABELS.get(name, name), display_value(theirs, name), display_value(value, name)))
    return out
