"""The guard's pure policy (DESIGN §4.2, §4.3), table-driven over small hand-built snapshots."""

import json
import random
from dataclasses import replace
from datetime import date, timedelta

import pytest

from guard.agreements import _coverage, _why_not_in_force
from guard.policy import Snapshot, decide, evaluate_party, objection_covers
from guard.views import AgreementView, Decision, LocationView, PartyView, Reason, ShareRequest, SubProcessorLinkView
from guard.vocabulary import (
    ART28_CLAUSE_LETTERS,
    ART28_CLAUSES,
    KNOWN_DATA_CATEGORIES,
    KNOWN_DATA_SUBJECTS,
    KNOWN_PURPOSES,
    REQUIRED_AGREEMENT_KIND,
    SPECIAL_CATEGORY_ROOTS,
    ReasonCode,
    covers,
    is_special_category,
)

TODAY = date(2026, 11, 25)
YESTERDAY = TODAY - timedelta(days=1)
TOMORROW = TODAY + timedelta(days=1)
LONG_AGO = date(2024, 1, 1)
FAR_AHEAD = date(2029, 12, 31)
RULESET = "eea-only@test"

# --- Factories ------------------------------------------------------------------------------------------


def party(
    key: str = "nordfrakt",
    *,
    role: str = "processor",
    established_in: str = "SE",
    locations: tuple[tuple[str, str], ...] = (("SE", "storage"), ("DK", "processing")),
    subs: tuple[SubProcessorLinkView, ...] = (),
    active: bool = True,
    category: str = "transport",
    international_organisation: bool = False,
) -> PartyView:
    return PartyView(
        key=key,
        name=key.replace("-", " ").title() + " AB",
        role=role,
        category=category,
        established_in=established_in,
        active=active,
        locations=tuple(LocationView(territory=t, kind=k) for t, k in locations),
        sub_processors=subs,
        international_organisation=international_organisation,
    )


def link(to: str, approved_on: date | None = LONG_AGO, objection_deadline: date | None = None) -> SubProcessorLinkView:
    return SubProcessorLinkView(party=to, approved_on=approved_on, objection_deadline=objection_deadline)


def agreement(
    key: str = "nordfrakt-dpa",
    party_key: str = "nordfrakt",
    *,
    kind: str = "dpa",
    signed_on: date | None = LONG_AGO,
    effective_from: date = LONG_AGO,
    expires_on: date | None = FAR_AHEAD,
    terminated_on: date | None = None,
    renewal: str = "fixed",
    categories: tuple[str, ...] = ("user.name", "user.contact"),
    purposes: tuple[str, ...] = ("essential.service.operations",),
    subjects: tuple[str, ...] = ("customer",),
    clauses: frozenset[str] | tuple[str, ...] = ART28_CLAUSES,
    transfers_outside_eea_permitted: bool = False,
) -> AgreementView:
    return AgreementView(
        key=key,
        party=party_key,
        kind=kind,
        signed_on=signed_on,
        effective_from=effective_from,
        expires_on=expires_on,
        terminated_on=terminated_on,
        renewal=renewal,
        notice_days=None,
        owner_email="legal@offix.example",
        data_categories=categories,
        purposes=purposes,
        data_subjects=subjects,
        clauses=frozenset(clauses),
        transfers_outside_eea_permitted=transfers_outside_eea_permitted,
    )


def snapshot(*parties: PartyView, agreements: tuple[AgreementView, ...] = ()) -> Snapshot:
    by_party: dict[str, tuple[AgreementView, ...]] = {}
    for a in agreements:
        by_party[a.party] = (*by_party.get(a.party, ()), a)
    return Snapshot(parties={p.key: p for p in parties}, agreements_by_party=by_party, ruleset=RULESET)


def request(
    recipient: str = "nordfrakt",
    *,
    purpose: str = "essential.service.operations",
    categories: tuple[str, ...] = ("user.name", "user.contact.address"),
    destination: str | None = None,
    data_subject: str | None = "customer",
    subject_ref: str | None = None,
) -> ShareRequest:
    return ShareRequest(
        recipient=recipient,
        purpose=purpose,
        data_categories=categories,
        destination=destination,
        data_subject=data_subject,
        subject_ref=subject_ref,
    )


# Subject references as the policy sees them: keyed digests (any text serves; the policy only looks them up).
OBJECTOR = "a" * 64
SOMEONE = "b" * 64
OBJECTIONS = {OBJECTOR: ("all",)}
RESTRICTED_PERSON = "c" * 64
RESTRICTIONS = {RESTRICTED_PERSON: ("restricted",)}


def nordfrakt(**changes) -> PartyView:
    """A clean processor in SE/DK with one approved sub-processor, molnhall, in SE."""
    return party(subs=(link("molnhall"),), **changes)


def molnhall(**changes) -> PartyView:
    defaults = {"role": "sub_processor", "locations": (("SE", "storage"),), "category": "it_services"}
    return party("molnhall", **{**defaults, **changes})


def clean_snapshot(*extra: PartyView, agreements: tuple[AgreementView, ...] | None = None) -> Snapshot:
    return snapshot(nordfrakt(), molnhall(), *extra, agreements=(agreement(),) if agreements is None else agreements)


def codes(decision: Decision) -> set[str]:
    return {reason.code for reason in decision.reasons}


def reasons_with(decision: Decision, code: str) -> list[Reason]:
    return [reason for reason in decision.reasons if reason.code == code]


# --- The reference data ---------------------------------------------------------------------------------


def test_the_reason_codes_are_exactly_those_of_the_design_plus_the_expiry_warning():
    assert {str(c) for c in ReasonCode} == {
        "RECIPIENT_UNKNOWN", "RECIPIENT_INACTIVE", "RECIPIENT_IS_AUTHORITY", "NO_AGREEMENT",
        "AGREEMENT_INCOMPLETE", "CATEGORY_NOT_COVERED", "PURPOSE_NOT_COVERED", "SUBJECT_NOT_COVERED",
        "CATEGORY_UNKNOWN", "PURPOSE_UNKNOWN", "SPECIAL_CATEGORY", "LOCATION_OUTSIDE_EEA",
        "SUBPROCESSOR_OUTSIDE_EEA", "SUBPROCESSOR_UNAPPROVED", "DESTINATION_OUTSIDE_EEA",
        "DESTINATION_UNDECLARED", "TERRITORY_UNKNOWN", "AGREEMENT_PERMITS_TRANSFER", "SUBPROCESSOR_OBJECTED",
        "PURPOSE_NOT_PUBLISHED", "SUBJECT_OBJECTED", "SUBJECT_REF_MISSING", "SUBJECT_RESTRICTED",
        "AGREEMENT_EXPIRING", "RECIPIENT_INTERNATIONAL_ORGANISATION",
    }  # fmt: skip


def test_the_art28_clauses_are_the_eight_of_the_design_in_letter_order():
    assert ART28_CLAUSES == (
        "instructions", "confidentiality", "security", "sub_processing", "data_subject_rights",
        "compliance_assistance", "deletion_or_return", "audits",
    )  # fmt: skip
    assert [ART28_CLAUSE_LETTERS[c] for c in ART28_CLAUSES] == [f"({x})" for x in "abcdefgh"]


def test_each_role_needs_the_agreement_kind_of_the_design():
    assert dict(REQUIRED_AGREEMENT_KIND) == {
        "processor": "dpa",
        "sub_processor": "dpa",
        "independent_controller": "data_sharing",
    }


def test_the_known_taxonomy_keys_come_from_fideslang():
    assert {"user", "user.contact.email", "user.name"} <= KNOWN_DATA_CATEGORIES
    assert {"marketing.communications.email", "essential.service.operations"} <= KNOWN_PURPOSES
    assert {"customer", "employee"} <= KNOWN_DATA_SUBJECTS
    assert all(root in KNOWN_DATA_CATEGORIES for root in SPECIAL_CATEGORY_ROOTS)


