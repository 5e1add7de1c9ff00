"""One path for every guard check (API, batch, web UI, CLI): validate, decide on the snapshot, log, answer.

The answer is returned only after its log entry is durable. Anything that keeps the guard from deciding on
a trusted snapshot, or from logging, raises `GuardUnavailable`, which every entry point answers with
``"allowed": false`` (the HTTP API as a 503): the guard never allows by default. A structurally bad request
raises `RegistryValidationError` naming each field. No HTTP types here: the entry points map both.
"""

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from guard.fairness import SLICE
from guard.objections import ObjectionIndex, ObjectionsUnavailable
from guard.policy import Snapshot
from guard.snapshot import SnapshotRefresher, SnapshotUnavailable
from guard.subjects import (
    SUBJECT_MAX_LENGTH,
    SubjectError,
    SubjectKey,
    new_salt,
    normalise_subject,
    subject_commitment,
)
from guard.views import NO_OBJECTIONS, Decision, Objections, ShareRequest
from kernel import counters
from kernel.errors import FieldError, RegistryValidationError, pydantic_field_errors
from kernel.settings import Settings
from kernel.text import no_nul_characters
from ledger.append import ChainTampered, DecisionLogWriter
from ledger.entries import DecisionEntry, format_timestamp, new_decision_id
from ledger.evidence import EvidenceWatch
from ledger.proofs import ProofService

log = logging.getLogger(__name__)

BATCH_MAX = 1000
# Requests are tiny; a batch of 1,000 fits well under this. Bigger bodies are refused before parsing.
MAX_BODY_BYTES = 2 * 1024 * 1024
# NUL is refused here, where the API, the batch, the web UI and the CLI all validate: PostgreSQL cannot store
# it in the decision log, and a log write that fails takes the other checks of its group commit down with it.
Reference = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul_characters)]


def _subject(value: str) -> str:
    try:
        return normalise_subject(value)
    except SubjectError as exc:
        raise ValueError(f"the subject reference {exc}") from None


# The person's identifier (an e-mail address, a customer number), normalised here and digested before the
# policy or the log sees it (`pseudonymised`).
SubjectRef = Annotated[str, StringConstraints(max_length=SUBJECT_MAX_LENGTH), AfterValidator(_subject)]


class ShareRequestIn(BaseModel):
    """DESIGN §4.1. Only the structure is checked here; unknown references are a logged deny, not a 400."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    recipient: Reference
    purpose: Reference
    data_categories: Annotated[list[Reference], Field(min_length=1, max_length=100)]
    data_subject: Reference  # required: a share of unknown subjects cannot be checked against Art. 28(3)
    destination: Reference | None = None
    subject_ref: SubjectRef | None = None


# The same rules as ShareRequestIn, for msgspec: it decodes and validates a well-formed body straight from its
# bytes, several times faster than json.loads and pydantic. It only ever accepts: whatever it refuses goes to
# ShareRequestIn, which decides and names every problem (tests/unit/test_share_request_parsing.py holds the
# two to the same verdicts).
_FastReference = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern="^[^\x00]*$")]
# Printable ASCII with at least one non-space: the fast path's subset of what `normalise_subject` accepts;
# anything else (Unicode, spaces only) takes the slow path, which accepts it or names the problem.
_FastSubjectRef = Annotated[str, msgspec.Meta(min_length=1, max_length=SUBJECT_MAX_LENGTH, pattern="^ *[!-~][ -~]*$")]


class _FastShareRequest(msgspec.Struct, forbid_unknown_fields=True):
    recipient: _FastReference
    purpose: _FastReference
    data_categories: Annotated[list[_FastReference], msgspec.Meta(min_length=1, max_length=100)]
    data_subject: _FastReference
    destination: _FastReference | None = None
    subject_ref: _FastSubjectRef | None = None


_fast_one = msgspec.json.Decoder(_FastShareRequest)
_fast_batch = msgspec.json.Decoder(Annotated[list[_FastShareRequest], msgspec.Meta(min_length=1, max_length=BATCH_MAX)])


def _share_request(parsed: ShareRequestIn | _FastShareRequest) -> ShareRequest:
    """The policy's request from either parse (the two have the same fields). Its `subject_ref` is the
    normalised identifier until `pseudonymised` replaces it with its digest, before anything decides or logs."""
    subject = parsed.subject_ref
    if subject is not None and isinstance(parsed, _FastShareRequest):
        subject = normalise_subject(subject)  # (the slow path's validator has done it already)
    return ShareRequest(
        recipient=parsed.recipient,
        purpose=parsed.purpose,
        data_categories=tuple(parsed.data_categories),
        destination=parsed.destination,
        data_subject=parsed.data_subject,
        subject_ref=subject,
    )


_DIGEST = re.compile(r"[0-9a-f]{64}")


def pseudonymised(requests: Sequence[ShareRequest], key: SubjectKey) -> list[ShareRequest]:
    """The requests with each subject's identifier replaced by its keyed digest: what is decided and logged."""
    return [
        r if r.subject_ref is None else dataclasses.replace(r, subject_ref=key.digest_normalised(r.subject_ref))
        for r in requests
    ]


