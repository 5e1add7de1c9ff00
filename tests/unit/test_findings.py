"""Registry-wide findings, pure: from registry documents, no database."""

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml

from kernel.calendar import calendar_today
from registry.findings import snapshot_from_document
from registry.schemas import ControllerIn
from registry.services.findings import document_findings
from registry.services.registry_document import parse_document
from tests.conftest import SEED_FILE

CHECK_DAY = date(2026, 11, 25)


def seed() -> dict[str, Any]:
    return yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))


def findings_of(raw: dict[str, Any], today: date = CHECK_DAY) -> list[dict[str, Any]]:
    return document_findings(parse_document(raw), today=today)


def party(raw: dict[str, Any], key: str) -> dict[str, Any]:
    return next(p for p in raw["parties"] if p["key"] == key)


def agreement(raw: dict[str, Any], key: str) -> dict[str, Any]:
    return next(a for a in raw["agreements"] if a["key"] == key)


def codes(findings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f["party"], f["code"]) for f in findings]


def test_the_seed_registry_has_no_findings_on_the_reference_day() -> None:
    assert findings_of(seed()) == []


def test_a_processor_without_any_agreement_is_a_no_agreement_finding() -> None:
    raw = seed()
    raw["agreements"] = [a for a in raw["agreements"] if a["party"] != "nordfrakt"]

    findings = findings_of(raw)

    assert codes(findings) == [("nordfrakt", "NO_AGREEMENT")]
    assert "no data processing agreement (dpa) in force on 2026-11-25" in findings[0]["message"]


def test_an_independent_controller_without_a_data_sharing_agreement_is_a_finding() -> None:
    raw = seed()
    raw["agreements"] = [a for a in raw["agreements"] if a["party"] != "papyra"]

    assert codes(findings_of(raw)) == [("papyra", "NO_AGREEMENT")]


def test_an_expired_agreement_is_a_finding_naming_the_agreement_and_its_last_day() -> None:
    raw = seed()
    agreement(raw, "klarsignal-dpa-2024")["expires_on"] = date(2026, 11, 24)

    findings = findings_of(raw)

    assert codes(findings) == [("klarsignal", "NO_AGREEMENT")]
    assert findings[0]["agreement"] == "klarsignal-dpa-2024"
    assert "expired on 2026-11-24" in findings[0]["message"]


def test_an_agreement_is_still_in_force_on_its_last_day() -> None:
    raw = seed()
    agreement(raw, "klarsignal-dpa-2024")["expires_on"] = CHECK_DAY

    assert findings_of(raw) == []


def test_a_dpa_lacking_art_28_clauses_lists_the_missing_clauses() -> None:
    raw = seed()
    dpa = agreement(raw, "kvarnberg-dpa-2023")
    dpa["clauses"] = [c for c in dpa["clauses"] if c not in ("audits", "security")]

    findings = findings_of(raw)

    assert codes(findings) == [("kvarnberg", "AGREEMENT_INCOMPLETE")]
    assert findings[0]["clauses"] == ["security", "audits"]
    assert findings[0]["agreement"] == "kvarnberg-dpa-2023"


def test_a_location_outside_the_eea_is_a_finding_with_its_territory() -> None:
    raw = seed()
    party(raw, "papyra")["locations"].append({"territory": "US", "kind": "support_access"})

    findings = findings_of(raw)

    assert codes(findings) == [("papyra", "LOCATION_OUTSIDE_EEA")]
    assert findings[0]["territory"] == "US"


def test_an_establishment_outside_the_eea_is_a_location_finding() -> None:
    raw = seed()
    party(raw, "kontorsgrossen")["established_in"] = "GB"

    findings = findings_of(raw)

    assert codes(findings) == [("kontorsgrossen", "LOCATION_OUTSIDE_EEA")]
    assert findings[0]["territory"] == "GB"


def test_a_sub_processor_outside_the_eea_is_a_finding_for_every_processor_whose_chain_reaches_it() -> None:
    raw = seed()
    party(raw, "fjordvault")["locations"].append({"territory": "CH", "kind": "backup"})

    findings = findings_of(raw)

    # fjordvault sits under molnhall, which both nordfrakt and kvarnberg use.
    assert codes(findings) == [
        ("fjordvault", "LOCATION_OUTSIDE_EEA"),
        ("kvarnberg", "SUBPROCESSOR_OUTSIDE_EEA"),
        ("molnhall", "SUBPROCESSOR_OUTSIDE_EEA"),
        ("nordfrakt", "SUBPROCESSOR_OUTSIDE_EEA"),
    ]
    by_party = {f["party"]: f for f in findings}
    assert by_party["kvarnberg"]["chain"] == ["kvarnberg", "molnhall", "fjordvault"]
    assert by_party["kvarnberg"]["territory"] == "CH"


def test_an_unapproved_sub_processor_is_a_finding_with_its_chain() -> None:
    raw = seed()
    party(raw, "handelsplattformen")["sub_processors"] = [
        {"party": "maksusilta", "approved_on": None, "objection_deadline": date(2026, 12, 15)}
    ]

    findings = findings_of(raw)

    assert codes(findings) == [("handelsplattformen", "SUBPROCESSOR_UNAPPROVED")]
    assert findings[0]["chain"] == ["handelsplattformen", "maksusilta"]
    assert "objection deadline 2026-12-15" in findings[0]["message"]


def test_an_inactive_party_is_not_checked() -> None:
    raw = seed()
    papyra = party(raw, "papyra")
    papyra["active"] = False
    papyra["locations"].append({"territory": "US", "kind": "storage"})
    raw["agreements"] = [a for a in raw["agreements"] if a["party"] != "papyra"]

    assert findings_of(raw) == []


def test_every_finding_is_listed_sorted_by_party_and_in_the_rules_order_within_a_party() -> None:
    raw = seed()
    raw["agreements"] = [a for a in raw["agreements"] if a["party"] not in ("tibro-kontorsmobler", "nordfrakt")]
    party(raw, "tibro-kontorsmobler")["locations"].append({"territory": "JP", "kind": "processing"})
    party(raw, "nordfrakt")["locations"].append({"territory": "IN", "kind": "support_access"})

    findings = findings_of(raw)

    assert codes(findings) == [
        ("nordfrakt", "NO_AGREEMENT"),
        ("nordfrakt", "LOCATION_OUTSIDE_EEA"),
        ("tibro-kontorsmobler", "NO_AGREEMENT"),
        ("tibro-kontorsmobler", "LOCATION_OUTSIDE_EEA"),
    ]
    assert findings == findings_of(copy.deepcopy(raw))


def test_the_snapshot_built_from_a_document_holds_every_party_and_agreement() -> None:
    doc = parse_document(seed())

    snapshot = snapshot_from_document(doc)

    assert set(snapshot.parties) == {p.key for p in doc.parties}
    assert sum(len(a) for a in snapshot.agreements_by_party.values()) == len(doc.agreements)
    molnhall = snapshot.parties["molnhall"]
    assert molnhall.sub_processors[0].party == "fjordvault"
    assert molnhall.sub_processors[0].approved_on == date(2024, 3, 18)
    assert [a.key for a in snapshot.agreements_by_party["kvarnberg"]] == ["kvarnberg-dpa-2023"]


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [("Europe/Stockholm", date(2026, 11, 26)), ("America/New_York", date(2026, 11, 25))],
)
def test_today_is_the_controllers_calendar_date(timezone: str, expected: date) -> None:
    late_evening_utc = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    controller = ControllerIn(name="Offix AB", established_in="SE", timezone=timezone)

    assert calendar_today(controller.timezone, now=late_evening_utc) == expected