@pytest.mark.parametrize(
    ("entry", "key", "expected"),
    [
        ("user.contact", "user.contact", True),
        ("user.contact", "user.contact.email", True),
        ("user.contact", "user.contact.address.city", True),
        ("user", "user.contact.email", True),
        ("marketing", "marketing.communications.email", True),
        ("user.contact.email", "user.contact", False),
        ("user.contact", "user.contactless", False),
        ("user.contact", "user", False),
        ("marketing.communications.email", "marketing", False),
        ("user.contact", "system.operations", False),
    ],
)
def test_an_entry_covers_itself_and_its_descendants_only(entry, key, expected):
    assert covers(entry, key) is expected


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("user.biometric", True),
        ("user.biometric.fingerprint", True),
        ("user.authorization.biometric", True),
        ("user.health_and_medical", True),
        ("user.health_and_medical.genetic", True),
        ("user.demographic.race_ethnicity", True),
        ("user.demographic.political_opinion", True),
        ("user.demographic.religious_belief", True),
        ("user.demographic.sexual_orientation", True),
        ("user.criminal_history", True),
        ("user", True),  # an ancestor that would include special data
        ("user.demographic", True),
        ("user.authorization", True),
        ("user.demographic.gender", False),
        ("user.demographic.date_of_birth", False),
        ("user.authorization.password", False),
        ("user.contact.email", False),
        ("system", False),
    ],
)
def test_special_categories_are_the_art_9_and_10_keys_their_descendants_and_their_ancestors(category, expected):
    assert is_special_category(category) is expected


# --- Allow ----------------------------------------------------------------------------------------------


def test_a_processor_with_a_complete_dpa_inside_the_eea_is_allowed():
    decision = decide(request(destination="DK", data_subject="customer"), clean_snapshot(), TODAY)
    assert decision == Decision(allowed=True, reasons=(), warnings=(), agreement="nordfrakt-dpa", ruleset=RULESET)


def test_an_independent_controller_with_a_data_sharing_agreement_is_allowed():
    retailer = party("butiken", role="independent_controller", category="reseller")
    deal = agreement("butiken-dsa", "butiken", kind="data_sharing", clauses=())
    decision = decide(request("butiken"), snapshot(retailer, agreements=(deal,)), TODAY)
    assert decision.allowed
    assert decision.agreement == "butiken-dsa"


# --- Every reason code alone ----------------------------------------------------------------------------

SINGLE_REASON_CASES = [
    pytest.param(request("nobody"), clean_snapshot(), {"RECIPIENT_UNKNOWN"}, id="recipient unknown"),
    pytest.param(
        request(),
        snapshot(nordfrakt(active=False), molnhall(), agreements=(agreement(),)),
        {"RECIPIENT_INACTIVE"},
        id="recipient inactive",
    ),
    pytest.param(
        request("skatteverket"),
        snapshot(party("skatteverket", role="authority", category="authority")),
        {"RECIPIENT_IS_AUTHORITY"},
        id="recipient is an authority",
    ),
    pytest.param(request(), clean_snapshot(agreements=()), {"NO_AGREEMENT"}, id="no agreement"),
    pytest.param(
        request(),
        clean_snapshot(agreements=(agreement(clauses=ART28_CLAUSES[:-1]),)),
        {"AGREEMENT_INCOMPLETE"},
        id="dpa lacks a clause",
    ),
    pytest.param(
        request(categories=("user.financial.credit_card",)),
        clean_snapshot(),
        {"CATEGORY_NOT_COVERED"},
        id="category not covered",
    ),
    pytest.param(
        request(purpose="marketing.communications.email", subject_ref=SOMEONE),
        clean_snapshot(),
        {"PURPOSE_NOT_COVERED"},
        id="purpose not covered",
    ),
    pytest.param(
        request(purpose="marketing.communications.email"),
        clean_snapshot(agreements=(agreement(purposes=("essential", "marketing")),)),
        {"SUBJECT_REF_MISSING"},
        id="marketing names no subject",
    ),
    pytest.param(request(subject_ref=OBJECTOR), clean_snapshot(), {"SUBJECT_OBJECTED"}, id="subject objected"),
    pytest.param(
        request(subject_ref=RESTRICTED_PERSON), clean_snapshot(), {"SUBJECT_RESTRICTED"}, id="subject restricted"
    ),
    pytest.param(request(data_subject="employee"), clean_snapshot(), {"SUBJECT_NOT_COVERED"}, id="subject not covered"),
    pytest.param(request(data_subject="robot"), clean_snapshot(), {"SUBJECT_NOT_COVERED"}, id="subject unknown"),
    pytest.param(
        request(categories=("user.name", "user.shoe_size")),
        clean_snapshot(),
        {"CATEGORY_UNKNOWN"},
        id="category unknown",
    ),
    pytest.param(request(purpose="world_domination"), clean_snapshot(), {"PURPOSE_UNKNOWN"}, id="purpose unknown"),
    pytest.param(
        request(categories=("user.health_and_medical",)),
        clean_snapshot(agreements=(agreement(categories=("user",)),)),
        {"SPECIAL_CATEGORY"},
        id="special category even when the agreement lists it",
    ),
    pytest.param(
        request(),
        snapshot(
            nordfrakt(locations=(("SE", "storage"), ("US", "support_access"))), molnhall(), agreements=(agreement(),)
        ),
        {"LOCATION_OUTSIDE_EEA"},
        id="location outside the eea",
    ),
    pytest.param(
        request(),
        snapshot(nordfrakt(established_in="CH", locations=()), molnhall(), agreements=(agreement(),)),
        {"LOCATION_OUTSIDE_EEA"},
        id="establishment outside the eea",
    ),
    pytest.param(
        request(),
        snapshot(nordfrakt(), molnhall(locations=(("US", "storage"),)), agreements=(agreement(),)),
        {"SUBPROCESSOR_OUTSIDE_EEA"},
        id="sub-processor outside the eea",
    ),
    pytest.param(
        request(),
        snapshot(party(subs=(link("molnhall", approved_on=None),)), molnhall(), agreements=(agreement(),)),
        {"SUBPROCESSOR_UNAPPROVED"},
        id="sub-processor unapproved",
    ),
    pytest.param(
        request(destination="NO-21"),
        snapshot(party(locations=(("NO", "storage"),)), agreements=(agreement(),)),
        {"DESTINATION_OUTSIDE_EEA"},
        id="destination svalbard outside although norway is declared",
    ),
    pytest.param(request(destination="FI"), clean_snapshot(), {"DESTINATION_UNDECLARED"}, id="destination undeclared"),
    pytest.param(
        request(destination="EL"), clean_snapshot(), {"TERRITORY_UNKNOWN"}, id="destination territory unknown"
    ),
    pytest.param(
        request(),
        snapshot(nordfrakt(locations=(("UK", "backup"),)), molnhall(), agreements=(agreement(),)),
        {"TERRITORY_UNKNOWN"},
        id="location territory unknown",
    ),
    pytest.param(
        request(),
        snapshot(nordfrakt(), molnhall(established_in="XK"), agreements=(agreement(),)),
        {"TERRITORY_UNKNOWN"},
        id="sub-processor territory unknown",
    ),
    pytest.param(
        request(),
        clean_snapshot(agreements=(agreement(transfers_outside_eea_permitted=True),)),
        {"AGREEMENT_PERMITS_TRANSFER"},
        id="agreement permits transfers outside the eea",
    ),
    pytest.param(
        request(),
        snapshot(
            party(subs=(replace(link("molnhall"), objected_on=YESTERDAY),)), molnhall(), agreements=(agreement(),)
        ),
        {"SUBPROCESSOR_OBJECTED"},
        id="sub-processor objected",
    ),
    pytest.param(
        request(),
        replace(clean_snapshot(), published_purposes=frozenset({"marketing.communications.email"})),
        {"PURPOSE_NOT_PUBLISHED"},
        id="purpose not published",
    ),
    pytest.param(
        request(),
        snapshot(party(international_organisation=True), molnhall(), agreements=(agreement(),)),
        {"RECIPIENT_INTERNATIONAL_ORGANISATION"},
        id="recipient an international organisation",
    ),
]


@pytest.mark.parametrize(("share", "registry", "expected"), SINGLE_REASON_CASES)
def test_a_single_problem_denies_with_exactly_its_reason(share, registry, expected):
    decision = decide(share, registry, TODAY, objections=OBJECTIONS, restrictions=RESTRICTIONS)
    assert codes(decision) == expected
    assert decision.allowed is False
    assert all(reason.message.endswith(".") for reason in decision.reasons)


def test_every_reason_code_is_exercised_alone():
    exercised = set().union(*(case.values[2] for case in SINGLE_REASON_CASES))
    assert exercised == {str(c) for c in ReasonCode} - {"AGREEMENT_EXPIRING"}


@pytest.mark.parametrize(("share", "registry", "expected"), SINGLE_REASON_CASES)
def test_allowed_is_true_exactly_when_there_are_no_reasons(share, registry, expected):
    for decision in (decide(share, registry, TODAY), decide(request(), clean_snapshot(), TODAY)):
        assert decision.allowed is (not decision.reasons)


