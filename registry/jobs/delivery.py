"""Delivering one reminder: an e-mail through SMTP, or a signed JSON webhook."""

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtplib
import httpx

from kernel.columns import utcnow
from kernel.i18n import _, ngettext
from kernel.settings import Settings
from registry.jobs.schedule import EXPIRY, LAPSED, NOTICE_DEADLINE, OBJECTION_DEADLINE, DueReminder
from registry.jobs.webhook_signing import WebhookSecretError, standard_webhook_headers, webhook_keys

TIMESTAMP_HEADER = "X-Registry-Timestamp"
REMINDER_ID_HEADER = "X-Registry-Reminder"

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A send failed; the reminder stays pending and is retried later."""


class ServerUnavailable(DeliveryError):
    """The SMTP server cannot be reached: every other e-mail of this run would fail the same way, so the run
    sends no more e-mail (webhooks still go out)."""


class EndpointGone(DeliveryError):
    """The webhook endpoint answered 410 Gone: it is disabled in this process (until a restart, with the
    setting corrected), and what was meant for it is not retried."""


# Webhook endpoints that answered 410 Gone, disabled until the process restarts.
GONE_ENDPOINTS: set[str] = set()
WEBHOOK_TIMEOUT_SECONDS = 20.0  # per call: within the 15-30 s Standard Webhooks receivers are told to expect


NOTIFICATION_ID_HEADER = "X-Registry-Notification"
REMINDER = "reminder"


@dataclass(frozen=True)
class ReminderMessage:
    """A message to deliver: a reminder, or (`kind` "notification") an Art. 19 notification. `reminder_id` is
    its row's id, which names the message in its Message-ID and webhook-id (the same on every retry)."""

    reminder_id: int
    subject: str
    body: str
    payload: dict[str, Any]
    kind: str = REMINDER


