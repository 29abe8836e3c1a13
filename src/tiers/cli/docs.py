"""`tiers docs`: the environments document, generated from tiers.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiers.cli import app, io


@app.command()
def docs(
    config: io.ConfigOption = Path("tiers.toml"),
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write the document to FILE (atomically)."
        ),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check", metavar="FILE", help="Exit 1 with a diff when FILE is not up to date."
        ),
    ] = None,
) -> None:
    """Write the environments document (to stdout unless --output or --check is given)."""
    from tiers.config import load
    from tiers.docs import diff, render
    from tiers.errors import OperationError, UsageError
    from tiers.files import atomic_write

    if output is not None and check is not None:
        raise UsageError("--output and --check exclude each other; pass one of them")
    text = render(load(config).config, config.resolve().parent)
    if check is not None:
        changes = diff(check, text)
        if changes:
            typer.echo("".join(changes), nl=False)
            raise OperationError(
                f"{check} is out of date; regenerate it with `tiers docs -o {check}`"
            )
        io.out(f"{check} is up to date")
    elif output is not None:
        atomic_write(output, text, parents=False)
        io.out(f"wrote {output}")
    else:
        typer.echo(text, nl=False)