# --- Several reasons at once ----------------------------------------------------------------------------


def test_a_deny_lists_every_reason_that_applies_not_just_the_first():
    recipient = party(
        established_in="SE",
        locations=(("US", "support_access"), ("UK", "backup")),
        subs=(link("cloudco", approved_on=None),),
        active=False,
    )
    cloudco = party("cloudco", role="sub_processor", established_in="US", locations=(("US", "storage"),))
    weak = agreement(clauses=("instructions", "security"), expires_on=TODAY + timedelta(days=3))
    decision = decide(
        request(
            categories=("user.financial", "user.biometric", "user.shoe_size"),
            purpose="marketing",
            destination="BR",
            data_subject="employee",
        ),
        snapshot(recipient, cloudco, agreements=(weak,)),
        TODAY,
    )
    assert codes(decision) == {
        "RECIPIENT_INACTIVE", "CATEGORY_UNKNOWN", "SPECIAL_CATEGORY", "CATEGORY_NOT_COVERED",
        "PURPOSE_NOT_COVERED", "SUBJECT_NOT_COVERED", "AGREEMENT_INCOMPLETE", "LOCATION_OUTSIDE_EEA",
        "TERRITORY_UNKNOWN", "SUBPROCESSOR_UNAPPROVED", "SUBPROCESSOR_OUTSIDE_EEA",
        "DESTINATION_OUTSIDE_EEA", "DESTINATION_UNDECLARED", "SUBJECT_REF_MISSING",
    }  # fmt: skip
    assert {r.category for r in reasons_with(decision, "CATEGORY_NOT_COVERED")} == {
        "user.financial",
        "user.biometric",
    }
    assert reasons_with(decision, "AGREEMENT_INCOMPLETE")[0].clauses == (
        "confidentiality", "sub_processing", "data_subject_rights", "compliance_assistance",
        "deletion_or_return", "audits",
    )  # fmt: skip
    assert decision.agreement == "nordfrakt-dpa"
    assert [w.code for w in decision.warnings] == ["AGREEMENT_EXPIRING"]
    assert decision.allowed is False


def test_an_unknown_recipient_reports_only_what_can_be_checked_without_it():
    decision = decide(
        request(
            "nobody",
            categories=("user.shoe_size", "user.health_and_medical.genetic"),
            purpose="world_domination",
            destination="US",
            data_subject="robot",
        ),
        clean_snapshot(),
        TODAY,
    )
    assert codes(decision) == {
        "RECIPIENT_UNKNOWN",
        "CATEGORY_UNKNOWN",
        "PURPOSE_UNKNOWN",
        "SUBJECT_NOT_COVERED",
        "SPECIAL_CATEGORY",
        "DESTINATION_OUTSIDE_EEA",
    }
    assert decision.agreement is None
    assert decision.warnings == ()


def test_an_unknown_recipient_with_an_unknown_destination_gets_territory_unknown_not_undeclared():
    decision = decide(request("nobody", destination="ZZ"), clean_snapshot(), TODAY)
    assert codes(decision) == {"RECIPIENT_UNKNOWN", "TERRITORY_UNKNOWN"}


def test_each_unknown_category_is_its_own_reason_naming_the_category():
    decision = decide(request(categories=("user.a", "user.b", "user.a")), clean_snapshot(), TODAY)
    assert [(r.code, r.category) for r in decision.reasons] == [
        ("CATEGORY_UNKNOWN", "user.a"),
        ("CATEGORY_UNKNOWN", "user.b"),
    ]


def test_a_special_category_not_in_the_agreement_is_both_special_and_not_covered():
    decision = decide(request(categories=("user.criminal_history",)), clean_snapshot(), TODAY)
    assert codes(decision) == {"SPECIAL_CATEGORY", "CATEGORY_NOT_COVERED"}


def test_requesting_the_whole_user_category_is_special_because_it_includes_health_data():
    decision = decide(
        request(categories=("user",)), clean_snapshot(agreements=(agreement(categories=("user",)),)), TODAY
    )
    [special] = decision.reasons
    assert special.code == "SPECIAL_CATEGORY"
    assert special.category == "user"
    assert "includes special-category data" in special.message


def test_an_authority_with_a_location_outside_is_denied_for_both():
    police = party("polisen", role="authority", established_in="SE", locations=(("US", "backup"),))
    decision = decide(request("polisen"), snapshot(police), TODAY)
    assert codes(decision) == {"RECIPIENT_IS_AUTHORITY", "LOCATION_OUTSIDE_EEA"}


def test_a_party_with_a_role_the_policy_does_not_know_fails_closed():
    odd = party("odd", role="joint_controller")
    decision = decide(request("odd"), snapshot(odd), TODAY)
    assert codes(decision) == {"NO_AGREEMENT"}


# --- When an agreement is in force (§4.3) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "in_force"),
    [
        pytest.param({}, True, id="signed long ago and running"),
        pytest.param({"expires_on": TODAY}, True, id="expires today is still in force"),
        pytest.param({"expires_on": YESTERDAY}, False, id="expired yesterday"),
        pytest.param({"expires_on": None}, True, id="open ended"),
        pytest.param({"terminated_on": TODAY}, False, id="terminated today is no longer in force"),
        pytest.param({"terminated_on": TOMORROW}, True, id="terminated from tomorrow is in force today"),
        pytest.param({"terminated_on": YESTERDAY}, False, id="terminated yesterday"),
        pytest.param({"effective_from": TOMORROW}, False, id="effective tomorrow is not yet in force"),
        pytest.param({"effective_from": TODAY, "signed_on": TODAY}, True, id="signed and effective today"),
        pytest.param({"signed_on": None}, False, id="unsigned is never in force"),
        pytest.param({"signed_on": TOMORROW}, False, id="signed only tomorrow"),
    ],
)
def test_an_agreement_is_in_force_on_the_controllers_date(changes, in_force):
    dpa = agreement(**changes)
    assert dpa.in_force_on(TODAY) is in_force
    decision = decide(request(), clean_snapshot(agreements=(dpa,)), TODAY)
    assert decision.allowed is in_force
    assert codes(decision) == (set() if in_force else {"NO_AGREEMENT"})


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"expires_on": YESTERDAY}, f"expired on {YESTERDAY.isoformat()}"),
        ({"terminated_on": TODAY}, f"was terminated on {TODAY.isoformat()}"),
        ({"signed_on": None}, "is not signed"),
        ({"effective_from": TOMORROW}, f"takes effect only on {TOMORROW.isoformat()}"),
    ],
)
def test_no_agreement_says_why_the_agreement_on_file_is_not_in_force(changes, phrase):
    decision = decide(request(), clean_snapshot(agreements=(agreement(**changes),)), TODAY)
    [reason] = decision.reasons
    assert reason.code == "NO_AGREEMENT"
    assert phrase in reason.message
    assert "nordfrakt-dpa" in reason.message
    assert reason.agreement == "nordfrakt-dpa"
    assert decision.agreement is None


@pytest.mark.parametrize(
    ("role", "kind_on_file", "allowed"),
    [
        ("processor", "dpa", True),
        ("processor", "data_sharing", False),
        ("sub_processor", "dpa", True),
        ("sub_processor", "data_sharing", False),
        ("independent_controller", "data_sharing", True),
        ("independent_controller", "dpa", False),
    ],
)
def test_only_the_agreement_kind_the_role_needs_counts(role, kind_on_file, allowed):
    recipient = party(role=role)
    decision = decide(request(), snapshot(recipient, agreements=(agreement(kind=kind_on_file),)), TODAY)
    assert decision.allowed is allowed
    if not allowed:
        [reason] = decision.reasons
        assert reason.code == "NO_AGREEMENT"
        assert f"role {role} needs" in reason.message


# --- Coverage and the choice of agreement ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_file", "requested", "covered"),
    [
        pytest.param(("user.contact",), "user.contact.email", True, id="parent in agreement covers child"),
        pytest.param(("user.contact",), "user.contact.address.city", True, id="grandparent covers grandchild"),
        pytest.param(("user.contact.email",), "user.contact", False, id="child in agreement does not cover parent"),
        pytest.param(("user.contact.email",), "user.contact.phone_number", False, id="sibling does not cover"),
    ],
)
def test_a_category_is_covered_by_itself_or_an_ancestor_in_the_agreement(on_file, requested, covered):
    registry = clean_snapshot(agreements=(agreement(categories=on_file),))
    decision = decide(request(categories=(requested,)), registry, TODAY)
    assert codes(decision) == (set() if covered else {"CATEGORY_NOT_COVERED"})


