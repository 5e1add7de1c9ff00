"""The `registry` command line."""

import importlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from cli.context import (
    CLI_ACTOR,
    EXIT_BAD_INPUT,
    EXIT_DATABASE_UNAVAILABLE,
    Context,
    pass_context,
    reported_errors,
)
from cli.output import echo_json, json_option, stages
from kernel.errors import RegistryValidationError


class RegistryGroup(click.Group):
    """The top-level group: an expected failure anywhere below is one line on stderr and its exit code; the
    sub-systems' commands are imported only when one of them runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBSYSTEM_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBSYSTEM_COMMANDS and cmd_name not in self.commands:
            module_name, attribute, _ = SUBSYSTEM_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command) and command.name == cmd_name, cmd_name
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from the table above for the lazy commands, so that `--help` imports none of them."""
        rows = []
        for name in self.list_commands(ctx):
            if name in SUBSYSTEM_COMMANDS and name not in self.commands:
                rows.append((name, SUBSYSTEM_COMMANDS[name][2]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with reported_errors():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            from kernel.db import database_outage

            reason = database_outage(exc)
            if reason is None:
                raise  # a bug: the traceback is what its report needs
            click.echo(f"error: the registry database is unavailable ({reason})", err=True)
            ctx.exit(EXIT_DATABASE_UNAVAILABLE)


@click.group(cls=RegistryGroup)
@click.version_option(package_name="offix-registry", prog_name="registry")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Offix processor and recipient registry."""
    with reported_errors():
        ctx.obj = Context()


@main.command()
@click.option("--host", default=None, help="[default: REGISTRY_HOST, else 127.0.0.1]")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="[default: REGISTRY_PORT, else 8000]")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--new", is_flag=True, help="create a new embedded registry here although another one exists elsewhere")
@click.option(
    "--single-process",
    is_flag=True,
    help="answer checks, pages and exports on the same processes (by default the guard has its own)",
)
@pass_context
def serve(context: Context, host: str | None, port: int | None, workers: int, new: bool, single_process: bool) -> None:
    """Upgrade the schema, seed an empty registry, and serve the API and the web UI.

    The guard's checks are answered on processes of their own (`--workers` of them) on the public port; the
    web UI, the registry API and exports on another process behind them (cli/roles.py, web/roles.py)."""
    import os

    import uvicorn

    from kernel.logs import logging_dict
    from registry.bootstrap import prepare_database

    _metrics_directory()  # before anything imports prometheus-client (the workers inherit it)
    url = context.create_or_open_database(new=new)
    with reported_errors():
        token = prepare_database(url, context.settings)
    # Before any worker starts: an instance without the registry's subject key refuses to (exit 2, saying why).
    from cli.guard import registry_subject_key

    registry_subject_key(context)
    if token:
        click.echo("An admin API key was created for this registry. It is shown only this once:", err=True)
        click.echo(f"  {token}", err=True)
        click.echo(
            "Use it as 'Authorization: Bearer <key>'; create narrower keys with `registry apikey create`.",
            err=True,
        )
    os.environ["REGISTRY_DATABASE_URL"] = url  # workers read their settings from the environment
    host = host if host is not None else context.settings.host
    port = port if port is not None else context.settings.port
    from cli.roles import RoleSupervisor, forwarded_header_options

    if not single_process:
        # Returns (rather than exit from a signal) so that atexit stops the embedded PostgreSQL after the roles.
        code = RoleSupervisor(context.settings, host, port, workers).run()
        if code:
            sys.exit(code)
        return
    # Uvicorn re-raises the SIGTERM it caught once it has shut down; with the default handler that kills the
    # process before atexit runs, and the embedded PostgreSQL would outlive us. Exit normally instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "web.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Every worker gets this long to import the app and start (uvicorn's 5 s killed some at start).
        timeout_worker_healthcheck=context.settings.worker_healthcheck_seconds,
        log_level="info",
        log_config=logging_dict(context.settings.log_format),  # one format for every line (kernel/logs.py)
        access_log=False,  # the app writes its own (web/access_log.py)
        **forwarded_header_options(context.settings.trusted_proxies),  # (cli/roles.py)
    )


def _metrics_directory() -> None:
    """The directory where prometheus-client's multiprocess mode keeps every worker's counts
    (registry/controllers/metrics.py): the operator's PROMETHEUS_MULTIPROC_DIR, emptied of an earlier run's files,
    or a new temporary one removed at exit."""
    import atexit
    import os
    import shutil
    import tempfile

    if "prometheus_client" in sys.modules:  # its mode is fixed once imported: workers would not add up
        raise RuntimeError("prometheus_client was imported before `registry serve` chose its multiprocess mode")
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in Path(directory).glob("*.db"):  # counts of an earlier run are not this run's
            stale.unlink()
        return
    directory = tempfile.mkdtemp(prefix="registry-metrics-")
    atexit.register(shutil.rmtree, directory, True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--new", is_flag=True, help="create a new embedded registry here although another one exists elsewhere")
@pass_context
def db_upgrade(context: Context, new: bool) -> None:
    """Apply every pending migration."""
    from kernel.db import upgrade_schema

    upgrade_schema(context.create_or_open_database(new=new))
    click.echo("schema is at head")


@main.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@pass_context
def backup_command(context: Context, file: Path) -> None:
    """Write a backup of the registry database to FILE with PostgreSQL's pg_dump (custom format)."""
    from kernel.backup import BackupError, backup

    try:
        tool = backup(context.database_url, file)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"backup written to {file} ({file.stat().st_size} bytes, pg_dump {tool.major})")


@main.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def restore_command(context: Context, file: Path) -> None:
    """Restore a backup made by `registry backup` into an EMPTY database (a new REGISTRY_DATA_DIR or a new
    database at REGISTRY_DATABASE_URL), all or nothing; a database that holds anything is refused."""
    from kernel.backup import BackupError, restore

    try:
        tool = restore(context.create_or_open_database(), file)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"restored {file} (pg_restore {tool.major})")
    click.echo("hold it to the witness's checkpoints: registry guard verify-log --checkpoints DIR")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="print what the import would change, and change nothing")
