"""The sync and async guard clients; both share the request building and the answer checking below.

The types follow the service's OpenAPI document (clients/openapi.json: `GuardAnswer`, `ReasonAnswer`,
`ReasonCode`); tests/unit/test_guard_client_contract.py holds them to it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import httpx


class ReasonCode(StrEnum):
    """The guard's reason codes (DESIGN 4.2), stable: integrations switch on them. Members are strings, so
    `reason.code == "NO_AGREEMENT"` still holds; `ReasonCode.NO_AGREEMENT` is what mypy can check."""

    RECIPIENT_UNKNOWN = "RECIPIENT_UNKNOWN"
    RECIPIENT_INACTIVE = "RECIPIENT_INACTIVE"
    RECIPIENT_IS_AUTHORITY = "RECIPIENT_IS_AUTHORITY"
    RECIPIENT_INTERNATIONAL_ORGANISATION = "RECIPIENT_INTERNATIONAL_ORGANISATION"
    NO_AGREEMENT = "NO_AGREEMENT"
    AGREEMENT_INCOMPLETE = "AGREEMENT_INCOMPLETE"
    CATEGORY_NOT_COVERED = "CATEGORY_NOT_COVERED"
    PURPOSE_NOT_COVERED = "PURPOSE_NOT_COVERED"
    SUBJECT_NOT_COVERED = "SUBJECT_NOT_COVERED"
    CATEGORY_UNKNOWN = "CATEGORY_UNKNOWN"
    PURPOSE_UNKNOWN = "PURPOSE_UNKNOWN"
    SPECIAL_CATEGORY = "SPECIAL_CATEGORY"
    LOCATION_OUTSIDE_EEA = "LOCATION_OUTSIDE_EEA"
    SUBPROCESSOR_OUTSIDE_EEA = "SUBPROCESSOR_OUTSIDE_EEA"
    SUBPROCESSOR_UNAPPROVED = "SUBPROCESSOR_UNAPPROVED"
    DESTINATION_OUTSIDE_EEA = "DESTINATION_OUTSIDE_EEA"
    DESTINATION_UNDECLARED = "DESTINATION_UNDECLARED"
    TERRITORY_UNKNOWN = "TERRITORY_UNKNOWN"
    AGREEMENT_PERMITS_TRANSFER = "AGREEMENT_PERMITS_TRANSFER"
    SUBPROCESSOR_OBJECTED = "SUBPROCESSOR_OBJECTED"
    PURPOSE_NOT_PUBLISHED = "PURPOSE_NOT_PUBLISHED"
    SUBJECT_OBJECTED = "SUBJECT_OBJECTED"
    SUBJECT_REF_MISSING = "SUBJECT_REF_MISSING"
    SUBJECT_RESTRICTED = "SUBJECT_RESTRICTED"
    # A warning: never blocks.
    AGREEMENT_EXPIRING = "AGREEMENT_EXPIRING"
    # The client's own: the guard could not be asked, or its answer could not be trusted.
    GUARD_UNREACHABLE = "GUARD_UNREACHABLE"


GUARD_UNREACHABLE = ReasonCode.GUARD_UNREACHABLE
# Reason codes an integration meets when it names (or fails to name) the person whose data it shares.
SUBJECT_OBJECTED = ReasonCode.SUBJECT_OBJECTED
SUBJECT_REF_MISSING = ReasonCode.SUBJECT_REF_MISSING
SUBJECT_RESTRICTED = ReasonCode.SUBJECT_RESTRICTED  # the person's processing is restricted (Art. 18)
# A share to an international organisation (Art. 4(26)) is a transfer wherever its office is: always denied.
RECIPIENT_INTERNATIONAL_ORGANISATION = ReasonCode.RECIPIENT_INTERNATIONAL_ORGANISATION
CHECK_PATH = "/api/guard/check"
BATCH_PATH = "/api/guard/check-batch"
_REQUEST_FIELDS = ("recipient", "purpose", "data_categories", "data_subject", "destination", "subject_ref")
# 408 and 429 say "not now", not "your request is wrong": they deny like an outage instead of raising.
_TRANSIENT_4XX = frozenset({408, 429})
# Answers after which the same check is asked once more: "too many now" and "cannot decide now" (the guard
# answers these without a decision, so asking again logs nothing twice).
_RETRY_STATUSES = frozenset({429, 503})
# The wait before the one retry when the answer names none in Retry-After.
DEFAULT_RETRY_WAIT = 0.25
# The longest Retry-After the client waits for; a longer one is a denial now rather than a stalled share.
DEFAULT_MAX_RETRY_WAIT = 2.0


def _retry_wait(response: httpx.Response | None, max_wait: float) -> float | None:
    """Seconds to wait before the one retry, or None for no retry (not a retryable answer, retries off, or a
    Retry-After longer than `max_wait`). None `response`: the connection could not be made (nothing was sent)."""
    if max_wait <= 0:
        return None
    if response is None:
        return min(DEFAULT_RETRY_WAIT, max_wait)
    if response.status_code not in _RETRY_STATUSES:
        return None
    header = response.headers.get("retry-after")
    if header is None:
        return min(DEFAULT_RETRY_WAIT, max_wait)
    header = header.strip()
    if header.isdigit():
        wait = float(header)
    else:
        try:
            wait = (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # a Retry-After the client cannot read: no retry
    wait = max(0.0, wait)
    return wait if wait <= max_wait else None


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a share is denied (or, among `Decision.warnings`, what to watch). `code` is a `ReasonCode` member
    for every code this client knows; a code the service added after this client was released stays a plain
    string (the decision is still obeyed: a denial is a denial)."""

    code: ReasonCode | str
    message: str
    party: str | None = None
    territory: str | None = None
    agreement: str | None = None
    chain: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()
    category: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's answer. Share only when `allowed` is true. `decision_id` is None when the guard was not
    reached (nothing was logged on the service's side)."""

    allowed: bool
    reasons: tuple[Reason, ...]
    warnings: tuple[Reason, ...] = ()
    decision_id: uuid.UUID | None = None
    agreement: str | None = None
    ruleset: str | None = None
    decided_at: datetime | None = None
    sequence: int | None = None  # the entry's place in the decision log (its receipt proves it)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def reason_codes(self) -> tuple[ReasonCode | str, ...]:
        return tuple(reason.code for reason in self.reasons)

    @classmethod
    def unreachable(cls, detail: str) -> Decision:
        return cls(allowed=False, reasons=(Reason(GUARD_UNREACHABLE, f"the guard could not be asked: {detail}"),))


class GuardRequestError(Exception):
    """The guard refused the request itself (4xx): malformed input, a missing or narrow API key, a wrong URL.
    Never an allow; fix the integration."""

    def __init__(self, status_code: int, detail: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(f"guard refused the request ({status_code}): {detail}")
        self.status_code = status_code
        self.detail = detail
        self.errors = list(errors)


class _Malformed(Exception):
    """The answer is not a well-formed decision."""


def _request_document(
    recipient: str,
    purpose: str,
    data_categories: Iterable[str],
    data_subject: str,
    destination: str | None,
    subject_ref: str | None = None,
) -> dict[str, Any]:
    if isinstance(data_categories, str):  # a lone string would otherwise be sent as a list of characters
        raise TypeError("data_categories must be a list of category names, not one string")
    document: dict[str, Any] = {
        "recipient": recipient,
        "purpose": purpose,
        "data_categories": list(data_categories),
        "data_subject": data_subject,
    }
    if destination is not None:
        document["destination"] = destination
    if subject_ref is not None:
        document["subject_ref"] = subject_ref
    return document


def _batch_documents(requests: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    documents = []
    for index, request in enumerate(requests):
        unknown = set(request) - set(_REQUEST_FIELDS)
        if unknown:
            raise TypeError(f"request {index} has unknown fields: {', '.join(sorted(unknown))}")
        documents.append(
            _request_document(
                request["recipient"],
                request["purpose"],
                request["data_categories"],
                request["data_subject"],
                request.get("destination"),
                request.get("subject_ref"),
            )
        )
    return documents


def _optional_text(document: Mapping[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise _Malformed(f"{key} is not text")
    return value


def _texts(document: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Malformed(f"{key} is not a list of text")
    return tuple(value)


def _reason(document: Any) -> Reason:
    if not isinstance(document, dict):
        raise _Malformed("a reason is not an object")
    code, message = document.get("code"), document.get("message")
    if not isinstance(code, str) or not code or not isinstance(message, str):
        raise _Malformed("a reason has no code or message")
    known: ReasonCode | str = ReasonCode(code) if code in ReasonCode.__members__ else code
    return Reason(
        code=known,
        message=message,
        party=_optional_text(document, "party"),
        territory=_optional_text(document, "territory"),
        agreement=_optional_text(document, "agreement"),
        chain=_texts(document, "chain"),
        clauses=_texts(document, "clauses"),
        category=_optional_text(document, "category"),
    )


def _decision(document: Any) -> Decision:
    """A decision from its JSON document; anything missing or inconsistent makes the answer untrustworthy."""
    if not isinstance(document, dict):
        raise _Malformed("a decision is not an object")
    allowed = document.get("allowed")
    reasons = document.get("reasons")
    warnings = document.get("warnings", [])
    if not isinstance(allowed, bool) or not isinstance(reasons, list) or not isinstance(warnings, list):
        raise _Malformed("allowed, reasons or warnings missing")
    if allowed and reasons:
        raise _Malformed("allowed with reasons to deny")
    if not allowed and not reasons:
        raise _Malformed("denied without a reason")
    decision_id = _optional_text(document, "decision_id")
    if allowed and not decision_id:
        raise _Malformed("an allow without a logged decision id")
    decided_at = _optional_text(document, "decided_at")
    sequence = document.get("sequence")
    if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
        raise _Malformed("sequence is not a whole number")
    try:
        return Decision(
            allowed=allowed,
            reasons=tuple(_reason(item) for item in reasons),
            warnings=tuple(_reason(item) for item in warnings),
            decision_id=uuid.UUID(decision_id) if decision_id else None,
            agreement=_optional_text(document, "agreement"),
            ruleset=_optional_text(document, "ruleset"),
            decided_at=datetime.fromisoformat(decided_at) if decided_at else None,
            sequence=sequence,
            raw=document,
        )
    except ValueError as exc:  # a decision id that is no UUID, a time that is no ISO 8601 date-time
        raise _Malformed(str(exc)) from None


def _refusal(response: httpx.Response) -> GuardRequestError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = str(body.get("detail") or response.reason_phrase)
        extra = body.get("extra")
        errors = [item for item in extra if isinstance(item, dict)] if isinstance(extra, list) else []
    else:
        detail, errors = response.reason_phrase or "refused", []
    return GuardRequestError(response.status_code, detail, errors)


def _answer(response: httpx.Response, expected: int | None) -> list[Decision]:
    """The decisions in a response (one, or `expected` for a batch); a GuardRequestError for a refused request;
    denials for everything else."""
    status = response.status_code
    if 400 <= status < 500 and status not in _TRANSIENT_4XX:
        raise _refusal(response)
    count = expected or 1
    if status != 200:
        return [Decision.unreachable(f"HTTP {status}")] * count
    try:
        body = json.loads(response.content)
        if expected is None:
            return [_decision(body)]
        if not isinstance(body, list) or len(body) != expected:
            raise _Malformed(f"expected {expected} decisions")
        return [_decision(item) for item in body]
    except (ValueError, RecursionError, _Malformed) as exc:
        return [Decision.unreachable(f"malformed answer ({exc})")] * count


def _client_options(base_url: str, api_key: str, timeout: float | httpx.Timeout) -> dict[str, Any]:
    if not api_key:
        raise ValueError("api_key is required (a registry API key with the guard:check scope)")
    return {
        "base_url": base_url.rstrip("/"),
        "headers": {"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        "timeout": timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        "follow_redirects": False,
    }


class GuardClient:
    """A guard client holding one connection pool; make one per process and reuse it (it is thread-safe).

    `timeout` bounds each of connect, read, write and pool waits in seconds; past it the check is denied.
    A check the guard answers 429 or 503 (or whose connection could not be made) is asked once more, after the
    answer's Retry-After (or DEFAULT_RETRY_WAIT) when that is at most `max_retry_wait` seconds; then it is
    denied. `max_retry_wait=0` turns the retry off."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 5.0,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        **httpx_options: Any,
    ) -> None:
        self._http = httpx.Client(**_client_options(base_url, api_key, timeout), **httpx_options)
        self._max_retry_wait = max_retry_wait

    def check(
        self,
        *,
        recipient: str,
        purpose: str,
        data_categories: Iterable[str],
        data_subject: str,
        destination: str | None = None,
        subject_ref: str | None = None,
    ) -> Decision:
        """Ask whether `recipient` may receive `data_categories` for `purpose` (to `destination`, a country
        code, when the data goes somewhere else than the recipient's declared locations). `subject_ref` names
        the one person whose data it is (an e-mail address, a customer number): needed for marketing, and
        checked against that person's objections; the guard keeps only a keyed digest of it."""
        document = _request_document(recipient, purpose, data_categories, data_subject, destination, subject_ref)
        return self._post(CHECK_PATH, document, None)[0]

    def check_batch(self, requests: Iterable[Mapping[str, Any]]) -> list[Decision]:
        """Up to 1,000 checks in one round trip (mappings with `check`'s keyword names); decisions in order."""
        documents = _batch_documents(requests)
        if not documents:
            return []
        return self._post(BATCH_PATH, documents, len(documents))

    def _post(self, path: str, document: Any, expected: int | None) -> list[Decision]:
        for attempt in (1, 2):
            response: httpx.Response | None = None
            try:
                response = self._http.post(path, json=document)
            except httpx.ConnectError as exc:
                failure: Exception = exc
            except Exception as exc:  # any failure to get an answer is a denial, never an exception to catch wrongly
                return [Decision.unreachable(f"{type(exc).__name__}: {exc}")] * (expected or 1)
            wait = _retry_wait(response, self._max_retry_wait) if attempt == 1 else None
            if wait is None:
                break
            time.sleep(wait)
        if response is None:
            return [Decision.unreachable(f"{type(failure).__name__}: {failure}")] * (expected or 1)
        return _answer(response, expected)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncGuardClient:
    """`GuardClient` for asyncio; make one per event loop and reuse it."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 5.0,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        **httpx_options: Any,
    ) -> None:
        self._http = httpx.AsyncClient(**_client_options(base_url, api_key, timeout), **httpx_options)
        self._max_retry_wait = max_retry_wait

    async def check(
        self,
        *,
        recipient: str,
        purpose: str,
        data_categories: Iterable[str],
        data_subject: str,
        destination: str | None = None,
        subject_ref: str | None = None,
    ) -> Decision:
        document = _request_document(recipient, purpose, data_categories, data_subject, destination, subject_ref)
        return (await self._post(CHECK_PATH, document, None))[0]

    async def check_batch(self, requests: Iterable[Mapping[str, Any]]) -> list[Decision]:
        documents = _batch_documents(requests)
        if not documents:
            return []
        return await self._post(BATCH_PATH, documents, len(documents))

    async def _post(self, path: str, document: Any, expected: int | None) -> list[Decision]:
        for attempt in (1, 2):  # see GuardClient._post
            response: httpx.Response | None = None
            try:
                response = await self._http.post(path, json=document)
            except httpx.ConnectError as exc:
                failure: Exception = exc
            except Exception as exc:
                return [Decision.unreachable(f"{type(exc).__name__}: {exc}")] * (expected or 1)
            wait = _retry_wait(response, self._max_retry_wait) if attempt == 1 else None
            if wait is None:
                break
            await asyncio.sleep(wait)
        if response is None:
            return [Decision.unreachable(f"{type(failure).__name__}: {failure}")] * (expected or 1)
        return _answer(response, expected)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()
