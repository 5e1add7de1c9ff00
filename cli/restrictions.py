"""`registry restrictions import FILE.csv`: a list of people whose processing is restricted (Art. 18)."""

from datetime import datetime
from pathlib import Path

import click

from cli.context import CLI_ACTOR, Context, pass_context, reported_errors
from guard.subjects import subject_key_for
from kernel.calendar import controller_today
from registry.services.objections import parse_subject_rows
from registry.services.subjects import import_restrictions


@click.group("restrictions")
def restrictions() -> None:
    """Restrictions of processing: every share of the person refused (stored by keyed digest only)."""


@restrictions.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default="restriction list", show_default=True, help="where the list came from")
@click.option(
    "--received-on",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="for rows without a date (default: today)",
)
@pass_context
def import_restriction_list(context: Context, file: Path, source: str, received_on: datetime | None) -> None:
    """Record a restriction for every address in FILE (a CSV with a header row naming an address column); all
    rows or none. Running guards refuse every share of those people within their snapshot bound."""
    with reported_errors():
        day = received_on.date() if received_on is not None else context.run(controller_today)
        rows = parse_subject_rows(file.read_bytes(), subject_key_for(context.settings), default_day=day)
        summary = context.run(lambda s: import_restrictions(s, rows, source=source, actor=CLI_ACTOR))
    click.echo(
        f"{summary.rows} rows: {summary.recorded} restrictions recorded, {summary.already_in_force} already in force"
    )


commands = [restrictions]
