"""One path for every guard check (API, batch, web UI, CLI): validate, decide on the snapshot, log, answer.

The answer is returned only after its log entry is durable. Anything that keeps the guard from deciding on
a trusted snapshot, or from logging, is a 503 with ``"allowed": false``: the guard never allows by default.
"""

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar.datastructures import State
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from guard.log import DecisionEntry, DecisionLogWriter, format_timestamp
from guard.policy import Decision, ShareRequest, Snapshot, decide
from guard.snapshot import SnapshotRefresher, SnapshotUnavailable
from registry.errors import FieldError
from registry.schemas import no_nul_characters
from registry.services.registry_document import pydantic_field_errors

log = logging.getLogger(__name__)

BATCH_MAX = 1000
# NUL is refused here, where the API, the batch, the web UI and the CLI all validate: PostgreSQL cannot store
# it in the decision log, and a log write that fails takes the other checks of its group commit down with it.
Reference = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul_characters)]


class ShareRequestIn(BaseModel):
    """DESIGN §4.1. Only the structure is checked here; unknown references are a logged deny, not a 400."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    recipient: Reference
    purpose: Reference
    data_categories: Annotated[list[Reference], Field(min_length=1, max_length=100)]
    destination: Reference | None = None
    data_subject: Reference | None = None

    def to_share_request(self) -> ShareRequest:
        return ShareRequest(
            recipient=self.recipient,
            purpose=self.purpose,
            data_categories=tuple(self.data_categories),
            destination=self.destination,
            data_subject=self.data_subject,
        )


class GuardUnavailable(Exception):
    """The guard cannot give a trustworthy answer now."""


def bad_request(errors: list[FieldError]) -> tuple[int, dict[str, Any]]:
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 400, {
        "status_code": 400,
        "detail": f"invalid guard request: {summary}{more}",
        "extra": [e.as_dict() for e in errors],
    }


def unavailable(detail: str) -> tuple[int, dict[str, Any]]:
    return 503, {"status_code": 503, "allowed": False, "detail": f"the guard cannot decide: {detail}"}


def parse_share_request(payload: Any, path: str = "") -> ShareRequestIn | list[FieldError]:
    if not isinstance(payload, dict):
        return [FieldError(path or "(body)", "a guard request must be a JSON object")]
    try:
        return ShareRequestIn.model_validate(payload)
    except ValidationError as exc:
        errors = pydantic_field_errors(exc)
        if path:
            errors = [FieldError(f"{path}.{e.field}" if e.field != "(document)" else path, e.message) for e in errors]
        return errors


def answer(decision_id: uuid.UUID, decision: Decision, decided_at: datetime) -> dict[str, Any]:
    return {
        "decision_id": str(decision_id),
        "allowed": decision.allowed,
        "reasons": [r.as_dict() for r in decision.reasons],
        "warnings": [w.as_dict() for w in decision.warnings],
        "agreement": decision.agreement,
        "ruleset": decision.ruleset,
        "decided_at": format_timestamp(decided_at),
    }


def decide_and_record(
    requests: Sequence[ShareRequestIn],
    snapshot: Snapshot,
    today: date,
    caller: str,
    *,
    expiring_within_days: int,
) -> tuple[list[dict[str, Any]], list[DecisionEntry]]:
    """Pure apart from ids and the clock: the answers and the log entries that must be written first."""
    answers: list[dict[str, Any]] = []
    entries: list[DecisionEntry] = []
    for request in requests:
        decision = decide(request.to_share_request(), snapshot, today, expiring_within_days=expiring_within_days)
        decision_id = uuid.uuid4()
        decided_at = datetime.now(UTC)
        body = answer(decision_id, decision, decided_at)
        answers.append(body)
        entries.append(
            DecisionEntry(
                decision_id=decision_id,
                decided_at=decided_at,
                caller=caller,
                request=request.model_dump(exclude_none=True),
                allowed=decision.allowed,
                reasons=body["reasons"],
                warnings=body["warnings"],
                agreement=decision.agreement,
                ruleset=decision.ruleset,
            )
        )
    return answers, entries


async def _decide_logged(state: State, requests: Sequence[ShareRequestIn], caller: str) -> list[dict[str, Any]]:
    refresher: SnapshotRefresher = state.guard_snapshots
    writer: DecisionLogWriter = state.guard_log
    try:
        loaded = refresher.usable()
    except SnapshotUnavailable as exc:
        raise GuardUnavailable(str(exc)) from None
    answers, entries = decide_and_record(
        requests,
        loaded.snapshot,
        loaded.today(),
        caller,
        expiring_within_days=state.settings.expiring_warning_days,
    )
    try:
        await writer.append(entries)
    except Exception as exc:  # no durable record, no answer: a decision off the record must not be obeyed
        log.warning("decision log unavailable, answering 503: %s", exc)
        raise GuardUnavailable("the decision log cannot be written") from None
    return answers


async def check_share(state: State, payload: Any, caller: str) -> tuple[int, dict[str, Any]]:
    """One share request (already-decoded JSON) → (HTTP status, answer body)."""
    parsed = parse_share_request(payload)
    if isinstance(parsed, list):
        return bad_request(parsed)
    try:
        (body,) = await _decide_logged(state, [parsed], caller)
    except GuardUnavailable as exc:
        return unavailable(str(exc))
    return 200, body


async def check_share_batch(state: State, payload: Any, caller: str) -> tuple[int, Any]:
    """A JSON array of 1…1000 share requests → (HTTP status, array of answers in the same order).

    A structural error anywhere rejects the whole batch (400), so no integration acts on half an answer.
    """
    if not isinstance(payload, list):
        return bad_request([FieldError("(body)", "a batch must be a JSON array of guard requests")])
    if not 1 <= len(payload) <= BATCH_MAX:
        return bad_request(
            [FieldError("(body)", f"a batch holds 1 to {BATCH_MAX} requests, this one has {len(payload)}")]
        )
    requests: list[ShareRequestIn] = []
    errors: list[FieldError] = []
    for index, item in enumerate(payload):
        parsed = parse_share_request(item, f"[{index}]")
        if isinstance(parsed, list):
            errors.extend(parsed)
        else:
            requests.append(parsed)
    if errors:
        return bad_request(errors)
    try:
        return 200, await _decide_logged(state, requests, caller)
    except GuardUnavailable as exc:
        return unavailable(str(exc))
