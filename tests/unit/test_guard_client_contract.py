"""The Python client's types against the service's committed OpenAPI document (clients/openapi.json) and
DESIGN 4.2, and its retry rule (pure logic: which answers are asked once more, after how long)."""

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from registry_guard_client import ReasonCode
from registry_guard_client._client import DEFAULT_RETRY_WAIT, Decision, _decision, _retry_wait

from guard.vocabulary import ReasonCode as PolicyReasonCode

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "clients" / "openapi.json").read_text(encoding="utf-8"))
SCHEMAS = DOCUMENT["components"]["schemas"]
# DESIGN 4.2, every code: the codes added there after the first release, the warning and the client's own included.
DESIGN_CODES = [
    "RECIPIENT_UNKNOWN",
    "RECIPIENT_INACTIVE",
    "RECIPIENT_IS_AUTHORITY",
    "NO_AGREEMENT",
    "AGREEMENT_INCOMPLETE",
    "CATEGORY_NOT_COVERED",
    "PURPOSE_NOT_COVERED",
    "SUBJECT_NOT_COVERED",
    "CATEGORY_UNKNOWN",
    "PURPOSE_UNKNOWN",
    "SPECIAL_CATEGORY",
    "LOCATION_OUTSIDE_EEA",
    "SUBPROCESSOR_OUTSIDE_EEA",
    "SUBPROCESSOR_UNAPPROVED",
    "DESTINATION_OUTSIDE_EEA",
    "DESTINATION_UNDECLARED",
    "TERRITORY_UNKNOWN",
    "AGREEMENT_PERMITS_TRANSFER",
    "SUBPROCESSOR_OBJECTED",
    "PURPOSE_NOT_PUBLISHED",
    "SUBJECT_OBJECTED",
    "SUBJECT_REF_MISSING",
    "SUBJECT_RESTRICTED",
    "RECIPIENT_INTERNATIONAL_ORGANISATION",
    "AGREEMENT_EXPIRING",
    "GUARD_UNREACHABLE",
]


def test_the_client_knows_every_reason_code_the_service_documents_and_the_design_names() -> None:
    known = {code.value for code in ReasonCode}
    assert set(SCHEMAS["ReasonCode"]["enum"]) <= known
    assert {code.value for code in PolicyReasonCode} <= known
    assert known == set(DESIGN_CODES)


def test_a_decision_has_a_field_of_the_documented_type_for_every_field_of_the_answer() -> None:
    answer = SCHEMAS["GuardAnswer"]["properties"]
    fields = {f.name: f.type for f in dataclasses.fields(Decision)}
    assert set(answer) <= set(fields)
    assert answer["decision_id"]["format"] == "uuid" and "UUID" in str(fields["decision_id"])
    assert answer["decided_at"]["format"] == "date-time" and "datetime" in str(fields["decided_at"])
    assert answer["sequence"]["type"] == "integer" and "int" in str(fields["sequence"])


def test_an_answer_is_read_into_typed_fields_and_an_unknown_code_stays_a_string() -> None:
    decision_id = uuid.uuid4()
    decision = _decision(
        {
            "decision_id": str(decision_id),
            "allowed": False,
            "reasons": [
                {"code": "NO_AGREEMENT", "message": "no dpa"},
                {"code": "NEW_IN_A_LATER_RELEASE", "message": "m"},
            ],
            "warnings": [{"code": "AGREEMENT_EXPIRING", "message": "soon", "agreement": "a-1"}],
            "agreement": None,
            "ruleset": "2026.1",
            "decided_at": "2026-12-06T20:00:00.123456+00:00",
            "sequence": 42,
        }
    )
    assert decision.reason_codes == (ReasonCode.NO_AGREEMENT, "NEW_IN_A_LATER_RELEASE")
    assert decision.reasons[0].code is ReasonCode.NO_AGREEMENT
    assert decision.decision_id == decision_id
    assert decision.decided_at == datetime(2026, 12, 6, 20, 0, 0, 123456, tzinfo=UTC)
    assert decision.sequence == 42


def answer(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(
    ("response", "wait"),
    [
        (answer(503, "1"), 1.0),
        (answer(429, "0"), 0.0),
        (answer(429), DEFAULT_RETRY_WAIT),
        (answer(503), DEFAULT_RETRY_WAIT),
        (None, DEFAULT_RETRY_WAIT),  # the connection could not be made: nothing was sent
        (answer(503, "3600"), None),  # longer than the client waits: denied now
        (answer(429, "soon"), None),
        (answer(500), None),
        (answer(502), None),
        (answer(400), None),
        (answer(200), None),
    ],
)
def test_only_a_busy_or_undecided_answer_is_asked_again_after_its_retry_after(response, wait) -> None:
    assert _retry_wait(response, max_wait=2.0) == wait


def test_a_retry_after_given_as_a_date_is_honoured_and_retries_can_be_switched_off() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=1), usegmt=True)
    wait = _retry_wait(answer(503, soon), max_wait=2.0)
    assert wait is not None and 0 <= wait <= 1.0
    assert _retry_wait(answer(503, "1"), max_wait=0) is None
