"""The second legal round of the guard's rules (issue 21), table-driven over small hand-built snapshots."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from guard.policy import decide, evaluate_party
from guard.territory import (
    OUTSIDE_EEA_NAMED_PARTS,
    SOURCES,
    TERRITORY_ALIASES,
    TerritoryStatus,
    classify_territory,
    is_iso_territory,
    territory_enclosures,
)
from guard.views import SubProcessorLinkView
from guard.vocabulary import ART28_CLAUSES, RULES_VERSION, ruleset_name
from registry.schemas import RegistryDocument
from registry.services.findings import document_findings
from tests.unit.test_policy import (
    FAR_AHEAD,
    LONG_AGO,
    TODAY,
    TOMORROW,
    YESTERDAY,
    agreement,
    clean_snapshot,
    codes,
    molnhall,
    nordfrakt,
    party,
    reasons_with,
    request,
    snapshot,
)

# --- 1. An agreement that permits transfers outside the EEA ---------------------------------------------


@pytest.mark.parametrize(
    ("registry", "recipient", "agreement_named", "chain"),
    [
        pytest.param(
            clean_snapshot(agreements=(agreement(transfers_outside_eea_permitted=True),)),
            "nordfrakt",
            "nordfrakt-dpa",
            None,
            id="the recipient's dpa",
        ),
        pytest.param(
            snapshot(
                party("butiken", role="independent_controller", category="reseller", subs=()),
                agreements=(
                    agreement(
                        "butiken-dsa", "butiken", kind="data_sharing", clauses=(), transfers_outside_eea_permitted=True
                    ),
                ),
            ),
            "butiken",
            "butiken-dsa",
            None,
            id="the recipient's data-sharing agreement",
        ),
        pytest.param(
            clean_snapshot(
                agreements=(agreement(), agreement("molnhall-dpa", "molnhall", transfers_outside_eea_permitted=True))
            ),
            "nordfrakt",
            "molnhall-dpa",
            ("nordfrakt", "molnhall"),
            id="a sub-processor's own dpa on file",
        ),
    ],
)
def test_an_agreement_permitting_transfers_denies_naming_the_agreement(registry, recipient, agreement_named, chain):
    decision = decide(request(recipient), registry, TODAY)
    assert codes(decision) == {"AGREEMENT_PERMITS_TRANSFER"}
    [reason] = decision.reasons
    assert reason.agreement == agreement_named
    assert reason.chain == chain


def test_a_sub_processors_dpa_permitting_transfers_counts_only_while_it_is_in_force():
    for dpa, denied in [
        (agreement("molnhall-dpa", "molnhall", transfers_outside_eea_permitted=True, expires_on=YESTERDAY), False),
        (agreement("molnhall-dpa", "molnhall", transfers_outside_eea_permitted=True, effective_from=TOMORROW), False),
        (agreement("molnhall-dpa", "molnhall", transfers_outside_eea_permitted=True, signed_on=None), False),
        (agreement("molnhall-dpa", "molnhall", transfers_outside_eea_permitted=True, expires_on=TODAY), True),
    ]:
        decision = decide(request(), clean_snapshot(agreements=(agreement(), dpa)), TODAY)
        assert ("AGREEMENT_PERMITS_TRANSFER" in codes(decision)) is denied, dpa


def test_of_two_agreements_in_force_the_one_not_permitting_transfers_is_chosen_and_the_other_still_denies():
    """Art. 28(3)(a), 44: the agreement permitting transfers lets the processor transfer whichever one the share
    rests on (probes N31, N32)."""
    permissive = agreement("nordfrakt-open", transfers_outside_eea_permitted=True, expires_on=None)
    strict = agreement("nordfrakt-strict")
    decision = decide(request(), clean_snapshot(agreements=(permissive, strict)), TODAY)
    assert decision.agreement == "nordfrakt-strict"
    [reason] = decision.reasons
    assert (reason.code, reason.agreement) == ("AGREEMENT_PERMITS_TRANSFER", "nordfrakt-open")


def test_an_agreement_permitting_transfers_is_a_registry_finding_for_the_party_and_its_processor():
    registry = clean_snapshot(
        agreements=(
            agreement(transfers_outside_eea_permitted=True),
            agreement("molnhall-dpa", "molnhall", transfers_outside_eea_permitted=True),
        )
    )
    processor = [(r.code, r.agreement) for r in evaluate_party(registry.parties["nordfrakt"], registry, TODAY)]
    assert processor == [
        ("AGREEMENT_PERMITS_TRANSFER", "nordfrakt-dpa"),
        ("AGREEMENT_PERMITS_TRANSFER", "molnhall-dpa"),
    ]
    sub = [(r.code, r.agreement) for r in evaluate_party(registry.parties["molnhall"], registry, TODAY)]
    assert sub == [("AGREEMENT_PERMITS_TRANSFER", "molnhall-dpa")]


# --- 2. Northern Cyprus ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("CY-06", TerritoryStatus.OUTSIDE_EEA),
        ("CY-04", TerritoryStatus.OUTSIDE_EEA),
        ("CY-01", TerritoryStatus.INSIDE_EEA),
        ("CY-02", TerritoryStatus.INSIDE_EEA),
        ("CY-03", TerritoryStatus.INSIDE_EEA),
        ("CY-05", TerritoryStatus.INSIDE_EEA),
        ("CY", TerritoryStatus.INSIDE_EEA),
    ],
)
def test_the_cyprus_districts_not_under_the_republics_control_are_outside(code, expected):
    assert classify_territory(code) is expected


def test_a_destination_in_keryneia_is_outside_the_eea_even_for_a_recipient_declaring_cyprus():
    registry = snapshot(nordfrakt(locations=(("CY", "storage"),)), molnhall(), agreements=(agreement(),))
    assert codes(decide(request(destination="CY-06"), registry, TODAY)) == {"DESTINATION_OUTSIDE_EEA"}


# --- 3. The data subject --------------------------------------------------------------------------------


def _document(**agreement_changes) -> dict:
    entry = {
        "key": "nordfrakt-dpa",
        "party": "nordfrakt",
        "kind": "dpa",
        "signed_on": "2024-01-01",
        "effective_from": "2024-01-01",
        "owner_email": "legal@offix.example",
        "data_categories": ["user.name"],
        "purposes": ["essential.service.operations"],
        "data_subjects": ["customer"],
        "clauses": list(ART28_CLAUSES),
        # The signed copy is referenced, so the only findings are the legal rules' own (not an evidence gap).
        "document": {"uri": "https://dms.offix.example/nordfrakt-dpa.pdf", "sha256": "0" * 64},
        **agreement_changes,
    }
    return {
        "controller": {"name": "Offix AB", "established_in": "SE"},
        "parties": [
            {
                "key": "nordfrakt",
                "name": "Nordfrakt",
                "role": "processor",
                "category": "transport",
                "established_in": "SE",
            }
        ],
        "agreements": [entry],
    }


@pytest.mark.parametrize("subjects", [[], None])
def test_an_agreement_must_list_at_least_one_data_subject(subjects):
    doc = _document(data_subjects=subjects)
    if subjects is None:
        del doc["agreements"][0]["data_subjects"]
    with pytest.raises(ValueError, match="data_subjects"):
        RegistryDocument.model_validate(doc)


# --- 4. Authorities -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["processor", "independent_controller", "sub_processor"])
def test_a_party_of_category_authority_is_an_authority_whatever_its_role(role):
    filed_wrongly = party("uppbord", role=role, category="authority")
    deal = agreement("uppbord-a", "uppbord", kind="data_sharing" if role == "independent_controller" else "dpa")
    decision = decide(request("uppbord"), snapshot(filed_wrongly, agreements=(deal,)), TODAY)
    assert codes(decision) == {"RECIPIENT_IS_AUTHORITY"}


@pytest.mark.parametrize("role", ["processor", "independent_controller", "sub_processor"])
def test_the_registry_refuses_category_authority_with_another_role_naming_both_fields(role):
    doc = _document()
    doc["parties"][0] |= {"role": role, "category": "authority"}
    with pytest.raises(ValueError, match=r"parties\.0\.category[\s\S]*category 'authority' requires role 'authority'"):
        RegistryDocument.model_validate(doc)


# --- 5. ISO aliases -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("canonical", "alias"), TERRITORY_ALIASES)
def test_a_territory_and_its_iso_alias_have_the_same_status(canonical, alias):
    assert is_iso_territory(canonical) and is_iso_territory(alias)
    assert classify_territory(canonical) is classify_territory(alias) is not TerritoryStatus.UNKNOWN


@pytest.mark.parametrize(
    ("declared", "destination"),
    [
        ("FR", "RE"),
        ("FR", "FR-974"),
        ("RE", "FR-974"),
        ("FR-974", "RE"),
        ("FR", "MF"),
        ("MF", "FR-MF"),
        ("FR-MF", "MF"),
        ("GP", "FR-971"),
        ("MQ", "FR-972"),
        ("GF", "FR-973"),
        ("YT", "FR-976"),
        ("FR", "YT"),
        ("AX", "FI-01"),
        ("FI-01", "AX"),
        ("FI", "AX"),
    ],
)
def test_a_recipient_declaring_a_place_declares_its_iso_alias_and_what_lies_inside(declared, destination):
    registry = snapshot(nordfrakt(locations=((declared, "storage"),)), molnhall(), agreements=(agreement(),))
    assert decide(request(destination=destination), registry, TODAY).allowed


@pytest.mark.parametrize(
    ("declared", "destination"),
    [("RE", "FR"), ("RE", "GP"), ("AX", "FI"), ("FR-974", "FR-971"), ("SE", "RE")],
)
def test_an_alias_does_not_declare_its_country_or_another_place(declared, destination):
    registry = snapshot(nordfrakt(locations=((declared, "storage"),)), molnhall(), agreements=(agreement(),))
    assert codes(decide(request(destination=destination), registry, TODAY)) == {"DESTINATION_UNDECLARED"}


@pytest.mark.parametrize(
    ("declared", "destination"),
    [("PF", "FR-PF"), ("FR-NC", "NC"), ("NL-AW", "AW"), ("BQ", "NL-BQ1"), ("US-PR", "PR")],
)
def test_the_outside_aliases_are_one_place_too_outside_but_declared(declared, destination):
    assert classify_territory(destination) is TerritoryStatus.OUTSIDE_EEA
    registry = snapshot(
        nordfrakt(locations=(("SE", "storage"), (declared, "processing"))), molnhall(), agreements=(agreement(),)
    )
    reasons = codes(decide(request(destination=destination), registry, TODAY))
    assert reasons == {"LOCATION_OUTSIDE_EEA", "DESTINATION_OUTSIDE_EEA"}


def test_every_named_outside_part_with_an_alpha_2_form_is_aliased():
    aliased = {code for pair in TERRITORY_ALIASES for code in pair}
    for code in OUTSIDE_EEA_NAMED_PARTS:
        if code.startswith(("FR-", "NL-")) and code != "FR-CP":
            assert code in aliased, code
    assert territory_enclosures("FR-974") == territory_enclosures("RE") == {"RE", "FR"}


# --- 6. Sub-processor authorisation (Art. 28(2)) ------------------------------------------------------


def _link(**fields) -> SubProcessorLinkView:
    return SubProcessorLinkView(**{"party": "molnhall", "approved_on": None, "objection_deadline": None, **fields})


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        pytest.param(_link(approved_on=LONG_AGO), set(), id="specific, approved before today"),
        pytest.param(_link(approved_on=TODAY), set(), id="specific, approved today"),
        pytest.param(_link(approved_on=TOMORROW), {"SUBPROCESSOR_UNAPPROVED"}, id="specific, approved from tomorrow"),
        pytest.param(
            _link(objection_deadline=YESTERDAY), {"SUBPROCESSOR_UNAPPROVED"}, id="specific, deadline passed: no matter"
        ),
        pytest.param(_link(authorisation="general"), {"SUBPROCESSOR_UNAPPROVED"}, id="general, nothing recorded"),
        pytest.param(
            _link(authorisation="general", notified_on=YESTERDAY, objection_deadline=TODAY),
            {"SUBPROCESSOR_UNAPPROVED"},
            id="general, deadline is today",
        ),
        pytest.param(
            _link(authorisation="general", notified_on=LONG_AGO, objection_deadline=YESTERDAY),
            set(),
            id="general, deadline passed without objection",
        ),
        pytest.param(
            _link(authorisation="general", objection_deadline=FAR_AHEAD, approved_on=YESTERDAY),
            set(),
            id="general, approved before the deadline",
        ),
        pytest.param(
            _link(authorisation="general", objection_deadline=YESTERDAY, objected_on=LONG_AGO),
            {"SUBPROCESSOR_OBJECTED"},
            id="general, objected before the deadline",
        ),
        pytest.param(
            _link(approved_on=LONG_AGO, objected_on=YESTERDAY),
            {"SUBPROCESSOR_OBJECTED"},
            id="specific, approved and later objected",
        ),
    ],
)
def test_a_sub_processor_link_is_in_effect_as_its_authorisation_says(link, expected):
    registry = snapshot(party(subs=(link,)), molnhall(), agreements=(agreement(),))
    assert codes(decide(request(), registry, TODAY)) == expected


def test_an_objected_sub_processor_names_the_chain_and_its_places_still_count():
    deep = party("djup", role="sub_processor", category="other", established_in="US", locations=())
    sub = molnhall(subs=(_link(party="djup", approved_on=LONG_AGO),))
    registry = snapshot(party(subs=(_link(objected_on=YESTERDAY),)), sub, deep, agreements=(agreement(),))
    decision = decide(request(), registry, TODAY)
    assert codes(decision) == {"SUBPROCESSOR_OBJECTED", "SUBPROCESSOR_OUTSIDE_EEA"}
    [objected] = reasons_with(decision, "SUBPROCESSOR_OBJECTED")
    assert objected.chain == ("nordfrakt", "molnhall")
    assert objected.party == "molnhall"


def test_a_general_authorisation_takes_effect_the_day_after_the_deadline_on_the_same_snapshot():
    registry = snapshot(
        party(subs=(_link(authorisation="general", notified_on=LONG_AGO, objection_deadline=TODAY),)),
        molnhall(),
        agreements=(agreement(),),
    )
    assert not decide(request(), registry, TODAY).allowed
    assert decide(request(), registry, TODAY + timedelta(days=1)).allowed


def test_a_document_with_only_approved_on_keeps_working():
    doc = _document()
    doc["parties"].append(
        {
            "key": "molnhall",
            "name": "Molnhall",
            "role": "sub_processor",
            "category": "it_services",
            "established_in": "SE",
        }
    )
    doc["parties"][0]["sub_processors"] = [{"party": "molnhall", "approved_on": "2025-01-10"}]
    parsed = RegistryDocument.model_validate(doc)
    assert parsed.parties[0].sub_processors[0].authorisation == "specific"
    assert document_findings(parsed, today=date(2026, 11, 28)) == []


# --- 7. Published purposes ------------------------------------------------------------------------------

PUBLISHED = frozenset({"essential.service", "marketing.communications.email"})


@pytest.mark.parametrize(
    ("purpose", "published"),
    [
        ("essential.service", True),
        ("essential.service.operations", True),
        ("marketing.communications.email", True),
        ("marketing.communications", False),
        ("marketing.communications.sms", False),
        ("essential", False),
        ("analytics", False),
    ],
)
def test_a_purpose_outside_the_published_ones_is_denied(purpose, published):
    covering = agreement(purposes=("essential", "marketing", "analytics"))
    registry = replace(clean_snapshot(agreements=(covering,)), published_purposes=PUBLISHED)
    # (A person named, as every marketing share must: this test is about the published purposes.)
    decision = decide(replace(request(purpose=purpose), subject_ref="f" * 64), registry, TODAY)
    assert decision.allowed is published
    assert codes(decision) == (set() if published else {"PURPOSE_NOT_PUBLISHED"})


def test_published_purposes_not_set_check_nothing_and_unknown_purposes_are_only_unknown():
    assert decide(
        request(purpose="analytics"), clean_snapshot(agreements=(agreement(purposes=("analytics",)),)), TODAY
    ).allowed
    registry = replace(clean_snapshot(), published_purposes=PUBLISHED)
    assert codes(decide(request(purpose="world_domination"), registry, TODAY)) == {"PURPOSE_UNKNOWN"}


def test_an_unpublished_purpose_is_reported_even_for_an_unknown_recipient_with_every_other_reason():
    registry = replace(clean_snapshot(), published_purposes=PUBLISHED)
    assert codes(decide(request("nobody", purpose="analytics"), registry, TODAY)) == {
        "RECIPIENT_UNKNOWN",
        "PURPOSE_NOT_PUBLISHED",
    }


def test_an_agreement_covering_a_purpose_outside_the_published_ones_is_a_registry_finding():
    broad = agreement(purposes=("essential.service.operations", "marketing"))
    registry = replace(clean_snapshot(agreements=(broad,)), published_purposes=PUBLISHED)
    [finding] = evaluate_party(registry.parties["nordfrakt"], registry, TODAY)
    assert (finding.code, finding.agreement) == ("PURPOSE_NOT_PUBLISHED", "nordfrakt-dpa")
    assert "'marketing'" in finding.message


def test_the_document_findings_read_the_published_purposes():
    doc = _document(purposes=["essential.service.operations", "sales"])
    doc["controller"]["published_purposes"] = ["essential.service"]
    [finding] = document_findings(RegistryDocument.model_validate(doc), today=date(2026, 11, 28))
    assert finding["code"] == "PURPOSE_NOT_PUBLISHED"


def test_published_purposes_must_be_taxonomy_keys_and_not_an_empty_list():
    for bad in (["world_domination"], []):
        doc = _document()
        doc["controller"]["published_purposes"] = bad
        with pytest.raises(ValueError, match="published_purposes"):
            RegistryDocument.model_validate(doc)


# --- 8. The ruleset -------------------------------------------------------------------------------------


def test_the_ruleset_names_the_policy_the_rules_version_and_the_registry_revision():
    name = ruleset_name("eea-only", 123)
    assert name == f"eea-only@{RULES_VERSION}+r123"
    assert RULES_VERSION.startswith("rules-")
    assert ".t2026-11-28." in RULES_VERSION
    assert ".fides3." in RULES_VERSION


def test_the_territory_table_sources_name_protocol_10_for_cyprus():
    assert any("Protocol No 10" in source and "Cyprus" in source for source in SOURCES)
    assert "Protocol No 10" in OUTSIDE_EEA_NAMED_PARTS["CY-06"]
    assert "Protocol No 10" in OUTSIDE_EEA_NAMED_PARTS["CY-04"]
