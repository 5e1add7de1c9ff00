"""`registry user …`: web UI accounts. There is no default account; an admin creates the first one here."""

import sys

import click
from sqlalchemy.ext.asyncio import AsyncSession

from cli.context import CLI_ACTOR, Context, pass_context, reported_errors
from cli.output import echo_json, json_option
from registry.services.users import ROLES, create_user, disable_user, enable_user, list_users, unlock_user


@click.group("user")
def user() -> None:
    """Web UI users: legal (edit), ops (read, try shares), admin (users and API keys)."""


@user.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
@pass_context
def create(ctx: Context, email: str, role: str, password_stdin: bool) -> None:
    """Create a user. The password is never taken from the command line (it would land in shell history)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def work(session: AsyncSession) -> str:
        return (await create_user(session, email, role, password, CLI_ACTOR)).email

    with reported_errors():
        created = ctx.run(work)
    click.echo(f"created {role} user {created}")


@user.command("list")
@json_option
@pass_context
def list_(ctx: Context, as_json: bool) -> None:
    """List users with their role and whether they may sign in."""
    with reported_errors():
        users = ctx.run(list_users)
    if as_json:
        echo_json(users)
        return
    for u in users:
        click.echo(f"{u['email']}\t{u['role']}\t{'active' if u['active'] else 'disabled'}")


@user.command("disable")
@click.argument("email")
@pass_context
def disable(ctx: Context, email: str) -> None:
    """Disable a user and end their sessions at once."""

    async def work(session: AsyncSession) -> None:
        await disable_user(session, email, CLI_ACTOR)

    with reported_errors():
        ctx.run(work)
    click.echo(f"disabled {email}")


@user.command("enable")
@click.argument("email")
@pass_context
def enable(ctx: Context, email: str) -> None:
    """Enable a disabled user again (with the role and password they had)."""

    async def work(session: AsyncSession) -> None:
        await enable_user(session, email, CLI_ACTOR)

    with reported_errors():
        ctx.run(work)
    click.echo(f"enabled {email}")


@user.command("unlock")
@click.argument("email")
@pass_context
def unlock(ctx: Context, email: str) -> None:
    """Lift the throttle on a user's sign-ins after wrong passwords."""

    async def work(session: AsyncSession) -> None:
        await unlock_user(session, email, CLI_ACTOR)

    with reported_errors():
        ctx.run(work)
    click.echo(f"unlocked {email}")


commands: list[click.Command] = [user]
