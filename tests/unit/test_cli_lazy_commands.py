"""`registry --help` lists the sub-systems' commands without importing them; each listed command is the one
that runs."""

import importlib
import subprocess
import sys

import click
import pytest

from cli.main import SUBSYSTEM_COMMANDS, main


@pytest.mark.parametrize("name", sorted(SUBSYSTEM_COMMANDS))
def test_a_lazy_command_is_listed_with_its_own_short_help(name: str) -> None:
    module_name, attribute, listed_help = SUBSYSTEM_COMMANDS[name]
    command = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(command, click.Command) and command.name == name
    assert command.get_short_help_str(200) == listed_help


def test_every_lazy_command_resolves_through_the_top_level_group() -> None:
    ctx = click.Context(main)
    for name in SUBSYSTEM_COMMANDS:
        assert main.get_command(ctx, name) is not None, name
    assert set(SUBSYSTEM_COMMANDS) <= set(main.list_commands(ctx))


def test_the_top_level_help_imports_no_database_layer_policy_or_sub_system() -> None:
    probe = (
        "import sys\n"
        "from cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ['sqlalchemy', 'asyncpg', 'litestar', 'fideslang', 'guard.policy', 'cli.guard', 'cli.jobs',"
        " 'cli.users', 'cli.findings', 'pydantic_settings']\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    *listing, loaded = done.stdout.strip().splitlines()
    assert loaded == "LOADED=", f"`registry --help` imported {loaded}"
    text = "\n".join(listing)
    for name in SUBSYSTEM_COMMANDS:
        assert f"  {name} " in text, name
