"""What the secrets store holds agrees with the tiers: every needed value set, none shared,
each tier read only by whom tiers.toml allows.

Names, fingerprints and recipients are read without any key. Values are decrypted only for
tiers an identity held here opens; of a tier nobody here can read, nothing is claimed.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from dotenv.parser import parse_stream

from tiers import git
from tiers.checks import secretfiles
from tiers.checks.registry import Context, Finding, rule
from tiers.checks.rules.secrets import looks_secret
from tiers.checks.urls import database_identity, redis_identity, shown
from tiers.config import Environment

TEMPLATE_WORDS = ("example", "sample", "template", "dist")
DOTENV_PATTERNS = (".env", ".env.*", "*.env", "**/.env", "**/.env.*", "**/*.env")


@rule(
    "secret-missing",
    "error",
    "A secret a tier needs has no value in that tier's store",
    "set a value in each tier: tiers secrets set ENV NAME (read from stdin) or tiers secrets "
    "generate ENV NAME (random); a tier with no secrets file needs tiers secrets init ENV first",
)
def missing(ctx: Context) -> Iterator[Finding]:
    if secretfiles.project_dir(ctx) is None:
        return  # no store to read: nothing is claimed
    for env in ctx.config.environments.values():
        if env.local:
            continue  # a local tier reads .env
        have = secretfiles.entries(ctx, env.name)
        names = {entry.name for entry in have or []}
        for name, key in secretfiles.needed(env).items():
            if name in names:
                continue
            if have is None:
                why = (
                    f"{secretfiles.shown(env.name)} does not exist: run `tiers secrets init "
                    f"{env.name}`, then `tiers secrets set {env.name} {name}`"
                )
            else:
                why = (
                    f"{secretfiles.shown(env.name)} has no value for it: "
                    f"run `tiers secrets set {env.name} {name}`"
                )
            message = f"{env.name} needs {name} but {why}"
            yield ctx.finding(key, message, [env.name])


@rule(
    "secret-reused",
    "error",
    "Two tiers hold the same secret value",
    "give each tier a value of its own: tiers secrets generate --all NAME (or tiers secrets "
    "set ENV NAME in one of them); a value two tiers share lets one act as the other",
)
def reused(ctx: Context) -> Iterator[Finding]:
    holders: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for env in _in_order(ctx):
        for entry in secretfiles.entries(ctx, env.name) or []:
            if entry.fingerprint:
                holders[entry.fingerprint].append((env.name, entry.name))
    for held in holders.values():
        tiers = list(dict.fromkeys(env for env, _ in held))
        if len(tiers) < 2:
            continue
        names = " and ".join(f"{env}'s {name}" for env, name in held)
        last, name = held[-1]
        key = secretfiles.needed(ctx.config.environments[last]).get(name, ("environments", last))
        yield ctx.finding(key, f"{names} hold the same value", tiers)


@rule(
    "secret-names-other-tier",
    "error",
    "A secret's value connects to another tier's database or Redis",
    "set the tier's own connection string: tiers secrets set ENV NAME; checked only in the "
    "tiers whose secrets a key held here can read",
)
def names_other_tier(ctx: Context) -> Iterator[Finding]:
    envs = _in_order(ctx)
    claims = {env.name: _claims(env) for env in envs}
    earlier: dict[str, tuple[str, str]] = {}  # what earlier tiers' readable secrets connect to
    for env in envs:
        values = secretfiles.readable(ctx, env.name) or {}
        flagged = set()
        for name, value in values.items():
            theirs = [i for i in _identities(value) if i not in claims[env.name]]
            owners = [(o, owned[i]) for i in theirs for o, owned in claims.items() if i in owned]
            owners += [earlier[i] for i in theirs if i in earlier]
            if owners:
                flagged.add(name)
                other, what = owners[0]
                key = secretfiles.needed(env).get(name, ("environments", env.name))
                message = f"{env.name}'s {name} connects to {other}'s {what}"
                yield ctx.finding(key, message, [env.name, other])
        for name in [n for n in _connection_secrets(env) if n not in flagged]:
            for identity in _identities(values.get(name, "")):
                if not identity.startswith("dbname:"):  # a name alone: neondb is everyone's
                    earlier.setdefault(identity, (env.name, f"database or Redis (its {name})"))


def _connection_secrets(env: Environment) -> list[str]:
    """The secrets the environment's own database and Redis are read from."""
    names = [env.database.url_secret if env.database else None]
    names.append(env.redis.url_secret if env.redis else None)
    return [name for name in names if name]


