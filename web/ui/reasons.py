"""The guard's reasons, warnings and the registry's findings in the reader's words: one sentence per code, with
the party, territory, agreement, chain, clauses or category of the reason filled in. The code stays beside the
sentence (for integrators, and to search the decision log by), never instead of it.

The guard's own `message` is English prose for the API's integrators; a page shows this module's sentence,
which goes through the gettext catalogues like every other word of the UI. A code this module does not know
(a newer guard) falls back to the guard's own message, so nothing is ever hidden."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import pass_context
from markupsafe import Markup, escape

from kernel.i18n import N_, gettext
from web.ui.views import territory_label
from web.ui.words import term_word

# One sentence per code. Placeholders: party, agreement, territory, chain, clauses, category, purpose,
# data_subject (each filled from the reason, the request, or left as "—" when neither has it).
SENTENCES: dict[str, str] = {
    "RECIPIENT_UNKNOWN": N_("The recipient %(party)s is not in the registry."),
    "RECIPIENT_INACTIVE": N_("%(party)s is marked inactive in the registry."),
    "RECIPIENT_IS_AUTHORITY": N_(
        "%(party)s is an authority: disclosures to authorities are made manually and logged, never automatically."
    ),
    "RECIPIENT_INTERNATIONAL_ORGANISATION": N_(
        "%(party)s is an international organisation (Art. 4(26)): a share to it is a transfer outside the EU/EEA "
        "wherever its office is; the policy allows none."
    ),
    "NO_AGREEMENT": N_("%(party)s has no agreement in force of the kind its role needs."),
    "NO_AGREEMENT_LAPSED": N_("%(party)s has no agreement in force: agreement %(agreement)s is not in force today."),
    "AGREEMENT_INCOMPLETE": N_("Agreement %(agreement)s with %(party)s lacks Art. 28(3) clauses: %(clauses)s."),
    "CATEGORY_NOT_COVERED": N_("Agreement %(agreement)s with %(party)s does not cover the data category %(category)s."),
    "PURPOSE_NOT_COVERED": N_("Agreement %(agreement)s with %(party)s does not cover the purpose %(purpose)s."),
    "SUBJECT_NOT_COVERED": N_("No agreement with %(party)s covers the data subjects %(data_subject)s."),
    "CATEGORY_UNKNOWN": N_("%(category)s is not a data category of the taxonomy."),
    "PURPOSE_UNKNOWN": N_("%(purpose)s is not a purpose of the taxonomy."),
    "SPECIAL_CATEGORY": N_(
        "%(category)s is or includes special-category data (GDPR Art. 9/10); the policy allows no sharing of it."
    ),
    "LOCATION_OUTSIDE_EEA": N_("%(party)s holds or reaches the data in %(territory)s, outside the EU/EEA."),
    "SUBPROCESSOR_OUTSIDE_EEA": N_(
        "Sub-processor %(party)s, in the chain %(chain)s, holds or reaches the data in %(territory)s, outside the "
        "EU/EEA."
    ),
    "SUBPROCESSOR_UNAPPROVED": N_(
        "Sub-processor %(party)s, in the chain %(chain)s, is not approved (or not yet in effect, or not in the "
        "registry)."
    ),
    "SUBPROCESSOR_OBJECTED": N_(
        "Sub-processor %(party)s, in the chain %(chain)s, was objected to: the processor may not engage it."
    ),
    "DESTINATION_OUTSIDE_EEA": N_("The destination %(territory)s is outside the EU/EEA."),
    "DESTINATION_UNDECLARED": N_("The destination %(territory)s is not among the places declared for %(party)s."),
    "TERRITORY_UNKNOWN": N_(
        "The territory code %(territory)s is not one the guard knows, so it cannot tell whether it is inside the "
        "EU/EEA."
    ),
    "AGREEMENT_PERMITS_TRANSFER": N_(
        "Agreement %(agreement)s with %(party)s permits transfers outside the EU/EEA; the policy allows none."
    ),
    "PURPOSE_NOT_PUBLISHED": N_("The purpose %(purpose)s is not among the purposes the privacy policy publishes."),
    "PURPOSE_NOT_PUBLISHED_AGREEMENT": N_(
        "Agreement %(agreement)s with %(party)s covers a purpose the privacy policy does not publish."
    ),
    "SUBJECT_OBJECTED": N_("The person has objected to processing for %(purpose)s."),
    "SUBJECT_REF_MISSING": N_("%(purpose)s is marketing: name the person, so that their objections can be checked."),
    "SUBJECT_RESTRICTED": N_("The person's processing is restricted (Art. 18): no share until it is lifted."),
    "AGREEMENT_EXPIRING": N_(
        "Agreement %(agreement)s with %(party)s ends soon; after that the guard refuses shares to %(party)s "
        "until an agreement in force covers them."
    ),
    "AGREEMENT_UNDOCUMENTED": N_(
        "Data processing agreement %(agreement)s with %(party)s is in force, but no signed copy is on file "
        "(Art. 28(9)): upload the signed PDF on the agreement's page."
    ),
    "GUARD_UNAVAILABLE": N_("The guard cannot decide right now, so the share is refused. Try again in a moment."),
}
MISSING = "—"
# A short title per code, where a reason is named without its fields (the dashboard's groups of denials).
TITLES: dict[str, str] = {
    "RECIPIENT_UNKNOWN": N_("recipient not in the registry"),
    "RECIPIENT_INACTIVE": N_("recipient inactive"),
    "RECIPIENT_IS_AUTHORITY": N_("recipient is an authority"),
    "RECIPIENT_INTERNATIONAL_ORGANISATION": N_("recipient is an international organisation"),
    "NO_AGREEMENT": N_("no agreement in force"),
    "AGREEMENT_INCOMPLETE": N_("agreement lacks Art. 28(3) clauses"),
    "CATEGORY_NOT_COVERED": N_("data category not covered by the agreement"),
    "PURPOSE_NOT_COVERED": N_("purpose not covered by the agreement"),
    "SUBJECT_NOT_COVERED": N_("data subjects not covered by the agreement"),
    "CATEGORY_UNKNOWN": N_("unknown data category"),
    "PURPOSE_UNKNOWN": N_("unknown purpose"),
    "SPECIAL_CATEGORY": N_("special-category data"),
    "LOCATION_OUTSIDE_EEA": N_("place outside the EU/EEA"),
    "SUBPROCESSOR_OUTSIDE_EEA": N_("sub-processor outside the EU/EEA"),
    "SUBPROCESSOR_UNAPPROVED": N_("sub-processor not approved"),
    "SUBPROCESSOR_OBJECTED": N_("sub-processor objected to"),
    "DESTINATION_OUTSIDE_EEA": N_("destination outside the EU/EEA"),
    "DESTINATION_UNDECLARED": N_("destination not declared"),
    "TERRITORY_UNKNOWN": N_("unknown territory code"),
    "AGREEMENT_PERMITS_TRANSFER": N_("agreement permits transfers outside the EU/EEA"),
    "PURPOSE_NOT_PUBLISHED": N_("purpose not in the privacy policy"),
    "SUBJECT_OBJECTED": N_("the person has objected"),
    "SUBJECT_REF_MISSING": N_("person not named for marketing"),
    "SUBJECT_RESTRICTED": N_("the person's processing is restricted"),
    "AGREEMENT_EXPIRING": N_("agreement ending soon"),
    "AGREEMENT_UNDOCUMENTED": N_("no signed copy on file"),
    "GUARD_UNAVAILABLE": N_("the guard could not decide"),
}


def reason_title(code: str) -> Markup:
    """A code's short title, then the code: for a reason named without its fields."""
    title = TITLES.get(code)
    if title is None:
        return Markup("<code>{}</code>").format(code)
    return Markup("{} <code>{}</code>").format(gettext(title), code)


