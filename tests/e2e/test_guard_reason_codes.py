"""Every reason code of DESIGN §4.2, and the AGREEMENT_EXPIRING warning, produced by the running service
over HTTP against the real PostgreSQL, from a registry loaded as a document."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from guard.vocabulary import RULES_VERSION, ReasonCode
from tests.conftest import bearer, load_document, make_key
from tests.conftest import test_settings as settings_for
from tests.integration.registry_fixtures import ALL_CLAUSES
from web.app import create_app

CONTROLLER_ZONE = "Europe/Stockholm"


def controller_today(zone: str = CONTROLLER_ZONE) -> date:
    return datetime.now(ZoneInfo(zone)).date()


def party(key: str, role: str = "processor", *, established_in: str = "SE", **extra):
    return {
        "key": key,
        "name": key.replace("-", " ").title(),
        "role": role,
        "category": {"processor": "it_services", "sub_processor": "it_services"}.get(role, "authority"),
        "established_in": established_in,
        "locations": extra.pop("locations", [{"territory": established_in, "kind": "storage"}]),
        "sub_processors": extra.pop("sub_processors", []),
        "active": extra.pop("active", True),
        **extra,
    }


def dpa(key: str, party_key: str, *, clauses=ALL_CLAUSES, **extra):
    today = controller_today()
    return {
        "key": key,
        "party": party_key,
        "kind": "dpa",
        "signed_on": (today - timedelta(days=400)).isoformat(),
        "effective_from": (today - timedelta(days=400)).isoformat(),
        "expires_on": extra.pop("expires_on", (today + timedelta(days=700)).isoformat()),
        "renewal": "fixed",
        "owner_email": "legal@offix.example",
        "data_categories": ["user.name", "user.contact"],
        "purposes": ["essential.service.operations"],
        "data_subjects": ["customer"],
        "clauses": list(clauses),
        **extra,
    }


def registry_document(timezone: str = CONTROLLER_ZONE):
    today = controller_today()
    return {
        "controller": {
            "name": "Offix AB",
            "established_in": "SE",
            "timezone": timezone,
            # What the cases below ask for (marketing.advertising: a purpose published but not covered).
            "published_purposes": ["essential.service", "marketing.advertising"],
        },
        "parties": [
            party(
                "good-proc", locations=[{"territory": "SE", "kind": "storage"}, {"territory": "FI", "kind": "backup"}]
            ),
            party("expiring-proc"),
            party("idle-proc", active=False),
            party("no-dpa-proc"),
            party("thin-dpa-proc"),
            party("us-support-proc", locations=[{"territory": "US", "kind": "support_access"}]),
            party(
                "chain-proc",
                sub_processors=[
                    {"party": "us-host", "approved_on": "2024-01-15"},
                    {"party": "pending-host", "approved_on": None, "objection_deadline": "2030-01-01"},
                ],
            ),
            party("us-host", "sub_processor", locations=[{"territory": "US", "kind": "storage"}]),
            party("pending-host", "sub_processor", established_in="DE"),
            party("tax-office", "authority"),
            party("open-proc"),
            party("united-org", established_in="DK", international_organisation=True),
            party(
                "objected-proc",
                sub_processors=[
                    {
                        "party": "objected-host",
                        "authorisation": "general",
                        "notified_on": (today - timedelta(days=40)).isoformat(),
                        "objection_deadline": (today - timedelta(days=10)).isoformat(),
                        "objected_on": (today - timedelta(days=20)).isoformat(),
                    }
                ],
            ),
            party(
                "general-proc",
                sub_processors=[
                    {
                        "party": "objected-host",
                        "authorisation": "general",
                        "notified_on": (today - timedelta(days=40)).isoformat(),
                        "objection_deadline": (today - timedelta(days=10)).isoformat(),
                    }
                ],
            ),
            party("objected-host", "sub_processor", established_in="DE"),
            party("analytics-proc"),
            party("newsletter-proc"),
        ],
        "agreements": [
            dpa("good-dpa", "good-proc"),
            dpa("expiring-dpa", "expiring-proc", expires_on=(today + timedelta(days=10)).isoformat()),
            dpa("idle-dpa", "idle-proc"),
            dpa("thin-dpa", "thin-dpa-proc", clauses=["instructions", "confidentiality", "sub_processing"]),
            dpa("us-support-dpa", "us-support-proc"),
            dpa("chain-dpa", "chain-proc"),
            dpa("open-dpa", "open-proc", transfers_outside_eea_permitted=True),
            dpa("united-org-dpa", "united-org"),
            dpa("objected-dpa", "objected-proc"),
            dpa("general-dpa", "general-proc"),
            dpa("newsletter-dpa", "newsletter-proc", purposes=["marketing.advertising"]),
            dpa("analytics-dpa", "analytics-proc", purposes=["analytics.reporting"]),
        ],
    }


SHARE = {
    "purpose": "essential.service.operations",
    "data_categories": ["user.name", "user.contact.email"],
    "data_subject": "customer",
}

# (request, the codes the answer must list, exactly)
CASES = [
    ({"recipient": "ghost"}, {"RECIPIENT_UNKNOWN"}),
    ({"recipient": "idle-proc"}, {"RECIPIENT_INACTIVE"}),
    ({"recipient": "tax-office"}, {"RECIPIENT_IS_AUTHORITY"}),
    ({"recipient": "no-dpa-proc"}, {"NO_AGREEMENT"}),
    ({"recipient": "thin-dpa-proc"}, {"AGREEMENT_INCOMPLETE"}),
    (
        {"recipient": "good-proc", "data_categories": ["user.name", "user.financial.bank_account"]},
        {"CATEGORY_NOT_COVERED"},
    ),
    ({"recipient": "good-proc", "purpose": "marketing.advertising", "subject_ref": "kund-7"}, {"PURPOSE_NOT_COVERED"}),
    ({"recipient": "good-proc", "data_subject": "employee"}, {"SUBJECT_NOT_COVERED"}),
    ({"recipient": "good-proc", "data_categories": ["user.name", "user.shoe_size"]}, {"CATEGORY_UNKNOWN"}),
    ({"recipient": "good-proc", "purpose": "world.domination"}, {"PURPOSE_UNKNOWN"}),
    (
        {"recipient": "good-proc", "data_categories": ["user.name", "user.health_and_medical"]},
        {"SPECIAL_CATEGORY", "CATEGORY_NOT_COVERED"},
    ),
    ({"recipient": "us-support-proc"}, {"LOCATION_OUTSIDE_EEA"}),
    ({"recipient": "chain-proc"}, {"SUBPROCESSOR_OUTSIDE_EEA", "SUBPROCESSOR_UNAPPROVED"}),
    ({"recipient": "good-proc", "destination": "US"}, {"DESTINATION_OUTSIDE_EEA", "DESTINATION_UNDECLARED"}),
    ({"recipient": "good-proc", "destination": "DE"}, {"DESTINATION_UNDECLARED"}),
    ({"recipient": "good-proc", "destination": "UK"}, {"TERRITORY_UNKNOWN"}),
    ({"recipient": "open-proc"}, {"AGREEMENT_PERMITS_TRANSFER"}),
    ({"recipient": "united-org", "destination": "DK"}, {"RECIPIENT_INTERNATIONAL_ORGANISATION"}),
    ({"recipient": "objected-proc"}, {"SUBPROCESSOR_OBJECTED"}),
    ({"recipient": "analytics-proc", "purpose": "analytics.reporting"}, {"PURPOSE_NOT_PUBLISHED"}),
    ({"recipient": "newsletter-proc", "purpose": "marketing.advertising"}, {"SUBJECT_REF_MISSING"}),
    ({"recipient": "good-proc", "subject_ref": "Objector@Example.SE"}, {"SUBJECT_OBJECTED"}),
    ({"recipient": "good-proc", "subject_ref": "restricted@example.se"}, {"SUBJECT_RESTRICTED"}),
]
# The person who objected to all processing (recorded through the API once the service runs).
OBJECTION = {"subject": "objector@example.se", "scope": "all", "received_on": "2026-11-01", "source": "letter"}
# The person whose processing is restricted (Art. 18).
RESTRICTION = {"subject": "restricted@example.se", "received_on": "2026-11-01", "source": "letter"}


@asynccontextmanager
async def service_on(database: str, document: dict) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The registry loaded first, then the app started: its first snapshot already holds the document."""
    await load_document(database, document)
    async with AsyncTestClient(create_app(settings_for(database))) as client:
        yield client


