"""The third legal round (issue 31) as tables, one per rule, each citing the GDPR article it follows:
every agreement in force counts (Art. 28(3)(a), 44), an objection window counted from the notice (Art. 28(2)),
international organisations (Art. 4(26), 44), findings that say whether they block, and a request without a
data subject. Then a property over generated registries: whatever the guard refuses a share a party's own
agreement covers, a blocking finding of that party names by its code."""

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from guard.policy import Snapshot, decide, evaluate_party
from guard.views import PartyView, ShareRequest, SubProcessorLinkView
from guard.vocabulary import ART28_CLAUSES, KNOWN_DATA_CATEGORIES, KNOWN_PURPOSES, REQUIRED_AGREEMENT_KIND, ReasonCode
from registry.findings import blocks, finding, snapshot_findings
from registry.schemas import PartyIn, SubProcessorLinkIn
from registry.services.agreement_documents import undocumented_finding
from tests.unit.test_policy import (
    LONG_AGO,
    TODAY,
    YESTERDAY,
    agreement,
    clean_snapshot,
    codes,
    molnhall,
    party,
    request,
    snapshot,
)

TOMORROW = TODAY + timedelta(days=1)

# --- Art. 28(3)(a), Art. 44: any agreement in force that permits transfers -------------------------------

PERMITS = "AGREEMENT_PERMITS_TRANSFER"


@pytest.mark.parametrize(
    ("agreements", "expected"),
    [
        pytest.param((agreement("a"), agreement("b")), set(), id="two agreements, neither permits"),
        pytest.param(
            (agreement("old"), agreement("new", effective_from=YESTERDAY, transfers_outside_eea_permitted=True)),
            {PERMITS},
            id="the newer of two dpas permits (N31)",
        ),
        pytest.param(
            (agreement("strict", expires_on=None), agreement("open", transfers_outside_eea_permitted=True)),
            {PERMITS},
            id="the one not chosen permits (N32)",
        ),
        pytest.param(
            (agreement("strict"), agreement("open", kind="data_sharing", transfers_outside_eea_permitted=True)),
            {PERMITS},
            id="an agreement of another kind permits (N34)",
        ),
        pytest.param(
            (agreement("strict"), agreement("ended", expires_on=YESTERDAY, transfers_outside_eea_permitted=True)),
            set(),
            id="the one permitting is no longer in force",
        ),
        pytest.param(
            (agreement("strict"), agreement("later", effective_from=TOMORROW, transfers_outside_eea_permitted=True)),
            set(),
            id="the one permitting is not in force yet",
        ),
    ],
)
def test_any_agreement_of_the_recipient_in_force_that_permits_transfers_denies_art_28_3_a_and_44(agreements, expected):
    decision = decide(request(), clean_snapshot(agreements=agreements), TODAY)
    assert codes(decision) == expected
    registry = clean_snapshot(agreements=agreements)
    found = {r.code for r in evaluate_party(registry.parties["nordfrakt"], registry, TODAY)}
    assert found == expected, "the registry's findings say what the guard says"


def test_every_permitting_agreement_is_named_once_in_the_denial():
    agreements = (
        agreement("strict"),
        agreement("open-1", transfers_outside_eea_permitted=True),
        agreement("open-2", transfers_outside_eea_permitted=True),
    )
    decision = decide(request(), clean_snapshot(agreements=agreements), TODAY)
    assert sorted(r.agreement for r in decision.reasons if r.code == PERMITS) == ["open-1", "open-2"]


def test_a_recipient_with_no_agreement_of_its_kind_but_one_permitting_transfers_gets_both_reasons():
    agreements = (agreement("sharing", kind="data_sharing", transfers_outside_eea_permitted=True),)
    assert codes(decide(request(), clean_snapshot(agreements=agreements), TODAY)) == {"NO_AGREEMENT", PERMITS}


# --- Art. 28(2): the objection window is counted from the notice -----------------------------------------


