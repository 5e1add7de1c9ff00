"""Reminder runs never misfire silently (issue 14, items 6 and 7): a run for another day is a preview, one bad
reminder never blocks the others, a re-sent reminder keeps its Message-ID, one SMTP session per run."""

import os
import subprocess
import sys
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from kernel.columns import utcnow
from registry.jobs.reminders import run_reminders, send_pending
from tests.conftest import load_document
from tests.integration.mail import SmtpServer
from tests.integration.test_reminders import TODAY, Instance, mail_settings, reminder_document, rows


def _cli(database: str, smtp_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": database,
        "REGISTRY_SMTP_HOST": "127.0.0.1",
        "REGISTRY_SMTP_PORT": str(smtp_port),
    }
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_a_reminder_run_for_another_day_is_a_preview_that_sends_and_records_nothing(
    database: str, smtp: SmtpServer
) -> None:
    controller_today = utcnow().astimezone(ZoneInfo("Europe/Stockholm")).date()
    # Klarsignal's DPA expires 64 days from today: "expires in 7 days" is due 57 days from now, not today.
    day = controller_today + timedelta(days=57)
    await load_document(database, reminder_document(day))

    preview = _cli(database, smtp.port, "reminders", "run", "--today", day.isoformat())

    assert preview.returncode == 0, preview.stderr
    assert "preview" in preview.stdout and "klarsignal-dpa-2024" in preview.stdout
    assert smtp.recorder.messages == []
    instance = Instance(database)
    try:
        assert await rows(instance) == []  # nothing used up or cancelled: the real day still sends
        sent = _cli(database, smtp.port, "reminders", "run", "--today", day.isoformat(), "--send")
        assert sent.returncode == 0, sent.stderr
        stored = await rows(instance)
        assert len(stored) >= 1 and len(smtp.recorder.messages) == len(stored)
        assert any("klarsignal-dpa-2024" in m["Subject"] for m in smtp.recorder.messages)
    finally:
        await instance.close()


async def _break_a_party_name_behind_validation(url: str, key: str) -> None:
    """A name stored before control characters were refused (or written by hand in SQL)."""
    instance = Instance(url)
    try:
        async with instance.sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE party SET name = :n WHERE key = :k"), {"n": "Klarsignal\r\nBcc: x@evil.example", "k": key}
            )
    finally:
        await instance.close()


async def test_a_reminder_that_cannot_be_built_is_recorded_on_its_row_and_the_others_go_out(
    database: str, smtp: SmtpServer
) -> None:
    await load_document(database, reminder_document(TODAY))
    await _break_a_party_name_behind_validation(database, "klarsignal")
    instance = Instance(database)
    try:
        now = utcnow()
        settings = mail_settings(database, smtp, reminder_retry_seconds=300.0)
        _, outcomes = await run_reminders(instance.sessionmaker, settings, today=TODAY, now=now)
        by_agreement = {o.agreement: o.status for o in outcomes}
        assert by_agreement.pop("klarsignal-dpa-2024") == "failed"
        assert set(by_agreement.values()) == {"sent"} and len(by_agreement) == 2
        assert len(smtp.recorder.messages) == 3
        failed = await rows(
            instance,
            "SELECT r.* FROM reminder r JOIN agreement a ON a.id = r.agreement_id WHERE a.key = 'klarsignal-dpa-2024'",
        )
        assert len(failed) == 1
        assert failed[0]["sent_at"] is None and failed[0]["attempts"] == 1
        assert failed[0]["last_error"] and failed[0]["next_attempt_at"] >= now + timedelta(seconds=299)
        # Nothing queued after it is held up: a later run still sends what comes due.
        assert await send_pending(instance.sessionmaker, settings, today=TODAY, now=now + timedelta(seconds=60)) == []
    finally:
        await instance.close()


async def test_a_reminder_sent_again_after_a_crash_keeps_its_message_id(database: str, smtp: SmtpServer) -> None:
    await load_document(database, reminder_document(TODAY))
    instance = Instance(database)
    try:
        settings = mail_settings(database, smtp)
        await run_reminders(instance.sessionmaker, settings, today=TODAY)
        first = {int(m["X-Registry-Reminder"]): m["Message-ID"] for m in smtp.recorder.messages}
        # The server accepted it, then the instance died before the row was marked sent.
        resent_id = min(first)
        async with instance.sessionmaker() as session, session.begin():
            await session.execute(text("UPDATE reminder SET sent_at = NULL WHERE id = :id"), {"id": resent_id})
        await send_pending(instance.sessionmaker, settings, today=TODAY)
    finally:
        await instance.close()
    copies = [m["Message-ID"] for m in smtp.recorder.messages if int(m["X-Registry-Reminder"]) == resent_id]
    assert len(copies) == 2 and copies[0] == copies[1] == first[resent_id]
    assert len(set(first.values())) == 4


async def test_a_run_sends_every_reminder_over_one_smtp_session(database: str, smtp: SmtpServer) -> None:
    await load_document(database, reminder_document(TODAY))
    instance = Instance(database)
    try:
        _, outcomes = await run_reminders(instance.sessionmaker, mail_settings(database, smtp), today=TODAY)
    finally:
        await instance.close()
    assert [o.status for o in outcomes] == ["sent"] * 4
    assert len(smtp.recorder.peers) == 4 and len(set(smtp.recorder.peers)) == 1


async def test_a_run_stops_early_and_says_so_when_the_mail_server_is_down(database: str, smtp: SmtpServer) -> None:
    await load_document(database, reminder_document(utcnow().astimezone(ZoneInfo("Europe/Stockholm")).date()))
    smtp.stop()
    result = _cli(database, smtp.port, "reminders", "run")
    assert result.returncode == 0, result.stderr
    assert "4 reminder(s) due" in result.stdout
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["failed", "e-mail"]
    assert "e-mail stopped early" in result.stdout