class GuardUnavailable(Exception):
    """The guard cannot give a trustworthy answer now."""


def cannot_decide(detail: str) -> dict[str, Any]:
    """The fail-closed answer when the guard cannot decide, counted (every entry point answers with it)."""
    counters.UNAVAILABLE.inc()
    return {"allowed": False, "detail": f"the guard cannot decide: {detail}"}


def decode_body(raw: bytes) -> tuple[Any, list[FieldError]]:
    """The decoded JSON body, or what is wrong with it: the guard names the problem instead of a generic error."""
    if len(raw) > MAX_BODY_BYTES:
        return None, [FieldError("(body)", f"the body exceeds {MAX_BODY_BYTES} bytes")]
    try:
        return json.loads(raw), []
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [FieldError("(body)", f"the body is not valid JSON: {exc}")]
    except RecursionError:
        return None, [FieldError("(body)", "the body is nested too deeply")]


def parse_share_request(payload: Any, path: str = "") -> ShareRequest | list[FieldError]:
    """A decoded share request (the API's, the web UI's or the CLI's), or every structural problem it has."""
    if not isinstance(payload, dict):
        return [FieldError(path or "(body)", "a guard request must be a JSON object")]
    try:
        return _share_request(ShareRequestIn.model_validate(payload))
    except ValidationError as exc:
        errors = pydantic_field_errors(exc)
        if path:
            errors = [FieldError(f"{path}.{e.field}" if e.field != "(document)" else path, e.message) for e in errors]
        return errors


def parse_share_request_body(raw: bytes) -> ShareRequest | list[FieldError]:
    """`parse_share_request` of a JSON body as received."""
    if len(raw) <= MAX_BODY_BYTES:
        try:
            return _share_request(_fast_one.decode(raw))
        except (msgspec.DecodeError, UnicodeDecodeError):  # (DecodeError includes ValidationError) the slow path
            pass  # says what is wrong
    payload, errors = decode_body(raw)
    return errors or parse_share_request(payload)


def parse_batch_body(raw: bytes) -> list[ShareRequest] | list[FieldError]:
    """A JSON array of 1…1000 share requests as received, or every structural problem in it.

    A structural error anywhere rejects the whole batch, so no integration acts on half an answer."""
    if len(raw) <= MAX_BODY_BYTES:
        try:
            return [_share_request(fast) for fast in _fast_batch.decode(raw)]
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
    payload, errors = decode_body(raw)
    if errors:
        return errors
    if not isinstance(payload, list):
        return [FieldError("(body)", "a batch must be a JSON array of guard requests")]
    if not 1 <= len(payload) <= BATCH_MAX:
        return [FieldError("(body)", f"a batch holds 1 to {BATCH_MAX} requests, this one has {len(payload)}")]
    requests: list[ShareRequest] = []
    for index, item in enumerate(payload):
        parsed = parse_share_request(item, f"[{index}]")
        if isinstance(parsed, list):
            errors.extend(parsed)
        else:
            requests.append(parsed)
    return errors or requests


def logged_request(request: ShareRequest, salt: str | None = None) -> dict[str, Any]:
    """The request as the decision log keeps it: the fields sent, in the API's shape (absent ones left out).
    The person it names appears only as a commitment to their digest under `salt` (guard/subjects.py
    `subject_commitment`), so that an erasure, deleting the digest and salt kept beside the log, unlinks it."""
    document: dict[str, Any] = {
        "recipient": request.recipient,
        "purpose": request.purpose,
        "data_categories": list(request.data_categories),
    }
    if request.destination is not None:
        document["destination"] = request.destination
    if request.data_subject is not None:
        document["data_subject"] = request.data_subject
    if request.subject_ref is not None:
        # The log is append-only: an identifier written by mistake could never be taken out again.
        if not _DIGEST.fullmatch(request.subject_ref):
            raise ValueError("a subject reference must be pseudonymised before it is logged")
        if salt is None:
            raise ValueError("a subject reference is logged only as a salted commitment")
        document["subject_ref_commitment"] = subject_commitment(request.subject_ref, salt)
    return document