@pytest.mark.parametrize(
    ("on_file", "requested", "covered"),
    [
        pytest.param(("marketing",), "marketing.communications.email", True, id="parent covers child"),
        pytest.param(("marketing.communications.email",), "marketing", False, id="child does not cover parent"),
        pytest.param(("essential",), "marketing.communications", False, id="other branch does not cover"),
    ],
)
def test_a_purpose_is_covered_by_itself_or_an_ancestor_in_the_agreement(on_file, requested, covered):
    registry = clean_snapshot(agreements=(agreement(purposes=on_file),))
    decision = decide(request(purpose=requested, subject_ref=SOMEONE), registry, TODAY)
    assert codes(decision) == (set() if covered else {"PURPOSE_NOT_COVERED"})


def test_the_data_subject_is_checked_only_when_given():
    registry = clean_snapshot(agreements=(agreement(subjects=("customer",)),))
    assert decide(request(), registry, TODAY).allowed
    assert decide(request(data_subject="customer"), registry, TODAY).allowed
    assert codes(decide(request(data_subject="prospect"), registry, TODAY)) == {"SUBJECT_NOT_COVERED"}


def test_of_several_covering_agreements_the_one_expiring_latest_is_chosen():
    early = agreement("early", expires_on=date(2027, 6, 30))
    late = agreement("late", expires_on=date(2028, 6, 30))
    decision = decide(request(), clean_snapshot(agreements=(early, late)), TODAY)
    assert decision.agreement == "late"


def test_an_open_ended_agreement_counts_as_expiring_latest():
    dated = agreement("dated", expires_on=FAR_AHEAD)
    open_ended = agreement("open-ended", expires_on=None)
    decision = decide(request(), clean_snapshot(agreements=(dated, open_ended)), TODAY)
    assert decision.agreement == "open-ended"


def test_an_agreement_that_covers_wins_over_one_that_expires_later_but_does_not():
    covering = agreement("covering", expires_on=date(2027, 1, 31), categories=("user",))
    narrow = agreement("narrow", expires_on=None, categories=("user.name",))
    decision = decide(
        request(categories=("user.name", "user.contact.email")), clean_snapshot(agreements=(narrow, covering)), TODAY
    )
    assert decision.allowed
    assert decision.agreement == "covering"


def test_when_none_covers_the_reasons_are_measured_against_the_closest_agreement():
    names_only = agreement("names-only", categories=("user.name",), purposes=("marketing",))
    contact = agreement("contact", categories=("user.name", "user.contact"), purposes=("marketing",))
    decision = decide(
        request(categories=("user.name", "user.contact.email", "user.financial")),
        clean_snapshot(agreements=(names_only, contact)),
        TODAY,
    )
    assert decision.agreement == "contact"
    assert [(r.code, r.category, r.agreement) for r in decision.reasons] == [
        ("CATEGORY_NOT_COVERED", "user.financial", "contact"),
        ("PURPOSE_NOT_COVERED", None, "contact"),
    ]


def test_an_agreement_not_in_force_is_never_chosen_even_if_it_covers():
    lapsed = agreement("lapsed", expires_on=YESTERDAY, categories=("user",))
    current = agreement("current", categories=("user.name",))
    decision = decide(request(), clean_snapshot(agreements=(lapsed, current)), TODAY)
    assert decision.agreement == "current"
    assert codes(decision) == {"CATEGORY_NOT_COVERED"}


THIN = ART28_CLAUSES[:7]  # lacks (h) audits


# A share is allowed when some in-force agreement of the right kind covers it and, for a dpa, carries all
# of Art. 28(3); the answer is measured against the agreement with the fewest reasons against it.
@pytest.mark.parametrize(
    ("on_file", "chosen", "expected_codes"),
    [
        pytest.param(
            (agreement("thin", expires_on=None, clauses=THIN), agreement("complete", expires_on=date(2027, 6, 30))),
            "complete",
            set(),
            id="a complete dpa wins over an incomplete one that expires later",
        ),
        pytest.param(
            (agreement("complete", expires_on=date(2027, 6, 30)), agreement("thin", expires_on=None, clauses=THIN)),
            "complete",
            set(),
            id="a complete dpa wins whatever the order on file",
        ),
        pytest.param(
            (
                agreement("thin", expires_on=date(2027, 6, 30), clauses=THIN),
                agreement("complete-narrow", expires_on=None, categories=()),
            ),
            "thin",
            {"AGREEMENT_INCOMPLETE"},
            id="an incomplete dpa that covers wins over a complete one with two gaps",
        ),
        pytest.param(
            (agreement("thin-early", expires_on=date(2027, 6, 30), clauses=THIN), agreement("thin-late", clauses=THIN)),
            "thin-late",
            {"AGREEMENT_INCOMPLETE"},
            id="of two incomplete dpas the one expiring latest",
        ),
    ],
)
def test_the_agreement_chosen_is_the_one_with_the_fewest_reasons_against_it(on_file, chosen, expected_codes):
    decision = decide(request(), clean_snapshot(agreements=on_file), TODAY)
    assert decision.agreement == chosen
    assert codes(decision) == expected_codes
    assert decision.allowed is (not expected_codes)


def test_an_incomplete_dpa_lists_the_missing_clauses_in_letter_order():
    dpa = agreement(clauses=("audits", "instructions", "security", "confidentiality"))
    [reason] = decide(request(), clean_snapshot(agreements=(dpa,)), TODAY).reasons
    assert reason.code == "AGREEMENT_INCOMPLETE"
    assert reason.clauses == ("sub_processing", "data_subject_rights", "compliance_assistance", "deletion_or_return")
    assert "(d) sub_processing" in reason.message
    assert reason.agreement == "nordfrakt-dpa"


def test_a_data_sharing_agreement_needs_no_art28_clauses():
    retailer = party("butiken", role="independent_controller")
    deal = agreement("butiken-dsa", "butiken", kind="data_sharing", clauses=())
    assert decide(request("butiken"), snapshot(retailer, agreements=(deal,)), TODAY).allowed


def test_an_agreement_permitting_transfers_outside_the_eea_does_not_open_a_share():
    recipient = nordfrakt(locations=(("US", "storage"),))
    permissive = agreement(transfers_outside_eea_permitted=True)
    decision = decide(request(destination="US"), snapshot(recipient, molnhall(), agreements=(permissive,)), TODAY)
    assert codes(decision) == {"LOCATION_OUTSIDE_EEA", "DESTINATION_OUTSIDE_EEA", "AGREEMENT_PERMITS_TRANSFER"}


# --- Expiry warnings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_left", "within", "warned"),
    [(0, 30, True), (1, 30, True), (29, 30, True), (30, 30, True), (31, 30, False), (45, 60, True), (45, 44, False)],
)
def test_an_agreement_expiring_within_the_window_warns_without_blocking(days_left, within, warned):
    dpa = agreement(expires_on=TODAY + timedelta(days=days_left))
    decision = decide(request(), clean_snapshot(agreements=(dpa,)), TODAY, expiring_within_days=within)
    assert decision.allowed
    assert [w.code for w in decision.warnings] == (["AGREEMENT_EXPIRING"] if warned else [])
    if warned:
        assert decision.warnings[0].agreement == "nordfrakt-dpa"
        assert (TODAY + timedelta(days=days_left)).isoformat() in decision.warnings[0].message


def test_the_expiry_window_defaults_to_thirty_days():
    dpa30 = agreement(expires_on=TODAY + timedelta(days=30))
    dpa31 = agreement(expires_on=TODAY + timedelta(days=31))
    assert decide(request(), clean_snapshot(agreements=(dpa30,)), TODAY).warnings
    assert not decide(request(), clean_snapshot(agreements=(dpa31,)), TODAY).warnings


def test_an_open_ended_agreement_never_warns():
    assert decide(request(), clean_snapshot(agreements=(agreement(expires_on=None),)), TODAY).warnings == ()


def test_the_expiry_warning_is_given_on_a_deny_too():
    dpa = agreement(expires_on=TODAY + timedelta(days=5))
    decision = decide(request(categories=("user.financial",)), clean_snapshot(agreements=(dpa,)), TODAY)
    assert not decision.allowed
    assert [w.code for w in decision.warnings] == ["AGREEMENT_EXPIRING"]


