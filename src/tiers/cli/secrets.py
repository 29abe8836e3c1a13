"""`tiers secrets …`: each tier's secrets, encrypted in the repository (see tiers.secrets)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tiers.cli import app, io

if TYPE_CHECKING:
    from tiers.secrets import Store


def _group() -> typer.Typer:
    """A command group that behaves like tiers' own (``-h``, no markup, help when bare)."""
    return typer.Typer(
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
    )


secrets_app = _group()
app.add_typer(
    secrets_app,
    name="secrets",
    help="Each tier's secrets, encrypted in git: secrets/ENV.yaml beside tiers.toml, in "
    "SOPS's format (the sops command reads it), readable by that tier's age keys only. "
    "Your key: ~/.config/tiers/keys.txt (made by `tiers secrets init`), or SOPS_AGE_KEY / "
    "SOPS_AGE_KEY_FILE (CI).",
)
recipients_app = _group()
secrets_app.add_typer(
    recipients_app,
    name="recipients",
    help="Who can read a tier: the age public keys its data key is wrapped for.",
)

Env = Annotated[str, typer.Argument(metavar="ENV", help="An environment, e.g. staging.")]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The secret, e.g. DATABASE_URL.")]
Key = Annotated[str, typer.Argument(metavar="AGE_PUBLIC_KEY", help="age1…")]


def _store(config: Path) -> Store:
    from tiers.secrets import Store

    return Store.for_config(config)


@secrets_app.command()
def init(environment: Env, config: io.ConfigOption = Path("tiers.toml")) -> None:
    """Make your age key (if you have none) and the tier's file, readable by you.

    Prints your public key; give it to a recipient of a tier that exists already, who
    adds it with `tiers secrets recipients add ENV KEY`.
    """
    store = _store(config)
    own, made_key, made_file = store.init(environment)
    if made_key:
        io.out(f"created your age key in {own.source} (mode 0600: back it up, never commit it)")
    else:
        io.out(f"your age key: {own.source}")
    io.out(f"your public key: {own.public}")
    shown = store.tier(environment).shown
    if made_file:
        io.out(
            f"{environment}: created {shown}, readable by you; add the tier's CI key with "
            f"`tiers secrets recipients add {environment} AGE_PUBLIC_KEY`"
        )
    elif own.public in store.recipients(environment):
        io.out(f"{environment}: {shown} exists, and you are one of its recipients")
    else:
        io.out(
            f"{environment}: {shown} exists; ask one of its recipients to run "
            f"`tiers secrets recipients add {environment} {own.public}`"
        )


@secrets_app.command("set")
def set_(environment: Env, name: Name, config: io.ConfigOption = Path("tiers.toml")) -> None:
    """Set a secret from standard input (`… | tiers secrets set`) or a hidden prompt.

    Never from the command line, where other users and shell history see it. One final
    newline of the input is dropped.
    """
    from tiers.secrets import check_name

    check_name(name)
    store = _store(config)
    store.tier(environment)  # an unknown tier or a missing file, before the prompt
    value = _read_value(f"{environment} {name}")
    change = store.set(environment, {name: value})[name]
    io.out(f"{environment}: {name} {change}")