@pytest.fixture
async def guard_client(database):
    async with service_on(database, registry_document()) as client:
        writer = bearer(await make_key(database, "legal", "registry:write"))
        recorded = await client.post("/api/objections", json=OBJECTION, headers=writer)
        assert recorded.status_code == 201, recorded.text
        restricted = await client.post("/api/restrictions", json=RESTRICTION, headers=writer)
        assert restricted.status_code == 201, restricted.text
        yield client


async def check(client, headers, **request):
    response = await client.post("/api/guard/check", json={**SHARE, **request}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("request_fields", "codes"), CASES, ids=[sorted(c)[0] for _, c in CASES])
async def test_the_running_guard_denies_with_the_reason_that_applies(
    guard_client, guard_headers, request_fields, codes
):
    answer = await check(guard_client, guard_headers, **request_fields)
    assert answer["allowed"] is False
    assert {r["code"] for r in answer["reasons"]} == codes
    assert all(r["message"] for r in answer["reasons"])


async def test_every_reason_code_of_the_design_is_produced_by_the_running_service(guard_client, guard_headers):
    seen: set[str] = set()
    for request_fields, _ in CASES:
        seen |= {r["code"] for r in (await check(guard_client, guard_headers, **request_fields))["reasons"]}
    reason_codes = {code.value for code in ReasonCode} - {"AGREEMENT_EXPIRING"}
    assert seen == reason_codes