@pytest.mark.parametrize(
    ("terminated_in_days", "warned", "last_day_phrase"),
    [
        (1, True, "today"),  # terminated from tomorrow: today is its last day in force
        (2, True, "in 1 day"),
        (31, True, "in 30 days"),
        (32, False, None),
    ],
)
def test_an_agreement_terminated_within_the_window_warns_like_one_expiring(terminated_in_days, warned, last_day_phrase):
    dpa = agreement(expires_on=FAR_AHEAD, terminated_on=TODAY + timedelta(days=terminated_in_days))
    decision = decide(request(), clean_snapshot(agreements=(dpa,)), TODAY)
    assert decision.allowed
    assert [w.code for w in decision.warnings] == (["AGREEMENT_EXPIRING"] if warned else [])
    if warned:
        message = decision.warnings[0].message
        assert f"terminated from {(TODAY + timedelta(days=terminated_in_days)).isoformat()}" in message
        assert f"last day in force is {last_day_phrase}" in message


@pytest.mark.parametrize(
    ("successor", "warned"),
    [
        pytest.param(
            agreement("nordfrakt-dpa-next", effective_from=TODAY + timedelta(days=11)),
            False,
            id="takes over the next day",
        ),
        pytest.param(
            agreement("nordfrakt-dpa-next", effective_from=TODAY + timedelta(days=12)), True, id="leaves a one-day gap"
        ),
        pytest.param(
            agreement("nordfrakt-dpa-next", effective_from=TODAY + timedelta(days=11), categories=("user.name",)),
            True,
            id="does not cover the share",
        ),
        pytest.param(
            agreement("nordfrakt-dpa-next", effective_from=TODAY + timedelta(days=11), clauses=()),
            True,
            id="lacks the Art. 28(3) clauses",
        ),
        pytest.param(
            agreement("nordfrakt-dpa-next", effective_from=TODAY + timedelta(days=11), signed_on=None),
            True,
            id="is not signed",
        ),
    ],
)
def test_an_expiry_warning_is_not_given_when_a_successor_on_file_takes_the_share_over(successor, warned):
    ending = agreement(expires_on=TODAY + timedelta(days=10))
    decision = decide(request(), clean_snapshot(agreements=(ending, successor)), TODAY)
    assert decision.allowed
    assert decision.agreement == "nordfrakt-dpa"
    assert [w.code for w in decision.warnings] == (["AGREEMENT_EXPIRING"] if warned else [])


def test_an_auto_renewing_agreement_warns_that_the_new_term_must_be_recorded():
    dpa = agreement(expires_on=TODAY + timedelta(days=10), renewal="auto")
    [warning] = decide(request(), clean_snapshot(agreements=(dpa,)), TODAY).warnings
    assert "renews automatically" in warning.message


# --- Locations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("storage", "stores data in"),
        ("processing", "processes data in"),
        ("support_access", "has remote support access to the data from"),
        ("backup", "keeps backups in"),
    ],
)
def test_a_location_outside_the_eea_is_named_with_its_kind(kind, phrase):
    registry = snapshot(nordfrakt(locations=(("SE", "storage"), ("IN", kind))), molnhall(), agreements=(agreement(),))
    [reason] = decide(request(), registry, TODAY).reasons
    assert reason.code == "LOCATION_OUTSIDE_EEA"
    assert (reason.party, reason.territory, reason.chain) == ("nordfrakt", "IN", None)
    assert f"Nordfrakt AB (nordfrakt) {phrase} IN (India), outside the EU/EEA." == reason.message


def test_an_establishment_and_a_location_in_the_same_outside_territory_are_two_reasons():
    registry = snapshot(
        nordfrakt(established_in="GB", locations=(("GB", "storage"), ("GB", "storage"))),
        molnhall(),
        agreements=(agreement(),),
    )
    reasons = decide(request(), registry, TODAY).reasons
    assert [(r.code, r.territory) for r in reasons] == [("LOCATION_OUTSIDE_EEA", "GB")] * 2
    assert "is established in GB (United Kingdom)" in reasons[0].message


@pytest.mark.parametrize(("code", "hint"), [("UK", "GB"), ("EL", "GR"), ("se", "SE"), ("ZZ", None)])
def test_an_unknown_territory_fails_closed_and_suggests_the_iso_code(code, hint):
    registry = snapshot(nordfrakt(locations=((code, "storage"),)), molnhall(), agreements=(agreement(),))
    [reason] = decide(request(), registry, TODAY).reasons
    assert (reason.code, reason.territory, reason.party) == ("TERRITORY_UNKNOWN", code, "nordfrakt")
    assert (f"did you mean '{hint}'?" in reason.message) is (hint is not None)


@pytest.mark.parametrize("code", ["ES-CN", "PT-20", "FR-971", "AX", "FI-01", "NO-22", "GP"])
def test_special_parts_inside_the_eea_do_not_block(code):
    registry = snapshot(nordfrakt(locations=((code, "storage"),)), molnhall(), agreements=(agreement(),))
    assert decide(request(destination=code), registry, TODAY).allowed


@pytest.mark.parametrize("code", ["NO-21", "FR-PF", "NL-BQ1", "FO", "GL", "CH", "JE"])
def test_named_parts_outside_the_eea_block(code):
    registry = snapshot(nordfrakt(locations=((code, "storage"),)), molnhall(), agreements=(agreement(),))
    assert codes(decide(request(), registry, TODAY)) == {"LOCATION_OUTSIDE_EEA"}


# --- The sub-processor chain ----------------------------------------------------------------------------


def test_a_processor_with_a_us_sub_processor_is_denied_with_the_chain():
    registry = snapshot(nordfrakt(), molnhall(established_in="US", locations=()), agreements=(agreement(),))
    decision = decide(request(), registry, TODAY)
    [reason] = decision.reasons
    assert reason.as_dict() == {
        "code": "SUBPROCESSOR_OUTSIDE_EEA",
        "message": "Sub-processor Molnhall AB (molnhall), in the chain nordfrakt → molnhall, "
        "is established in US (United States), outside the EU/EEA.",
        "party": "molnhall",
        "territory": "US",
        "chain": ["nordfrakt", "molnhall"],
    }
    assert decision.agreement == "nordfrakt-dpa"


def test_a_sub_processor_two_levels_down_outside_the_eea_is_reported_with_the_full_chain():
    registry = snapshot(
        nordfrakt(),
        molnhall(subs=(link("fjordvault"),)),
        party("fjordvault", role="sub_processor", established_in="NO", locations=(("SJ", "backup"),)),
        agreements=(agreement(),),
    )
    [reason] = decide(request(), registry, TODAY).reasons
    assert (reason.code, reason.party, reason.territory) == ("SUBPROCESSOR_OUTSIDE_EEA", "fjordvault", "SJ")
    assert reason.chain == ("nordfrakt", "molnhall", "fjordvault")


@pytest.mark.parametrize(
    ("approved_on", "objection_deadline", "approved", "phrase"),
    [
        (None, None, False, "has not been approved"),
        (None, TOMORROW, False, f"objection deadline {TOMORROW.isoformat()}"),
        (TOMORROW, None, False, f"takes effect only on {TOMORROW.isoformat()}"),
        (TODAY, None, True, None),
        (LONG_AGO, None, True, None),
    ],
)
def test_a_sub_processor_is_approved_only_from_its_approval_date(approved_on, objection_deadline, approved, phrase):
    registry = snapshot(
        party(subs=(link("molnhall", approved_on, objection_deadline),)), molnhall(), agreements=(agreement(),)
    )
    decision = decide(request(), registry, TODAY)
    assert decision.allowed is approved
    if not approved:
        [reason] = decision.reasons
        assert (reason.code, reason.party, reason.chain) == (
            "SUBPROCESSOR_UNAPPROVED",
            "molnhall",
            ("nordfrakt", "molnhall"),
        )
        assert phrase in reason.message


def test_a_link_to_a_party_missing_from_the_registry_is_an_unapproved_sub_processor():
    registry = snapshot(party(subs=(link("ghost"),)), agreements=(agreement(),))
    [reason] = decide(request(), registry, TODAY).reasons
    assert (reason.code, reason.party, reason.chain) == ("SUBPROCESSOR_UNAPPROVED", "ghost", ("nordfrakt", "ghost"))
    assert "not in the registry" in reason.message


def test_an_inactive_sub_processor_is_still_part_of_the_chain():
    registry = snapshot(nordfrakt(), molnhall(active=False, locations=(("US", "storage"),)), agreements=(agreement(),))
    assert codes(decide(request(), registry, TODAY)) == {"SUBPROCESSOR_OUTSIDE_EEA"}


