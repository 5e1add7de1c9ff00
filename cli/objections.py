"""`registry objections import FILE.csv`: a mail tool's unsubscribe list recorded as objections."""

from datetime import datetime
from pathlib import Path

import click

from cli.context import CLI_ACTOR, Context, pass_context, reported_errors
from cli.guard import registry_subject_key
from guard.views import OBJECTION_SCOPE_DIRECT_MARKETING, OBJECTION_SCOPES
from kernel.calendar import controller_today
from registry.services.objections import import_unsubscribes, parse_unsubscribes


@click.group("objections")
def objections() -> None:
    """Data subjects' objections and unsubscribes (stored by keyed digest only)."""


@objections.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--scope",
    type=click.Choice(OBJECTION_SCOPES),
    default=OBJECTION_SCOPE_DIRECT_MARKETING,
    show_default=True,
    help="what the listed people objected to",
)
@click.option("--source", default="unsubscribe list", show_default=True, help="where the list came from")
@click.option(
    "--received-on",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="for rows without a date (default: today)",
)
@pass_context
def import_objections(context: Context, file: Path, scope: str, source: str, received_on: datetime | None) -> None:
    """Record an objection for every address in FILE (a CSV with a header row naming an address column, such as
    a mail tool's unsubscribe export); all rows or none. Running guards obey them within their snapshot bound."""
    with reported_errors():
        day = received_on.date() if received_on is not None else context.run(controller_today)
        rows = parse_unsubscribes(file.read_bytes(), registry_subject_key(context), default_day=day, scope=scope)
        summary = context.run(lambda s: import_unsubscribes(s, rows, scope=scope, source=source, actor=CLI_ACTOR))
    click.echo(
        f"{summary.rows} rows: {summary.recorded} objections recorded, {summary.already_in_force} already in force"
    )


commands = [objections]