@secrets_app.command()
def generate(
    names: Annotated[
        list[str], typer.Argument(metavar="ENV NAME | --all NAME", help="Where and what.")
    ],
    every: Annotated[
        bool, typer.Option("--all", help="In every tier you can write, a value of its own.")
    ] = False,
    size: Annotated[int, typer.Option("--bytes", metavar="N", help="Random bytes.")] = 32,
    format: Annotated[
        str,
        typer.Option(
            "--format", help="hex, base64, urlsafe (base64 without padding) or fernet (a key)."
        ),
    ] = "urlsafe",
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """Set a secret to a new random value: a distinct one in each tier.

    `tiers secrets generate --all OAUTH_ENCRYPTION_KEY --format fernet` gives every tier
    you can write its own key. A value already there is replaced.
    """
    from tiers.errors import UsageError
    from tiers.secrets import check_name
    from tiers.secrets.generate import Format, random_value

    if len(names) != (1 if every else 2):
        raise UsageError("give ENV NAME, or --all NAME")
    try:
        kind = Format(format)
    except ValueError:
        raise UsageError(
            f"--format {format}: not a format; use {', '.join(f.value for f in Format)}"
        ) from None
    name = check_name(names[-1])
    random_value(kind, size)  # a bad --bytes is refused before any tier is touched
    store = _store(config)
    if every:
        result = store.generate(store.environments or [], name, lambda: random_value(kind, size))
        for environment, change in result.done.items():
            io.out(f"{environment}: {name} {change}")
        for environment, why in result.skipped.items():
            io.out(f"{environment}: skipped ({why})")
        return
    change = store.set(names[0], {name: random_value(kind, size)})[name]
    io.out(f"{names[0]}: {name} {change}")


@secrets_app.command()
def get(
    environment: Env,
    name: Name,
    config: io.ConfigOption = Path("tiers.toml"),
    json_: io.JsonOption = False,
) -> None:
    """Print one secret's value."""
    from tiers.errors import UsageError

    values = _store(config).values(environment)
    if name not in values:
        have = ", ".join(values) or "none"
        raise UsageError(f"{environment} has no secret {name}; it has: {have}")
    if json_:
        io.out(json.dumps({"environment": environment, "name": name, "value": values[name]}))
    else:
        sys.stdout.write(values[name] + "\n")


@secrets_app.command("ls")
def ls(
    environment: Env,
    config: io.ConfigOption = Path("tiers.toml"),
    json_: io.JsonOption = False,
) -> None:
    """List a tier's secrets: name, when and by whom set, fingerprint. Never values.

    Needs no key: the names and facts are in plaintext beside the encrypted values.
    """
    store = _store(config)
    tier = store.tier(environment)
    entries = tier.entries()
    if json_:
        body = {
            "environment": environment,
            "file": tier.shown,
            "recipients": tier.recipients,
            "secrets": [e.to_json() for e in entries],
        }
        io.out(json.dumps(body, indent=2))
        return
    if not entries:
        io.out(f"{environment}: no secrets yet (tiers secrets set {environment} NAME)")
        return
    rows = [("NAME", "SET", "BY", "FINGERPRINT")]
    rows += [
        (e.name, _when(e.set_at), e.set_by or "-", (e.fingerprint or "-")[:12]) for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        io.out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@secrets_app.command("rm")
def rm(environment: Env, name: Name, config: io.ConfigOption = Path("tiers.toml")) -> None:
    """Remove a secret from a tier."""
    _store(config).remove(environment, name)
    io.out(f"{environment}: {name} removed")


@secrets_app.command()
def edit(environment: Env, config: io.ConfigOption = Path("tiers.toml")) -> None:
    """Edit a tier's secrets in $VISUAL or $EDITOR, as dotenv; they are encrypted again.

    The plaintext lives in a 0600 file in a private temporary folder for as long as the
    editor runs, and is overwritten and removed after.
    """
    from tiers.secrets.edit import edit as run_edit

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    changed = run_edit(_store(config), environment, editor)
    io.out(f"{environment}: {'saved' if changed else 'no changes'}")


@secrets_app.command("import")
def import_(
    environment: Env,
    file: Annotated[Path, typer.Argument(metavar="FILE.env", help="A dotenv file.")],
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """Set every NAME=value of a dotenv file (`export` prefixes and quoted lines taken).

    Read without interpolation: `${HOME}` stays as written. Nothing is set when any
    line is wrong.
    """
    from tiers.secrets.envfiles import read_dotenv_file

    store = _store(config)
    store.tier(environment)
    changes = store.set(environment, read_dotenv_file(file))
    for name, change in changes.items():
        io.out(f"{environment}: {name} {change}")
    if not changes:
        io.out(f"{environment}: {file} sets nothing")


@secrets_app.command()
def export(
    environment: Env,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="dotenv (single-quoted), json, shell (export NAME=…), or docker "
            "(NAME=value for --env-file: no line breaks).",
        ),
    ] = "dotenv",
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """Print a tier's secrets for another tool; what the format cannot hold is refused."""
    from tiers.errors import UsageError
    from tiers.secrets.envfiles import Format, render

    try:
        kind = Format(format)
    except ValueError:
        raise UsageError(
            f"--format {format}: not a format; use {', '.join(f.value for f in Format)}"
        ) from None
    text = render(_store(config).values(environment), kind, environment)
    if text:
        sys.stdout.write(text + "\n")


@secrets_app.command()
def run(
    environment: Env,
    command: Annotated[
        list[str] | None, typer.Argument(metavar="-- CMD…", help="The command to run.")
    ] = None,
    config: io.ConfigOption = Path("tiers.toml"),
) -> None:
    """Run a command with the tier's secrets added to its environment (never its arguments).

    `tiers secrets run staging -- uvicorn app:app`. Exits with the command's exit code.
    """
    from tiers.secrets.run import exec_with

    exec_with(_store(config).values(environment), command or [])


@secrets_app.command()
def apply(
    environment: Env,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for a deploy that holds the lock.")
    ] = False,
    config: io.ConfigOption = Path("tiers.toml"),
    state: io.StateOption = None,
) -> None:
    """Restart ENV's release with the secrets as they are now, with no request failing.

    A new deployment of the commit that serves, through every deploy step; its history
    names the secrets that changed, with their fingerprints (never their values).
    """
    from tiers.cli.deploy import _interrupt_on_sigterm, pipeline_for

    pipeline = pipeline_for(config, state)
    pipeline.environment(environment)
    _interrupt_on_sigterm()
    done, why = pipeline.apply(environment, wait=wait)
    if done is None:
        io.out(why)
        return
    io.out(
        f"{environment}: {done.version} ({(done.commit or '')[:12]}) serves with the "
        f"secrets as they are now; deployment {done.id}"
    )


@secrets_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="An environment.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Another.")],
    config: io.ConfigOption = Path("tiers.toml"),
    json_: io.JsonOption = False,
) -> None:
    """Compare two tiers' secrets by name and fingerprint, without either's key."""
    result = _store(config).diff(a, b)
    if json_:
        io.out(json.dumps(result.to_json(), indent=2))
        return
    lines = [
        (f"only in {a}", result.only_a),
        (f"only in {b}", result.only_b),
        ("the same value in both", result.same),
        ("different values", result.different),
        ("not yet fingerprinted", result.unknown),
    ]
    for label, names in lines:
        if names:
            io.out(f"{label}: {', '.join(names)}")
    if not any(names for _, names in lines):
        io.out(f"{a} and {b} have no secrets")