def test_a_cycle_in_a_malformed_snapshot_terminates_and_reports_each_party_once():
    a = party("a", subs=(link("b"),))
    b = party("b", role="sub_processor", locations=(("US", "storage"),), subs=(link("a"), link("b")))
    decision = decide(request("a"), snapshot(a, b, agreements=(agreement(party_key="a"),)), TODAY)
    assert [(r.code, r.party, r.chain) for r in decision.reasons] == [
        ("SUBPROCESSOR_OUTSIDE_EEA", "b", ("a", "b")),
    ]


def test_a_sub_processor_reached_twice_is_reported_once_but_each_unapproved_link_counts():
    shared = party("shared", role="sub_processor", locations=(("US", "storage"),))
    left = party("left", role="sub_processor", subs=(link("shared"),))
    right = party("right", role="sub_processor", subs=(link("shared", approved_on=None),))
    root = party("root", subs=(link("left"), link("right")))
    registry = snapshot(root, left, right, shared, agreements=(agreement(party_key="root"),))
    decision = decide(request("root"), registry, TODAY)
    assert [(r.code, r.chain) for r in decision.reasons] == [
        ("SUBPROCESSOR_OUTSIDE_EEA", ("root", "left", "shared")),
        ("SUBPROCESSOR_UNAPPROVED", ("root", "right", "shared")),
    ]


def test_a_very_deep_chain_does_not_exhaust_the_stack():
    depth = 3000
    parties = [party(f"p{i}", role="sub_processor", subs=(link(f"p{i + 1}"),)) for i in range(depth)]
    parties.append(party(f"p{depth}", role="sub_processor", locations=(("CN", "storage"),)))
    registry = snapshot(replace(parties[0], role="processor"), *parties[1:], agreements=(agreement(party_key="p0"),))
    [reason] = decide(request("p0"), registry, TODAY).reasons
    assert reason.code == "SUBPROCESSOR_OUTSIDE_EEA"
    assert len(reason.chain or ()) == depth + 1


# --- The destination ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "destination", "is_declared"),
    [
        pytest.param("ES", "ES", True, id="country declared by itself"),
        pytest.param("ES", "ES-CN", True, id="subdivision declared by its country"),
        pytest.param("ES-CN", "ES-CN", True, id="subdivision declared by itself"),
        pytest.param("ES-CN", "ES", False, id="country not declared by one of its subdivisions"),
        pytest.param("ES-CN", "ES-GC", True, id="subdivision declared by its parent subdivision"),
        pytest.param("ES-CN", "ES-PM", False, id="sibling subdivision not declared"),
        pytest.param("SE", "DK", False, id="other country not declared"),
    ],
)
def test_a_destination_is_declared_by_itself_or_an_iso_ancestor(declared, destination, is_declared):
    registry = snapshot(party(locations=((declared, "storage"),)), agreements=(agreement(),))
    decision = decide(request(destination=destination), registry, TODAY)
    assert codes(decision) == (set() if is_declared else {"DESTINATION_UNDECLARED"})


def deep_in(territory: str) -> PartyView:
    return party("deep", role="sub_processor", established_in=territory, locations=())


# §4.2: DESTINATION_UNDECLARED is "destination not among the recipient's declared territories"; a
# territory only a sub-processor declares is not the recipient's.
@pytest.mark.parametrize(
    ("parties", "destination", "is_declared"),
    [
        pytest.param((nordfrakt(established_in="FI"), molnhall()), "FI", True, id="the recipient's establishment"),
        pytest.param(
            (nordfrakt(locations=(("FI", "backup"),)), molnhall()), "FI", True, id="a backup location of the recipient"
        ),
        pytest.param(
            (nordfrakt(locations=(("FI", "support_access"),)), molnhall()),
            "FI",
            True,
            id="a support access location of the recipient",
        ),
        pytest.param(
            (nordfrakt(), molnhall(locations=(("FI", "backup"),))), "FI", False, id="only a sub-processor's location"
        ),
        pytest.param(
            (nordfrakt(), molnhall(established_in="FI", locations=())),
            "FI",
            False,
            id="only a sub-processor's establishment",
        ),
        pytest.param(
            (nordfrakt(), molnhall(subs=(link("deep"),)), deep_in("FI")),
            "FI",
            False,
            id="only a sub-processor two levels down",
        ),
    ],
)
def test_a_destination_is_declared_only_by_the_recipients_own_territories(parties, destination, is_declared):
    decision = decide(request(destination=destination), snapshot(*parties, agreements=(agreement(),)), TODAY)
    assert codes(decision) == (set() if is_declared else {"DESTINATION_UNDECLARED"})


def test_an_undeclared_destination_names_the_recipients_declared_territories_only():
    registry = snapshot(nordfrakt(), molnhall(locations=(("FI", "backup"),)), agreements=(agreement(),))
    [reason] = decide(request(destination="EE"), registry, TODAY).reasons
    assert reason.code == "DESTINATION_UNDECLARED"
    assert (reason.party, reason.territory) == ("nordfrakt", "EE")
    assert "(DK, SE)" in reason.message
    assert "FI" not in reason.message


def test_a_destination_outside_and_undeclared_gets_both_reasons():
    decision = decide(request(destination="US"), clean_snapshot(), TODAY)
    assert codes(decision) == {"DESTINATION_OUTSIDE_EEA", "DESTINATION_UNDECLARED"}


@pytest.mark.parametrize("destination", ["UK", "EL", "EU", "XK", "ZZ", "se", "", "S E", "SE-", "SE-XX"])
def test_an_unknown_destination_is_territory_unknown_only(destination):
    [reason] = decide(request(destination=destination), clean_snapshot(), TODAY).reasons
    assert (reason.code, reason.territory) == ("TERRITORY_UNKNOWN", destination)


# --- Malformed or sparse data never makes the guard raise ----------------------------------------------


def bare_agreement(party_key: str = "nordfrakt", **changes) -> AgreementView:
    """Every optional field empty: no dates beyond the start, no entries, no clauses."""
    fields = {
        "signed_on": None,
        "expires_on": None,
        "terminated_on": None,
        "categories": (),
        "purposes": (),
        "subjects": (),
        "clauses": (),
    }
    return agreement(f"{party_key}-bare", party_key, **{**fields, **changes})


NEVER_RAISES_CASES = [
    pytest.param(request(), Snapshot(parties={}, agreements_by_party={}, ruleset=RULESET), id="an empty registry"),
    pytest.param(
        request(categories=(), destination=None, data_subject=None), clean_snapshot(), id="an empty category list"
    ),
    pytest.param(
        request(destination="", data_subject=""),
        snapshot(party(established_in="", locations=(("", ""),))),
        id="empty strings everywhere",
    ),
    pytest.param(request(), snapshot(party(locations=(), subs=())), id="no locations, sub-processors or agreements"),
    pytest.param(
        request(), snapshot(party(), agreements=(bare_agreement(),)), id="an agreement with every field empty"
    ),
    pytest.param(
        request(), snapshot(party(), agreements=(bare_agreement(signed_on=LONG_AGO),)), id="a signed empty agreement"
    ),
    pytest.param(
        request(),
        snapshot(party(), agreements=(bare_agreement("ghost"), bare_agreement(kind="mystery"))),
        id="agreements of an unknown party and of an unknown kind",
    ),
    pytest.param(
        request(),
        snapshot(party(), agreements=(agreement(expires_on=date.max), agreement("old", effective_from=date.min))),
        id="the extreme dates",
    ),
    pytest.param(
        request(),
        snapshot(party(subs=(link("nordfrakt", None, None),)), agreements=(agreement(),)),
        id="a recipient that is its own unapproved sub-processor",
    ),
    pytest.param(
        request(),
        snapshot(
            party(subs=(link("a"), link("a", None))),
            party("a", role="sub_processor", subs=(link("b"),)),
            party("b", role="sub_processor", subs=(link("nordfrakt"), link("a"), link("b"), link("ghost", None))),
            agreements=(agreement(),),
        ),
        id="a cycle through the recipient with repeated and dangling links",
    ),
    pytest.param(
        request("", purpose="", categories=("", ".", "user.", "user..name")),
        clean_snapshot(),
        id="references that are not taxonomy keys at all",
    ),
    pytest.param(request("odd"), snapshot(party("odd", role="")), id="a party with an empty role"),
]


@pytest.mark.parametrize(("share", "registry"), NEVER_RAISES_CASES)
@pytest.mark.parametrize("within", [30, 0, -1])
def test_sparse_or_malformed_data_gives_a_decision_never_an_exception(share, registry, within):
    decision = decide(share, registry, TODAY, expiring_within_days=within)
    assert decision.allowed is (not decision.reasons)
    assert all(reason.message.endswith(".") for reason in (*decision.reasons, *decision.warnings))
    json.dumps([reason.as_dict() for reason in (*decision.reasons, *decision.warnings)])
    for each in registry.parties.values():
        evaluate_party(each, registry, TODAY)


