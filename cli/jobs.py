"""Command-line commands of this sub-system, added to `registry` by cli/main.py."""

import asyncio
import dataclasses
from datetime import date, datetime

import click

from cli.context import CLI_ACTOR, Context, reported_errors
from cli.output import echo_json, json_option, stages

commands: list[click.Command] = []


@click.group()
def reminders() -> None:
    """Agreement renewal reminders."""


@reminders.command("run")
@click.option(
    "--today",
    type=click.DateTime(["%Y-%m-%d"]),
    help="scan as of this date (default: controller's today); another day is only a preview unless --send",
)
@click.option("--send", is_flag=True, help="really send and record reminders for a --today other than today")
@json_option
@click.pass_obj
def reminders_run(context: Context, today: datetime | None, send: bool, as_json: bool) -> None:
    """Scan for due reminders once and send every pending one; print what was sent."""
    from kernel.calendar import controller_today
    from kernel.db import make_engine, make_sessionmaker
    from registry.jobs.reminders import preview_reminders, run_reminders

    async def main() -> None:
        engine = make_engine(context.database_url, pool_size=2)
        try:
            sessionmaker = make_sessionmaker(engine)
            async with sessionmaker() as session:
                real_today = await controller_today(session)
                day: date = today.date() if today else real_today
                if day != real_today and not send:
                    # Reading only, and the transaction is rolled back: a preview writes nothing.
                    due = await preview_reminders(session, context.settings, today=day)
                    await session.rollback()
                    if as_json:
                        echo_json(
                            {
                                "day": day,
                                "controller_today": real_today,
                                "preview": True,
                                "due": [
                                    {
                                        "kind": d.kind,
                                        "agreement": d.agreement.key,
                                        "due_date": d.due_date,
                                        "threshold_date": d.threshold_date,
                                        "days_before": d.days_before,
                                        "recipient": d.agreement.owner_email,
                                        "sub_processor": d.sub_processor_key,
                                    }
                                    for d in due
                                ],
                            }
                        )
                        return
                    click.echo(
                        f"{day}: preview (the controller's today is {real_today}): {len(due)} reminder(s) would be "
                        "due; nothing was sent or recorded (add --send to send them for this day)"
                    )
                    for d in due:
                        click.echo(
                            f"would send {d.kind:18} {d.agreement.key} {d.due_date} -> {d.agreement.owner_email}"
                        )
                    return
            with stages("reminders", ["run"]) as progress:
                progress.begin("scanning and sending")
                result, outcomes = await run_reminders(sessionmaker, context.settings, today=day)
        finally:
            await engine.dispose()
        if as_json:
            echo_json(
                {
                    "day": day,
                    "preview": False,
                    "due": len(result.due),
                    "written": result.written,
                    "outcomes": [dataclasses.asdict(o) for o in outcomes],
                    "stopped_early": any(o.server_down for o in outcomes),
                }
            )
            return
        click.echo(f"{day}: {len(result.due)} reminder(s) due, {result.written} new")
        for o in outcomes:
            line = f"{o.status:9} #{o.reminder_id} {o.kind:18} {o.agreement} {o.due_date} -> {o.channel} {o.recipient}"
            click.echo(line + (f" ({o.error})" if o.error else ""))
        if not outcomes:
            click.echo("nothing to send")
        elif any(o.server_down for o in outcomes):
            click.echo("e-mail stopped early: the mail server cannot be reached; the e-mails left stay pending")

    asyncio.run(main())


@reminders.command("list")
@click.option("--pending", is_flag=True, help="only reminders not sent yet")
@json_option
@click.pass_obj
def reminders_list(context: Context, pending: bool, as_json: bool) -> None:
    """List reminder rows, newest first."""
    from registry.jobs.reminders import list_reminders

    rows = context.run(lambda s: list_reminders(s, pending_only=pending))
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        state = (
            f"sent {r['sent_at']:%Y-%m-%d %H:%M}"
            if r["sent_at"]
            else "cancelled"
            if r["cancelled_at"]
            else f"pending (attempts {r['attempts']}{', ' + r['last_error'] if r['last_error'] else ''})"
        )
        click.echo(
            f"#{r['id']} {r['threshold_date']} {r['kind']:18} {r['agreement']} {r['due_date']} "
            f"{r['channel']} {r['recipient']}: {state}"
        )


@click.group()
def feed() -> None:
    """Secret calendar feed URLs of agreement renewals."""


@feed.command("create")
@click.argument("name")
@click.pass_obj
def feed_create(context: Context, name: str) -> None:
    """Create a feed; its secret URL is the only line printed on stdout, shown this once."""
    from registry.jobs.calendar import create_feed, feed_url

    with reported_errors():
        token = context.run(lambda s: create_feed(s, name, CLI_ACTOR))
    click.echo(feed_url(context.settings.public_url, token))


@feed.command("list")
@click.pass_obj
def feed_list(context: Context) -> None:
    """List feeds (never their URLs)."""
    from registry.jobs.calendar import list_feeds

    for f in context.run(list_feeds):
        state = f"revoked {f['revoked_at']:%Y-%m-%d %H:%M}" if f["revoked_at"] else "active"
        click.echo(f"{f['name']}\tcreated {f['created_at']:%Y-%m-%d %H:%M} by {f['created_by']}\t{state}")


@feed.command("revoke")
@click.argument("name")
@click.pass_obj
def feed_revoke(context: Context, name: str) -> None:
    """Revoke a feed: its URL answers 404 from now on."""
    from registry.jobs.calendar import revoke_feed

    with reported_errors():
        context.run(lambda s: revoke_feed(s, name, CLI_ACTOR))
    click.echo(f"revoked {name}")


commands.extend([reminders, feed])