def general(*, notified_on: date | None = None, objection_deadline: date | None = None) -> SubProcessorLinkView:
    return SubProcessorLinkView(
        party="molnhall",
        approved_on=None,
        objection_deadline=objection_deadline,
        authorisation="general",
        notified_on=notified_on,
    )


@pytest.mark.parametrize(
    ("link", "in_effect_from"),
    [
        pytest.param(general(notified_on=LONG_AGO, objection_deadline=YESTERDAY), TODAY, id="notice, then deadline"),
        pytest.param(general(notified_on=YESTERDAY, objection_deadline=YESTERDAY), None, id="deadline on the notice"),
        pytest.param(
            general(notified_on=TODAY, objection_deadline=LONG_AGO), None, id="deadline before the notice (N08)"
        ),
        pytest.param(general(objection_deadline=YESTERDAY), None, id="no notice recorded"),
        pytest.param(general(notified_on=LONG_AGO), None, id="no deadline"),
        pytest.param(
            replace(general(notified_on=TODAY, objection_deadline=LONG_AGO), approved_on=YESTERDAY),
            YESTERDAY,
            id="an approval approves whatever the dates",
        ),
    ],
)
def test_silence_approves_a_general_authorisation_only_after_a_window_counted_from_the_notice_art_28_2(
    link, in_effect_from
):
    assert link.in_effect_from() == in_effect_from
    registry = snapshot(party(subs=(link,)), molnhall(), agreements=(agreement(),))
    assert decide(request(), registry, TODAY).allowed is (in_effect_from is not None and in_effect_from <= TODAY)


@pytest.mark.parametrize(
    ("notified_on", "objection_deadline", "accepted"),
    [
        ("2026-01-01", "2026-01-31", True),
        ("2026-01-31", "2026-01-31", False),
        ("2026-02-01", "2026-01-31", False),
        (None, "2026-01-31", True),
        ("2026-01-01", None, True),
    ],
)
def test_a_link_whose_objection_deadline_is_not_after_its_notice_is_refused_naming_the_deadline_art_28_2(
    notified_on, objection_deadline, accepted
):
    fields = {"party": "molnhall", "authorisation": "general", "notified_on": notified_on}
    fields["objection_deadline"] = objection_deadline
    if accepted:
        SubProcessorLinkIn.model_validate(fields)
        return
    with pytest.raises(ValidationError) as raised:
        PartyIn.model_validate(
            {"key": "nordfrakt", "name": "N", "role": "processor", "category": "transport", "established_in": "SE",
             "sub_processors": [fields]}
        )  # fmt: skip
    [error] = raised.value.errors()
    assert error["loc"] == ("sub_processors", 0, "objection_deadline")
    assert error["msg"] == "objection_deadline must be after notified_on"


# --- Art. 4(26), Art. 44: international organisations ----------------------------------------------------

ORGANISATION = "RECIPIENT_INTERNATIONAL_ORGANISATION"


@pytest.mark.parametrize(
    ("recipient", "sub", "expected"),
    [
        pytest.param(party(), molnhall(), set(), id="neither is one"),
        pytest.param(
            party(established_in="DK", international_organisation=True),
            molnhall(),
            {ORGANISATION},
            id="an organisation with its office in Denmark (R4)",
        ),
        pytest.param(party(), molnhall(international_organisation=True), {ORGANISATION}, id="its sub-processor is one"),
    ],
)
def test_a_share_to_an_international_organisation_is_a_transfer_wherever_its_office_is_art_4_26_and_44(
    recipient, sub, expected
):
    linked = replace(recipient, sub_processors=(SubProcessorLinkView("molnhall", LONG_AGO, None),))
    registry = snapshot(linked, sub, agreements=(agreement(),))
    decision = decide(request(destination="DK"), registry, TODAY)
    assert codes(decision) == expected
    assert {r.code for r in evaluate_party(registry.parties["nordfrakt"], registry, TODAY)} == expected
    if expected and sub.international_organisation:
        [reason] = decision.reasons
        assert reason.chain == ("nordfrakt", "molnhall")


