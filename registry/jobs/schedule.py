"""What reminders are due on a given day: a pure function of the agreements' facts and the day.

No I/O and no clock: the scan (registry/jobs/reminders.py) loads the facts, calls `due_reminders`, and
writes the result; the sender calls `still_relevant` before it sends a row written on an earlier day.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

EXPIRY = "expiry"
NOTICE_DEADLINE = "notice_deadline"
LAPSED = "lapsed"
OBJECTION_DEADLINE = "objection_deadline"
REMINDER_KINDS = (EXPIRY, NOTICE_DEADLINE, LAPSED, OBJECTION_DEADLINE)


@dataclass(frozen=True)
class AgreementFacts:
    """The facts of one agreement (and its party) that decide its reminders."""

    agreement_id: int
    key: str
    kind: str  # dpa | data_sharing
    party_key: str
    party_name: str
    party_active: bool
    expires_on: date | None
    terminated_on: date | None
    renewal: str  # fixed | auto
    notice_days: int | None
    owner_email: str

    @property
    def notice_deadline(self) -> date | None:
        """For an auto-renewing agreement, the last day to give notice; after it, the renewal is binding."""
        if self.renewal != "auto" or self.expires_on is None or not self.notice_days:
            return None
        return self.expires_on - timedelta(days=self.notice_days)

    @property
    def remindable(self) -> bool:
        # A terminated agreement ends on purpose, and an inactive party receives no shares: nothing to renew.
        return self.party_active and self.terminated_on is None


@dataclass(frozen=True)
class PendingSubProcessorChange:
    """A sub-processor change notified by a processor and not approved yet; the processor's agreement owner
    must object (or approve) before `objection_deadline`."""

    agreement: AgreementFacts  # an agreement of the processor: its owner is reminded
    sub_processor_id: int
    sub_processor_key: str
    sub_processor_name: str
    objection_deadline: date


@dataclass(frozen=True)
class DueReminder:
    agreement: AgreementFacts
    kind: str
    due_date: date  # the date the reminder is about
    threshold_date: date  # the day this reminder became due; part of its unique key
    days_before: int  # the threshold, in days before due_date (negative after it)
    sub_processor_id: int | None = None
    sub_processor_key: str | None = None
    sub_processor_name: str | None = None


def current_threshold(event: date, today: date, reminder_days: Sequence[int]) -> int | None:
    """The most recent threshold (days before `event`) that `today` has reached, or None.

    Only the latest threshold is due: a scan that missed a day catches up with it, and an agreement entered
    20 days before expiry gets the 30-day reminder, not the 90-day one too."""
    if event < today:
        return None
    days_left = (event - today).days
    reached = [d for d in reminder_days if d >= days_left]
    return min(reached) if reached else None


def _before(
    facts: AgreementFacts, kind: str, event: date | None, today: date, reminder_days: Sequence[int]
) -> DueReminder | None:
    if event is None:
        return None
    threshold = current_threshold(event, today, reminder_days)
    if threshold is None:
        return None
    return DueReminder(facts, kind, event, event - timedelta(days=threshold), threshold)


def lapsed_reminder(facts: AgreementFacts, today: date, interval_days: int) -> DueReminder | None:
    """After expiry (the day after `expires_on`), one reminder per `interval_days` while the party is active."""
    if facts.expires_on is None or today <= facts.expires_on:
        return None
    first = facts.expires_on + timedelta(days=1)
    periods = (today - first).days // interval_days
    threshold_date = first + timedelta(days=periods * interval_days)
    return DueReminder(facts, LAPSED, facts.expires_on, threshold_date, (facts.expires_on - threshold_date).days)


def due_for_agreement(
    facts: AgreementFacts, today: date, reminder_days: Sequence[int], lapsed_interval_days: int = 7
) -> list[DueReminder]:
    if not facts.remindable:
        return []
    due = [
        _before(facts, EXPIRY, facts.expires_on, today, reminder_days),
        # For an auto-renewing agreement the notice deadline is the date that matters for the business; the
        # expiry still matters to the guard, which blocks once the recorded `expires_on` has passed.
        _before(facts, NOTICE_DEADLINE, facts.notice_deadline, today, reminder_days),
        lapsed_reminder(facts, today, lapsed_interval_days),
    ]
    return [d for d in due if d is not None]


def due_for_change(change: PendingSubProcessorChange, today: date, reminder_days: Sequence[int]) -> DueReminder | None:
    if not change.agreement.remindable:
        return None
    threshold = current_threshold(change.objection_deadline, today, reminder_days)
    if threshold is None:
        return None
    return DueReminder(
        change.agreement,
        OBJECTION_DEADLINE,
        change.objection_deadline,
        change.objection_deadline - timedelta(days=threshold),
        threshold,
        change.sub_processor_id,
        change.sub_processor_key,
        change.sub_processor_name,
    )


def due_reminders(
    agreements: Iterable[AgreementFacts],
    changes: Iterable[PendingSubProcessorChange],
    today: date,
    reminder_days: Sequence[int] = (90, 30, 7, 1),
    lapsed_interval_days: int = 7,
) -> list[DueReminder]:
    """Every reminder due on `today`, soonest date first."""
    due: list[DueReminder] = []
    for facts in agreements:
        due.extend(due_for_agreement(facts, today, reminder_days, lapsed_interval_days))
    for change in changes:
        reminder = due_for_change(change, today, reminder_days)
        if reminder is not None:
            due.append(reminder)
    due.sort(key=lambda d: (d.due_date, d.agreement.key, d.kind, d.sub_processor_key or ""))
    return due


def still_relevant(
    kind: str, due_date: date, facts: AgreementFacts | None, today: date, change: PendingSubProcessorChange | None
) -> bool:
    """Whether a reminder written earlier still says something true: a renewed, terminated or deleted
    agreement, a deactivated party or an approved change make a pending reminder obsolete."""
    if facts is None or not facts.remindable:
        return False
    if kind == EXPIRY:
        return facts.expires_on == due_date and due_date >= today
    if kind == NOTICE_DEADLINE:
        return facts.notice_deadline == due_date and due_date >= today
    if kind == LAPSED:
        return facts.expires_on == due_date and today > due_date
    if kind == OBJECTION_DEADLINE:
        return change is not None and change.objection_deadline == due_date and due_date >= today
    return False