def compose(reminder_id: int, due: DueReminder, today: date, public_url: str) -> ReminderMessage:
    """Subject and body say who, which agreement, which date, and what happens if nobody acts; in the current
    locale (the caller chooses the owner's language with kernel.i18n.use_locale). Dates stay ISO 8601, the
    Swedish way of writing them and unambiguous in English; the webhook payload is language-neutral."""
    a = due.agreement
    days_left = (due.due_date - today).days
    when = (
        _("today") if days_left == 0 else ngettext("in %(num)d day", "in %(num)d days", days_left) % {"num": days_left}
    )
    agreement_url = f"{public_url}/ui/agreements/{a.key}"
    party_url = f"{public_url}/ui/parties/{a.party_key}"
    facts = {
        "key": a.key,
        "party": a.party_name,
        "date": due.due_date.isoformat(),
        "when": when,
        "expires": a.expires_on.isoformat() if a.expires_on else "",
        "sub_processor": due.sub_processor_name or "",
    }
    lapse = (
        _(
            "When the agreement lapses, the transfer guard denies every share of personal data with %(party)s: "
            "deliveries, campaigns and every other integration that asks the guard stop for this party."
        )
        % facts
    )
    if due.kind == EXPIRY:
        subject = _("Agreement %(key)s with %(party)s expires on %(date)s (%(when)s)") % facts
        action = _("Renew the agreement and record the new expiry date in the registry before it lapses.")
    elif due.kind == NOTICE_DEADLINE:
        subject = _("Notice deadline %(date)s (%(when)s) for auto-renewing agreement %(key)s with %(party)s") % facts
        action = (
            _(
                "The agreement renews automatically at %(expires)s unless notice is given by %(date)s. "
                "Decide now whether to keep it; after the deadline the renewal is binding."
            )
            % facts
        )
    elif due.kind == LAPSED:
        subject = _("LAPSED: agreement %(key)s with %(party)s expired on %(date)s; shares are blocked") % facts
        action = _(
            "The agreement has lapsed and the party is still active. Renew it and record the new dates, or "
            "deactivate the party. This reminder repeats weekly until then."
        )
        lapse = _("The transfer guard is now denying every share of personal data with %(party)s.") % facts
    elif due.kind == OBJECTION_DEADLINE:
        subject = (
            _("Objection deadline %(date)s (%(when)s): %(sub_processor)s proposed as sub-processor of %(party)s")
            % facts
        )
        action = (
            _(
                "%(party)s notified a new sub-processor, %(sub_processor)s. Approve it in the registry or "
                "object before %(date)s. Until it is approved, the guard denies shares with %(party)s."
            )
            % facts
        )
        lapse = ""
    else:  # pragma: no cover - the kinds are fixed in schedule.py
        raise ValueError(f"unknown reminder kind {due.kind!r}")
    # Outside the f-string: Python 3.11's tokenizer hides a call inside one from the message extractor.
    renewal = _("renewal")
    rows = [
        (_("Party:"), f"{a.party_name} ({a.party_key})"),
        (_("Agreement:"), f"{a.key} ({a.kind}, {renewal} {a.renewal})"),
        (_("Date:"), f"{due.due_date} ({when})" if days_left >= 0 else f"{due.due_date}"),
    ]
    width = max(len(label) for label, _value in rows) + 1
    lines = [subject, "", *(f"{label.ljust(width)} {value}" for label, value in rows), "", action]
    if lapse:
        lines += ["", lapse]
    links = [(_("Agreement in the registry:"), agreement_url), (_("Party in the registry:"), party_url)]
    width = max(len(label) for label, _value in links)
    lines += ["", *(f"{label.ljust(width)} {url}" for label, url in links), ""]
    payload = {
        "type": "agreement.reminder",
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


def webhook_body(payload: dict[str, Any], at: datetime | None = None) -> bytes:
    """The Standard Webhooks payload: `type` (the event, from the payload's `type`, or its `event` as messages
    built before called it), `timestamp` (ISO 8601, UTC: when the call was made) and `data` (the rest)."""
    data = dict(payload)
    event = data.pop("type", None) or data.pop("event", None)
    moment = (at or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps(
        {"type": event, "timestamp": moment, "data": data}, separators=(",", ":"), sort_keys=True
    ).encode()


def message_id(reminder_id: int, sender: str, kind: str = REMINDER) -> str:
    """Derived from the reminder row, not random: a copy re-sent after a crash (accepted by the server, not yet
    marked sent) carries the same Message-ID, so receivers can recognise and drop it."""
    domain = sender.rpartition("@")[2] or "registry.invalid"
    return f"<{kind}-{reminder_id}@{domain}>"


# Line breaks that are not CR or LF: Python's e-mail library refuses a header holding any of them (str.splitlines
# sees a line there), so a party name with U+2028 made its reminder fail on every retry. They carry no meaning
# in a subject line and cannot inject a header into SMTP, so they become spaces. CR and LF stay as they are: a
# name holding them was written behind validation to smuggle a header in, and that reminder is refused and
# recorded as failed (tests/integration/test_safe_reminders.py).
_FOLDED_LINE_BREAKS = re.compile("[\u000b\u000c\u001c\u001d\u001e\u0085\u2028\u2029]")


def header_line(text: str) -> str:
    """`text` with every line break but CR and LF turned into a space, fit for a header."""
    return _FOLDED_LINE_BREAKS.sub(" ", text)


def email_message(message: ReminderMessage, sender: str, recipient: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = header_line(message.subject)
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = message_id(message.reminder_id, sender, message.kind)
    email[REMINDER_ID_HEADER if message.kind == REMINDER else NOTIFICATION_ID_HEADER] = str(message.reminder_id)
    email.set_content(message.body)
    return email


class SmtpSession:
    """One SMTP connection for a whole run, opened at the first e-mail and closed by `aclose`."""

    def __init__(self, settings: Settings, smtp_timeout: float = 30.0) -> None:
        self.settings = settings
        self.smtp_timeout = smtp_timeout
        self._client: aiosmtplib.SMTP | None = None
        # One conversation at a time: a deliverer may be shared by concurrent runs (MAIL/RCPT/DATA must not
        # interleave on one connection).
        self._lock = asyncio.Lock()

    def _where(self) -> str:
        return f"SMTP {self.settings.smtp_host}:{self.settings.smtp_port}"

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=self.smtp_timeout,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise ServerUnavailable(f"{self._where()}: {exc}") from exc
        self._client = client
        return client

    async def send(self, message: ReminderMessage, recipient: str) -> None:
        email = email_message(message, self.settings.smtp_from, recipient)  # a bad header fails here, on its row
        async with self._lock:
            await self._send(email)

    async def _send(self, email: EmailMessage) -> None:
        client = await self._connected()
        try:
            await client.send_message(email)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError, TimeoutError) as exc:
            self._client = None  # reconnect for the next message
            raise DeliveryError(f"{self._where()}: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            raise DeliveryError(f"{self._where()}: {exc}") from exc

    async def aclose(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()


async def send_email(message: ReminderMessage, recipient: str, settings: Settings, smtp_timeout: float = 30.0) -> None:
    """One e-mail on a connection of its own."""
    session = SmtpSession(settings, smtp_timeout)
    try:
        await session.send(message, recipient)
    finally:
        await session.aclose()


async def send_webhook(
    message: ReminderMessage,
    url: str,
    secret: str | None,
    *,
    tries: int = 3,
    backoff_seconds: float = 0.5,
    http_timeout: float = WEBHOOK_TIMEOUT_SECONDS,
) -> None:
    """POST the payload, signed; a transient failure (network, 5xx, 429) is retried at once with backoff, and if
    every try fails the reminder stays pending for the sender's next round. A 410 Gone disables the endpoint
    (EndpointGone, logged as a warning once); no key, no call (an unsigned webhook could be forged)."""
    if url in GONE_ENDPOINTS:
        raise EndpointGone(f"webhook {url}: disabled after it answered 410 Gone")
    try:
        keys = webhook_keys(secret)
    except WebhookSecretError as exc:
        raise DeliveryError(str(exc)) from None
    if not keys:
        raise DeliveryError("webhook: no REGISTRY_WEBHOOK_SECRET, and webhooks are never sent unsigned")
    body = webhook_body(message.payload)
    message_id = f"{message.kind}-{message.reminder_id}"  # the same on every retry: receivers drop duplicates by it
    last_error = ""
    async with httpx.AsyncClient(timeout=http_timeout) as client:
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(backoff_seconds * 2 ** (attempt - 1))
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                REMINDER_ID_HEADER if message.kind == REMINDER else NOTIFICATION_ID_HEADER: str(message.reminder_id),
            }
            headers.update(standard_webhook_headers(keys, message_id, timestamp, body))
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return
            if response.status_code == 410:
                GONE_ENDPOINTS.add(url)
                log.warning("webhook %s answered 410 Gone: disabled until the registry restarts", url)
                raise EndpointGone(f"webhook {url}: HTTP 410 Gone; the endpoint is disabled")
            last_error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the receiver refuses this call; trying again now won't change its mind
    raise DeliveryError(f"webhook {url}: {last_error}")
