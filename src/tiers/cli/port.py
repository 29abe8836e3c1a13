"""`tiers import`: write a tiers.toml from a platform's own files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiers.cli import app, io

import_app = typer.Typer(
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
app.add_typer(
    import_app,
    name="import",
    help="Write a tiers.toml from a platform's own files (fly.toml), to adopt tiers at once.",
)


@import_app.command("fly")
def fly(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="fly.toml files, one per environment."),
    ],
    *,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            metavar="NAME",
            help="The environment of each file, in order (else from the file or app name).",
        ),
    ] = None,
    service: Annotated[
        str,
        typer.Option("--service", metavar="NAME", help="The name of the service the files deploy."),
    ] = "backend",
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            metavar="NAME",
            help="A secret every environment needs, by name (repeatable).",
        ),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url", metavar="ENV=URL", help="An environment's custom domain (repeatable)."
        ),
    ] = None,
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            envvar="TIERS_CONFIG",
            help="The tiers.toml to write (env: TIERS_CONFIG).",
        ),
    ] = Path("tiers.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the tiers.toml instead of writing it.")
    ] = False,
) -> None:
    """Map fly.toml files onto a tiers.toml; list every key that could not be mapped."""
    from tiers.files import atomic_write
    from tiers.importers import check_target, import_fly

    if not dry_run:
        check_target(config, files, overwrite=force)
    result = import_fly(
        files,
        environments=env or [],
        service=service,
        secrets=secret or [],
        urls=_pairs(url or []),
        target=config,
    )
    if dry_run:
        typer.echo(result.text, nl=False)  # byte for byte, so it can be redirected to a file
    else:
        atomic_write(config, result.text, parents=False)
        io.out(f"wrote {config}: {', '.join(result.environments)}")
    for line in [*(f"could not map: {u}" for u in result.unmapped), *result.notes]:
        typer.echo(line, err=True)


def _pairs(values: list[str]) -> dict[str, str]:
    from tiers.errors import UsageError

    pairs: dict[str, str] = {}
    for value in values:
        name, sign, url = value.partition("=")
        if not sign or not name or not url:
            raise UsageError(
                f"--url {value}: write ENV=URL, like staging=https://api-stg.example.com"
            )
        if name in pairs:
            raise UsageError(
                f"--url {name}={pairs[name]} and --url {value} both give {name}'s URL; give one"
            )
        pairs[name] = url
    return pairs