def test_a_party_document_records_whether_it_is_an_international_organisation():
    base = {"key": "un", "name": "UN", "role": "independent_controller", "category": "other", "established_in": "DK"}
    assert PartyIn.model_validate(base).international_organisation is False
    assert PartyIn.model_validate({**base, "international_organisation": True}).international_organisation is True
    with pytest.raises(ValidationError):
        PartyIn.model_validate({**base, "international_organisation": "perhaps"})


# --- Findings say whether they block ---------------------------------------------------------------------


def test_every_finding_from_the_rules_blocks_and_an_evidence_gap_does_not():
    registry = clean_snapshot(agreements=(agreement(transfers_outside_eea_permitted=True),))
    [permits] = [finding("nordfrakt", r) for r in evaluate_party(registry.parties["nordfrakt"], registry, TODAY)]
    assert permits["blocks"] is True
    assert undocumented_finding("nordfrakt-dpa", "nordfrakt")["blocks"] is False
    assert not blocks("AGREEMENT_EXPIRING")
    assert all(blocks(str(code)) for code in ReasonCode if code != ReasonCode.AGREEMENT_EXPIRING)


def test_a_second_incomplete_dpa_in_force_denies_the_share_only_it_covers_and_a_blocking_finding_names_it():
    complete = agreement("complete", categories=("user.name",))
    thin = agreement("thin", categories=("user.contact.address",), clauses=ART28_CLAUSES[:7])
    registry = clean_snapshot(agreements=(complete, thin))
    decision = decide(request(categories=("user.contact.address",)), registry, TODAY)
    [reason] = decision.reasons
    assert (reason.code, reason.agreement, decision.agreement) == ("AGREEMENT_INCOMPLETE", "thin", "thin")
    found = [finding("nordfrakt", r) for r in evaluate_party(registry.parties["nordfrakt"], registry, TODAY)]
    assert [(f["code"], f["agreement"], f["blocks"]) for f in found] == [("AGREEMENT_INCOMPLETE", "thin", True)]


def test_an_agreement_covering_special_category_data_is_a_blocking_finding_art_9():
    registry = clean_snapshot(agreements=(agreement(categories=("user.name", "user.health_and_medical")),))
    assert codes(decide(request(categories=("user.health_and_medical",)), registry, TODAY)) == {"SPECIAL_CATEGORY"}
    [found] = evaluate_party(registry.parties["nordfrakt"], registry, TODAY)
    assert (found.code, found.category) == ("SPECIAL_CATEGORY", "user.health_and_medical")


# --- A request without a data subject --------------------------------------------------------------------


def test_the_pure_decision_refuses_a_share_that_names_no_data_subject_art_28_3():
    decision = decide(request(data_subject=None), clean_snapshot(), TODAY)
    assert not decision.allowed
    assert codes(decision) == {"SUBJECT_NOT_COVERED"}
    assert decide(request(data_subject="customer"), clean_snapshot(), TODAY).allowed


# --- The property: the guard's refusals ⊆ the party's blocking findings ---------------------------------

TERRITORIES = ("SE", "DK", "NO", "DE", "US", "GB", "CH", "IN", "XX")
CATEGORIES = ("user.name", "user.contact", "user.contact.email", "user.contact.address", "user.financial",
              "user.health_and_medical", "user.biometric", "user", "user.behavior")  # fmt: skip
PURPOSES = ("essential.service.operations", "essential.service", "marketing", "marketing.communications.email",
            "analytics.reporting", "essential")  # fmt: skip
SUBJECTS = ("customer", "employee", "prospect")
ROLES = ("processor", "processor", "sub_processor", "independent_controller")
DAYS = (LONG_AGO, YESTERDAY, TODAY, TOMORROW, None)
assert set(CATEGORIES) <= KNOWN_DATA_CATEGORIES and set(PURPOSES) <= KNOWN_PURPOSES


def _some(rng: random.Random, values: tuple[str, ...], most: int) -> tuple[str, ...]:
    return tuple(rng.sample(values, rng.randint(1, most)))


