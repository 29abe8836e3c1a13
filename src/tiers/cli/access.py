"""`tiers access …` and `tiers gate …`: the staging gate (see tiers.gate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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


# -- tiers access explain ----------------------------------------------------------------

AS_HELP = (
    "Who asks: anonymous (the default); email:ADDRESS (signed in with a one-time PIN); "
    "github:USER with any of ,org:ORG ,team:ORG/SLUG ,email:ADDRESS (e.g. "
    "github:ana,org:plyr-fm,team:plyr-fm/core); oidc:SUBJECT with ,group:GROUP "
    ",email:ADDRESS; service:NAME (a service token of the URL's environment)."
)
Url = Annotated[
    str,
    typer.Argument(metavar="URL", help="As a client sends it, e.g. https://api-stg.plyr.fm/docs."),
]


@access_app.command()
def explain(
    url: Url,
    as_: Annotated[str, typer.Option("--as", metavar="IDENTITY", help=AS_HELP)] = "anonymous",
    method: Annotated[str, typer.Option("--method", help="The request's method.")] = "GET",
    config: io.ConfigOption = Path("tiers.toml"),
    json_: io.JsonOption = False,
) -> None:
    """Which rule decides URL, and why: bypass, allow, login or deny.

    The environment is the one URL's host belongs to. The decision is the gate's own
    (the same path normalisation and precedence: the most specific pattern wins, a bypass
    before the whole application between equals); the rules that match are listed most
    specific first. A report: it exits 0 whatever the decision.
    """
    from tiers.config import load
    from tiers.gate.explain import explain as run

    explanation = run(load(config).config, url, as_, method)
    if json_:
        io.out(json.dumps(explanation.to_json(), indent=2))
    else:
        io.out(_render(explanation.to_json()))


def _render(shown: dict[str, Any]) -> str:
    where = f"{shown['host']}{shown['path']}" if shown["host"] else shown["url"]
    lines = [
        f"{shown['environment']}: {shown['method']} {where} as {shown['as']}",
        f"{shown['decision']}: {shown['rule']}",
        f"  {shown['reason']}",
    ]
    if shown["rules"]:
        lines.append("rules that match, most specific first:")
        width = max(len(r["rule"]) for r in shown["rules"])
        for r in shown["rules"]:
            mark = "→" if r["decides"] else " "
            lines.append(f"  {mark} {r['rule']:<{width}}  {r['note']}")
    if shown["allow"]:
        lines.append(f"allow selectors, for {shown['as']}:")
        width = max(len(a["selector"]) for a in shown["allow"])
        for a in shown["allow"]:
            lines.append(f"    {a['selector']:<{width}}  {'matches' if a['matches'] else 'no'}")
    return "\n".join(lines)


# -- tiers access export cloudflare ------------------------------------------------------

export_app = _group()
access_app.add_typer(export_app, name="export", help="The same access rules for another gateway.")


@export_app.command("cloudflare")
def export_cloudflare(
    environment: Annotated[str, typer.Argument(metavar="ENV", help="A protected environment.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the JSON there instead of to stdout."),
    ] = None,
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """ENV's access rules as Cloudflare Access applications, in the API's JSON.

    Each entry of "applications" is the body of POST
    /accounts/{account_id}/access/apps: one application per bypass path (decision
    bypass, include everyone), one protected application with every host of ENV (Allow
    policies from allow, a Service Auth policy for service tokens, session_duration from
    session_hours). Fill in the <identity provider id: …> and <service token id: …>
    placeholders from your account; "notes" says what one login across hosts needs.
    Only environments on public hostnames can be exported (Cloudflare strips ports and
    protects proxied hostnames).
    """
    from tiers.config import load
    from tiers.files import atomic_write
    from tiers.gate.cloudflare import export

    exported = export(load(config).config, environment)
    text = json.dumps(exported, indent=2) + "\n"
    if output is None:
        io.out(text.rstrip("\n"))
        return
    atomic_write(output, text)
    count = len(exported["applications"])
    io.out(
        f"wrote {output}: {count} Cloudflare Access applications for {environment}; replace "
        "its <identity provider id: …> and <service token id: …> placeholders, and read its "
        "notes"
    )
