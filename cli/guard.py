"""`registry guard …`: the decision log's verification and a guard check for operations."""

import asyncio
import dataclasses
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import click
from sqlalchemy.ext.asyncio import AsyncSession

from cli.context import EXIT_BAD_INPUT, EXIT_DATABASE_UNAVAILABLE, Context, pass_context, reported_errors
from cli.output import echo_json, json_option, stages
from guard.service import GuardUnavailable, parse_share_request
from guard.subjects import SubjectKey, SubjectKeyError, shared_subject_key
from kernel.db import asyncpg_dsn
from ledger.append import driver_connection, writer_origin
from ledger.checkpoint import CheckpointError, CheckpointRefused, CheckpointWithheld, Verifier
from ledger.evidence import EvidenceAlarm, open_alarms, raise_alarm, resolve_alarms
from ledger.rollup import rebuild_rollup, rollup_differences
from ledger.seal import (
    WrittenCheckpoint,
    checkpoints_in_folder,
    hand_to_witnesses,
    signer_for,
    signing_key_file,
    stored_checkpoints,
    url_witness_for,
    verifier_for,
    witnessed_in_folder,
    write_checkpoint,
)
from ledger.verify import KnownCheckpoint, VerifyResult, verify_log
from web.composition import open_guard

T = TypeVar("T")


@click.group("guard")
def guard_group() -> None:
    """The transfer guard: check a share, verify the decision log."""


def _on_connection(context: Context, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a plain asyncpg connection to the registry database (autocommit; `work` opens its own
    transactions)."""

    async def main() -> T:
        connection = await asyncpg.connect(asyncpg_dsn(context.database_url), timeout=30)
        try:
            return await work(connection)
        finally:
            await connection.close(timeout=5)

    return asyncio.run(main())


def _verifier(context: Context, public_key: str | None) -> Verifier | None:
    """The log's public key: as given, else from the signing key file if there is one."""
    if public_key is not None:
        return Verifier.parse(public_key)
    return verifier_for(context.settings) if signing_key_file(context.settings).exists() else None


@guard_group.command("verify-log")
@click.option(
    "--checkpoints",
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="a witness's folder of signed checkpoints to hold the log to (besides the stored ones)",
)
@click.option("--since-checkpoint", is_flag=True, help="verify only what came after the last checkpoint")
@click.option("--public-key", default=None, help="the log's verifier key; default: from the signing key file")
@json_option
@pass_context
def verify_log_command(
    context: Context, folder: Path | None, since_checkpoint: bool, public_key: str | None, as_json: bool
) -> None:
    """Walk the hash chain and hold it to the signed checkpoints; exit 1 naming the first edited, deleted or
    inserted entry, or the first checkpoint the log contradicts (truncated, or rewritten at or before N)."""
    try:
        verifier = _verifier(context, public_key)
        if verifier is None and (folder is not None or since_checkpoint):
            raise CheckpointError(
                f"no signing key at {signing_key_file(context.settings)}: pass --public-key to check checkpoints"
            )
    except CheckpointError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

    async def work(session: AsyncSession) -> VerifyResult:
        known: list[KnownCheckpoint] = []
        if verifier is not None:
            known += await stored_checkpoints(await driver_connection(session), verifier)
            if folder is not None:
                known += checkpoints_in_folder(folder, verifier)
        since = None
        if since_checkpoint:
            if not known:
                raise CheckpointError("there is no checkpoint to start from")
            since = max(known, key=lambda k: k.checkpoint.size)
        return await verify_log(session, known, since=since)

    try:
        with stages("verify-log", ["verifying"]) as progress:
            progress.begin("walking the hash chain")
            result: VerifyResult = context.run(work)
    except CheckpointError as exc:
        if as_json:
            echo_json({"ok": False, "problem": f"log not verified: {exc}"})
        click.echo(f"log not verified: {exc}", err=True)
        sys.exit(1)
    if as_json:  # the same exit status as without: 0 intact, 1 broken
        echo_json({**dataclasses.asdict(result), "description": result.describe()})
        sys.exit(0 if result.ok else 1)
    if result.ok:
        click.echo(result.describe())
        return
    click.echo(result.describe(), err=True)
    sys.exit(1)


@guard_group.command("checkpoint")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="write the checkpoint file here (default: REGISTRY_CHECKPOINT_DIR)",
)
@pass_context
def checkpoint_command(context: Context, folder: Path | None) -> None:
    """Sign a checkpoint of the decision log now, store it, hand it to the witnesses and print it.

    The witnesses: the folder (--dir or REGISTRY_CHECKPOINT_DIR) and the C2SP tlog-witness at
    REGISTRY_CHECKPOINT_WITNESS_URL, sent a consistency proof from the size it cosigned last; its cosignatures
    are kept beside the checkpoint. Exit 1 if a witness did not take it, or contradicts the log (an alarm)."""
    settings = context.settings
    signer = signer_for(settings)
    witness_folder = folder or settings.checkpoint_dir

    async def work(connection: asyncpg.Connection) -> tuple[WrittenCheckpoint, list[str]]:
        try:
            written = await write_checkpoint(connection, signer, witnessed_in_folder(witness_folder, signer.verifier))
            problems = await hand_to_witnesses(connection, written, witness_folder, url_witness_for(settings))
        except CheckpointRefused as exc:  # evidence: every guard fails closed until an operator resolves it
            await raise_alarm(connection, f"checkpoint refused: {exc}", writer_origin(_caller()))
            raise
        return written, problems

    try:
        written, problems = _on_connection(context, work)
    except CheckpointRefused as exc:
        click.echo(f"checkpoint refused: {exc}", err=True)
        click.echo("the guard fails closed until an operator resolves it: registry guard resolve-alarms", err=True)
        sys.exit(1)
    except CheckpointWithheld as exc:
        click.echo(f"no checkpoint signed: {exc}", err=True)
        sys.exit(1)
    click.echo(written.note, nl=False)
    for problem in problems:
        click.echo(f"warning: not handed over to {problem}", err=True)
    sys.exit(1 if problems else 0)