def _registry(rng: random.Random) -> Snapshot:
    keys = [f"p{i}" for i in range(rng.randint(1, 6))]
    parties = []
    for key in keys:
        subs = tuple(
            SubProcessorLinkView(
                party=sub,
                approved_on=rng.choice(DAYS),
                objection_deadline=rng.choice(DAYS),
                authorisation=rng.choice(("specific", "general")),
                notified_on=rng.choice(DAYS),
                objected_on=rng.choice((None, None, None, LONG_AGO)),
            )
            for sub in rng.sample([*keys, "ghost"], rng.randint(0, 2))
            if sub != key
        )
        locations = tuple(
            (rng.choice(TERRITORIES), rng.choice(("storage", "backup"))) for _ in range(rng.randint(0, 2))
        )
        parties.append(
            party(
                key,
                role=rng.choice(ROLES),
                established_in=rng.choice(TERRITORIES),
                locations=locations,
                subs=subs,
                international_organisation=rng.random() < 0.1,
            )
        )
    agreements = []
    for key in keys:
        for n in range(rng.randint(0, 3)):
            agreements.append(
                agreement(
                    f"{key}-a{n}",
                    key,
                    kind=rng.choice(("dpa", "dpa", "data_sharing")),
                    categories=_some(rng, CATEGORIES, 3),
                    purposes=_some(rng, PURPOSES, 2),
                    subjects=_some(rng, SUBJECTS, 2),
                    clauses=ART28_CLAUSES if rng.random() < 0.7 else ART28_CLAUSES[: rng.randint(0, 7)],
                    effective_from=rng.choice((LONG_AGO, YESTERDAY, TOMORROW)),
                    expires_on=rng.choice((None, YESTERDAY, TODAY, date(2030, 1, 1))),
                    transfers_outside_eea_permitted=rng.random() < 0.15,
                )
            )
    published = None if rng.random() < 0.5 else frozenset(rng.sample(PURPOSES, rng.randint(1, 3)))
    registry = snapshot(*parties, agreements=tuple(agreements))
    return replace(registry, published_purposes=published)


def _covered_shares(recipient: PartyView, registry: Snapshot, rng: random.Random) -> list[ShareRequest]:
    """Shares one agreement of the recipient in force, of the kind its role needs, covers: its own entries (and,
    now and then, a key under one), a subject it names, a person named so objections can be checked."""
    kind = REQUIRED_AGREEMENT_KIND.get(recipient.role)
    shares = []
    for covering in registry.agreements_by_party.get(recipient.key, ()):
        if covering.kind != kind or not covering.in_force_on(TODAY):
            continue
        categories = _some(rng, covering.data_categories, len(covering.data_categories))
        narrower = [c for c in KNOWN_DATA_CATEGORIES if any(c.startswith(e + ".") for e in categories)]
        if narrower and rng.random() < 0.3:
            categories = (*categories, rng.choice(sorted(narrower)))
        shares.append(
            ShareRequest(
                recipient=recipient.key,
                purpose=rng.choice(covering.purposes),
                data_categories=categories,
                data_subject=rng.choice(covering.data_subjects),
                subject_ref="c" * 64,
            )
        )
    return shares


@pytest.mark.parametrize("seed", range(8))
def test_what_the_guard_refuses_a_share_an_agreement_of_the_party_covers_a_blocking_finding_names(seed):
    """For each active party (inactive parties and authorities are refused by design and have no findings): the
    codes of the reasons of a share its own agreement in force covers ⊆ the codes of its blocking findings."""
    rng = random.Random(seed)
    checked = 0
    for _ in range(150):
        registry = _registry(rng)
        findings = snapshot_findings(registry, TODAY)
        for key, recipient in registry.parties.items():
            blocking = {f["code"] for f in findings if f["party"] == key and f["blocks"]}
            for share in _covered_shares(recipient, registry, rng):
                refused = codes(decide(share, registry, TODAY))
                assert refused <= blocking, (seed, key, share, refused - blocking, registry)
                checked += 1
    assert checked > 100, "the generator makes covered shares"
