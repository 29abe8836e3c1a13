"""Every deployed environment declares the secrets it needs, and the tiers agree."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule
from tiers.checks.urls import has_password
from tiers.config import Environment
from tiers.config.source import Key

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")


_RANDOM = re.compile(r"[A-Za-z0-9+/=_-]{24,}")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")


def looks_secret(name: str, value: str, *, by_name: bool = True) -> str | None:
    """Why ``NAME=value`` looks like a secret written down, or None.

    A password in a URL, a name with KEY, TOKEN, SECRET… in it (unless ``by_name`` is
    False), or a value that looks random: 24 or more characters mixing upper case, lower
    case and digits, or 32 or more hex digits (a UUID, with its dashes, is not one).
    """
    if has_password(value):
        return "has a password in its URL"
    if by_name and any(word in name.split("_") for word in SECRET_WORDS):
        return "looks like a secret"
    mixed = all(any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit))
    if (_RANDOM.fullmatch(value) and mixed) or _HEX.fullmatch(value):
        return "holds what looks like a random key"
    return None


def _needs_secrets(ctx: Context, service: str) -> bool:
    known = ctx.config.services.get(service)
    return known is not None and known.kind != "frontend"


@rule(
    "secrets-undeclared",
    "error",
    "A deployed environment declares no secrets",
    'list the names of the secrets the service needs: secrets = ["DATABASE_URL", ...], '
    "or secrets = [] when it needs none",
)
def undeclared(ctx: Context) -> Iterator[Finding]:
    for name, env in ctx.config.environments.items():
        if env.local:
            continue
        for service, binding in env.services.items():
            if _needs_secrets(ctx, service) and binding.secrets is None:
                yield ctx.finding(
                    ("environments", name, service), f"{name} {service} declares no secrets", [name]
                )


@rule(
    "secrets-differ",
    "error",
    "A secret one tier needs is missing from another's list",
    "declare the same secret names in every deployed tier (values differ; names agree); "
    "reference one list from the other with ${environments.production.backend.secrets}",
)
def differ(ctx: Context) -> Iterator[Finding]:
    deployed = [env for env in ctx.config.environments.values() if not env.local]
    for service in ctx.config.services:
        bindings = {e.name: e.services.get(service) for e in deployed}
        lists = {n: set(b.secrets) for n, b in bindings.items() if b and b.secrets is not None}
        wanted = set().union(*lists.values()) if lists else set()
        for name, have in lists.items():
            for missing in sorted(wanted - have):
                others = [n for n, s in lists.items() if missing in s]
                yield ctx.finding(
                    ("environments", name, service, "secrets"),
                    f"{service} needs "
                    f"{missing} in {', '.join(others)} but {name} does not declare it",
                    [name, *others],
                )


def resource_secrets(env: Environment) -> list[tuple[str, Key]]:
    """Secrets the environment's resources are read from, and where each is named."""
    key: Key = ("environments", env.name)
    found: list[tuple[str, Key]] = []
    if env.database and env.database.url_secret:
        found.append((env.database.url_secret, (*key, "database", "url_secret")))
    if env.redis and env.redis.url_secret:
        found.append((env.redis.url_secret, (*key, "redis", "url_secret")))
    if env.observability and env.observability.token_secret:
        found.append((env.observability.token_secret, (*key, "observability", "token_secret")))
    if env.storage:
        for i, name in enumerate(env.storage.credentials):
            found.append((name, (*key, "storage", "credentials", i)))
    return found


@rule(
    "secret-not-provided",
    "error",
    "A resource is read from a secret no service of the environment declares",
    "add the secret's name to the secrets of the service that connects to the resource",
)
def not_provided(ctx: Context) -> Iterator[Finding]:
    for env in ctx.config.environments.values():
        declared = [b.secrets for b in env.services.values() if b.secrets is not None]
        if env.local or not declared:
            continue  # a local tier reads .env; undeclared lists are reported on their own
        have = set().union(*declared)
        for name, key in resource_secrets(env):
            if name not in have:
                message = f"{env.name} reads {key[2]} from {name}, which no service there declares"
                yield ctx.finding(key, message, [env.name])


@rule(
    "secret-in-config",
    "error",
    "A secret value is written in tiers.toml",
    "move the value to the tier's secrets (tiers secrets set ENV NAME) and name it in "
    "secrets (or use url_secret); tiers.toml is committed and shown in documents",
)
def in_config(ctx: Context) -> Iterator[Finding]:
    for env in ctx.config.environments.values():
        key: Key = ("environments", env.name)
        for what in ("database", "redis"):
            resource = getattr(env, what)
            if resource is not None and resource.url and has_password(resource.url):
                message = f"{env.name} {what}.url has a password in it"
                yield ctx.finding((*key, what, "url"), message, [env.name])
        for service, binding in env.services.items():
            for name, value in binding.env.items():
                why = looks_secret(name, value)
                if not why:
                    continue
                message = f"{env.name} {service} env {name} {why}"
                yield ctx.finding((*key, service, "env", name), message, [env.name])
