"""Swedish and English: the catalogues are complete, the locale is chosen in the documented order, and
dates, numbers, country names and form errors follow it."""

import re
from datetime import date
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from pydantic import ValidationError

from kernel import i18n
from kernel.errors import FieldError
from registry.schemas import AgreementIn, LocationIn, PartyIn
from registry.services.registry_document import pydantic_field_errors
from web.ui import forms, views

ROOT = Path(__file__).resolve().parents[2]


def _extracted() -> set[str | tuple[str, str]]:
    method_map = [
        *((f"{room}/**.py", "python") for room in ("kernel", "registry", "web", "cli")),
        ("web/ui/templates/**.html", "jinja2"),
    ]
    options = {"web/ui/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str | tuple[str, str]] = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map=options, keywords=keywords):
        found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def test_every_message_the_code_uses_has_a_swedish_translation():
    with (i18n.LOCALE_DIR / "sv" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="sv")
    translated = {(m.id if isinstance(m.id, str) else tuple(m.id)): m.string for m in catalog if m.id and not m.fuzzy}
    missing = [m for m in _extracted() if not translated.get(m) or translated[m] in ("", ("", ""))]
    assert not missing, f"run the update commands in README (Translations) and translate: {sorted(map(str, missing))}"


@pytest.mark.parametrize("language", ["sv", "en"])
def test_each_catalogue_is_a_well_formed_po_file(language: str) -> None:
    """A merge once left 19 English entries without their msgstr line: Babel read on, warning at every start, and
    took the next entry's id as their translation's neighbour. abort_invalid makes such an entry an error."""
    with (i18n.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=language, abort_invalid=True)
    assert len(catalog) > 100


def test_the_language_is_the_remembered_choice_then_the_switch_then_the_browser_then_the_default():
    assert i18n.negotiate("en", "sv", "sv", "sv") == "en"
    assert i18n.negotiate(None, "en", "sv", "sv") == "en"
    assert i18n.negotiate(None, None, "de-DE, sv;q=0.8, en;q=0.5", "en") == "sv"
    assert i18n.negotiate(None, None, "en;q=0.2, sv-SE;q=0.9", "en") == "sv"
    assert i18n.negotiate(None, "xx", "de, fr", "sv") == "sv"
    assert i18n.negotiate(None, None, "garbage;q=zz, ;;", "en") == "en"


def test_dates_numbers_and_country_names_follow_the_locale():
    with i18n.use_locale("sv"):
        assert i18n.day(date(2026, 11, 28)) == "28 nov. 2026"
        assert i18n.number(314) == "314"
        assert i18n.number(1234).replace("\xa0", " ") == "1 234"
        assert views.territory_label("SE") == "Sverige (SE)"
        assert views.territory_label("DE") == "Tyskland (DE)"
    with i18n.use_locale("en"):
        assert i18n.day(date(2026, 11, 28)) == "Nov 28, 2026"
        assert i18n.number(1234) == "1,234"
        assert views.territory_label("SE") == "Sweden (SE)"


def _errors(model: type, document: dict) -> dict[str, list[str]]:
    try:
        model.model_validate(document)
    except ValidationError as exc:
        return forms.field_messages(pydantic_field_errors(exc))
    raise AssertionError("the document was valid")


def test_form_errors_are_worded_from_their_type_in_either_language():
    party = {
        "key": "Bad Key",
        "name": "",
        "role": "processor",
        "category": "transport",
        "established_in": "UK",
        "locations": [{"territory": "", "kind": "storage"}],
        "sub_processors": [],
    }
    with i18n.use_locale("en"):
        english = _errors(PartyIn, party)
    with i18n.use_locale("sv"):
        swedish = _errors(PartyIn, party)
    assert english["established_in"] == ["“UK” is not a territory code we know. For the United Kingdom use GB."]
    assert swedish["established_in"] == ["”UK” är ingen landskod vi känner till. För Storbritannien, använd GB."]
    assert english["key"][0].startswith("Use lower-case letters")
    assert swedish["key"][0].startswith("Använd bara gemener")
    assert swedish["name"] == ["Detta är obligatoriskt."]
    assert swedish["locations[0].territory"] == ["Ange landskoden, eller töm hela raden."]


def test_cross_field_rules_and_unknown_types_are_placed_on_their_field():
    agreement = {
        "key": "a-1",
        "party": "p",
        "kind": "dpa",
        "effective_from": "2026-01-01",
        "expires_on": "2025-01-01",
        "renewal": "fixed",
        "owner_email": "x@offix.example",
        "data_categories": ["user.name"],
        "purposes": ["essential.service"],
        "data_subjects": ["customer"],
        "clauses": [],
    }
    with i18n.use_locale("sv"):
        errors = _errors(AgreementIn, agreement)
        assert errors["expires_on"] == ["Slutdatumet kan inte ligga före den dag avtalet börjar gälla."]
        # A service's own sentence without a type is shown as it is, never dropped.
        assert forms.plain_words(FieldError("x", "something odd")) == "Something odd."


def test_a_location_error_names_what_to_choose():
    with i18n.use_locale("en"):
        errors = _errors(LocationIn, {"territory": "SE", "kind": ""})
    assert errors["kind"] == ["Choose one of the options offered."]


def test_a_reminder_is_written_in_the_language_it_is_composed_in():
    from registry.jobs.delivery import compose
    from registry.jobs.schedule import EXPIRY, AgreementFacts, DueReminder

    facts = AgreementFacts(
        agreement_id=1,
        key="nordfrakt-dpa-2024",
        kind="dpa",
        party_key="nordfrakt",
        party_name="Nordfrakt Logistik AB",
        party_active=True,
        expires_on=date(2026, 12, 31),
        terminated_on=None,
        renewal="fixed",
        notice_days=None,
        owner_email="ops@offix.example",
    )
    due = DueReminder(facts, EXPIRY, date(2026, 12, 31), date(2026, 12, 1), 30)
    with i18n.use_locale("sv"):
        swedish = compose(1, due, date(2026, 12, 1), "https://registry.offix.example")
    with i18n.use_locale("en"):
        english = compose(1, due, date(2026, 12, 1), "https://registry.offix.example")
    assert swedish.subject == "Avtal nordfrakt-dpa-2024 med Nordfrakt Logistik AB löper ut den 2026-12-31 (om 30 dagar)"
    assert "Förnya avtalet" in swedish.body and "Parten i registret:" in swedish.body
    assert (
        english.subject == "Agreement nordfrakt-dpa-2024 with Nordfrakt Logistik AB expires on 2026-12-31 (in 30 days)"
    )
    assert swedish.payload == english.payload  # the webhook's JSON speaks codes, not prose


def test_no_message_is_marked_inside_an_f_string():
    """Python 3.11's tokenizer hides a `_()` inside an f-string from Babel's extractor (3.12's does not), so such
    a message would be extracted on one Python and dropped as obsolete on the other."""
    inside_f_string = re.compile(r"""\bf(["']).*\{\s*(_|gettext|ngettext|N_)\(""")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "registry").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if inside_f_string.search(line)
    ]
    assert not found, found
