"""What reminders are due on a day: the pure schedule of registry/jobs/schedule.py."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from registry.jobs.schedule import (
    EXPIRY,
    LAPSED,
    NOTICE_DEADLINE,
    OBJECTION_DEADLINE,
    AgreementFacts,
    PendingSubProcessorChange,
    current_threshold,
    due_reminders,
    still_relevant,
)

DAYS = (90, 30, 7, 1)
EXPIRES = date(2027, 1, 31)
FIXED = AgreementFacts(
    agreement_id=1,
    key="nordfrakt-dpa-2024",
    kind="dpa",
    party_key="nordfrakt",
    party_name="Nordfrakt Logistik AB",
    party_active=True,
    expires_on=EXPIRES,
    terminated_on=None,
    renewal="fixed",
    notice_days=None,
    owner_email="ops@offix.example",
)
AUTO = replace(FIXED, agreement_id=2, key="papyra-sharing-2025", renewal="auto", notice_days=60)


def due_on(day: date, *agreements: AgreementFacts, changes: tuple[PendingSubProcessorChange, ...] = ()) -> list:
    return [
        (d.agreement.key, d.kind, d.threshold_date, d.days_before)
        for d in due_reminders(agreements, changes, day, DAYS)
    ]


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (EXPIRES - timedelta(days=91), None),
        (EXPIRES - timedelta(days=90), 90),
        (EXPIRES - timedelta(days=89), 90),
        (EXPIRES - timedelta(days=30), 30),
        (EXPIRES - timedelta(days=8), 30),
        (EXPIRES - timedelta(days=7), 7),
        (EXPIRES - timedelta(days=1), 1),
        (EXPIRES, 1),
        (EXPIRES + timedelta(days=1), None),
    ],
)
def test_the_current_threshold_is_the_latest_one_reached(today: date, expected: int | None) -> None:
    assert current_threshold(EXPIRES, today, DAYS) == expected


def test_a_fixed_agreement_is_reminded_at_each_threshold_before_expiry() -> None:
    for days in DAYS:
        day = EXPIRES - timedelta(days=days)
        assert due_on(day, FIXED) == [(FIXED.key, EXPIRY, day, days)]


def test_nothing_is_due_long_before_expiry() -> None:
    assert due_on(EXPIRES - timedelta(days=200), FIXED) == []


def test_the_same_threshold_stays_due_until_the_next_one_so_a_missed_scan_catches_up() -> None:
    threshold = EXPIRES - timedelta(days=30)
    assert due_on(threshold + timedelta(days=3), FIXED) == [(FIXED.key, EXPIRY, threshold, 30)]


def test_an_agreement_entered_close_to_expiry_gets_only_the_latest_threshold() -> None:
    assert due_on(EXPIRES - timedelta(days=20), FIXED) == [(FIXED.key, EXPIRY, EXPIRES - timedelta(days=30), 30)]


def test_an_auto_renewing_agreement_is_reminded_before_its_notice_deadline() -> None:
    deadline = EXPIRES - timedelta(days=60)
    assert AUTO.notice_deadline == deadline
    # Soonest date first: the notice deadline comes before the expiry, which has its own reminders.
    assert due_on(deadline - timedelta(days=7), AUTO) == [
        (AUTO.key, NOTICE_DEADLINE, deadline - timedelta(days=7), 7),
        (AUTO.key, EXPIRY, EXPIRES - timedelta(days=90), 90),
    ]
    assert due_on(deadline - timedelta(days=1), AUTO) == [
        (AUTO.key, NOTICE_DEADLINE, deadline - timedelta(days=1), 1),
        (AUTO.key, EXPIRY, EXPIRES - timedelta(days=90), 90),
    ]


def test_an_auto_renewing_agreement_without_notice_days_has_no_notice_deadline() -> None:
    assert replace(AUTO, notice_days=None).notice_deadline is None
    assert replace(FIXED, notice_days=60).notice_deadline is None


def test_a_lapsed_agreement_of_an_active_party_is_reminded_weekly() -> None:
    first = EXPIRES + timedelta(days=1)
    assert due_on(first, FIXED) == [(FIXED.key, LAPSED, first, -1)]
    assert due_on(first + timedelta(days=6), FIXED) == [(FIXED.key, LAPSED, first, -1)]
    assert due_on(first + timedelta(days=7), FIXED) == [(FIXED.key, LAPSED, first + timedelta(days=7), -8)]
    assert due_on(first + timedelta(days=15), FIXED) == [(FIXED.key, LAPSED, first + timedelta(days=14), -15)]


def test_the_lapsed_interval_is_configurable() -> None:
    first = EXPIRES + timedelta(days=1)
    due = due_reminders([FIXED], [], first + timedelta(days=3), DAYS, lapsed_interval_days=2)
    assert [(d.kind, d.threshold_date) for d in due] == [(LAPSED, first + timedelta(days=2))]


@pytest.mark.parametrize("day", [EXPIRES - timedelta(days=30), EXPIRES, EXPIRES + timedelta(days=10)])
def test_an_inactive_party_gets_no_reminders(day: date) -> None:
    assert due_on(day, replace(FIXED, party_active=False)) == []


@pytest.mark.parametrize("day", [EXPIRES - timedelta(days=30), EXPIRES + timedelta(days=10)])
def test_a_terminated_agreement_gets_no_reminders(day: date) -> None:
    assert due_on(day, replace(FIXED, terminated_on=date(2026, 6, 1))) == []


def test_an_agreement_until_terminated_has_nothing_to_renew() -> None:
    assert due_on(date(2026, 11, 25), replace(AUTO, expires_on=None)) == []


def test_a_sub_processor_change_awaiting_approval_is_reminded_before_its_objection_deadline() -> None:
    deadline = date(2026, 12, 15)
    change = PendingSubProcessorChange(FIXED, 42, "cloudco", "CloudCo Oy", deadline)
    due = due_reminders([], [change], deadline - timedelta(days=7), DAYS)
    assert [(d.kind, d.due_date, d.threshold_date, d.days_before, d.sub_processor_id) for d in due] == [
        (OBJECTION_DEADLINE, deadline, deadline - timedelta(days=7), 7, 42)
    ]
    assert due_reminders([], [change], deadline + timedelta(days=1), DAYS) == []
    inactive = PendingSubProcessorChange(replace(FIXED, party_active=False), 42, "cloudco", "CloudCo Oy", deadline)
    assert due_reminders([], [inactive], deadline - timedelta(days=7), DAYS) == []


def test_reminders_come_soonest_date_first() -> None:
    later = replace(FIXED, agreement_id=3, key="a-later", expires_on=EXPIRES + timedelta(days=5))
    keys = [d.agreement.key for d in due_reminders([later, FIXED], [], EXPIRES - timedelta(days=1), DAYS)]
    assert keys == [FIXED.key, later.key]


@pytest.mark.parametrize(
    ("kind", "due_date", "facts", "today", "expected"),
    [
        (EXPIRY, EXPIRES, FIXED, EXPIRES - timedelta(days=30), True),
        (EXPIRY, EXPIRES, replace(FIXED, expires_on=EXPIRES + timedelta(days=365)), EXPIRES, False),
        (EXPIRY, EXPIRES, replace(FIXED, terminated_on=EXPIRES), EXPIRES, False),
        (EXPIRY, EXPIRES, replace(FIXED, party_active=False), EXPIRES, False),
        (EXPIRY, EXPIRES, None, EXPIRES, False),
        (EXPIRY, EXPIRES, FIXED, EXPIRES + timedelta(days=1), False),
        (LAPSED, EXPIRES, FIXED, EXPIRES + timedelta(days=1), True),
        (LAPSED, EXPIRES, FIXED, EXPIRES, False),
        (NOTICE_DEADLINE, EXPIRES - timedelta(days=60), AUTO, EXPIRES - timedelta(days=61), True),
        (
            NOTICE_DEADLINE,
            EXPIRES - timedelta(days=60),
            replace(AUTO, notice_days=30),
            EXPIRES - timedelta(days=61),
            False,
        ),
    ],
)
def test_a_pending_reminder_is_dropped_once_it_no_longer_says_something_true(
    kind: str, due_date: date, facts: AgreementFacts | None, today: date, expected: bool
) -> None:
    assert still_relevant(kind, due_date, facts, today, None) is expected


def test_an_objection_reminder_is_dropped_once_the_change_is_approved() -> None:
    deadline = date(2026, 12, 15)
    change = PendingSubProcessorChange(FIXED, 42, "cloudco", "CloudCo Oy", deadline)
    assert still_relevant(OBJECTION_DEADLINE, deadline, FIXED, deadline, change)
    assert not still_relevant(OBJECTION_DEADLINE, deadline, FIXED, deadline, None)
