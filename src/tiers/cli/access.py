"""`tiers access …` and `tiers gate …`: the staging gate (see tiers.gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiers.cli import app, io
from tiers.cli.secrets import _group

access_app = _group()
app.add_typer(
    access_app,
    name="access",
    help="Who may reach a protected environment: explain a decision, probe the running "
    "gate, read its log, manage service tokens, export the rules to Cloudflare Access.",
)
gate_app = _group()
app.add_typer(
    gate_app,
    name="gate",
    help="The access gate itself: `tiers gate serve` fronts any upstream.",
)


# -- tiers access doctor ---------------------------------------------------------------------


@access_app.command()
def doctor(
    environment: Annotated[str, typer.Argument(help="The protected environment to probe.")],
    config: io.ConfigOption = Path("tiers.toml"),
    json_: io.JsonOption = False,
) -> None:
    """Probe the running environment from outside: protected paths answer with the login,
    bypass paths without it, the gate's page answers, and nothing reaches the app around
    the gate. Exits 1 when a probe fails."""
    import json

    from tiers.config import load
    from tiers.errors import OperationError
    from tiers.gate.doctor import diagnose

    report = diagnose(load(config).config, config.resolve().parent, environment)
    if json_:
        io.out(json.dumps(report.to_json(), indent=2))
    else:
        for probe in report.probes:
            io.out(probe.line())
    failed = [p for p in report.probes if not p.ok]
    if failed:
        raise OperationError(
            f"{environment}: {len(failed)} of {len(report.probes)} probes failed (see above)"
        )
    if not json_:
        io.out(f"{environment}: all {len(report.probes)} probes pass")
