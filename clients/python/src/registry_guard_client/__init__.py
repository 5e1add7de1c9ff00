"""Ask the Offix registry guard before every personal-data share.

The client fails closed: when the guard cannot be asked or gives no trustworthy answer (timeout, refused
connection, 5xx, a body that is not a well-formed decision) `check` returns a *denied* `Decision` whose reason
code is `GUARD_UNREACHABLE`; it never raises on those paths, so no exception handler can turn into an allow.
A request the guard refuses as malformed or unauthorised (a 4xx answer) raises `GuardRequestError`: that is a
bug or a configuration error in the integration, and retrying would not help. A 429 or 503 (the guard busy or
unable to decide now) is asked once more after its Retry-After, when that is short; then it is denied.
"""

from registry_guard_client._client import (
    GUARD_UNREACHABLE,
    RECIPIENT_INTERNATIONAL_ORGANISATION,
    SUBJECT_OBJECTED,
    SUBJECT_REF_MISSING,
    SUBJECT_RESTRICTED,
    AsyncGuardClient,
    Decision,
    GuardClient,
    GuardRequestError,
    Reason,
    ReasonCode,
)
from registry_guard_client._proofs import (
    ProofError,
    SignedCheckpoint,
    open_checkpoint,
    verify_consistency,
    verify_consistency_answer,
    verify_inclusion,
    verify_receipt,
)

__all__ = [
    "GUARD_UNREACHABLE",
    "RECIPIENT_INTERNATIONAL_ORGANISATION",
    "SUBJECT_OBJECTED",
    "SUBJECT_REF_MISSING",
    "SUBJECT_RESTRICTED",
    "AsyncGuardClient",
    "Decision",
    "GuardClient",
    "GuardRequestError",
    "ProofError",
    "Reason",
    "ReasonCode",
    "SignedCheckpoint",
    "open_checkpoint",
    "verify_consistency",
    "verify_consistency_answer",
    "verify_inclusion",
    "verify_receipt",
]
