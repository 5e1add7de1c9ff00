"""The registry's codes in the reader's words: roles, categories and kinds of place, and taxonomy keys with
the controller's own labels (its vocabulary) before the key."""

from typing import Any

from fideslang import DEFAULT_TAXONOMY
from jinja2 import pass_context
from markupsafe import Markup, escape

from kernel.i18n import N_, current, gettext

# The taxonomy's own name of every key (fideslang's), translated by taxonomy_name (web/ui/taxonomy_words.py).
TAXONOMY_NAMES: dict[str, str] = {
    str(item.fides_key): str(item.name or item.fides_key)
    for items in (DEFAULT_TAXONOMY.data_category, DEFAULT_TAXONOMY.data_use, DEFAULT_TAXONOMY.data_subject)
    for item in items
}

ROLE_LABELS = {
    "processor": N_("processor"),
    "sub_processor": N_("sub-processor"),
    "independent_controller": N_("independent controller"),
    "authority": N_("authority"),
}
CATEGORY_LABELS = {
    "transport": N_("transport and delivery"),
    "marketing": N_("marketing"),
    "it_services": N_("IT services"),
    "web_platform_payments": N_("web platform and payments"),
    "manufacturer": N_("manufacturer"),
    "supplier": N_("supplier"),
    "reseller": N_("reseller"),
    "authority": N_("authority"),
    "other": N_("other"),
}
LOCATION_KIND_LABELS = {
    "establishment": N_("establishment"),
    "storage": N_("storage"),
    "processing": N_("processing"),
    "support_access": N_("support access"),
    "backup": N_("backup"),
}
USER_ROLE_LABELS = {"legal": N_("legal"), "ops": N_("operations"), "admin": N_("administrator")}


def translate(message: Any) -> str:
    """A message known only at run time (a badge's label, a field's name) in the reader's language."""
    return gettext(str(message)) if message not in (None, "") else ""


def role_label(role: str) -> str:
    return translate(ROLE_LABELS.get(role, role.replace("_", " ")))


def category_label(category: str) -> str:
    return translate(CATEGORY_LABELS.get(category, category.replace("_", " ")))


def location_kind(kind: str) -> str:
    return translate(LOCATION_KIND_LABELS.get(kind, kind.replace("_", " ")))


def user_role_label(role: str | None) -> str:
    return translate(USER_ROLE_LABELS.get(role or "", role or ""))


def query_with(filters: dict[str, Any], **changes: Any) -> str:
    """A list page's query string: its filters with some values changed (sorting, paging); empty ones left out."""
    from urllib.parse import urlencode

    merged = {**filters, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def vocabulary_label(vocabulary: dict[str, Any] | None, key: str) -> str | None:
    """The controller's label for a taxonomy key in the reader's language (else in the other one), or None."""
    entry = (vocabulary or {}).get(key) or {}
    language = current()
    return entry.get(language) or next((entry[other] for other in ("sv", "en") if entry.get(other)), None)


def taxonomy_name(key: str) -> str | None:
    """The taxonomy's (fideslang's) name of a key in the reader's language (web/ui/taxonomy_words.py)."""
    name = TAXONOMY_NAMES.get(key)
    return gettext(name) if name else None


def term_word(vocabulary: dict[str, Any] | None, key: str) -> str | None:
    """The reader's word for a taxonomy key: the controller's vocabulary first, else the taxonomy's name."""
    return vocabulary_label(vocabulary, key) or taxonomy_name(key)


def term_text(vocabulary: dict[str, Any] | None, key: str) -> str:
    """Label first, key second, as plain text (an <option>): 'Namn — user.name'."""
    label = term_word(vocabulary, key)
    return f"{label} — {key}" if label else key


@pass_context
def term_label(context: Any, term: Any, code: bool = False) -> Markup | str:
    """A taxonomy key (or a picker's option) for a template: the controller's label, else the taxonomy's name,
    then the key; with `code`, the key as <code> after the label."""
    key = term if isinstance(term, str) else term.key
    vocabulary = context.get("vocabulary")
    if not code:
        return term_text(vocabulary, key)
    label = term_word(vocabulary, key) or ""
    return Markup("{} <code>{}</code>").format(escape(label), key) if label else Markup("<code>{}</code>").format(key)


def template_globals() -> dict[str, Any]:
    return {
        "translate": translate,
        "role_label": role_label,
        "category_label": category_label,
        "term_label": term_label,
        "user_role_label": user_role_label,
        "query_with": query_with,
    }