@secrets_app.command()
def rotate(environment: Env, config: io.ConfigOption = Path("tiers.toml")) -> None:
    """Encrypt the tier's values under a new data key, wrapped for each recipient.

    The values themselves do not change: rotate those that a departed reader knew
    with `tiers secrets generate` or `set`.
    """
    _store(config).rotate(environment)
    io.out(f"{environment}: a new data key; every value re-encrypted")


@recipients_app.command("add")
def recipients_add(
    environment: Env, key: Key, config: io.ConfigOption = Path("tiers.toml")
) -> None:
    """Let one more age key read the tier (a teammate's, or the tier's CI key)."""
    added = _store(config).add_recipient(environment, key)
    io.out(f"{environment}: {key} {'added' if added else 'was a recipient already'}")
    _say_who_reads(config, environment)


def _say_who_reads(config: Path, environment: str) -> None:
    """Warn when a tier is now read by another's key where tiers.toml's shared_readers
    forbids it: the finding `tiers check` will fail on."""
    from tiers.checks import RULES, run
    from tiers.config import load

    others = [rule for rule in RULES if rule != "secret-readable-by-other-tier"]
    for finding in run(*load(config), ignore=others):
        if environment in finding.environments:
            io.error(f"{finding.message} ({finding.rule})", prefix="warning")


@recipients_app.command("rm")
def recipients_rm(environment: Env, key: Key, config: io.ConfigOption = Path("tiers.toml")) -> None:
    """Take an age key off the tier; its values are re-encrypted under a new data key.

    The removed key can still read what git history holds: rotate the values it saw.
    """
    _store(config).remove_recipient(environment, key)
    io.out(
        f"{environment}: {key} removed, and a new data key made; it can still read the "
        "file's history in git: rotate the values it saw (tiers secrets generate/set)"
    )


@recipients_app.command("ls")
def recipients_ls(
    environment: Env, config: io.ConfigOption = Path("tiers.toml"), json_: io.JsonOption = False
) -> None:
    """List the age public keys that can read the tier."""
    recipients = _store(config).recipients(environment)
    if json_:
        io.out(json.dumps({"environment": environment, "recipients": recipients}, indent=2))
    else:
        for recipient in recipients:
            io.out(recipient)


def _read_value(what: str) -> str:
    """A value from standard input, or a hidden prompt on a terminal; never argv."""
    import getpass

    from tiers.errors import UsageError

    if sys.stdin.isatty():
        text = getpass.getpass(f"value of {what} (hidden): ")
    else:
        try:
            text = sys.stdin.buffer.read().decode()
        except UnicodeDecodeError:
            raise UsageError(f"the value of {what} on standard input is not UTF-8 text") from None
        text = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    return text


def _when(stamp: str | None) -> str:
    return stamp.replace("T", " ").replace("Z", " UTC") if stamp else "-"
