"""What a lawyer reads about the guard's answers: a sentence per code in Swedish and English with the party,
territory and agreement filled in (the code beside it), the taxonomy's names in Swedish, and each party's badge
from the guard's own rules over its whole chain."""

from datetime import date
from typing import Any

import yaml

from guard.vocabulary import ReasonCode
from kernel import i18n
from registry.findings import snapshot_from_document
from registry.services.registry_document import parse_document
from tests.conftest import SEED_FILE
from web.ui import reasons, views, words
from web.ui.forms import TAXONOMY
from web.ui.registry_view import agreement_document, party_document
from web.ui.taxonomy_words import TAXONOMY_WORDS

CHECK_DAY = date(2026, 11, 25)


def seed() -> dict[str, Any]:
    return yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))


def party(raw: dict[str, Any], key: str) -> dict[str, Any]:
    return next(p for p in raw["parties"] if p["key"] == key)


def statuses(raw: dict[str, Any]) -> dict[str, str]:
    snapshot = snapshot_from_document(parse_document(raw))
    out = {}
    for key, view in snapshot.parties.items():
        agreements = [agreement_document(a) for a in snapshot.agreements_by_party.get(key, ())]
        out[key] = views.party_status(key, party_document(view), agreements, snapshot, CHECK_DAY, 30)
    return out


def test_every_reason_code_of_the_guard_has_a_sentence_and_a_title_of_its_own():
    assert [code for code in ReasonCode if code.value not in reasons.SENTENCES] == []
    assert [code for code in ReasonCode if code.value not in reasons.TITLES] == []
    with i18n.use_locale("sv"):
        assert reasons.reason_title("SUBPROCESSOR_UNAPPROVED") == (
            "underbiträdet är inte godkänt <code>SUBPROCESSOR_UNAPPROVED</code>"
        )


def test_a_reason_reads_as_a_swedish_sentence_with_its_party_territory_and_chain_filled_in():
    reason = {
        "code": "SUBPROCESSOR_OUTSIDE_EEA",
        "message": "Sub-processor ... outside the EU/EEA.",
        "party": "fjordvault",
        "territory": "US",
        "chain": ["nordfrakt", "fjordvault"],
    }
    names = {"nordfrakt": "Nordfrakt Logistik AB", "fjordvault": "Fjordvault AS"}
    with i18n.use_locale("sv"):
        text = reasons.reason_text(reason, names)
    assert text == (
        "Underbiträdet Fjordvault AS (fjordvault), i kedjan Nordfrakt Logistik AB (nordfrakt) → Fjordvault AS "
        "(fjordvault), har eller når uppgifterna i USA (US), utanför EU/EES."
    )
    with i18n.use_locale("en"):
        assert "United States (US), outside the EU/EEA" in reasons.reason_text(reason, names)


def test_a_code_the_ui_does_not_know_shows_the_guards_own_message():
    assert reasons.reason_text({"code": "SOMETHING_NEW", "message": "Something new."}) == "Something new."


def test_an_agreement_reason_names_the_agreement_and_the_purpose_in_the_controllers_words():
    reason = {"code": "PURPOSE_NOT_COVERED", "party": "nordfrakt", "agreement": "nordfrakt-dpa"}
    vocabulary = {"marketing.communications.email": {"sv": "Elektronisk direktmarknadsföring", "en": "E-marketing"}}
    with i18n.use_locale("sv"):
        text = reasons.reason_text(reason, None, {"purpose": "marketing.communications.email"}, vocabulary)
    assert text == (
        "Avtalet nordfrakt-dpa med nordfrakt omfattar inte ändamålet Elektronisk direktmarknadsföring "
        "(marketing.communications.email)."
    )


def test_the_taxonomy_names_are_marked_for_the_catalogues_and_read_in_swedish():
    assert set(TAXONOMY_WORDS) == {o.name for options in TAXONOMY.values() for o in options}
    with i18n.use_locale("sv"):
        assert words.term_text(None, "employee") == "Anställd — employee"
        assert words.term_text({"customer": {"sv": "Kunder"}}, "customer") == "Kunder — customer"
    with i18n.use_locale("en"):
        assert words.term_text(None, "employee") == "Employee — employee"


def test_the_seed_registrys_parties_are_badged_as_the_guard_answers():
    found = statuses(seed())
    assert found["nordfrakt"] == "in_force"
    assert "refused" not in found.values()


def test_a_processor_with_an_unapproved_us_sub_processor_is_badged_refused_though_its_own_dpa_is_in_force():
    raw = seed()
    raw["parties"].append(
        {
            "key": "usmoln",
            "name": "US Moln Inc",
            "role": "sub_processor",
            "category": "it_services",
            "established_in": "US",
            "locations": [{"territory": "US", "kind": "storage"}],
            "sub_processors": [],
        }
    )
    party(raw, "nordfrakt")["sub_processors"].append(
        {"party": "usmoln", "approved_on": None, "objection_deadline": None}
    )
    found = statuses(raw)
    assert found["nordfrakt"] == "refused"
    assert found["usmoln"] == "refused"  # its own place is outside the EEA


def test_a_processor_whose_dpa_lapsed_is_badged_lapsed_and_one_that_never_had_one_none():
    raw = seed()
    for a in raw["agreements"]:
        if a["party"] == "nordfrakt":
            a["expires_on"] = date(2026, 1, 1)
    raw["agreements"] = [a for a in raw["agreements"] if a["party"] != "kvarnberg"]
    found = statuses(raw)
    assert found["nordfrakt"] == "lapsed"
    assert found["kvarnberg"] == "none"