async def test_a_deny_lists_every_reason_at_once(guard_client, guard_headers):
    answer = await check(
        guard_client,
        guard_headers,
        recipient="chain-proc",
        purpose="marketing.advertising",
        data_categories=["user.name", "user.criminal_history", "user.shoe_size"],
        destination="US",
    )
    assert {r["code"] for r in answer["reasons"]} >= {
        "PURPOSE_NOT_COVERED",
        "SPECIAL_CATEGORY",
        "CATEGORY_UNKNOWN",
        "SUBPROCESSOR_OUTSIDE_EEA",
        "SUBPROCESSOR_UNAPPROVED",
        "DESTINATION_OUTSIDE_EEA",
    }


async def test_reasons_carry_the_party_territory_chain_and_clauses(guard_client, guard_headers):
    chain = await check(guard_client, guard_headers, recipient="chain-proc")
    outside = next(r for r in chain["reasons"] if r["code"] == "SUBPROCESSOR_OUTSIDE_EEA")
    assert (outside["party"], outside["territory"], outside["chain"]) == ("us-host", "US", ["chain-proc", "us-host"])
    thin = await check(guard_client, guard_headers, recipient="thin-dpa-proc")
    incomplete = thin["reasons"][0]
    assert incomplete["agreement"] == "thin-dpa"
    assert set(incomplete["clauses"]) == set(ALL_CLAUSES) - {"instructions", "confidentiality", "sub_processing"}


async def test_a_covered_share_is_allowed_and_names_its_agreement(guard_client, guard_headers):
    answer = await check(guard_client, guard_headers, recipient="good-proc", destination="FI")
    assert answer["allowed"] is True
    assert answer["reasons"] == []
    assert answer["warnings"] == []
    assert answer["agreement"] == "good-dpa"


async def test_the_new_codes_of_issue_21_name_the_agreement_and_the_chain(guard_client, guard_headers):
    [transfer] = (await check(guard_client, guard_headers, recipient="open-proc"))["reasons"]
    assert (transfer["agreement"], transfer["party"]) == ("open-dpa", "open-proc")
    [objected] = (await check(guard_client, guard_headers, recipient="objected-proc"))["reasons"]
    assert (objected["party"], objected["chain"]) == ("objected-host", ["objected-proc", "objected-host"])


async def test_a_general_authorisation_whose_objection_deadline_passed_without_objection_allows(
    guard_client, guard_headers
):
    answer = await check(guard_client, guard_headers, recipient="general-proc")
    assert (answer["allowed"], answer["reasons"]) == (True, [])


async def test_a_request_without_a_data_subject_is_a_400_naming_it(guard_client, guard_headers):
    body = {"recipient": "good-proc", "purpose": SHARE["purpose"], "data_categories": SHARE["data_categories"]}
    response = await guard_client.post("/api/guard/check", json=body, headers=guard_headers)
    assert response.status_code == 400
    assert "data_subject" in response.json()["detail"]


async def test_the_ruleset_names_the_rules_version_and_the_registry_revision(guard_client, guard_headers):
    ruleset = (await check(guard_client, guard_headers, recipient="good-proc"))["ruleset"]
    assert ruleset.startswith(f"eea-only@{RULES_VERSION}+r")
    assert int(ruleset.rsplit("+r", 1)[1]) > 0


async def test_an_agreement_about_to_expire_allows_with_a_warning(guard_client, guard_headers):
    answer = await check(guard_client, guard_headers, recipient="expiring-proc")
    assert answer["allowed"] is True
    assert [(w["code"], w["agreement"]) for w in answer["warnings"]] == [("AGREEMENT_EXPIRING", "expiring-dpa")]


async def test_every_answer_of_the_run_is_in_the_decision_log(guard_client, guard_headers, reader_headers):
    answers = [await check(guard_client, guard_headers, **fields) for fields, _ in CASES[:5]]
    listed = (await guard_client.get("/api/guard/decisions", headers=reader_headers)).json()
    logged = {d["decision_id"]: d for d in listed["items"]}
    for answer in answers:
        entry = logged[answer["decision_id"]]
        assert entry["reasons"] == answer["reasons"]
        assert entry["ruleset"] == answer["ruleset"]
        assert entry["caller"] == "webshop"


@pytest.mark.parametrize(
    ("timezone", "in_force"),
    [("Pacific/Kiritimati", True), ("Pacific/Pago_Pago", False)],
)
async def test_today_is_the_controllers_calendar_date(database, guard_headers, timezone, in_force):
    """An agreement taking effect on today's date in Kiritimati (UTC+14) is not yet in force in Pago Pago
    (UTC-11), where it is always still the day before."""
    document = registry_document(timezone)
    starts = controller_today("Pacific/Kiritimati").isoformat()
    for agreement in document["agreements"]:
        if agreement["key"] == "good-dpa":
            agreement["signed_on"] = agreement["effective_from"] = starts
    async with service_on(database, document) as client:
        answer = await check(client, guard_headers, recipient="good-proc")
    assert answer["allowed"] is in_force
    if not in_force:
        assert [r["code"] for r in answer["reasons"]] == ["NO_AGREEMENT"]
