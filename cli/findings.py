"""`registry check`: the registry-wide findings as a CI gate.

Exit status: 0 and "no findings" when the registry is clean, 1 with one line per finding otherwise,
2 when the document given with --file is not a valid registry document.
"""

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from cli.context import Context, pass_context, reported_errors
from cli.output import echo_json, json_option, stages
from kernel.errors import RegistryValidationError
from registry.services.findings import controller_day, document_findings, registry_findings_report
from registry.services.registry_document import parse_document, reference_errors


def _read_document_file(file: Path) -> Any:
    text = file.read_text("utf-8")
    try:
        return json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        click.echo(f"error: {file} is not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {exc}", err=True)
        sys.exit(2)


def _file_findings(file: Path, today: date | None) -> tuple[list[dict[str, Any]], date]:
    """Validate the document as `registry import` would, then check it in memory: no database needed."""
    doc = parse_document(_read_document_file(file))
    errors = reference_errors(doc)
    if errors:
        raise RegistryValidationError(errors)
    checked_on = today or controller_day(doc)
    return document_findings(doc, today=checked_on), checked_on


def format_finding(finding: dict[str, Any]) -> str:
    return f"{finding['party']}: {finding['code']}: {finding['message']}"


@click.command("check")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="check this registry document (YAML or JSON) instead of the database",
)
@click.option(
    "--on",
    "on",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="the day to check (YYYY-MM-DD); default: today on the controller's calendar",
)
@json_option
@pass_context
def check(context: Context, file: Path | None, on: datetime | None, as_json: bool) -> None:
    """List what would block shares: exit 1 when there is any finding (a CI gate for the registry)."""
    today = on.date() if on is not None else None
    with reported_errors(), stages("registry check", ["checking"]) as progress:
        progress.begin(f"checking {file}" if file is not None else "checking the registry")
        if file is not None:
            findings, checked_on = _file_findings(file, today)
        else:
            report = context.run(lambda s: registry_findings_report(s, today=today))
            findings, checked_on = report["findings"], date.fromisoformat(report["checked_on"])
    if as_json:  # the API's answer (GET /api/registry/findings); the exit status says the same as without
        echo_json({"findings": findings, "count": len(findings), "checked_on": checked_on})
        sys.exit(1 if findings else 0)
    for finding in findings:
        click.echo(format_finding(finding))
    if findings:
        click.echo(f"{len(findings)} finding{'s' if len(findings) != 1 else ''} on {checked_on}", err=True)
        sys.exit(1)
    click.echo(f"no findings on {checked_on}")


commands: list[click.Command] = [check]
