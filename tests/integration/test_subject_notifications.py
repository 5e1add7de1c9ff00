"""Art. 19 notifications against the real PostgreSQL, a real local SMTP server (aiosmtpd) and a real local
webhook receiver: every party that received the person's data (allowed shares, trials left out) is told through
its webhook or contact e-mail, in its language; each delivery is kept as evidence; a failed one is retried."""

import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from standardwebhooks.webhooks import Webhook

from kernel.columns import utcnow
from kernel.db import make_engine, make_sessionmaker
from registry.services.notifications import send_pending_notifications
from tests.conftest import SEED_ALLOWED_SHARE, bearer, make_key
from tests.conftest import test_settings as settings_for
from tests.integration.mail import SmtpServer
from tests.integration.test_decision_log import plain_url
from tests.integration.test_objections import DELIVERY, OTHER, PERSON, check
from tests.integration.test_reminders import OLD_WEBHOOK_SECRET, WebhookReceiver
from tests.integration.test_subject_rights import try_a_share
from web.app import create_app


@pytest.fixture
def receiver():
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


async def set_contact(database: str, party: str, contact: dict[str, Any] | None) -> None:
    connection = await asyncpg.connect(plain_url(database))
    try:
        await connection.execute(
            "UPDATE party SET contact = $2::jsonb WHERE key = $1",
            party,
            None if contact is None else json.dumps(contact),
        )
    finally:
        await connection.close()