def answer(decision_id: str, decision: Decision, decided_at: str) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "allowed": decision.allowed,
        "reasons": decision.reason_documents,
        "warnings": decision.warning_documents,
        "agreement": decision.agreement,
        "ruleset": decision.ruleset,
        "decided_at": decided_at,
    }


def decide_and_record(
    requests: Sequence[ShareRequest],
    snapshot: Snapshot,
    today: date,
    caller: str,
    *,
    expiring_within_days: int,
    objections: Objections = NO_OBJECTIONS,
    restrictions: Objections = NO_OBJECTIONS,
    trial: bool = False,
    request_id: str | None = None,
) -> tuple[list[dict[str, Any]], list[DecisionEntry]]:
    """Pure apart from ids, salts and the clock: the answers and the log entries that must be written first.
    The requests' subjects are digests already (`pseudonymised`); `request_id` is the HTTP request's. `trial`:
    decisions of the UI's try-a-share page, logged as trials (evidence, never shares)."""
    answers: list[dict[str, Any]] = []
    entries: list[DecisionEntry] = []
    for request in requests:
        decision = snapshot.decision(
            request,
            today,
            expiring_within_days=expiring_within_days,
            objections=objections,
            restrictions=restrictions,
        )
        decision_id = new_decision_id()
        decided_at = datetime.now(UTC)
        stamp = format_timestamp(decided_at)
        body = answer(decision_id, decision, stamp)
        answers.append(body)
        salt = None if request.subject_ref is None else new_salt()
        entries.append(
            DecisionEntry(
                decision_id=decision_id,
                decided_at=decided_at,
                caller=caller,
                request=logged_request(request, salt),
                allowed=decision.allowed,
                reasons=body["reasons"],
                warnings=body["warnings"],
                agreement=decision.agreement,
                ruleset=decision.ruleset,
                decided_at_text=stamp,
                trial=trial,
                subject_digest=request.subject_ref,
                subject_salt=salt,
                request_id=request_id,
            )
        )
    return answers, entries


# How long a check waits for the snapshot to catch up with a revision a notice announced, before failing closed.
NOTICE_WAIT_SECONDS = 2.0


def _log_unavailable(exc: BaseException) -> GuardUnavailable:
    log.warning("decision log unavailable, failing closed: %s", exc)
    if isinstance(exc, ChainTampered):
        return GuardUnavailable(
            f"the decision log shows evidence of tampering ({exc}); an operator must resolve it"
            " (registry guard resolve-alarms)"
        )
    return GuardUnavailable("the decision log cannot be written")


