"""`registry evidence`: the evidence bundle an inspection takes."""

from datetime import datetime
from pathlib import Path

import click

from cli.context import Context, pass_context, reported_errors


@click.command("evidence", short_help="Write the evidence bundle for an auditor to OUT.zip.")
@click.option(
    "--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="first day (default: a year ago)"
)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="last day (default: today)")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@pass_context
def evidence(context: Context, start: datetime | None, end: datetime | None, out: Path) -> None:
    """Write the evidence bundle (Art. 30 record, registry, agreements on file, decision log, its verification,
    and a SHA-256 manifest) to OUT.zip."""
    from registry.services.evidence import write_evidence

    partial = out.with_name(out.name + ".partial")
    with reported_errors():
        with partial.open("wb") as file:
            manifest = context.run(
                lambda s: write_evidence(s, file, start.date() if start else None, end.date() if end else None)
            )
        partial.replace(out)  # a bundle is there complete or not at all
    click.echo(
        f"wrote {out}: {len(manifest['files'])} files, period {manifest['period']['from']}..{manifest['period']['to']}"
    )


commands = [evidence]
