"""What the commands share for their output: `--json` for the records they print, and progress on stderr.

`--json` prints one JSON document on stdout (the records the command would print as lines, with every field),
so that scripts and CI parse it instead of the text; messages, errors and exit codes stay as they are.

Progress is shown only when stderr is a terminal: piped or captured (CI, a log file, a test), a command
writes nothing but its output and errors, so that the progress bar never lands in a log.
"""

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    """The `--json` flag, as `as_json`."""
    return click.option("--json", "as_json", is_flag=True, help="print the records as one JSON document")(function)


def echo_json(value: Any) -> None:
    """`value` as indented JSON on stdout; dates and times as ISO 8601 text."""
    click.echo(json.dumps(value, indent=2, default=_iso, ensure_ascii=False))


def _iso(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if isoformat is not None else str(value)


def progress_wanted() -> bool:
    return sys.stderr.isatty()


class Stages:
    """A progress bar over a command's stages (reading, validating, writing…), each named while it runs.
    A no-op unless stderr is a terminal."""

    def __init__(self, bar: Any | None) -> None:
        self._bar = bar
        self._started = False

    def begin(self, stage: str) -> None:
        if self._bar is None:
            return
        # Each stage's step is taken when the next begins, so the bar shows how many are done.
        self._bar.update(1 if self._started else 0, current_item=stage)
        self._bar.render_progress()  # click draws only on a step: the first stage's name would not show
        self._started = True


@contextmanager
def stages(label: str, names: Sequence[str]) -> Iterator[Stages]:
    if not progress_wanted():
        yield Stages(None)
        return
    with click.progressbar(
        length=len(names),
        label=label,
        file=sys.stderr,
        show_eta=False,
        show_percent=False,
        show_pos=True,
        item_show_func=lambda item: item,
    ) as bar:
        stage_bar = Stages(bar)
        yield stage_bar
        bar.update(1 if stage_bar._started else 0, current_item="done")


@contextmanager
def counted(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar over `total` items; the callback advances it. A no-op unless stderr is a terminal."""
    if not progress_wanted() or total <= 0:
        yield lambda _: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update
