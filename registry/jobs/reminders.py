"""The reminder scan (write every due reminder once) and the sender (deliver each row once).

Exactly once across instances and restarts: the scan writes rows with INSERT … ON CONFLICT DO NOTHING
against the unique key (agreement, sub-processor, kind, threshold date, channel), so any number of
instances may scan; the sender claims one row at a time with FOR UPDATE SKIP LOCKED and marks it sent in
the same transaction, so two senders never take the same row. A failed send keeps the row pending with
its error and a later `next_attempt_at` (exponential backoff).
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kernel.columns import utcnow
from kernel.i18n import use_locale
from kernel.settings import Settings
from registry.jobs.delivery import (
    GONE_ENDPOINTS,
    DeliveryError,
    EndpointGone,
    ReminderMessage,
    ServerUnavailable,
    SmtpSession,
    compose,
    send_webhook,
)
from registry.jobs.schedule import (
    OBJECTION_DEADLINE,
    AgreementFacts,
    DueReminder,
    PendingSubProcessorChange,
    due_reminders,
    still_relevant,
)

log = logging.getLogger(__name__)

EMAIL = "email"
WEBHOOK = "webhook"

_FACT_COLUMNS = """a.id, a.key, a.kind, p.key, p.name, p.active, a.expires_on, a.terminated_on, a.renewal,
    a.notice_days, a.owner_email"""


def _facts(row: Sequence[Any]) -> AgreementFacts:
    return AgreementFacts(*row[:11])


async def load_agreement_facts(session: AsyncSession, today: date, horizon_days: int) -> list[AgreementFacts]:
    """Agreements that may have a reminder due: a cheap superset filter in SQL, the rules in schedule.py."""
    rows = await session.execute(
        text(
            f"""SELECT {_FACT_COLUMNS} FROM agreement a JOIN party p ON p.id = a.party_id
            WHERE p.active AND a.terminated_on IS NULL AND a.expires_on IS NOT NULL
              AND a.expires_on - greatest(coalesce(a.notice_days, 0), 0) <= CAST(:horizon AS date)"""
        ),
        {"horizon": today + timedelta(days=horizon_days)},
    )
    return [_facts(r) for r in rows]


async def load_pending_changes(session: AsyncSession, today: date) -> list[PendingSubProcessorChange]:
    rows = await session.execute(
        text(
            f"""SELECT {_FACT_COLUMNS}, s.id, s.key, s.name, l.objection_deadline
            FROM sub_processor_link l
            JOIN party p ON p.id = l.processor_id
            JOIN party s ON s.id = l.sub_processor_id
            JOIN agreement a ON a.party_id = p.id
            WHERE l.approved_on IS NULL AND l.objected_on IS NULL AND l.objection_deadline >= CAST(:today AS date)
              AND p.active AND a.terminated_on IS NULL"""
        ),
        {"today": today},
    )
    return [PendingSubProcessorChange(_facts(r), r[11], r[12], r[13], r[14]) for r in rows]


@dataclass(frozen=True)
class ScanResult:
    due: list[DueReminder]
    written: int  # rows new in this scan; the rest were written by an earlier scan or another instance


async def scan(session: AsyncSession, settings: Settings, *, today: date, now: datetime | None = None) -> ScanResult:
    """Write a pending row per channel for every reminder due on `today` (in one statement), to be sent
    from `now` on."""
    reminder_days = settings.reminder_days
    agreements = await load_agreement_facts(session, today, max(reminder_days, default=0))
    changes = await load_pending_changes(session, today)
    due = due_reminders(agreements, changes, today, reminder_days, settings.reminder_lapsed_interval_days)
    channels: list[tuple[str, str | None]] = [(EMAIL, None)]
    if settings.webhook_url and settings.webhook_url not in GONE_ENDPOINTS:
        channels.append((WEBHOOK, settings.webhook_url))
    columns: dict[str, list[Any]] = {
        k: [] for k in ("agreement_id", "sub_processor_id", "kind", "due", "threshold", "days", "channel", "to")
    }
    for d in due:
        for channel, recipient in channels:
            columns["agreement_id"].append(d.agreement.agreement_id)
            columns["sub_processor_id"].append(d.sub_processor_id)
            columns["kind"].append(d.kind)
            columns["due"].append(d.due_date)
            columns["threshold"].append(d.threshold_date)
            columns["days"].append(d.days_before)
            columns["channel"].append(channel)
            columns["to"].append(recipient or d.agreement.owner_email)
    written = 0
    if due:
        result = await session.execute(
            text(
                """INSERT INTO reminder (agreement_id, sub_processor_id, kind, due_date, threshold_date, days_before,
                    channel, recipient, created_at, next_attempt_at, attempts)
                SELECT r.*, CAST(:now AS timestamptz), CAST(:now AS timestamptz), 0 FROM unnest(
                    CAST(:agreement_id AS int[]), CAST(:sub_processor_id AS int[]), CAST(:kind AS text[]),
                    CAST(:due AS date[]), CAST(:threshold AS date[]), CAST(:days AS int[]),
                    CAST(:channel AS text[]), CAST(:to AS text[])) AS r
                ON CONFLICT DO NOTHING"""
            ),
            {**columns, "now": now or utcnow()},
        )
        written = result.rowcount  # type: ignore[attr-defined]
    return ScanResult(due, written)


@dataclass(frozen=True)
class SendOutcome:
    reminder_id: int
    channel: str
    recipient: str
    kind: str
    agreement: str
    due_date: date
    status: str  # sent | failed | cancelled
    error: str | None = None
    subject: str = ""
    server_down: bool = False  # the mail server cannot be reached: the run sends no more e-mail


Deliver = Callable[[str, str, ReminderMessage], Awaitable[None]]


class DefaultDeliver:
    """E-mail over one SMTP session per run (closed by `aclose`), webhooks over HTTP."""

    def __init__(self, settings: Settings, *, webhook_backoff_seconds: float = 0.5) -> None:
        self.settings = settings
        self.webhook_backoff_seconds = webhook_backoff_seconds
        self.smtp = SmtpSession(settings)

    async def __call__(self, channel: str, recipient: str, message: ReminderMessage) -> None:
        if channel == EMAIL:
            await self.smtp.send(message, recipient)
        elif channel == WEBHOOK:
            await send_webhook(
                message,
                recipient,
                self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else None,
                backoff_seconds=self.webhook_backoff_seconds,
            )
        else:
            raise DeliveryError(f"unknown channel {channel!r}")

    async def aclose(self) -> None:
        await self.smtp.aclose()


def default_deliver(settings: Settings, *, webhook_backoff_seconds: float = 0.5) -> DefaultDeliver:
    return DefaultDeliver(settings, webhook_backoff_seconds=webhook_backoff_seconds)


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    seconds = settings.reminder_retry_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.reminder_retry_max_seconds))


async def _current_facts(
    session: AsyncSession, agreement_id: int, sub_processor_id: int | None
) -> tuple[AgreementFacts | None, PendingSubProcessorChange | None]:
    row = (
        await session.execute(
            text(f"SELECT {_FACT_COLUMNS} FROM agreement a JOIN party p ON p.id = a.party_id WHERE a.id = :id"),
            {"id": agreement_id},
        )
    ).first()
    if row is None:
        return None, None
    facts = _facts(row)
    if sub_processor_id is None:
        return facts, None
    link = (
        await session.execute(
            text(
                """SELECT s.id, s.key, s.name, l.objection_deadline FROM sub_processor_link l
                JOIN party s ON s.id = l.sub_processor_id JOIN agreement a ON a.party_id = l.processor_id
                WHERE a.id = :agreement AND s.id = :sub AND l.approved_on IS NULL AND l.objected_on IS NULL
                  AND l.objection_deadline IS NOT NULL"""
            ),
            {"agreement": agreement_id, "sub": sub_processor_id},
        )
    ).first()
    change = PendingSubProcessorChange(facts, link[0], link[1], link[2], link[3]) if link else None
    return facts, change


async def owner_language(session: AsyncSession, email: str) -> str | None:
    """The UI language a user with this e-mail address chose, if any."""
    from sqlmodel import col

    from registry.models.user import UiUser

    result = await session.execute(
        select(col(UiUser.language)).where(col(UiUser.email) == email.strip().lower(), col(UiUser.active).is_(True))
    )
    return result.scalar_one_or_none()


async def send_one(
    session: AsyncSession,
    settings: Settings,
    deliver: Deliver,
    *,
    now: datetime,
    today: date,
    skip_channels: Sequence[str] = (),
) -> SendOutcome | None:
    """Claim one pending row (skipping rows another sender holds, and rows of `skip_channels`), deliver it,
    record the outcome.

    The row stays locked while it is delivered, so no other instance can send it meanwhile."""
    row = (
        await session.execute(
            text(
                """SELECT id, agreement_id, sub_processor_id, kind, due_date, threshold_date, days_before, channel,
                    recipient, attempts
                FROM reminder
                WHERE sent_at IS NULL AND cancelled_at IS NULL AND next_attempt_at <= :now
                  AND channel <> ALL(CAST(:skip AS text[]))
                ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"""
            ),
            {"now": now, "skip": list(skip_channels)},
        )
    ).first()
    if row is None:
        return None
    rid, agreement_id, sub_id, kind, due_date, threshold_date, days_before, channel, recipient, attempts = row
    facts, change = await _current_facts(session, agreement_id, sub_id)
    if facts is None or not still_relevant(kind, due_date, facts, today, change):
        await session.execute(
            text("UPDATE reminder SET cancelled_at = :now, last_error = :why WHERE id = :id"),
            {"now": now, "why": "no longer relevant: the agreement, party or change was updated", "id": rid},
        )
        return SendOutcome(rid, channel, recipient, kind, facts.key if facts else "?", due_date, "cancelled")
    due = DueReminder(
        facts,
        kind,
        due_date,
        threshold_date,
        days_before,
        change.sub_processor_id if change and kind == OBJECTION_DEADLINE else None,
        change.sub_processor_key if change else None,
        change.sub_processor_name if change else None,
    )
    subject = ""
    try:
        # In the owner's UI language when they are a user who chose one, else the registry's default language.
        language = await owner_language(session, recipient) if channel == EMAIL else None
        with use_locale(language or settings.default_language):
            message = compose(rid, due, today, settings.public_url)
        subject = message.subject
        await deliver(channel, recipient, message)
    except EndpointGone as exc:  # the receiver says it is gone for good: retrying would only knock again
        await session.execute(
            text("UPDATE reminder SET attempts = attempts + 1, cancelled_at = :now, last_error = :why WHERE id = :id"),
            {"now": now, "why": str(exc)[:2000], "id": rid},
        )
        return SendOutcome(rid, channel, recipient, kind, facts.key, due_date, "cancelled", str(exc), subject)
    except Exception as exc:  # whatever breaks one reminder is recorded on its row, and the run goes on
        error = (str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}")[:2000]
        await session.execute(
            text(
                """UPDATE reminder SET attempts = attempts + 1, last_error = :error, next_attempt_at = :next
                WHERE id = :id"""
            ),
            {"error": error, "next": now + retry_delay(settings, attempts + 1), "id": rid},
        )
        log.warning("reminder %s (%s to %s) not delivered: %s", rid, channel, recipient, error)
        down = isinstance(exc, ServerUnavailable)
        return SendOutcome(rid, channel, recipient, kind, facts.key, due_date, "failed", error, subject, down)
    await session.execute(
        text("UPDATE reminder SET attempts = attempts + 1, sent_at = :now, last_error = NULL WHERE id = :id"),
        {"now": now, "id": rid},
    )
    return SendOutcome(rid, channel, recipient, kind, facts.key, due_date, "sent", None, subject)


async def send_pending(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    today: date,
    now: datetime | None = None,
    deliver: Deliver | None = None,
) -> list[SendOutcome]:
    """Deliver every pending row whose time has come, one row per transaction, over one SMTP session.

    When the mail server cannot be reached the run sends no more e-mail after that row (its outcome says
    `server_down`): the e-mails left are untouched and go out on a later run. Webhooks do not wait for the mail
    server: they go out in the same run."""
    now = now or utcnow()
    deliver = deliver or default_deliver(settings)
    outcomes: list[SendOutcome] = []
    skip: list[str] = []
    try:
        while True:
            async with sessionmaker() as session, session.begin():
                outcome = await send_one(session, settings, deliver, now=now, today=today, skip_channels=skip)
            if outcome is None:
                return outcomes
            outcomes.append(outcome)
            if outcome.server_down and EMAIL not in skip:
                log.warning("no more e-mail in this reminder run, webhooks go on: %s", outcome.error)
                skip.append(EMAIL)
    finally:
        close = getattr(deliver, "aclose", None)
        if close is not None:
            await close()


async def run_reminders(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    today: date,
    now: datetime | None = None,
    deliver: Deliver | None = None,
) -> tuple[ScanResult, list[SendOutcome]]:
    """The daily job: scan, then send."""
    now = now or utcnow()
    async with sessionmaker() as session, session.begin():
        result = await scan(session, settings, today=today, now=now)
    return result, await send_pending(sessionmaker, settings, today=today, now=now, deliver=deliver)


async def preview_reminders(session: AsyncSession, settings: Settings, *, today: date) -> list[DueReminder]:
    """What a run on `today` would find due, without writing a row: a run for another day than the
    controller's today is a preview, so it can neither send, use up, nor cancel a real reminder."""
    agreements = await load_agreement_facts(session, today, max(settings.reminder_days, default=0))
    changes = await load_pending_changes(session, today)
    return due_reminders(agreements, changes, today, settings.reminder_days, settings.reminder_lapsed_interval_days)


async def list_reminders(
    session: AsyncSession, *, pending_only: bool = False, limit: int = 500
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            """SELECT r.id, a.key, r.kind, r.due_date, r.threshold_date, r.days_before, r.channel, r.recipient,
                r.attempts, r.next_attempt_at, r.sent_at, r.cancelled_at, r.last_error, s.key
            FROM reminder r JOIN agreement a ON a.id = r.agreement_id LEFT JOIN party s ON s.id = r.sub_processor_id
            WHERE NOT :pending OR (r.sent_at IS NULL AND r.cancelled_at IS NULL)
            ORDER BY r.threshold_date DESC, r.id DESC LIMIT :limit"""
        ),
        {"pending": pending_only, "limit": limit},
    )
    keys = [
        "id",
        "agreement",
        "kind",
        "due_date",
        "threshold_date",
        "days_before",
        "channel",
        "recipient",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "cancelled_at",
        "last_error",
        "sub_processor",
    ]
    return [dict(zip(keys, r, strict=True)) for r in rows]
