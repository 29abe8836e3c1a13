"""Where the CLI writes: stdout for results, stderr for errors; colour only on a terminal.

Rich already honours ``NO_COLOR`` and turns styling off when output is not a terminal.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer

from tiers.redaction import clean

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", envvar="TIERS_CONFIG", help="The tiers.toml to read (env: TIERS_CONFIG)."
    ),
]
StateOption = Annotated[
    str | None,
    typer.Option(
        "--state",
        envvar="TIERS_STATE_URL",
        help="The state store: a PostgreSQL URL shared by a team (env: TIERS_STATE_URL); "
        "default .tiers/state.db beside tiers.toml.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON with stable keys.")]


@cache
def console(stderr: bool = False) -> Any:
    from rich.console import Console

    # No emoji codes: ``tiers.toml:100:1`` must never print as ``tiers.toml💯1``.
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def out(text: str) -> None:
    """Print plain text exactly as given: no markup, and tabs kept (Rich would expand them,
    and a Caddyfile is indented with tabs)."""
    results.written = True
    stream = console().file
    stream.write(clean(text) + "\n")
    stream.flush()


class _Results:
    written = False
    """Whether a result went to stdout: an error after it is not printed there as JSON too."""


results = _Results()


def error(message: str, prefix: str = "error") -> None:
    """Each line on stderr as ``error: ...`` (or ``warning: ...``)."""
    style = "red" if prefix == "error" else "yellow"
    for line in clean(message).splitlines() or [""]:
        console(stderr=True).print(f"{prefix}: {line}", markup=False, style=style)


def raw(text: str) -> None:
    """Print a line that may carry its own ANSI colours, and flush it at once."""
    print(clean(text), flush=True)


def colour() -> bool:
    """Whether stdout takes colour: a terminal, and ``NO_COLOR`` unset."""
    return bool(console().is_terminal and not console().no_color)
