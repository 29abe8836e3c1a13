"""Custom domains: which host serves which service, and the cookie scope they share."""

from __future__ import annotations

from dataclasses import dataclass

from tiers.checks import cookie_scope
from tiers.config import Config, Environment
from tiers.docs.labels import noun, provider


@dataclass(frozen=True)
class Host:
    """A host of a tier and what serves it: ``stg.plyr.fm`` → cloudflare pages project."""

    service: str
    host: str
    platform: str
    noun: str
    name: str | None


@dataclass(frozen=True)
class CookieSite:
    """A tier that authenticates with cookies: its hosts and their cookie scope."""

    environment: str
    local: bool
    hosts: list[Host]
    scope: str | None
    cookie: str | None = None


def hosts(config: Config, env: Environment) -> list[Host]:
    """The hosts of ``env`` in services order, each with the platform that serves it.

    >>> hosts(plyr, plyr.environment("staging"))[0].host          # doctest: +SKIP
    'api-stg.plyr.fm'
    """
    found = []
    for name in [*config.services, *(n for n in env.services if n not in config.services)]:
        binding = env.services.get(name)
        if binding and binding.host:
            name_there = binding.resource
            label = provider(binding.platform)
            found.append(Host(name, binding.host, label, noun(binding), name_there))
    return found


def cookie_sites(config: Config) -> list[CookieSite]:
    """Every tier with ``cookie_auth``, with the scope its session cookie can take.

    >>> cookie_sites(plyr)[1].scope                              # doctest: +SKIP
    'Domain=.plyr.fm'
    """
    return [
        CookieSite(env.name, env.local, hosts(config, env), cookie_scope(env), env.cookie_name)
        for env in config.environments.values()
        if env.cookie_auth
    ]
