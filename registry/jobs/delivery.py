"""Delivering one reminder: an e-mail through SMTP, or a signed JSON webhook."""

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import aiosmtplib
import httpx

from registry.jobs.schedule import EXPIRY, LAPSED, NOTICE_DEADLINE, OBJECTION_DEADLINE, DueReminder
from registry.jobs.webhook_signing import WebhookSecretError, standard_webhook_headers, webhook_keys
from registry.models.base import utcnow
from registry.settings import Settings

TIMESTAMP_HEADER = "X-Registry-Timestamp"
REMINDER_ID_HEADER = "X-Registry-Reminder"


class DeliveryError(Exception):
    """A send failed; the reminder stays pending and is retried later."""


@dataclass(frozen=True)
class ReminderMessage:
    reminder_id: int
    subject: str
    body: str
    payload: dict[str, Any]


def compose(reminder_id: int, due: DueReminder, today: date, public_url: str) -> ReminderMessage:
    """Subject and body say who, which agreement, which date, and what happens if nobody acts."""
    a = due.agreement
    days_left = (due.due_date - today).days
    when = "today" if days_left == 0 else f"in {days_left} day{'s' if days_left != 1 else ''}"
    agreement_url = f"{public_url}/ui/agreements/{a.key}"
    party_url = f"{public_url}/ui/parties/{a.party_key}"
    lapse = (
        f"When the agreement lapses, the transfer guard denies every share of personal data with {a.party_name}: "
        "deliveries, campaigns and every other integration that asks the guard stop for this party."
    )
    if due.kind == EXPIRY:
        subject = f"Agreement {a.key} with {a.party_name} expires on {due.due_date} ({when})"
        action = "Renew the agreement and record the new expiry date in the registry before it lapses."
    elif due.kind == NOTICE_DEADLINE:
        subject = f"Notice deadline {due.due_date} ({when}) for auto-renewing agreement {a.key} with {a.party_name}"
        action = (
            f"The agreement renews automatically at {a.expires_on} unless notice is given by {due.due_date}. "
            "Decide now whether to keep it; after the deadline the renewal is binding."
        )
    elif due.kind == LAPSED:
        subject = f"LAPSED: agreement {a.key} with {a.party_name} expired on {due.due_date}; shares are blocked"
        action = (
            "The agreement has lapsed and the party is still active. Renew it and record the new dates, or "
            "deactivate the party. This reminder repeats weekly until then."
        )
        lapse = f"The transfer guard is now denying every share of personal data with {a.party_name}."
    elif due.kind == OBJECTION_DEADLINE:
        subject = (
            f"Objection deadline {due.due_date} ({when}): {due.sub_processor_name} proposed as sub-processor of "
            f"{a.party_name}"
        )
        action = (
            f"{a.party_name} notified a new sub-processor, {due.sub_processor_name}. Approve it in the registry or "
            f"object before {due.due_date}. Until it is approved, the guard denies shares with {a.party_name}."
        )
        lapse = ""
    else:  # pragma: no cover - the kinds are fixed in schedule.py
        raise ValueError(f"unknown reminder kind {due.kind!r}")
    lines = [
        subject,
        "",
        f"Party:      {a.party_name} ({a.party_key})",
        f"Agreement:  {a.key} ({a.kind}, renewal {a.renewal})",
        f"Date:       {due.due_date} ({when})" if days_left >= 0 else f"Date:       {due.due_date}",
        "",
        action,
    ]
    if lapse:
        lines += ["", lapse]
    lines += ["", f"Agreement in the registry: {agreement_url}", f"Party in the registry:     {party_url}", ""]
    payload = {
        "event": "agreement.reminder",
        "reminder_id": reminder_id,
        "kind": due.kind,
        "agreement": a.key,
        "agreement_kind": a.kind,
        "party": a.party_key,
        "party_name": a.party_name,
        "date": due.due_date.isoformat(),
        "days_left": days_left,
        "threshold_date": due.threshold_date.isoformat(),
        "sub_processor": due.sub_processor_key,
        "owner_email": a.owner_email,
        "url": agreement_url,
    }
    return ReminderMessage(reminder_id, subject, "\n".join(lines), payload)


def email_message(message: ReminderMessage, sender: str, recipient: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = message.subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    email[REMINDER_ID_HEADER] = str(message.reminder_id)
    email.set_content(message.body)
    return email


async def send_email(message: ReminderMessage, recipient: str, settings: Settings, smtp_timeout: float = 30.0) -> None:
    try:
        await aiosmtplib.send(
            email_message(message, settings.smtp_from, recipient),
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            timeout=smtp_timeout,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise DeliveryError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from exc


async def send_webhook(
    message: ReminderMessage,
    url: str,
    secret: str | None,
    *,
    tries: int = 3,
    backoff_seconds: float = 0.5,
    http_timeout: float = 10.0,
) -> None:
    """POST the payload; a transient failure (network, 5xx, 429) is retried at once with backoff, and if
    every try fails the reminder stays pending for the sender's next round."""
    body = json.dumps(message.payload, separators=(",", ":"), sort_keys=True).encode()
    try:
        keys = webhook_keys(secret)
    except WebhookSecretError as exc:
        raise DeliveryError(str(exc)) from None
    message_id = f"reminder-{message.reminder_id}"  # the same on every retry: receivers drop duplicates by it
    last_error = ""
    async with httpx.AsyncClient(timeout=http_timeout) as client:
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(backoff_seconds * 2 ** (attempt - 1))
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                REMINDER_ID_HEADER: str(message.reminder_id),
            }
            headers.update(standard_webhook_headers(keys, message_id, timestamp, body))
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return
            last_error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the receiver refuses this call; trying again now won't change its mind
    raise DeliveryError(f"webhook {url}: {last_error}")
