"""`tiers access …` and `tiers gate …`: the staging gate (see tiers.gate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tiers.cli import app, io
from tiers.cli.secrets import _group

if TYPE_CHECKING:
    from tiers.gate.store import AccessStore

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
    help="The access gate itself: `tiers gate serve` runs it, `tiers gate caddyfile` puts it "
    "in front of any upstream.",
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


Env = Annotated[str, typer.Argument(metavar="ENV", help="A protected environment, e.g. staging.")]
token_app = _group()
access_app.add_typer(
    token_app,
    name="token",
    help="Service tokens for CI and uptime monitors: sent as the Tiers-Access-Client-Id "
    "and Tiers-Access-Client-Secret headers.",
)


def _access(
    config: Path, environment: str, state: str | None, *, read: bool = False
) -> tuple[AccessStore, Path]:
    from tiers.config import load
    from tiers.gate.core import protected
    from tiers.gate.store import AccessStore
    from tiers.state import StateStore

    protected(load(config).config, environment)
    project_dir = config.resolve().parent
    # a read where nothing was ever recorded does not create the state database
    store = (StateStore.reading if read else StateStore.open)(state, project_dir)
    return AccessStore(store.engine, environment, store.url), project_dir


@token_app.command("create")
def token_create(
    environment: Env,
    name: Annotated[str, typer.Argument(metavar="NAME", help="What uses it, e.g. ci.")],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h, 2w; default never.")
    ] = None,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
    json_output: io.JsonOption = False,
) -> None:
    """Make a service token; its secret is shown this once (the store keeps a hash)."""
    from tiers.gate.tokens import create, parse_duration

    lifetime = parse_duration(expires) if expires else None
    store, _ = _access(config, environment, state)
    client_id, secret = create(store, name, lifetime)
    if json_output:
        io.out(json.dumps({"name": name, "client_id": client_id, "client_secret": secret}))
        return
    # Printed as is: the one time this secret is shown, to be put in CI's secrets.
    print(f"Tiers-Access-Client-Id: {client_id}")
    print(f"Tiers-Access-Client-Secret: {secret}")
    io.error(
        f"{environment}: token {name} created; the secret is shown this once, keep it in "
        "your CI's secrets",
        prefix="note",
    )


@token_app.command("ls")
def token_ls(
    environment: Env,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
    json_output: io.JsonOption = False,
) -> None:
    """The environment's service tokens: name, client id, state, expiry, last use."""
    store, _ = _access(config, environment, state, read=True)
    tokens = [token.to_json() for token in store.tokens()]
    if json_output:
        io.out(json.dumps(tokens, indent=2))
        return
    if not tokens:
        io.out(f"{environment}: no service tokens (make one with `tiers access token create`)")
    for t in tokens:
        until = t["expires_at"] or "never"
        used = t["last_used_at"] or "never"
        io.out(f"{t['name']}  {t['client_id']}  {t['state']}  expires {until}  last used {used}")


@token_app.command("revoke")
def token_revoke(
    environment: Env,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Revoke a token: the gate refuses it within two seconds."""
    from tiers.errors import UsageError

    store, _ = _access(config, environment, state)
    if not store.revoke_token(name):
        raise UsageError(
            f"{environment} has no live token called {name} "
            f"(see `tiers access token ls {environment}`)"
        )
    store.event("token-revoked", f"service:{name}", method="token")
    io.out(f"{environment}: token {name} revoked")


@access_app.command("rotate-keys")
def rotate_keys(
    environment: Env,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Sign the gate's identity assertions with a new key from now on. A running gate
    takes it within a second or two; the previous key stays published at
    /.tiers/access/certs for one assertion lifetime, so origins keep accepting what it
    signed."""
    from tiers.gate.assertion import LIFETIME, Keys
    from tiers.gate.secret import gate_dir

    store, project_dir = _access(config, environment, state)
    kid = Keys(gate_dir(project_dir / ".tiers", environment) / "keys.json").rotate()
    store.event("keys-rotated", detail=f"new key {kid}")
    io.out(
        f"{environment}: the gate signs with key {kid} from now on; the previous key stays "
        f"published for {LIFETIME // 60} minutes"
    )


@access_app.command("log")
def log(
    environment: Env,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="How many events, newest first.")
    ] = 50,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
    json_output: io.JsonOption = False,
) -> None:
    """What the gate recorded: logins, failures, logouts, codes sent, token uses."""
    store, _ = _access(config, environment, state, read=True)
    events = store.events(limit=limit)
    if json_output:
        io.out(json.dumps([event.to_json() for event in events], indent=2))
        return
    if not events:
        io.out(f"{environment}: no access events yet")
    for e in events:
        parts = [e.at.isoformat(timespec="seconds"), e.kind, e.identity or "-"]
        parts += [f"via {e.method}"] if e.method else []
        parts += [f"from {e.client}"] if e.client else []
        parts += [f"({e.detail})"] if e.detail else []
        io.out("  ".join(parts))