@rule(
    "secret-readable-by-other-tier",
    "error",
    "A tier's secrets are readable by a recipient of another tier that tiers.toml does not allow",
    "take the key off the tier: tiers secrets recipients rm ENV KEY (the values get a new data "
    "key it never saw, but it may have read them: set new ones, tiers secrets generate ENV "
    "NAME); or, if that key may read both tiers, list it in environments.ENV.shared_readers",
)
def readable_by_other_tier(ctx: Context) -> Iterator[Finding]:
    """Read from each file's recipients, in plaintext: no key is needed to judge it."""
    readers = {env.name: secretfiles.recipients(ctx, env.name) for env in _in_order(ctx)}
    for env in _in_order(ctx):
        if env.shared_readers is None:
            continue  # tiers.toml says nothing of who reads this tier
        for recipient in readers[env.name]:
            if recipient in env.shared_readers:
                continue
            others = [o for o, theirs in readers.items() if o != env.name and recipient in theirs]
            if others:
                message = (
                    f"{env.name}'s secrets ({secretfiles.shown(env.name)}) are readable by "
                    f"{recipient}, a recipient of {' and '.join(others)}, which "
                    f"environments.{env.name}.shared_readers does not list: run `tiers "
                    f"secrets recipients rm {env.name} {recipient}`"
                )
                key = ("environments", env.name, "shared_readers")
                yield ctx.finding(key, message, [env.name, *others])


@rule(
    "secret-in-dotenv",
    "error",
    "A secret value is in a dotenv file git tracks",
    "remove the value from the file and from git (git rm --cached FILE; add it to "
    ".gitignore), then keep it in the store: tiers secrets import ENV FILE; a template "
    "such as .env.example may stay, with empty values or placeholders",
)
def in_dotenv(ctx: Context) -> Iterator[Finding]:
    root = secretfiles.project_dir(ctx)
    if root is None:
        return
    for relative in git.tracked(root, *DOTENV_PATTERNS):
        path = root / relative
        for line, name, why in _dotenv_secrets(path):
            message = f"{relative}:{line}: {name} {why}, and git tracks the file"
            yield ctx.finding(("project",), message)


def _dotenv_secrets(path: Path) -> Iterator[tuple[int, str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    # a template's placeholders (SECRET_KEY=changeme) are names, not secrets
    template = any(word in path.name.lower() for word in TEMPLATE_WORDS)
    for binding in parse_stream(io.StringIO(text)):
        if binding.key and binding.value:
            why = looks_secret(binding.key, binding.value, by_name=not template)
            if why:
                yield binding.original.line, binding.key, why


def _in_order(ctx: Context) -> list[Environment]:
    return [ctx.config.environments[name] for name in ctx.config.order]


def _identities(value: str) -> list[str]:
    found = []
    if "://" in value:
        if database_identity(value) != value:
            found.append(f"db:{database_identity(value)}")
            found.append(f"dbname:{urlsplit(value).path.strip('/')}")
        if value.lower().startswith(("redis://", "rediss://", "unix://")):
            found.append(f"redis:{redis_identity(value)}")
    return found


def _claims(env: Environment) -> dict[str, str]:
    """The environment's database and Redis, as ``_identities`` spells them → as shown."""
    owned: dict[str, str] = {}
    if env.database and env.database.url:
        owned[f"db:{database_identity(env.database.url)}"] = f"database {shown(env.database.url)}"
    if env.database and env.database.name:
        owned[f"dbname:{env.database.name}"] = f"database {env.database.name}"
    if env.redis and env.redis.url:
        owned[f"redis:{redis_identity(env.redis.url)}"] = f"Redis {shown(env.redis.url)}"
    return owned
