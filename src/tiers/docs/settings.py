"""Configuration: what each platform is told, which variables carry which facts, and the
names of the secrets each tier needs (names only: values never reach the document)."""

from __future__ import annotations

from dataclasses import dataclass

from tiers.config import Binding, Config, Environment, Service
from tiers.config.model import redact
from tiers.docs.labels import noun, provider
from tiers.platforms.options import Vm
from tiers.platforms.runtime import facts


@dataclass(frozen=True)
class Site:
    """One binding of a service on a platform: which tier, which app or project."""

    environment: str
    name: str | None
    branch: str | None
    host: str | None
    api_url: str | None
    vm: str | None = None
    """The VM of each process group, as the document writes it (``shared-cpu-1x, 256mb``)."""


@dataclass(frozen=True)
class Platform:
    """One service on one platform, across the tiers that run it there."""

    service: Service
    name: str
    platform: str
    noun: str
    has_secrets: bool
    sites: list[Site]


@dataclass(frozen=True)
class Value:
    """A variable's value in one tier; ``secret`` means ``value`` names the secret."""

    environment: str
    value: str
    secret: bool


@dataclass(frozen=True)
class Var:
    """An environment variable a service reads, and what it carries in each tier."""

    name: str
    fact: str
    values: list[Value]


@dataclass(frozen=True)
class SecretSet:
    """The names of the secrets one service needs in one tier."""

    environment: str
    service: str
    names: list[str]


FACTS = {
    "database_url": "database connection string",
    "redis_url": "Redis URL",
    "frontend_url": "frontend URL (allowed by CORS)",
    "api_url": "backend URL the frontend calls",
    "namespace": "namespace (separates records by environment)",
    "oauth_client_id": "OAuth client id",
    "oauth_redirect_uri": "OAuth redirect URI",
    "observability_environment": "observability environment",
}
"""What each fact of an environment is, in the words of the document."""


def platforms(config: Config) -> list[Platform]:
    """Each service's deployed bindings, grouped by platform, in services order.

    >>> [(p.name, p.platform) for p in platforms(plyr)]          # doctest: +SKIP
    [('backend', 'fly.io'), ('frontend', 'cloudflare pages')]
    """
    found: dict[tuple[str, str], list[tuple[Environment, Binding]]] = {}
    for name in config.services:
        for env in config.environments.values():
            binding = env.services.get(name)
            if binding and binding.platform != "local":
                found.setdefault((name, binding.platform), []).append((env, binding))
    return [_platform(config.services[n], n, p, pairs) for (n, p), pairs in found.items()]


def _platform(
    service: Service, name: str, platform: str, pairs: list[tuple[Environment, Binding]]
) -> Platform:
    sites = [
        Site(e.name, b.resource, b.branch, b.host, b.api_url, _vm(service, b)) for e, b in pairs
    ]
    return Platform(
        service=service,
        name=name,
        platform=provider(platform),
        noun=noun(pairs[0][1]),
        has_secrets=any(b.secrets for _, b in pairs),
        sites=sites,
    )


def _vm(service: Service, binding: Binding) -> str | None:
    """``shared-cpu-1x, 256mb`` for every group alike, else group by group."""
    every = binding.option("vm", Vm)
    if every is None:
        return None
    shown: dict[str, str] = {}
    for group in list(service.processes) or [""]:
        vm = every.of(group)
        count = f"{vm.count} VMs" if vm.count else None
        shown[group] = ", ".join(filter(None, (vm.size, vm.memory, count))) or "the default"
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return "; ".join(f"`{group}` {text}" for group, text in shown.items())


def variables(config: Config) -> dict[str, list[Var]]:
    """By service: each variable it reads (``vars``) and its value in every tier.

    >>> variables(plyr)["backend"][1].values[0]                   # doctest: +SKIP
    Value(environment='development', value='redis://localhost:6379', secret=False)
    """
    found: dict[str, list[Var]] = {}
    for name, service in config.services.items():
        rows = [_var(config, name, fact, var) for fact, var in service.vars.items()]
        rows += _plain(config, name)
        if rows:
            found[name] = rows
    return found


def _plain(config: Config, service: str) -> list[Var]:
    # Plain configuration from the bindings' ``env`` tables, variable by variable.
    values: dict[str, list[Value]] = {}
    for env in config.environments.values():
        binding = env.services.get(service)
        for key, value in (binding.env if binding else {}).items():
            values.setdefault(key, []).append(Value(env.name, value, secret=False))
    return [Var(key, "configuration", found) for key, found in values.items()]


def _var(config: Config, service: str, fact: str, var: str) -> Var:
    values = [
        _value(env, binding, fact)
        for env in config.environments.values()
        if (binding := env.services.get(service)) is not None
    ]
    label = FACTS.get(fact) or f"the {fact.removeprefix('bucket_')} bucket"
    return Var(var, label, [v for v in values if v is not None])


def _value(env: Environment, binding: Binding, fact: str) -> Value | None:
    if fact in ("database_url", "redis_url"):
        source = env.database if fact == "database_url" else env.redis
        if source is None:
            return None
        if source.url:
            return Value(env.name, redact(source.url), secret=False)
        return Value(env.name, source.url_secret or "", secret=True)
    plain = facts(env, binding, lambda _role, name: name).get(fact)
    return Value(env.name, plain, secret=False) if plain else None


def secret_sets(config: Config) -> list[SecretSet]:
    """The secret names each deployed service needs, tier by tier (never their values).

    >>> secret_sets(plyr)[0].names[:2]                            # doctest: +SKIP
    ['DATABASE_URL', 'OAUTH_ENCRYPTION_KEY']
    """
    return [
        SecretSet(env.name, name, list(binding.secrets or []))
        for env in config.environments.values()
        for name, binding in env.services.items()
        if binding.secrets
    ]
