"""Renewal reminders against the real PostgreSQL, a real local SMTP server (aiosmtpd) and a real local
webhook receiver: each reminder arrives exactly once, across instances, restarts and outages."""

import asyncio
import base64
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from kernel.columns import utcnow
from kernel.db import make_engine, make_sessionmaker
from kernel.settings import Settings
from registry.jobs.delivery import GONE_ENDPOINTS
from registry.jobs.reminders import default_deliver, run_reminders, send_pending
from tests.conftest import load_document, seed_document
from tests.conftest import test_settings as settings_for
from tests.integration.mail import SmtpServer
from web.composition import services_of

TODAY = date(2026, 12, 24)
# Standard Webhooks secrets: the one receivers use now and the one they move to (both sign while rotating).
OLD_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"the-old-webhook-key-32-bytes-...").decode()
NEW_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"the-new-webhook-key-32-bytes-...").decode()
WEBHOOK_SECRET = f"{OLD_WEBHOOK_SECRET}, {NEW_WEBHOOK_SECRET}"


class WebhookReceiver:
    """A local HTTP endpoint that records calls and answers 500 to the first `failures` of them, then
    `answer`."""

    def __init__(self, failures: int = 0, answer: int = 200) -> None:
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if receiver.failures > 0 else answer
                receiver.failures -= 1
                receiver.calls.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/registry"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, status in self.calls if status == 200]


def reminder_document(today: date) -> dict[str, Any]:
    """The seed registry with dates moved so that each kind of reminder is due on `today`."""
    doc = seed_document()
    agreements = {a["key"]: a for a in doc["agreements"]}
    agreements["nordfrakt-dpa-2024"]["expires_on"] = (today - timedelta(days=10)).isoformat()  # lapsed
    agreements["klarsignal-dpa-2024"]["expires_on"] = (today + timedelta(days=7)).isoformat()  # 7 days
    agreements["papyra-sharing-2025"]["expires_on"] = (today + timedelta(days=90)).isoformat()  # auto, notice 60
    return doc


