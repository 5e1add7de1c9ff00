"""Art. 19 notifications: telling every party that received a person's data of a rectification, erasure or
restriction, through the party's webhook (`contact.webhook`, Standard Webhooks, signed like reminders) or its
contact e-mail (SMTP, in Swedish for a party established in Sweden, else in English).

The recipients are those of the person's answer (registry/services/subjects.py: allowed shares naming the
person, trials left out). One row per party is written first (`subject_notification`), then each is delivered
at once; a failed delivery stays pending and is retried like reminders (registry/jobs/reminders.py
`retry_delay`, by the scheduler's retry job), until MAX_ATTEMPTS. A row is the evidence: who, which channel,
when, how it went. The message, which names the person so that the recipient can find them, is kept on the row
only until it is delivered or given up.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from guard.subjects import SubjectKey
from kernel.columns import utcnow
from kernel.i18n import N_, gettext, use_locale
from kernel.settings import Settings
from ledger.entries import format_timestamp
from registry.jobs.delivery import DeliveryError, ReminderMessage, SmtpSession, send_webhook
from registry.jobs.reminders import retry_delay
from registry.models.controller import ControllerProfile
from registry.models.subject import SubjectNotification
from registry.schemas import NotificationIn
from registry.services.common import change_record
from registry.services.subjects import subject_recipients

log = logging.getLogger(__name__)

EMAIL = "email"
WEBHOOK = "webhook"
NONE = "none"
SENT, PENDING, FAILED, NO_CONTACT = "sent", "pending", "failed", "no_contact"
MAX_ATTEMPTS = 10
NOTIFICATION = "notification"

ACTION_WORDS = {
    "rectification": N_("rectification"),
    "erasure": N_("erasure"),
    "restriction": N_("restriction of processing"),
}
ACTION_REQUESTS = {
    "rectification": N_(
        "The data subject's personal data has been rectified (Art. 16 GDPR). Please rectify the data you "
        "received from us; ask us for the corrected data if you need it."
    ),
    "erasure": N_(
        "The data subject's personal data has been erased (Art. 17 GDPR). Please erase the data you received "
        "from us, and tell the parties you passed it on to."
    ),
    "restriction": N_(
        "Processing of the data subject's personal data has been restricted (Art. 18 GDPR). Please keep the data "
        "you received from us but do not otherwise process it until we tell you that the restriction is lifted."
    ),
}


def channel_of(contact: dict[str, Any] | None) -> tuple[str, str | None]:
    """The party's channel for notifications: its webhook when it has one, else its contact e-mail."""
    contact = contact or {}
    if contact.get("webhook"):
        return WEBHOOK, str(contact["webhook"])
    if contact.get("email"):
        return EMAIL, str(contact["email"])
    return NONE, None


def language_of(established_in: str | None) -> str:
    return "sv" if established_in == "SE" else "en"


def compose(row_id: int, message: dict[str, Any]) -> ReminderMessage:
    """The notification in the current locale (the caller chooses the party's with `use_locale`); the webhook
    payload is language-neutral."""
    facts = {
        "controller": message["controller"],
        "party": message["party_name"],
        "action": gettext(ACTION_WORDS[message["action"]]),
    }
    # Outside the f-strings: Python 3.11's tokenizer hides a call inside one from the message extractor.
    subject_label, reference_label = gettext("Data subject:"), gettext("Reference:")
    subject = gettext("%(controller)s: %(action)s of a data subject's personal data (Art. 19 GDPR)") % facts
    lines = [
        gettext(
            "%(controller)s has disclosed personal data of the data subject below to %(party)s. Article 19 GDPR "
            "requires us to tell you of this %(action)s."
        )
        % facts,
        "",
        gettext(ACTION_REQUESTS[message["action"]]),
        "",
        subject_label + " " + message["subject"],
        reference_label + f" {NOTIFICATION}-{row_id}",
        "",
    ]
    payload = {
        "event": "subject.notification",
        "notification_id": row_id,
        "action": message["action"],
        "subject": message["subject"],
        "party": message["party"],
        "controller": message["controller"],
    }
    return ReminderMessage(row_id, subject, "\n".join(lines), payload, kind=NOTIFICATION)


Deliver = Callable[[str, str, ReminderMessage], Awaitable[None]]


class NotificationDeliver:
    """E-mail over one SMTP session (closed by `aclose`), webhooks signed with the registry's webhook secret."""

    def __init__(self, settings: Settings, *, webhook_backoff_seconds: float = 0.5) -> None:
        self.settings = settings
        self.webhook_backoff_seconds = webhook_backoff_seconds
        self.smtp = SmtpSession(settings)

    async def __call__(self, channel: str, address: str, message: ReminderMessage) -> None:
        if channel == EMAIL:
            await self.smtp.send(message, address)
        elif channel == WEBHOOK:
            secret = self.settings.webhook_secret
            await send_webhook(
                message,
                address,
                secret.get_secret_value() if secret else None,
                backoff_seconds=self.webhook_backoff_seconds,
            )
        else:
            raise DeliveryError(f"unknown channel {channel!r}")

    async def aclose(self) -> None:
        await self.smtp.aclose()