@guard_group.command("rollup")
@click.option("--rebuild", is_flag=True, help="recount it from the sealed entries (under the checkpoint lock)")
@pass_context
def rollup_command(context: Context, rebuild: bool) -> None:
    """Check the decision log's rollup (the per-day counts of the sealed entries that the Art. 30 record sums,
    and the per-hour bounds that page the log) against a direct count; exit 1 if it differs. It is derived data:
    `--rebuild` recounts it, then checks it."""

    async def work(connection: asyncpg.Connection) -> tuple[int | None, list[str]]:
        sealed = await rebuild_rollup(connection) if rebuild else None
        return sealed, await rollup_differences(connection)

    sealed, problems = _on_connection(context, work)
    if sealed is not None:
        click.echo(f"rollup recounted from {sealed} sealed entries")
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        click.echo("recount it: registry guard rollup --rebuild", err=True)
        sys.exit(1)
    click.echo("the rollup agrees with a direct count of the sealed entries")


def _alarm_lines(alarms: list[EvidenceAlarm]) -> list[str]:
    return [f"#{a.id} raised {a.raised_at:%Y-%m-%d %H:%M:%S %Z} by {a.raised_by}: {a.problem}" for a in alarms]


@guard_group.command("alarms")
@pass_context
def alarms_command(context: Context) -> None:
    """List the open tampering alarms (while there is one, every guard fails closed); exit 1 if any."""
    alarms = _on_connection(context, open_alarms)
    for line in _alarm_lines(alarms):
        click.echo(line)
    if not alarms:
        click.echo("no open tampering alarm")
    sys.exit(1 if alarms else 0)


@guard_group.command("resolve-alarms")
@click.option("--note", required=True, help="what was found and done (kept beside each alarm, with your name)")
@pass_context
def resolve_alarms_command(context: Context, note: str) -> None:
    """Resolve every open tampering alarm, once the evidence is looked into (the log restored, or its loss
    recorded): the guards answer again and a writer whose chain was cut starts a new one. The alarms stay on
    record with who resolved them, when and why."""
    if not note.strip():
        click.echo("error: --note: say what was found and done", err=True)
        sys.exit(2)
    resolved = _on_connection(context, lambda connection: resolve_alarms(connection, _caller(), note.strip()))
    for line in _alarm_lines(resolved):
        click.echo(f"resolved {line}")
    if not resolved:
        click.echo("no open tampering alarm")


@guard_group.command("public-key")
@pass_context
def public_key_command(context: Context) -> None:
    """Print the log's verifier key (C2SP signed-note form), creating the signing key on first use."""
    click.echo(signer_for(context.settings).verifier.text())


def registry_subject_key(context: Context) -> SubjectKey:
    """The registry's subject key, held to the fingerprint its database records; exit 2 saying how to provision
    it when this host has none or another."""
    try:
        return _on_connection(
            context, lambda connection: shared_subject_key(connection, context.settings, writer_origin(_caller()))
        )
    except SubjectKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


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
@click.option(
    "--subject-ref", default=None, help="the person's identifier (e-mail, customer number); needed for marketing"
)
@pass_context
def check_command(
    context: Context,
    recipient: str,
    purpose: str,
    categories: tuple[str, ...],
    destination: str | None,
    data_subject: str,
    subject_ref: str | None,
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
    if subject_ref is not None:
        payload["subject_ref"] = subject_ref
    parsed = parse_share_request(payload)
    if isinstance(parsed, list):
        for error in parsed:
            click.echo(f"error: {error.field}: {error.message}", err=True)
        sys.exit(2)
    caller = _caller()

    async def ask() -> dict[str, Any]:
        # The same runtime a serving instance decides with; the answer is logged before it is printed.
        async with open_guard(context.settings) as guard:
            return await guard.check(payload, caller)

    with reported_errors():
        try:
            answer = asyncio.run(ask())
        except GuardUnavailable as exc:  # fail closed, and say why: no answer is an allow
            click.echo(f"error: the guard cannot decide now: {exc}", err=True)
            sys.exit(EXIT_DATABASE_UNAVAILABLE)
        except SubjectKeyError as exc:  # this host has not the registry's subject key
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    sys.exit(0 if answer["allowed"] else 1)


commands: list[click.Command] = [guard_group]
