"""`tiers init`: write a commented tiers.toml to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiers.cli import app, io


@app.command()
def init(
    config: io.ConfigOption = Path("tiers.toml"),
    example: Annotated[
        str | None,
        typer.Option(
            "--example", help="Start from a worked example instead (plyr: the seed setup)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented tiers.toml (refuses to overwrite without --force)."""
    from tiers.config.templates import write
    from tiers.gitignore import ignore_state

    written = write(config, example=example, force=force)
    ignored = ignore_state(written.parent)
    io.out(f"wrote {written}; next: `tiers check`, then `tiers docs`")
    if ignored:
        io.out(f"added .tiers/ (tiers' own state) to {ignored}")
