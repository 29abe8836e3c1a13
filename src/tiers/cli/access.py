"""`tiers access …` and `tiers gate …`: the staging gate (see tiers.gate)."""

from __future__ import annotations

from tiers.cli import app
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