@dataclass(frozen=True, slots=True)
class GuardRuntime:
    """One guard instance's running parts: the snapshot it decides on, the log it records in, its settings.

    Built and stopped by web/guard_runtime.py's lifespan; every check in the app goes through `check`,
    `check_body` or `check_batch_body`."""

    snapshots: SnapshotRefresher
    log: DecisionLogWriter
    settings: Settings
    # Data subjects: the objections and restrictions decided on, and the key identifiers are digested with.
    objections: ObjectionIndex
    subject_key: SubjectKey
    # Evidence of tampering with the decision log: while an alarm is open, every check fails closed.
    evidence: EvidenceWatch | None = None
    # Receipts and consistency proofs, built off the event loop.
    proofs: ProofService | None = None
    restrictions: ObjectionIndex | None = None

    def _decided(
        self, requests: Sequence[ShareRequest], caller: str, request_id: str | None, trial: bool = False
    ) -> tuple[list[dict[str, Any]], list[DecisionEntry]]:
        """The answers and log entries of `requests` on the snapshot usable now (GuardUnavailable if none is)."""
        if self.evidence is not None and self.evidence.problem is not None:
            raise GuardUnavailable(
                f"the decision log shows evidence of tampering ({self.evidence.problem}); an operator must resolve"
                " it (registry guard resolve-alarms)"
            )
        try:
            loaded = self.snapshots.usable()
        except SnapshotUnavailable as exc:
            raise GuardUnavailable(str(exc)) from None
        objections: Objections = NO_OBJECTIONS
        restrictions: Objections = NO_OBJECTIONS
        if any(r.subject_ref is not None for r in requests):
            # Only a check that names someone needs the objections and restrictions; one that cannot be sure of
            # them fails closed.
            try:
                objections = self.objections.usable()
                if self.restrictions is not None:
                    restrictions = self.restrictions.usable()
            except ObjectionsUnavailable as exc:
                raise GuardUnavailable(str(exc)) from None
            requests = pseudonymised(requests, self.subject_key)
        return decide_and_record(
            requests,
            loaded.snapshot,
            loaded.today(),
            caller,
            expiring_within_days=self.settings.expiring_warning_days,
            objections=objections,
            restrictions=restrictions,
            trial=trial,
            request_id=request_id,
        )

    async def decide(
        self, requests: Sequence[ShareRequest], caller: str, request_id: str | None = None, *, trial: bool = False
    ) -> list[dict[str, Any]]:
        """The answers to requests that have parsed, in order, each logged durably before it is returned
        (`request_id`: the HTTP request's id, recorded in each entry; `trial`: the try-a-share page's)."""
        if self.snapshots.behind():
            # Told the registry moved: wait for the snapshot to catch up (a few ms) rather than decide on the
            # old one; still behind after the wait, `usable` fails the check closed.
            await self.snapshots.wait_for(self.snapshots.noticed_revision, NOTICE_WAIT_SECONDS)
        if len(requests) > SLICE:
            return await self._decide_in_slices(requests, caller, request_id)
        answers, entries = self._decided(requests, caller, request_id, trial)
        try:
            sequences = await self.log.append(entries)
        except Exception as exc:  # no durable record, no answer: a decision off the record must not be obeyed
            raise _log_unavailable(exc) from None
        for body, sequence in zip(answers, sequences, strict=True):  # the receipt: where the entry is in the log
            body["sequence"] = sequence
        return answers

    async def _decide_in_slices(
        self, requests: Sequence[ShareRequest], caller: str, request_id: str | None
    ) -> list[dict[str, Any]]:
        """A big batch, decided and queued for the log SLICE requests at a time, each slice queued once the one
        before is written, so that single checks are decided and logged in between (guard/fairness.py).
        Each slice is decided on the snapshot usable at that moment; the answer is the same as at once: every
        request decided and durably logged before any answer, and GuardUnavailable if any slice could not be."""
        answers: list[dict[str, Any]] = []
        appends: list[asyncio.Task[list[int]]] = []
        try:
            for start in range(0, len(requests), SLICE):
                if self.snapshots.behind():
                    await self.snapshots.wait_for(self.snapshots.noticed_revision, NOTICE_WAIT_SECONDS)
                slice_answers, entries = self._decided(requests[start : start + SLICE], caller, request_id)
                answers += slice_answers
                if appends:
                    # Paced by the log: the next slice is queued once the one before is durable, so the group
                    # commits that single checks wait on carry one slice of a batch at most, not all of it.
                    await asyncio.wait([appends[-1]])
                    if appends[-1].exception() is not None:
                        break  # the answer fails closed now: no more decisions to log for it
                appends.append(asyncio.ensure_future(self.log.append(entries)))
        finally:
            # Slices already queued are written whatever happens to the rest: wait for them, so that no task is
            # left behind and a failure is never answered while its log entries may still be in flight.
            outcomes = await asyncio.gather(*appends, return_exceptions=True)
        sequences: list[int] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise _log_unavailable(outcome) from None
            sequences += outcome
        for body, sequence in zip(answers, sequences, strict=True):
            body["sequence"] = sequence
        return answers

    async def _decide_one(
        self, parsed: ShareRequest | list[FieldError], caller: str, request_id: str | None, trial: bool = False
    ) -> dict[str, Any]:
        if isinstance(parsed, list):
            raise RegistryValidationError(parsed)
        return (await self.decide([parsed], caller, request_id, trial=trial))[0]

    async def check(
        self, payload: Any, caller: str, request_id: str | None = None, *, trial: bool = False
    ) -> dict[str, Any]:
        """One share request already decoded (as the web UI builds it) → its logged answer. `trial`: the UI's
        try-a-share page, whose decisions are logged as trials, never shares."""
        return await self._decide_one(parse_share_request(payload), caller, request_id, trial)

    async def check_body(self, raw: bytes, caller: str, request_id: str | None = None) -> dict[str, Any]:
        """One share request as the API receives it (JSON bytes) → its logged answer."""
        return await self._decide_one(parse_share_request_body(raw), caller, request_id)

    async def check_batch_body(self, raw: bytes, caller: str, request_id: str | None = None) -> list[dict[str, Any]]:
        """A JSON array of 1…1000 share requests as received → the answers in the same order.

        A structural error anywhere rejects the whole batch, so no integration acts on half an answer."""
        parsed = parse_batch_body(raw)
        if parsed and isinstance(parsed[0], FieldError):
            raise RegistryValidationError([e for e in parsed if isinstance(e, FieldError)])
        return await self.decide([r for r in parsed if isinstance(r, ShareRequest)], caller, request_id)
