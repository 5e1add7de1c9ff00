"""`registry guard …`: the decision log's verification and a guard check for operations."""

import getpass
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from guard.log import VerifyResult, append_decisions, verify_log
from guard.service import decide_and_record, parse_share_request
from guard.snapshot import POLICY_NAME, controller_timezone, load_snapshot

if TYPE_CHECKING:
    from registry.cli import Context

# registry/cli.py imports this module to add its commands; taking the Context through click's `obj` (set
# by the `registry` group) instead of importing registry.cli here keeps the import one-way.
pass_context = click.pass_obj


@click.group("guard")
def guard_group() -> None:
    """The transfer guard: check a share, verify the decision log."""


@guard_group.command("verify-log")
@pass_context
def verify_log_command(context: "Context") -> None:
    """Walk the hash chain; exit 1 naming the first edited, deleted or inserted entry."""
    result: VerifyResult = context.run(verify_log)
    if result.ok:
        click.echo(result.describe())
        return
    click.echo(result.describe(), err=True)
    sys.exit(1)


def _caller() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container: still on the record, as the CLI
        return "cli:unknown"


@guard_group.command("check")
@click.option("--recipient", required=True, help="party key of the recipient")
@click.option("--purpose", required=True, help="purpose (data use) key, e.g. essential.service.operations")
@click.option("--category", "categories", multiple=True, required=True, help="data category key (repeatable)")
@click.option("--destination", default=None, help="territory the data is sent to, e.g. SE")
@click.option("--data-subject", required=True, help="data subject key, e.g. customer")
@pass_context
def check_command(
    context: "Context",
    recipient: str,
    purpose: str,
    categories: tuple[str, ...],
    destination: str | None,
    data_subject: str,
) -> None:
    """Ask the guard as an integration would; prints the decision JSON, exit 0 allowed, 1 denied.

    The decision is logged like any other, with the caller `cli:<os user>`. It reads the registry straight
    from the database (a CLI run has no snapshot to go stale).
    """
    payload: dict[str, Any] = {
        "recipient": recipient,
        "purpose": purpose,
        "data_categories": list(categories),
        "data_subject": data_subject,
    }
    if destination is not None:
        payload["destination"] = destination
    parsed = parse_share_request(payload)
    if isinstance(parsed, list):
        for error in parsed:
            click.echo(f"error: {error.field}: {error.message}", err=True)
        sys.exit(2)
    caller = _caller()

    async def work(session: AsyncSession) -> dict[str, Any]:
        snapshot = await load_snapshot(session, ruleset=POLICY_NAME)
        today = datetime.now(await controller_timezone(session)).date()
        answers, entries = decide_and_record(
            [parsed], snapshot, today, caller, expiring_within_days=context.settings.expiring_warning_days
        )
        await append_decisions(session, entries)
        return answers[0]

    answer = context.run(work)  # commits the log entry before the answer is printed
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    sys.exit(0 if answer["allowed"] else 1)


commands: list[click.Command] = [guard_group]
