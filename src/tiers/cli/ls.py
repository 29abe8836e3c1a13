"""`tiers ls`: the environments table."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tiers.cli import app, io

if TYPE_CHECKING:
    from tiers.config import Config


class Format(StrEnum):
    text = "text"
    markdown = "markdown"


@app.command()
def ls(
    config: io.ConfigOption = Path("tiers.toml"),
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.text,
    as_json: io.JsonOption = False,
) -> None:
    """List the environments: trigger, service URLs, database, Redis, frontends, storage."""
    import json

    from tiers.config import load
    from tiers.docs import as_json as table_json
    from tiers.docs import markdown_table

    model = load(config).config
    if as_json:
        io.out(json.dumps(table_json(model), indent=2))
    elif format is Format.markdown:
        io.out(markdown_table(model))
    else:
        _print_table(model)


def _print_table(config: Config) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    from tiers.docs import columns, rows

    cols = columns(config)
    table = Table(*(c.header for c in cols), header_style="bold")
    for row in rows(config):
        cells = [Text(row.cells[c.key] or "-") for c in cols]
        cells[0].stylize("bold")
        table.add_row(*cells)
    console = io.console()
    if console.is_terminal:
        console.print(table)
        return
    # Off a terminal nothing wraps: each environment stays one line for grep and diff.
    width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=width, highlight=False, emoji=False).print(table)