class PartyNames(Mapping[str, str]):
    """Party names by key, read from the page's party documents as they are asked for (a registry of 10,000
    parties is not copied for a page's few reasons)."""

    def __init__(self, documents: Mapping[str, Mapping[str, Any]]) -> None:
        self._documents = documents

    def __getitem__(self, key: str) -> str:
        return str(self._documents[key]["name"])

    def __iter__(self) -> Iterator[str]:
        return iter(self._documents)

    def __len__(self) -> int:
        return len(self._documents)


def _party(key: Any, names: Mapping[str, str] | None) -> str:
    if not key:
        return MISSING
    name = (names or {}).get(str(key))
    return f"{name} ({key})" if name and name != key else str(key)


def _sentence_id(code: str, reason: Mapping[str, Any]) -> str | None:
    if code == "NO_AGREEMENT" and reason.get("agreement"):
        return SENTENCES["NO_AGREEMENT_LAPSED"]
    if code == "PURPOSE_NOT_PUBLISHED" and reason.get("agreement"):
        return SENTENCES["PURPOSE_NOT_PUBLISHED_AGREEMENT"]
    return SENTENCES.get(code)


def reason_text(
    reason: Mapping[str, Any] | str,
    names: Mapping[str, str] | None = None,
    request: Mapping[str, Any] | None = None,
    vocabulary: dict[str, Any] | None = None,
) -> str:
    """One reason (a dict as the guard and the findings give it, or a bare code) as a sentence in the current
    language. `names`: party names by key; `request`: the share asked about (its purpose and data subject);
    `vocabulary`: the controller's words for taxonomy keys (else the taxonomy's names are used)."""
    fields: Mapping[str, Any] = {"code": reason} if isinstance(reason, str) else reason
    code = str(fields.get("code") or "")
    template = _sentence_id(code, fields)
    if template is None:
        return str(fields.get("message") or code)
    request = request or {}

    def term(key: Any) -> str:
        if not key:
            return MISSING
        word = term_word(vocabulary, str(key))
        return f"{word} ({key})" if word else f"“{key}”"

    chain = fields.get("chain") or ()
    # A finding's `party` is the party it blocks; the sub-processor it is about ends its chain.
    about = (
        chain[-1]
        if chain and (code.startswith("SUBPROCESSOR_") or code.endswith("_ORGANISATION"))
        else (fields.get("party"))
    )
    values = {
        "party": _party(about, names),
        "agreement": fields.get("agreement") or MISSING,
        "territory": territory_label(str(fields["territory"])) if fields.get("territory") else MISSING,
        "chain": " → ".join(_party(k, names) for k in chain) if chain else MISSING,
        "clauses": ", ".join(str(c).replace("_", " ") for c in fields.get("clauses") or ()) or MISSING,
        "category": term(fields.get("category")),
        "purpose": term(request.get("purpose")),
        "data_subject": term(request.get("data_subject")),
    }
    return gettext(template) % values


def distinct(reasons: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The reasons without those that read the same (two places of one party in one territory: the guard's
    messages tell the kinds of place apart, the sentences do not)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for reason in reasons:
        key = tuple(str(reason.get(f)) for f in ("code", "party", "territory", "agreement", "chain", "category"))
        if key not in seen:
            seen.add(key)
            out.append(reason)
    return out


@pass_context
def reason_line(
    context: Any, reason: Mapping[str, Any] | str, request: Mapping[str, Any] | None = None, code: bool = True
) -> Markup:
    """A reason for a template: the sentence, then (unless `code` is false: a column shows it) its code as
    <code> (party names from the page's `party_names`, else its `parties`; taxonomy words from its controller's
    vocabulary, else the taxonomy's names in the reader's language)."""
    names = context.get("party_names")
    if names is None and isinstance(context.get("parties"), Mapping):
        names = PartyNames(context["parties"])
    text = reason_text(reason, names, request, context.get("vocabulary") or {})
    if not code:
        return Markup("{}").format(text)
    shown = reason if isinstance(reason, str) else str(reason.get("code") or "")
    return Markup("{} <code>{}</code>").format(escape(text), shown)