class Instance:
    """One registry instance's database access, as a separate process would have it."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = make_engine(url, pool_size=2)
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()


@pytest.fixture
async def reminder_database(database: str) -> str:
    await load_document(database, reminder_document(TODAY))
    return database


@pytest.fixture
async def instances(reminder_database: str) -> AsyncIterator[tuple[Instance, Instance]]:
    a, b = Instance(reminder_database), Instance(reminder_database)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def rows(instance: Instance, sql: str = "SELECT * FROM reminder ORDER BY id") -> list[dict[str, Any]]:
    async with instance.sessionmaker() as session:
        return [dict(r._mapping) for r in await session.execute(text(sql))]


def mail_settings(url: str, smtp: SmtpServer, **overrides: Any) -> Settings:
    return settings_for(url, smtp_host="127.0.0.1", smtp_port=smtp.port, **overrides)


async def test_the_scan_writes_each_kind_of_due_reminder(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, _ = instances
    result, _ = await run_reminders(a.sessionmaker, mail_settings(reminder_database, smtp), today=TODAY)
    due = {(d.agreement.key, d.kind, d.days_before) for d in result.due}
    assert due == {
        ("nordfrakt-dpa-2024", "lapsed", -8),
        ("klarsignal-dpa-2024", "expiry", 7),
        ("papyra-sharing-2025", "expiry", 90),
        ("papyra-sharing-2025", "notice_deadline", 30),
    }
    assert result.written == 4


async def test_two_instances_on_one_database_send_each_reminder_exactly_once(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, b = instances
    settings = mail_settings(reminder_database, smtp)
    (scan_a, sent_a), (scan_b, sent_b) = await asyncio.gather(
        run_reminders(a.sessionmaker, settings, today=TODAY), run_reminders(b.sessionmaker, settings, today=TODAY)
    )
    assert scan_a.written + scan_b.written == 4
    stored = await rows(a)
    assert len(stored) == 4
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in stored)
    assert sorted(smtp.recorder.reminder_ids()) == sorted(r["id"] for r in stored)
    assert len([o for o in sent_a + sent_b if o.status == "sent"]) == 4


async def test_a_restart_between_scans_sends_nothing_twice(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, b = instances
    settings = mail_settings(reminder_database, smtp)
    await run_reminders(a.sessionmaker, settings, today=TODAY)
    await a.close()  # the first instance goes away; a fresh one scans the same day, and the next
    first = list(smtp.recorder.reminder_ids())
    again, sent = await run_reminders(b.sessionmaker, settings, today=TODAY)
    next_day, sent_next_day = await run_reminders(b.sessionmaker, settings, today=TODAY + timedelta(days=1))
    assert again.written == 0 and sent == []
    assert next_day.written == 0 and sent_next_day == []
    assert smtp.recorder.reminder_ids() == first
    assert len(first) == len(set(first)) == 4


async def test_an_smtp_outage_delays_reminders_without_losing_them(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, b = instances
    settings = mail_settings(reminder_database, smtp, reminder_retry_seconds=300.0)
    smtp.stop()
    now = utcnow()
    _, outcomes = await run_reminders(a.sessionmaker, settings, today=TODAY, now=now)
    # The run stops at the first row once the server is found down, instead of trying every row.
    assert [(o.status, o.server_down) for o in outcomes] == [("failed", True)]
    pending = await rows(a)
    first, rest = pending[0], pending[1:]
    assert first["id"] == outcomes[0].reminder_id
    assert first["sent_at"] is None and first["attempts"] == 1 and "SMTP" in first["last_error"]
    assert first["next_attempt_at"] >= now + timedelta(seconds=299)
    assert all(r["sent_at"] is None and r["attempts"] == 0 for r in rest)
    assert len(rest) == 3
    # The others wait for the next run; hold them back like the first so the backoff below is visible.
    async with a.sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE reminder SET next_attempt_at = :t"), {"t": first["next_attempt_at"]})

    smtp.start()
    # Backoff: a retry before the next attempt time does not touch the rows.
    assert await send_pending(b.sessionmaker, settings, today=TODAY, now=now + timedelta(seconds=60)) == []
    later = now + timedelta(minutes=6)
    delivered = await send_pending(b.sessionmaker, settings, today=TODAY, now=later)
    assert [o.status for o in delivered] == ["sent"] * 4
    assert await send_pending(a.sessionmaker, settings, today=TODAY, now=later + timedelta(hours=1)) == []
    assert sorted(smtp.recorder.reminder_ids()) == sorted(r["id"] for r in pending)
    assert [(r["last_error"], r["attempts"]) for r in await rows(a)] == [(None, 2), (None, 1), (None, 1), (None, 1)]


async def test_a_failed_send_backs_off_exponentially(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, _ = instances
    settings = mail_settings(reminder_database, smtp, reminder_retry_seconds=100.0, reminder_retry_max_seconds=250.0)
    smtp.recorder.refuse = True  # the server is up and refuses each message: every row fails on its own
    now = utcnow()
    await run_reminders(a.sessionmaker, settings, today=TODAY, now=now)
    await send_pending(a.sessionmaker, settings, today=TODAY, now=now + timedelta(seconds=100))
    await send_pending(a.sessionmaker, settings, today=TODAY, now=now + timedelta(seconds=300))
    stored = await rows(a)
    assert {r["attempts"] for r in stored} == {3}
    # 100 s, then 200 s, then capped at 250 s.
    assert {r["next_attempt_at"] - now for r in stored} == {timedelta(seconds=300 + 250)}


async def test_the_reminder_email_says_who_what_when_and_what_happens_at_lapse(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, _ = instances
    settings = mail_settings(reminder_database, smtp, public_url="https://registry.offix.example")
    await run_reminders(a.sessionmaker, settings, today=TODAY)
    by_subject = {m["Subject"]: m for m in smtp.recorder.messages}
    expiry = by_subject[
        "Agreement klarsignal-dpa-2024 with Klarsignal Kommunikation AB expires on 2026-12-31 (in 7 days)"
    ]
    assert expiry["To"] == "legal@offix.example"
    assert expiry["From"] == settings.smtp_from
    body = expiry.get_content()
    assert "https://registry.offix.example/ui/agreements/klarsignal-dpa-2024" in body
    assert "transfer guard denies every share" in body
    subjects = sorted(by_subject)
    assert any(s.startswith("LAPSED: agreement nordfrakt-dpa-2024") for s in subjects)
    assert any(
        s.startswith("Notice deadline 2027-01-23 (in 30 days) for auto-renewing agreement papyra") for s in subjects
    )


async def test_the_webhook_is_signed_retried_after_a_failure_and_delivered_once(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, b = instances
    receiver = WebhookReceiver(failures=1)
    try:
        settings = mail_settings(reminder_database, smtp, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        deliver = default_deliver(settings, webhook_backoff_seconds=0.01)
        await asyncio.gather(
            run_reminders(a.sessionmaker, settings, today=TODAY, deliver=deliver),
            run_reminders(b.sessionmaker, settings, today=TODAY, deliver=deliver),
        )
    finally:
        receiver.close()
    assert [status for _, _, status in receiver.calls].count(500) == 1
    payloads = receiver.delivered()
    assert len(payloads) == 4
    assert len({p["data"]["reminder_id"] for p in payloads}) == 4
    assert len(smtp.recorder.messages) == 4  # e-mail and webhook are separate deliveries of the same reminder
    # Standard Webhooks: the reference library accepts every call under either secret, and refuses another.
    for headers, body, _ in receiver.calls:
        for secret in (OLD_WEBHOOK_SECRET, NEW_WEBHOOK_SECRET):
            payload = Webhook(secret).verify(body, headers)
            assert payload["data"]["reminder_id"] == int(headers["X-Registry-Reminder"])
            assert payload["type"] == "agreement.reminder"
            sent_at = datetime.fromisoformat(payload["timestamp"])
            assert sent_at.tzinfo is not None and abs(sent_at - utcnow()) < timedelta(minutes=5)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"some-other-key").decode()).verify(body, headers)
        assert len(headers["webhook-signature"].split(" ")) == 2
    # A retry is the same message: it keeps its webhook-id, so a receiver can drop duplicates.
    failed_id = next(headers["webhook-id"] for headers, _, status in receiver.calls if status == 500)
    assert [status for headers, _, status in receiver.calls if headers["webhook-id"] == failed_id] == [500, 200]
    assert {p["data"]["kind"] for p in payloads} == {"expiry", "notice_deadline", "lapsed"}


async def test_a_webhook_that_keeps_failing_stays_pending_until_it_answers(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, _ = instances
    receiver = WebhookReceiver(failures=3 * 4)  # every try of every reminder in the first round
    try:
        settings = mail_settings(reminder_database, smtp, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        deliver = default_deliver(settings, webhook_backoff_seconds=0.01)
        now = utcnow()
        _, first = await run_reminders(a.sessionmaker, settings, today=TODAY, now=now, deliver=deliver)
        failed = [o for o in first if o.status == "failed"]
        assert len(failed) == 4 and all(o.channel == "webhook" and "HTTP 500" in (o.error or "") for o in failed)
        later = await send_pending(a.sessionmaker, settings, today=TODAY, now=now + timedelta(hours=1), deliver=deliver)
    finally:
        receiver.close()
    assert [o.status for o in later] == ["sent"] * 4
    assert len(receiver.delivered()) == 4


async def test_a_renewed_agreement_cancels_its_pending_reminder(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, _ = instances
    settings = mail_settings(reminder_database, smtp)
    smtp.stop()
    now = utcnow()
    await run_reminders(a.sessionmaker, settings, today=TODAY, now=now)
    renewed = reminder_document(TODAY)
    for agreement in renewed["agreements"]:
        if agreement["key"] == "klarsignal-dpa-2024":
            agreement["expires_on"] = "2029-12-31"
    await load_document(reminder_database, renewed)
    smtp.start()
    outcomes = await send_pending(a.sessionmaker, settings, today=TODAY, now=now + timedelta(hours=1))
    by_agreement = {o.agreement: o.status for o in outcomes}
    assert by_agreement["klarsignal-dpa-2024"] == "cancelled"
    assert by_agreement["nordfrakt-dpa-2024"] == "sent"
    assert "klarsignal-dpa-2024" not in " ".join(m["Subject"] for m in smtp.recorder.messages)


async def test_deleting_an_agreement_by_import_drops_its_reminders(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, _ = instances
    await run_reminders(a.sessionmaker, mail_settings(reminder_database, smtp), today=TODAY)
    smaller = reminder_document(TODAY)
    smaller["agreements"] = [x for x in smaller["agreements"] if x["key"] != "klarsignal-dpa-2024"]
    await load_document(reminder_database, smaller)
    remaining = await rows(a, "SELECT a.key FROM reminder r JOIN agreement a ON a.id = r.agreement_id")
    assert len(remaining) == 3 and {"key": "klarsignal-dpa-2024"} not in remaining


async def test_a_sub_processor_change_awaiting_approval_reminds_before_its_objection_deadline(
    database: str, smtp: SmtpServer
) -> None:
    doc = seed_document()
    for party in doc["parties"]:
        if party["key"] == "kvarnberg":
            party["sub_processors"].append(
                {
                    "party": "fjordvault",
                    "approved_on": None,
                    "objection_deadline": (TODAY + timedelta(days=7)).isoformat(),
                }
            )
    await load_document(database, doc)
    instance = Instance(database)
    try:
        result, outcomes = await run_reminders(instance.sessionmaker, mail_settings(database, smtp), today=TODAY)
    finally:
        await instance.close()
    objections = [d for d in result.due if d.kind == "objection_deadline"]
    assert [(d.agreement.key, d.sub_processor_key, d.days_before) for d in objections] == [
        ("kvarnberg-dpa-2023", "fjordvault", 7)
    ]
    subjects = [m["Subject"] for m in smtp.recorder.messages]
    assert any(s.startswith("Objection deadline 2026-12-31 (in 7 days):") and "Kvarnberg" in s for s in subjects)
    assert all(o.status == "sent" for o in outcomes)


async def test_a_sub_processor_change_already_objected_to_sends_no_objection_reminder(
    database: str, smtp: SmtpServer
) -> None:
    doc = seed_document()
    for party in doc["parties"]:
        if party["key"] == "kvarnberg":
            party["sub_processors"].append(
                {
                    "party": "fjordvault",
                    "authorisation": "general",
                    "objection_deadline": (TODAY + timedelta(days=7)).isoformat(),
                    "objected_on": (TODAY - timedelta(days=1)).isoformat(),
                }
            )
    await load_document(database, doc)
    instance = Instance(database)
    try:
        result, _ = await run_reminders(instance.sessionmaker, mail_settings(database, smtp), today=TODAY)
    finally:
        await instance.close()
    assert [d for d in result.due if d.kind == "objection_deadline"] == []


async def test_the_app_starts_a_daily_scan_at_the_configured_time_in_the_controllers_timezone(database: str) -> None:
    from litestar.testing import AsyncTestClient

    from web.app import create_app

    app = create_app(settings_for(database, scheduler_enabled=True, reminder_scan_time="06:30"))
    async with AsyncTestClient(app):
        scheduler = services_of(app).scheduler
        job = scheduler.get_job("reminders-daily")
        fields = {f.name: str(f) for f in job.trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("6", "30")
        assert str(job.trigger.timezone) == "Europe/Stockholm"
        assert scheduler.get_job("reminders-retry") is not None
    assert not scheduler.running


async def test_the_scheduler_stays_off_when_disabled(database: str) -> None:
    from litestar.testing import AsyncTestClient

    from web.app import create_app

    app = create_app(settings_for(database, scheduler_enabled=False))
    async with AsyncTestClient(app):
        assert services_of(app).scheduler is None


async def test_an_smtp_outage_does_not_hold_the_webhooks_back(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer
) -> None:
    a, _ = instances
    receiver = WebhookReceiver()
    smtp.stop()
    try:
        settings = mail_settings(reminder_database, smtp, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        _, outcomes = await run_reminders(
            a.sessionmaker, settings, today=TODAY, deliver=default_deliver(settings, webhook_backoff_seconds=0.01)
        )
    finally:
        receiver.close()
    by_channel = {channel: [o for o in outcomes if o.channel == channel] for channel in ("email", "webhook")}
    # One e-mail finds the mail server down; no other e-mail is tried in this run, and every webhook goes out.
    assert [(o.status, o.server_down) for o in by_channel["email"]] == [("failed", True)]
    assert [o.status for o in by_channel["webhook"]] == ["sent"] * 4
    assert len(receiver.delivered()) == 4
    waiting = [r for r in await rows(a) if r["channel"] == "email" and r["sent_at"] is None]
    assert len(waiting) == 4


async def test_a_webhook_endpoint_that_answers_410_is_disabled_with_a_warning(
    instances: tuple[Instance, Instance], reminder_database: str, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = instances
    receiver = WebhookReceiver(answer=410)
    try:
        settings = mail_settings(reminder_database, smtp, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        with caplog.at_level(logging.WARNING, logger="registry.jobs.delivery"):
            _, outcomes = await run_reminders(
                a.sessionmaker, settings, today=TODAY, deliver=default_deliver(settings, webhook_backoff_seconds=0.01)
            )
            # The next day's scan writes no webhook rows for the endpoint that is gone.
            await run_reminders(a.sessionmaker, settings, today=TODAY + timedelta(days=1))
    finally:
        receiver.close()
        GONE_ENDPOINTS.discard(receiver.url)
    webhook = [o for o in outcomes if o.channel == "webhook"]
    assert [o.status for o in webhook] == ["cancelled"] * 4 and all("410" in (o.error or "") for o in webhook)
    assert len(receiver.calls) == 1, "a 410 is not retried, nor is the endpoint called again"
    assert [r.getMessage() for r in caplog.records if "410" in r.getMessage()] == [
        f"webhook {receiver.url} answered 410 Gone: disabled until the registry restarts"
    ]
    assert [o.status for o in outcomes if o.channel == "email"] == ["sent"] * 4  # e-mail goes on
    assert len([r for r in await rows(a) if r["channel"] == "webhook"]) == 4