@access_app.command("mailbox")
def mailbox(
    environment: Env,
    config: io.ConfigOption = Path("tiers.toml"),
    json_output: io.JsonOption = False,
) -> None:
    """The local mailbox: the sign-in codes the gate sent without access.smtp."""
    from tiers.config import load
    from tiers.gate.core import protected
    from tiers.gate.otp import mailbox_messages

    env = protected(load(config).config, environment)
    maildir = config.resolve().parent / ".tiers" / "gate" / environment / "mail"
    messages = mailbox_messages(maildir)
    if json_output:
        io.out(json.dumps(messages, indent=2))
        return
    if env.access.smtp is not None:
        io.error(
            f"{environment} sends codes through {env.access.smtp.host} (access.smtp)", prefix="note"
        )
    if not messages:
        io.out(f"{environment}: the mailbox {maildir} is empty")
    for m in messages:
        io.out(f"{m['at']}  to {m['to']}  code {m['code']}  {m['subject']}")


@gate_app.command("serve")
def serve(
    environment: Env,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT; a loopback address unless --public.")
    ] = "127.0.0.1:8100",
    verify_listen: Annotated[
        str | None,
        typer.Option(
            "--verify-listen",
            help="HOST:PORT of a second listener answering /verify only, with less "
            "per-request work (what the local platform points Caddy's forward_auth at).",
        ),
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Allow a non-loopback --listen address.")
    ] = False,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Run the environment's gate: Caddy's forward_auth target (/verify) and its login
    pages (/.tiers/access/…), until interrupted."""
    from tiers.gate.serve import serve as run

    run(config, environment, listen, verify_listen, public=public, state_url=state)


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


@gate_app.command("caddyfile")
def caddyfile(
    environment: Env,
    upstream: Annotated[
        list[str],
        typer.Option(
            "--upstream",
            metavar="SERVICE=HOST:PORT",
            help="Where a service of the environment listens; once per service.",
        ),
    ],
    gate: Annotated[
        str, typer.Option("--gate", metavar="HOST:PORT", help="Where `tiers gate serve` listens.")
    ] = "127.0.0.1:8100",
    verify: Annotated[
        str | None,
        typer.Option(
            "--verify",
            metavar="HOST:PORT",
            help="Where the gate's --verify-listen listener is, for forward_auth.",
        ),
    ] = None,
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """Print the Caddyfile that puts `tiers gate serve` in front of any upstream: identity
    headers stripped, the gate's pages routed to it, forward_auth on everything else."""
    from tiers.config import load
    from tiers.errors import UsageError
    from tiers.gate.caddyfile import caddyfile as render
    from tiers.gate.core import protected

    loaded = load(config).config
    protected(loaded, environment)
    pairs: dict[str, str] = {}
    for item in upstream:
        name, equals, address = item.partition("=")
        if not equals or not name or ":" not in address:
            raise UsageError(
                f"--upstream {item!r}: expected SERVICE=HOST:PORT, like backend=127.0.0.1:9000"
            )
        pairs[name] = address
    io.out(render(loaded.environments[environment], gate, pairs, verify).rstrip("\n"))
