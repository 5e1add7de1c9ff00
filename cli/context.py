"""What every `registry` sub-command shares: the database context, the exit codes and the error mapping.

Its own module so that each sub-system's commands (guard, findings, reminders, users, records) import it
without importing `cli.main`, which imports them all to build the command group.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kernel.errors import RegistryError, RegistryValidationError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# The database layer and the settings are imported where a command first needs them, not here: this module is
# loaded by `registry --help` and by every sub-command's module, and SQLAlchemy and pydantic-settings cost
# most of a second of start-up that `--help` never uses (bench/cli_startup.py).

T = TypeVar("T")
CLI_ACTOR = "cli"


class Context:
    """Resolves the database once per command: the configured URL, or the embedded server."""

    def __init__(self) -> None:
        from kernel.settings import Settings

        self.settings = Settings.from_env()
        self._url: str | None = self.settings.database_url
        self._server: Any = None

    @property
    def database_url(self) -> str:
        """The registry every command but `serve` and `db upgrade` works on: it must exist already, so that a
        command run from another folder never starts a second, empty registry there."""
        if self._url is None:
            from kernel.embedded import embedded_registry_exists

            if not embedded_registry_exists(self.settings.data_dir):
                click.echo(
                    f"error: no registry here: no REGISTRY_DATABASE_URL is set and {self.settings.data_dir.resolve()} "
                    "holds no embedded database; set REGISTRY_DATA_DIR to the registry's data folder or "
                    "REGISTRY_DATABASE_URL to its database (`registry serve` creates a new one)",
                    err=True,
                )
                sys.exit(2)
        return self.create_or_open_database()

    def create_or_open_database(self, *, new: bool = False) -> str:
        """The registry database, creating the embedded one if there is none: only `serve` and `db upgrade`.

        A new embedded registry is created only on the first run, or with `new`: where another one exists
        already (this user's first, or the `.registry-data` of a folder above), the command is refused and
        says where it is, rather than start a second, empty registry that `check` and `verify-log` would pass."""
        if self._url is None:
            from kernel.embedded import (
                EmbeddedDatabaseError,
                embedded_registry_exists,
                existing_registries,
                remember_registry,
                start_embedded_postgres,
            )

            data_dir = self.settings.data_dir
            creating = not embedded_registry_exists(data_dir)
            if creating and not new:
                elsewhere = existing_registries(data_dir)
                if elsewhere:
                    click.echo(
                        f"error: no registry in {data_dir.resolve()}, and this would create a new, empty one; the "
                        f"registry is in {elsewhere[0]}: run from {elsewhere[0].parent} or set "
                        f"REGISTRY_DATA_DIR={elsewhere[0]} (or pass --new for a second registry here)",
                        err=True,
                    )
                    sys.exit(2)
            try:
                self._url, self._server = start_embedded_postgres(data_dir)
            except EmbeddedDatabaseError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(2)
            if creating:
                remember_registry(data_dir)
        return self._url

    def run(self, work: "Callable[[AsyncSession], Awaitable[T]]") -> T:
        """Run `work` in one transaction on the registry database."""
        from kernel.db import make_engine, make_sessionmaker

        async def main() -> T:
            engine = make_engine(self.database_url, pool_size=2)
            try:
                async with make_sessionmaker(engine)() as session, session.begin():
                    return await work(session)
            finally:
                await engine.dispose()

        return asyncio.run(main())


pass_context = click.make_pass_decorator(Context)


# Exit codes every command keeps, so that CI and operators can tell an outage from a finding.
EXIT_OK = 0
EXIT_FINDINGS = 1  # findings, a denied share, a broken decision log
EXIT_BAD_INPUT = 2  # bad arguments, a bad document, a bad setting, an unknown or conflicting record
EXIT_DATABASE_UNAVAILABLE = 3


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn domain errors into a message on stderr and a non-zero exit, never a traceback."""
    from kernel.settings import SettingsError

    try:
        yield
    except RegistryValidationError as exc:
        for err in exc.errors:
            click.echo(f"error: {err.field}: {err.message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except (RegistryError, SettingsError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
