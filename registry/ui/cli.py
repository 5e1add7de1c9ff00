"""Command-line commands of this sub-system, added to `registry` by registry/cli.py."""

import click

commands: list[click.Command] = []
