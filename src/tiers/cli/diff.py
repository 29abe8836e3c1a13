"""`tiers diff A B`: what two environments serve, compared (see :mod:`tiers.status.drift`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tiers.cli import app, io


@app.command()
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="An environment, e.g. staging.")],
    b: Annotated[
        str,
        typer.Argument(metavar="B", help="The environment to compare it with, e.g. production."),
    ],
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 1 when they drift: other commits, migration heads or services, a "
            "configuration key only one has, or one never deployed (what differs between "
            "tiers by design does not count: values, and a binding's app, project, "
            "branch and URLs).",
        ),
    ] = False,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
    json_: io.JsonOption = False,
) -> None:
    """Compare what A and B last deployed: commits, migrations, services, configuration.

    A report: it exits 0 whenever it could compare, unless --exit-code is given.
    """
    from tiers.config import load
    from tiers.state import StateStore
    from tiers.status import check_environments, render
    from tiers.status import diff as compare

    loaded = load(config).config
    check_environments(loaded, a, b)  # before the state store is opened, or created
    project_dir = config.resolve().parent
    with StateStore.reading(state, project_dir) as store:
        drift = compare(loaded, project_dir, store, a, b)
    io.out(json.dumps(drift.to_json(), indent=2) if json_ else render(drift))
    if exit_code and drift.drifted:
        raise typer.Exit(1)