async def plan_notifications(
    session: AsyncSession, key: SubjectKey, data: NotificationIn, actor: str, *, now: datetime
) -> uuid.UUID:
    """Write one row per recipient of the person's data (the caller's transaction); the batch's id."""
    answer = await subject_recipients(session, key, data.subject)
    controller = (await session.execute(select(col(ControllerProfile.name)))).scalars().first() or ""
    batch = uuid.uuid4()
    for recipient in answer["recipients"]:
        channel, address = channel_of(recipient["contact"])
        session.add(
            SubjectNotification(
                batch=batch,
                action=data.action,
                party=recipient["party"],
                channel=channel,
                address=address,
                language=language_of(recipient["established_in"]),
                message=None
                if channel == NONE
                else {
                    "subject": data.subject,
                    "action": data.action,
                    "party": recipient["party"],
                    "party_name": recipient["name"] or recipient["party"],
                    "controller": controller,
                },
                status=NO_CONTACT if channel == NONE else PENDING,
                requested_by=actor,
                created_at=now,
                next_attempt_at=None if channel == NONE else now,
            )
        )
    # On record without the identifier: the action, the batch and how many parties it reached.
    session.add(
        change_record(
            "notification",
            str(batch),
            data.action,
            actor,
            None,
            {"batch": str(batch), "action": data.action, "recipients": len(answer["recipients"])},
        )
    )
    await session.flush()
    return batch


_CLAIM = """SELECT id, channel, address, language, message, attempts FROM subject_notification
WHERE status = 'pending' AND next_attempt_at <= :now {batch}
ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"""


async def send_one(
    session: AsyncSession, settings: Settings, deliver: Deliver, *, now: datetime, batch: uuid.UUID | None = None
) -> bool:
    """Claim one pending notification (skipping rows another sender holds), deliver it, record the outcome;
    False when none is due. The row stays locked while it is delivered."""
    row = (
        await session.execute(
            text(_CLAIM.format(batch="AND batch = :batch" if batch is not None else "")),
            {"now": now, **({"batch": batch} if batch is not None else {})},
        )
    ).first()
    if row is None:
        return False
    row_id, channel, address, language, message, attempts = row
    try:
        with use_locale(language):
            composed = compose(row_id, message)
        await deliver(channel, address, composed)
    except Exception as exc:  # whatever breaks one notification is recorded on its row
        error = (str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}")[:2000]
        given_up = attempts + 1 >= MAX_ATTEMPTS
        await session.execute(
            text(
                """UPDATE subject_notification SET attempts = attempts + 1, last_error = :error,
                status = :status, next_attempt_at = :next, message = CASE WHEN :given_up THEN NULL ELSE message END
                WHERE id = :id"""
            ),
            {
                "error": error,
                "status": FAILED if given_up else PENDING,
                "next": None if given_up else now + retry_delay(settings, attempts + 1),
                "given_up": given_up,
                "id": row_id,
            },
        )
        log.warning("notification %s (%s) not delivered: %s", row_id, channel, error)
        return True
    await session.execute(
        text(
            """UPDATE subject_notification SET attempts = attempts + 1, status = 'sent', delivered_at = :now,
            last_error = NULL, next_attempt_at = NULL, message = NULL WHERE id = :id"""
        ),
        {"now": now, "id": row_id},
    )
    return True


async def send_pending_notifications(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: uuid.UUID | None = None,
    deliver: Deliver | None = None,
) -> int:
    """Deliver every pending notification whose time has come (of one batch when given), one row per
    transaction; how many were tried."""
    now = now or utcnow()
    owned = deliver is None
    deliver = deliver or NotificationDeliver(settings)
    tried = 0
    try:
        while True:
            async with sessionmaker() as session, session.begin():
                if not await send_one(session, settings, deliver, now=now, batch=batch):
                    return tried
            tried += 1
    finally:
        if owned:
            await deliver.aclose()  # type: ignore[attr-defined]


def notification_document(row: SubjectNotification) -> dict[str, Any]:
    return {
        "id": row.id,
        "party": row.party,
        "channel": row.channel,
        "status": row.status,
        "action": row.action,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": format_timestamp(row.created_at),
        "delivered_at": None if row.delivered_at is None else format_timestamp(row.delivered_at),
    }


async def batch_outcome(session: AsyncSession, batch: uuid.UUID) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(SubjectNotification)
            .where(col(SubjectNotification.batch) == batch)
            .order_by(col(SubjectNotification.party), col(SubjectNotification.id))
        )
    ).scalars()
    return {"batch": str(batch), "recipients": [notification_document(row) for row in rows]}


async def list_notifications(session: AsyncSession, *, limit: int = 200) -> list[dict[str, Any]]:
    rows = (
        await session.execute(select(SubjectNotification).order_by(col(SubjectNotification.id).desc()).limit(limit))
    ).scalars()
    return [notification_document(row) for row in rows]


async def notify_recipients(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    key: SubjectKey,
    data: NotificationIn,
    actor: str,
    *,
    deliver: Deliver | None = None,
) -> dict[str, Any]:
    """Plan the notifications of every recipient of the person's data, deliver them now, and answer each
    party's channel and status (`pending`: it failed this time and will be retried)."""
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        batch = await plan_notifications(session, key, data, actor, now=now)
    await send_pending_notifications(sessionmaker, settings, now=now, batch=batch, deliver=deliver)
    async with sessionmaker() as session:
        return await batch_outcome(session, batch)