# --- Reason and decision shapes -------------------------------------------------------------------------


def test_a_reason_as_a_dict_leaves_out_absent_fields_and_gives_lists():
    reason = Reason(ReasonCode.AGREEMENT_INCOMPLETE, "Lacks clauses.", agreement="x", clauses=("audits",), chain=None)
    as_dict = reason.as_dict()
    assert as_dict == {
        "code": "AGREEMENT_INCOMPLETE",
        "message": "Lacks clauses.",
        "agreement": "x",
        "clauses": ["audits"],
    }
    assert type(as_dict["code"]) is str


def test_the_decision_carries_the_snapshots_ruleset():
    assert decide(request("nobody"), clean_snapshot(), TODAY).ruleset == RULESET


def test_the_same_inputs_give_the_same_decision():
    registry = snapshot(nordfrakt(locations=(("US", "storage"),)), molnhall(), agreements=(agreement(),))
    assert decide(request(destination="BR"), registry, TODAY) == decide(request(destination="BR"), registry, TODAY)


# --- Registry findings for one party --------------------------------------------------------------------


def test_a_clean_party_has_no_findings():
    registry = clean_snapshot()
    assert evaluate_party(registry.parties["nordfrakt"], registry, TODAY) == ()


@pytest.mark.parametrize(
    ("agreements", "expected_codes", "phrase"),
    [
        pytest.param((), ["NO_AGREEMENT"], "has no data processing agreement (dpa) in force", id="none on file"),
        pytest.param((agreement(expires_on=YESTERDAY),), ["NO_AGREEMENT"], "expired on", id="expired"),
        pytest.param((agreement(terminated_on=YESTERDAY),), ["NO_AGREEMENT"], "was terminated on", id="terminated"),
        pytest.param(
            (agreement(kind="data_sharing"),), ["NO_AGREEMENT"], "it has only a data-sharing agreement", id="wrong kind"
        ),
        pytest.param(
            (agreement(clauses=ART28_CLAUSES[1:]),), ["AGREEMENT_INCOMPLETE"], "(a) instructions", id="incomplete"
        ),
    ],
)
def test_a_partys_agreement_findings_say_what_is_wrong(agreements, expected_codes, phrase):
    registry = clean_snapshot(agreements=agreements)
    findings = evaluate_party(registry.parties["nordfrakt"], registry, TODAY)
    assert [f.code for f in findings] == expected_codes
    assert phrase in findings[0].message


def test_a_partys_findings_cover_its_places_and_its_whole_chain():
    registry = snapshot(
        nordfrakt(locations=(("US", "support_access"), ("XK", "storage"))),
        molnhall(locations=(("CA", "storage"),), subs=(link("deep", approved_on=None),)),
        party("deep", role="sub_processor"),
        agreements=(agreement(),),
    )
    findings = evaluate_party(registry.parties["nordfrakt"], registry, TODAY)
    assert [(f.code, f.party) for f in findings] == [
        ("LOCATION_OUTSIDE_EEA", "nordfrakt"),
        ("TERRITORY_UNKNOWN", "nordfrakt"),
        ("SUBPROCESSOR_OUTSIDE_EEA", "molnhall"),
        ("SUBPROCESSOR_UNAPPROVED", "deep"),
    ]


def test_a_sub_processor_needs_no_agreement_of_its_own_in_the_registry_but_a_dpa_it_has_is_checked():
    registry = clean_snapshot()
    assert evaluate_party(registry.parties["molnhall"], registry, TODAY) == ()
    with_dpa = clean_snapshot(agreements=(agreement("molnhall-dpa", "molnhall", clauses=ART28_CLAUSES[:7]),))
    [finding] = evaluate_party(with_dpa.parties["molnhall"], with_dpa, TODAY)
    assert (finding.code, finding.clauses) == ("AGREEMENT_INCOMPLETE", ("audits",))


def test_a_party_with_a_complete_dpa_in_force_has_a_finding_for_an_incomplete_one_beside_it():
    """A share only the incomplete dpa covers is refused as AGREEMENT_INCOMPLETE, so the registry names it too."""
    registry = clean_snapshot(agreements=(agreement("thin", expires_on=None, clauses=THIN), agreement("complete")))
    [finding] = evaluate_party(registry.parties["nordfrakt"], registry, TODAY)
    assert (finding.code, finding.agreement) == ("AGREEMENT_INCOMPLETE", "thin")


def test_an_authority_has_no_agreement_findings():
    registry = snapshot(party("skatteverket", role="authority"))
    assert evaluate_party(registry.parties["skatteverket"], registry, TODAY) == ()


def test_an_independent_controller_needs_a_data_sharing_agreement_in_the_registry():
    retailer = party("butiken", role="independent_controller")
    registry = snapshot(retailer)
    [finding] = evaluate_party(retailer, registry, TODAY)
    assert finding.code == "NO_AGREEMENT"
    assert "data-sharing agreement" in finding.message


# --- What the policy derives once, and must derive exactly ------------------------------------------------
# Agreements keep their entries as sets and their missing clauses; a snapshot keeps each party's places and
# chain after the first check. These pin the shortcuts to the definitions they replace.


@pytest.mark.parametrize("seed", range(5))
def test_in_force_on_agrees_with_the_explanation_of_why_an_agreement_is_not_in_force(seed):
    rng = random.Random(seed)
    days = [TODAY + timedelta(days=d) for d in range(-3, 4)]
    for _ in range(500):
        view = agreement(
            signed_on=rng.choice([None, *days]),
            effective_from=rng.choice(days),
            expires_on=rng.choice([None, *days]),
            terminated_on=rng.choice([None, *days]),
        )
        for day in days:
            assert view.in_force_on(day) == (_why_not_in_force(view, day) is None), (view, day)


def test_an_agreement_covers_a_key_by_its_entry_sets_exactly_as_the_prefix_rule_says():
    rng = random.Random(20261125)
    words = ["user", "contact", "email", "user.contact", "", "a", "a.b", "x"]
    for _ in range(2000):
        entries = tuple(".".join(rng.choices(words, k=rng.randint(1, 3))) for _ in range(rng.randint(0, 4)))
        key = ".".join(rng.choices(words, k=rng.randint(1, 4)))
        view = agreement(categories=entries, purposes=entries, subjects=entries)
        expected = any(covers(entry, key) for entry in entries)
        coverage = _coverage(view, [key], key, key)
        assert (not coverage.uncovered_categories, not coverage.purpose_uncovered) == (expected, expected), (
            entries,
            key,
        )
        assert coverage.subject_uncovered is not expected


def test_an_agreement_knows_the_art_28_clauses_it_lacks_and_a_data_sharing_agreement_lacks_none():
    assert agreement(clauses=ART28_CLAUSES[2:]).missing_clauses == ART28_CLAUSES[:2]
    assert agreement(kind="data_sharing", clauses=()).missing_clauses == ()


def test_one_snapshot_blocks_a_sub_processor_until_the_day_its_approval_takes_effect_and_not_after():
    registry = snapshot(
        party(subs=(link("molnhall", approved_on=TOMORROW),)),
        party("molnhall", role="sub_processor"),
        agreements=(agreement(),),
    )
    # The same snapshot object throughout: what it remembers of the chain must not fix the day.
    today = decide(request(), registry, TODAY)
    assert [r.code for r in today.reasons] == ["SUBPROCESSOR_UNAPPROVED"]
    assert "takes effect only on" in today.reasons[0].message
    assert decide(request(), registry, TOMORROW).allowed
    assert not decide(request(), registry, TODAY).allowed


def test_a_party_not_held_by_the_snapshot_is_judged_by_its_own_places_not_by_the_one_of_the_same_key():
    registry = snapshot(party(), agreements=(agreement(),))
    assert evaluate_party(registry.parties["nordfrakt"], registry, TODAY) == ()
    moved = party(locations=(("US", "storage"),))
    [finding] = evaluate_party(moved, registry, TODAY)
    assert (finding.code, finding.territory) == ("LOCATION_OUTSIDE_EEA", "US")
    assert evaluate_party(registry.parties["nordfrakt"], registry, TODAY) == ()


# --- The decision memo ----------------------------------------------------------------------------------


