"""A fair share of the guard for every API key.

A batch of 1,000 checks costs the event loop what a thousand single checks do, and its decision-log entries
fill the group commit that single checks wait on. Two clients sending such batches back to back cut the
single-check throughput by ten. Two rules keep the single checks going, and neither touches their path:

- each key has at most `per_key` batches in flight; one more is answered 429 with `Retry-After` before its
  body is read (`BatchAdmission`);
- a batch is decided and queued for the log in slices of `SLICE` requests, the loop yielding between slices
  (guard/service.py), so single checks that arrived meanwhile are decided, and their log entries queued,
  between the slices instead of after the whole batch.
"""

from collections import Counter

# Requests decided (and their entries queued for the decision log) before the batch yields to the loop.
SLICE = 25
# The answer's Retry-After: a batch of 1,000 is decided in well under a second on an idle instance.
RETRY_AFTER_SECONDS = 1


class BatchAdmission:
    """Batches in flight per API key; `admit` is False once the key has `per_key` of them."""

    __slots__ = ("in_flight", "per_key")

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self.in_flight: Counter[str] = Counter()

    def admit(self, caller: str) -> bool:
        if self.in_flight[caller] >= self.per_key:
            return False
        self.in_flight[caller] += 1
        return True

    def release(self, caller: str) -> None:
        left = self.in_flight[caller] - 1
        if left > 0:
            self.in_flight[caller] = left
        else:
            del self.in_flight[caller]


def too_many_batches(per_key: int) -> dict[str, object]:
    """The 429 body: a guard answer that is no decision says so (`"allowed": false`), as its 503 does."""
    return {
        "status_code": 429,
        "allowed": False,
        "detail": (
            f"this API key has {per_key} check-batch request(s) in flight already, its fair share; "
            f"retry after {RETRY_AFTER_SECONDS} s"
        ),
    }