async def evidence(database: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(plain_url(database))
    try:
        rows = await connection.fetch(
            "SELECT party, channel, status, attempts, message IS NULL AS cleared, delivered_at, last_error"
            " FROM subject_notification ORDER BY party"
        )
    finally:
        await connection.close()
    return [dict(r) for r in rows]


def notifying_app(database: str, smtp: SmtpServer):
    settings = settings_for(database, smtp_host="127.0.0.1", smtp_port=smtp.port, webhook_secret=OLD_WEBHOOK_SECRET)
    return create_app(settings), settings


async def test_every_recipient_of_the_person_is_notified_by_webhook_or_e_mail_and_it_is_kept_as_evidence(
    seeded_database, smtp, receiver
):
    await set_contact(seeded_database, "kvarnberg", {"email": "privacy@kvarnberg.example"})
    await set_contact(seeded_database, "nordfrakt", {"email": "dpo@nordfrakt.example", "webhook": receiver.url})
    app, _ = notifying_app(seeded_database, smtp)
    guard = bearer(await make_key(seeded_database, "webshop", "guard:check"))
    legal = bearer(await make_key(seeded_database, "legal", "registry:read", "registry:write"))
    async with AsyncTestClient(app) as client:
        assert (await check(client, guard, DELIVERY, PERSON))["allowed"] is True
        assert (await check(client, guard, SEED_ALLOWED_SHARE, PERSON))["allowed"] is True
        await check(client, guard, {**DELIVERY, "recipient": "nobody"}, PERSON)  # denied: no recipient
        await check(client, guard, {**DELIVERY, "recipient": "papyra"}, OTHER)  # another person's
        response = await client.post(
            "/api/subjects/notifications", json={"subject": PERSON, "action": "erasure"}, headers=legal
        )
    assert response.status_code == 200, response.text
    answered = sorted((r["party"], r["channel"], r["status"]) for r in response.json()["recipients"])
    assert answered == [("kvarnberg", "email", "sent"), ("nordfrakt", "webhook", "sent")]

    (mail,) = smtp.recorder.messages
    assert mail["To"] == "privacy@kvarnberg.example"
    assert "erasure" in mail["Subject"].lower() or "radering" in mail["Subject"].lower()
    body = mail.get_content()
    assert PERSON.casefold() in body  # the recipient must be able to find the person
    assert mail["X-Registry-Notification"] and mail["X-Registry-Reminder"] is None

    ((headers, raw, status),) = receiver.calls
    assert status == 200
    payload = Webhook(OLD_WEBHOOK_SECRET).verify(raw, headers)  # signed (Standard Webhooks)
    assert payload["type"] == "subject.notification" and payload["data"]["action"] == "erasure"
    assert payload["data"]["subject"] == PERSON.casefold() and payload["data"]["party"] == "nordfrakt"

    kept = await evidence(seeded_database)
    assert [(r["party"], r["status"], r["cleared"]) for r in kept] == [
        ("kvarnberg", "sent", True),
        ("nordfrakt", "sent", True),
    ]
    assert all(r["delivered_at"] is not None for r in kept)


async def test_a_party_in_sweden_is_written_to_in_swedish(seeded_database, smtp):
    await set_contact(seeded_database, "kvarnberg", {"email": "privacy@kvarnberg.example"})
    app, _ = notifying_app(seeded_database, smtp)
    guard = bearer(await make_key(seeded_database, "webshop", "guard:check"))
    legal = bearer(await make_key(seeded_database, "legal", "registry:read", "registry:write"))
    async with AsyncTestClient(app) as client:
        connection = await asyncpg.connect(plain_url(seeded_database))
        established = await connection.fetchval("SELECT established_in FROM party WHERE key = 'kvarnberg'")
        await connection.close()
        await check(client, guard, DELIVERY, PERSON)
        await client.post(
            "/api/subjects/notifications", json={"subject": PERSON, "action": "restriction"}, headers=legal
        )
    assert established == "SE"
    (mail,) = smtp.recorder.messages
    assert "begränsning av behandlingen" in mail["Subject"], mail["Subject"]
    assert "Registrerad: anna.berg+news@example.se" in mail.get_content()


async def test_a_failed_delivery_stays_pending_and_is_delivered_by_a_later_retry(seeded_database, smtp):
    await set_contact(seeded_database, "kvarnberg", {"email": "privacy@kvarnberg.example"})
    await set_contact(seeded_database, "nordfrakt", None)
    app, settings = notifying_app(seeded_database, smtp)
    guard = bearer(await make_key(seeded_database, "webshop", "guard:check"))
    legal = bearer(await make_key(seeded_database, "legal", "registry:read", "registry:write"))
    smtp.recorder.refuse = True
    async with AsyncTestClient(app) as client:
        await check(client, guard, DELIVERY, PERSON)
        await check(client, guard, SEED_ALLOWED_SHARE, PERSON)
        response = await client.post(
            "/api/subjects/notifications", json={"subject": PERSON, "action": "rectification"}, headers=legal
        )
        answered = sorted((r["party"], r["channel"], r["status"]) for r in response.json()["recipients"])
        assert answered == [("kvarnberg", "email", "pending"), ("nordfrakt", "none", "no_contact")]
        (pending,) = [r for r in await evidence(seeded_database) if r["status"] == "pending"]
        assert pending["attempts"] == 1 and "451" in pending["last_error"] and pending["cleared"] is False

    smtp.recorder.refuse = False
    later = utcnow() + timedelta(hours=1)
    engine = make_engine(seeded_database, pool_size=1)  # (another instance's retry job, in this loop)
    try:
        tried = await send_pending_notifications(make_sessionmaker(engine), settings, now=later)
    finally:
        await engine.dispose()
    assert tried == 1
    (mail,) = smtp.recorder.messages
    assert mail["To"] == "privacy@kvarnberg.example"
    (sent,) = [r for r in await evidence(seeded_database) if r["party"] == "kvarnberg"]
    assert (sent["status"], sent["attempts"], sent["cleared"]) == ("sent", 2, True)


async def test_a_trial_is_not_a_share_to_notify(ui_client, seeded_database, smtp):
    await set_contact(seeded_database, "kvarnberg", {"email": "privacy@kvarnberg.example"})
    await try_a_share(ui_client, PERSON)
    legal = bearer(await make_key(seeded_database, "legal", "registry:read", "registry:write"))
    response = await ui_client.post(
        "/api/subjects/notifications", json={"subject": PERSON, "action": "erasure"}, headers=legal
    )
    assert response.status_code == 200, response.text
    assert response.json()["recipients"] == []
    assert smtp.recorder.messages == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "", "action": "erasure"}, "subject"),
        ({"subject": PERSON, "action": "deletion"}, "action"),
        ({"subject": PERSON}, "action"),
    ],
)
async def test_a_bad_notification_request_is_a_400_naming_the_field(ui_client, seeded_database, body, field):
    legal = bearer(await make_key(seeded_database, "legal", "registry:read", "registry:write"))
    response = await ui_client.post("/api/subjects/notifications", json=body, headers=legal)
    assert response.status_code == 400 and field in response.text, response.text
    assert await evidence(seeded_database) == []