def test_a_snapshot_takes_a_repeated_decision_once_and_it_is_the_one_decide_gives():
    registry = snapshot(nordfrakt(), molnhall(), agreements=(agreement(),))
    share = request(destination="US")
    first = registry.decision(share, TODAY)
    assert first == decide(share, registry, TODAY)
    assert registry.decision(request(destination="US"), TODAY) is first
    assert first.reason_documents == [r.as_dict() for r in first.reasons]
    assert [d["code"] for d in first.reason_documents] == ["DESTINATION_OUTSIDE_EEA", "DESTINATION_UNDECLARED"]


def test_the_memo_keeps_days_apart_so_an_agreement_that_lapses_overnight_denies_the_next_day():
    registry = snapshot(nordfrakt(), molnhall(), agreements=(agreement(expires_on=TODAY),))
    today = registry.decision(request(), TODAY)
    assert today.allowed
    assert [w.code for w in today.warnings] == ["AGREEMENT_EXPIRING"]
    assert today.warning_documents == [w.as_dict() for w in today.warnings]
    assert [r.code for r in registry.decision(request(), TOMORROW).reasons] == ["NO_AGREEMENT"]
    assert registry.decision(request(), TODAY, expiring_within_days=-1).warnings == ()


@pytest.mark.parametrize("seed", range(3))
def test_memoized_decisions_equal_fresh_ones_over_random_requests_and_days(seed):
    rng = random.Random(seed)
    registry = snapshot(
        nordfrakt(),
        molnhall(),
        party("bokhylla", role="independent_controller", category="reseller", locations=(("US", "storage"),)),
        party("skatteverket", role="authority", category="authority"),
        agreements=(agreement(expires_on=TOMORROW), agreement("bok-dsa", "bokhylla", kind="data_sharing")),
    )
    categories = sorted(KNOWN_DATA_CATEGORIES)
    shares = [
        request(
            rng.choice(["nordfrakt", "molnhall", "bokhylla", "skatteverket", "nobody"]),
            purpose=rng.choice(["essential.service.operations", "marketing.advertising", "no.such.purpose"]),
            categories=tuple(rng.sample(categories, rng.randint(1, 3))),
            destination=rng.choice([None, "SE", "US", "ZZ"]),
            data_subject=rng.choice([None, "customer", "employee"]),
        )
        for _ in range(40)
    ]
    days = [YESTERDAY, TODAY, TOMORROW, TOMORROW + timedelta(days=1)]
    for _ in range(3):  # the first pass fills the memo, the next ones answer from it
        for share in shares:
            day = rng.choice(days)
            assert registry.decision(share, day) == decide(share, registry, day)


def test_the_memo_is_bounded_and_leaves_requests_naming_many_categories_out(monkeypatch):
    monkeypatch.setattr("guard.policy.DECISION_MEMO_SIZE", 8)
    registry = snapshot(nordfrakt(), molnhall(), agreements=(agreement(),))
    for n in range(20):
        share = request(purpose=f"no.such.purpose.{n}")
        assert registry.decision(share, TODAY) == decide(share, registry, TODAY)
        assert len(registry._decisions) <= 8
    many = request(categories=tuple(sorted(KNOWN_DATA_CATEGORIES)[:21]))
    assert registry.decision(many, TODAY) == decide(many, registry, TODAY)
    assert registry.decision(many, TODAY) is not registry.decision(many, TODAY)


# --- Data subjects' objections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "purpose", "blocked"),
    [
        ("direct_marketing", "marketing.communications.email", True),
        ("direct_marketing", "marketing", True),
        ("direct_marketing", "essential.service.operations", False),
        ("direct_marketing", "marketingish", False),
        ("all", "essential.service.operations", True),
        ("all", "marketing.advertising", True),
        ("some_future_scope", "essential.service.operations", True),  # unknown: fail closed
    ],
)
def test_an_objection_covers_marketing_or_every_purpose_by_its_scope(scope, purpose, blocked):
    assert objection_covers(scope, purpose) is blocked


def test_an_objection_denies_only_its_own_subject_and_keeps_the_other_reasons():
    registry = clean_snapshot(agreements=(agreement(purposes=("essential", "marketing")),))
    objections = {OBJECTOR: ("direct_marketing",)}
    marketing = request(purpose="marketing.communications.email", subject_ref=OBJECTOR)
    assert codes(decide(marketing, registry, TODAY, objections=objections)) == {"SUBJECT_OBJECTED"}
    assert decide(replace(marketing, subject_ref=SOMEONE), registry, TODAY, objections=objections).allowed
    assert decide(request(subject_ref=OBJECTOR), registry, TODAY, objections=objections).allowed
    unknown = request("nobody", purpose="marketing.communications.email", subject_ref=OBJECTOR)
    assert codes(decide(unknown, registry, TODAY, objections=objections)) == {"RECIPIENT_UNKNOWN", "SUBJECT_OBJECTED"}


def test_a_withdrawn_objection_leaves_its_other_objections_in_force():
    registry = clean_snapshot(agreements=(agreement(purposes=("essential", "marketing")),))
    both = {OBJECTOR: ("direct_marketing", "all")}
    after_withdrawal = {OBJECTOR: ("direct_marketing",)}
    assert not decide(request(subject_ref=OBJECTOR), registry, TODAY, objections=both).allowed
    assert decide(request(subject_ref=OBJECTOR), registry, TODAY, objections=after_withdrawal).allowed


def test_the_memo_serves_every_person_with_their_own_objections():
    registry = clean_snapshot(agreements=(agreement(purposes=("essential", "marketing")),))
    objections = {OBJECTOR: ("direct_marketing",)}
    marketing = request(purpose="marketing.communications.email")
    for _ in range(2):  # the second pass answers from the memo
        for subject, allowed in ((SOMEONE, True), (OBJECTOR, False), (None, False)):
            share = replace(marketing, subject_ref=subject)
            memoized = registry.decision(share, TODAY, objections=objections)
            assert memoized == decide(share, registry, TODAY, objections=objections)
            assert memoized.allowed is allowed
    assert len(registry._decisions) == 2  # one entry for "someone named", one for "no one": not one per person


def test_a_restricted_person_is_refused_every_share_and_others_are_not():
    registry = clean_snapshot()
    for purpose in ("essential.service.operations", "marketing.communications.email"):
        share = request(purpose=purpose, subject_ref=RESTRICTED_PERSON)
        unrestricted = codes(decide(share, registry, TODAY))
        assert codes(decide(share, registry, TODAY, restrictions=RESTRICTIONS)) == unrestricted | {"SUBJECT_RESTRICTED"}
        memoized = registry.decision(share, TODAY, restrictions=RESTRICTIONS)
        assert codes(memoized) == unrestricted | {"SUBJECT_RESTRICTED"}
    assert decide(request(subject_ref=SOMEONE), registry, TODAY, restrictions=RESTRICTIONS).allowed
    assert decide(request(subject_ref=RESTRICTED_PERSON), registry, TODAY).allowed  # lifted: nothing in force


def test_a_purpose_of_an_activity_marked_direct_marketing_is_direct_marketing_with_everything_under_it():
    from guard.policy import direct_marketing_purposes, is_marketing

    activities = [
        {"purposes": ["sales"], "direct_marketing": True},
        {"purposes": ["essential.service"], "direct_marketing": False},
    ]
    marked = direct_marketing_purposes(activities)
    assert marked == frozenset({"sales"})
    assert is_marketing("sales", marked) and is_marketing("sales.x", marked)
    assert is_marketing("marketing.communications.email", marked)
    assert not is_marketing("essential.service.operations", marked)
    assert not is_marketing("sales")  # without the activities, as before


def test_an_unsubscribe_covers_a_direct_marketing_activitys_purpose_and_a_share_naming_no_one_is_refused():
    from guard.views import NO_OBJECTIONS

    snapshot = replace(clean_snapshot(), direct_marketing_purposes=frozenset({"essential.service"}))
    refused = decide(request(subject_ref=OBJECTOR), snapshot, TODAY, objections={OBJECTOR: ("direct_marketing",)})
    assert [r.code for r in refused.reasons] == [ReasonCode.SUBJECT_OBJECTED]
    memoized = snapshot.decision(request(subject_ref=OBJECTOR), TODAY, objections={OBJECTOR: ("direct_marketing",)})
    assert [r.code for r in memoized.reasons] == [ReasonCode.SUBJECT_OBJECTED]
    anonymous = decide(request(), snapshot, TODAY, objections=NO_OBJECTIONS)
    assert [r.code for r in anonymous.reasons] == [ReasonCode.SUBJECT_REF_MISSING]
    assert decide(request(), clean_snapshot(), TODAY).allowed