@json_option
@pass_context
def import_command(context: Context, file: Path, dry_run: bool, as_json: bool) -> None:
    """Replace the registry with the document in FILE (YAML or JSON), all or nothing; print the change set."""
    from registry.services.registry_document import apply_document, load_document_text, parse_document, preview_document

    steps = ["reading", "validating", "comparing" if dry_run else "writing"]
    with reported_errors(), stages(f"import {file.name}", steps) as progress:
        media_type = "application/json" if file.suffix == ".json" else "application/yaml"
        progress.begin("reading")
        raw = load_document_text(file.read_bytes(), media_type)
        progress.begin("validating")
        document = parse_document(raw)
        progress.begin(steps[-1])
        if dry_run:
            changes = context.run(lambda s: preview_document(s, document, CLI_ACTOR))
        else:
            changes = context.run(lambda s: apply_document(s, document, CLI_ACTOR))
    if as_json:  # the answer of PUT /api/registry (?dry_run=true)
        echo_json({"status": "preview" if dry_run else "imported", **changes.counts(), "changes": changes.as_dict()})
        return
    counts = ", ".join(f"{n} {what}" for what, n in changes.counts().items())
    click.echo(f"{counts} (dry run: nothing was changed)" if dry_run else counts)
    for line in changes.lines():
        click.echo(f"  {line}")


def dump_document(document: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n"
    import yaml

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@main.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML (default for a .json FILE)")
@pass_context
def export_command(context: Context, file: Path | None, as_json: bool) -> None:
    """Write the registry document to FILE, or to standard output."""
    from registry.services.registry_document import export_registry

    with stages("export", ["reading", "formatting"]) as progress:
        progress.begin("reading the registry")
        document = context.run(export_registry)
        progress.begin("formatting")
        text = dump_document(document, as_json or (file is not None and file.suffix == ".json"))
    if file is None:
        click.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")


@main.group()
def apikey() -> None:
    """API keys for integrations and operators."""


@apikey.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="registry:read, registry:write, guard:check, metrics:read, admin",
)
@pass_context
def apikey_create(context: Context, name: str, scopes: tuple[str, ...]) -> None:
    """Create a key; its secret token is the only line printed on stdout."""
    from pydantic import ValidationError

    from kernel.errors import pydantic_field_errors
    from registry.schemas import ApiKeyIn
    from registry.services.apikeys import create_api_key

    with reported_errors():
        try:
            ApiKeyIn(name=name, scopes=list(scopes))
        except ValidationError as exc:
            raise RegistryValidationError(pydantic_field_errors(exc)) from None
        token = context.run(lambda s: create_api_key(s, name, list(scopes), CLI_ACTOR))
    click.echo(token)


@apikey.command("list")
@json_option
@pass_context
def apikey_list(context: Context, as_json: bool) -> None:
    """List keys (never their secrets)."""
    from registry.services.apikeys import list_api_keys

    keys = context.run(list_api_keys)
    if as_json:
        echo_json(keys)
        return
    for key in keys:
        state = f"revoked {key['revoked_at']:%Y-%m-%d %H:%M}" if key["revoked_at"] else "active"
        click.echo(f"{key['name']}\t{','.join(key['scopes'])}\t{state}")


@apikey.command("revoke")
@click.argument("name")
@pass_context
def apikey_revoke(context: Context, name: str) -> None:
    """Revoke a key; running instances stop accepting it within a few seconds."""
    from registry.services.apikeys import revoke_api_key

    with reported_errors():
        context.run(lambda s: revoke_api_key(s, name, CLI_ACTOR))
    click.echo(f"revoked {name}")


# Sub-systems' commands, loaded only when run (or asked for their own help): `registry --help` and every command
# import just what they use (bench/cli_startup.py). name → (module, attribute, one-line help for the listing).
SUBSYSTEM_COMMANDS: dict[str, tuple[str, str, str]] = {
    "guard": ("cli.guard", "guard_group", "The transfer guard: check a share, verify the decision log."),
    "check": (
        "cli.findings",
        "check",
        "List what would block shares: exit 1 when there is any finding (a CI gate for the registry).",
    ),
    "reminders": ("cli.jobs", "reminders", "Agreement renewal reminders."),
    "feed": ("cli.jobs", "feed", "Secret calendar feed URLs of agreement renewals."),
    "user": (
        "cli.users",
        "user",
        "Web UI users: legal (edit), ops (read, try shares), admin (users and API keys).",
    ),
    "evidence": ("cli.records", "evidence", "Write the evidence bundle for an auditor to OUT.zip."),
    "objections": (
        "cli.objections",
        "objections",
        "Data subjects' objections and unsubscribes (stored by keyed digest only).",
    ),
    "restrictions": (
        "cli.restrictions",
        "restrictions",
        "Restrictions of processing: every share of the person refused (stored by keyed digest only).",
    ),
}
