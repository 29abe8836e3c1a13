"""The workflow section: how each tier is run or deployed, and how a release is cut."""

from __future__ import annotations

import itertools
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from tiers.config import Binding, Config, Environment, Service
from tiers.docs import table
from tiers.docs.labels import noun, provider
from tiers.platforms.options import installed

# A fixed moment, so the example version in the document never changes between runs.
_EXAMPLE_TIME = datetime(2026, 11, 25, 14, 30, 15, tzinfo=UTC)


@dataclass(frozen=True)
class Process:
    """A process to start for local development."""

    service: str
    name: str
    command: str
    terminal: int | None
    """Which terminal it runs in; None for an optional process."""


@dataclass(frozen=True)
class Resource:
    """A resource a tier connects to: ``database``, ``["plyr-stg"]``, ``neon``."""

    kind: str
    names: list[str]
    provider: str | None = None


@dataclass(frozen=True)
class Deploy:
    """How one service reaches one deployed tier."""

    service: str
    kind: str
    platform: str
    noun: str
    name: str | None
    branch: str | None
    build: str | None
    release_command: str | None
    url: str | None
    platform_url: str | None
    api_var: str | None
    api_url: str | None
    docs_url: str | None
    missing: str | None = None
    """The platform, when no driver for it is installed here: tiers cannot deploy it."""


@dataclass(frozen=True)
class Tier:
    """One environment as the workflow section shows it."""

    name: str
    kind: str
    trigger: str
    branch: str | None
    processes: list[Process] = field(default_factory=list)
    deploys: list[Deploy] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Release:
    """How a production release is cut (``[project.release]``)."""

    branch: str
    version: str
    """The tag pattern: the prefix, then the strftime scheme."""
    example: str
    remote: str
    via: str


def tiers(config: Config) -> list[Tier]:
    """Every environment, in promotion order, with what the workflow section says of it.

    >>> [t.trigger for t in tiers(plyr)]                         # doctest: +SKIP
    ['local', 'push to main', 'github release']
    """
    drivers = installed()
    return [_tier(config, env, drivers) for env in config.environments.values()]


def _tier(config: Config, env: Environment, drivers: Container[str]) -> Tier:
    bound = [(n, config.services[n], b) for n, b in env.services.items() if n in config.services]
    local = env.trigger.kind == "local"
    return Tier(
        name=env.name,
        kind=env.trigger.kind,
        trigger=env.trigger.describe(),
        branch=env.trigger.branch,
        processes=_processes(bound) if local else [],
        deploys=[] if local else [_deploy(n, s, b, drivers) for n, s, b in bound],
        resources=resources(env),
        urls={n: b.url for n, _, b in bound if b.url},
    )


def _processes(services: list[tuple[str, Service, Binding]]) -> list[Process]:
    # Required processes first, one terminal each; optional ones after, unnumbered.
    found = [
        (s.optional, n, p, _with_port(cmd, b))
        for n, s, b in services
        for p, cmd in (s.dev or s.processes).items()
    ]
    found.sort(key=lambda item: item[0])
    terminals = itertools.count(1)
    return [Process(n, p, cmd, None if opt else next(terminals)) for opt, n, p, cmd in found]


def _with_port(command: str, binding: Binding) -> str:
    """``--port $PORT`` → ``--port 8001`` when the local binding's URL says the port."""
    port = urlsplit(binding.url).port if binding.url else None
    return command.replace("$PORT", str(port)) if port else command


def _deploy(name: str, service: Service, binding: Binding, drivers: Container[str]) -> Deploy:
    return Deploy(
        service=name,
        kind=service.kind,
        platform=provider(binding.platform),
        noun=noun(binding),
        name=binding.resource,
        branch=binding.branch,
        build=service.build,
        release_command=service.release_command,
        url=binding.url,
        platform_url=binding.platform_url,
        api_var=service.vars.get("api_url"),
        api_url=binding.api_url,
        docs_url=f"{binding.url}{service.docs}" if binding.url and service.docs else None,
        missing=None if binding.platform in drivers else binding.platform,
    )


def resources(env: Environment) -> list[Resource]:
    """What an environment connects to: database, Redis, buckets, namespace.

    >>> resources(plyr.environment("staging"))[0]                # doctest: +SKIP
    Resource(kind='database', names=['plyr-stg'], provider='neon')
    """
    found: list[Resource] = []
    if env.database:
        found.append(Resource("database", [env.database.name], provider(env.database.provider)))
    if env.redis:
        shown = table.redis_name(env.redis)
        found.append(Resource("redis", [shown], provider(env.redis.provider)))
    if env.storage:
        buckets = list(env.storage.buckets.values())
        found.append(Resource("storage", buckets, provider(env.storage.provider)))
    if env.namespace:
        found.append(Resource("namespace", [env.namespace]))
    return found


def release(config: Config) -> Release:
    """The release settings, with an example version cut at a fixed moment.

    >>> release(plyr).example                                    # doctest: +SKIP
    '2026.1125.143015'
    """
    settings = config.project.release
    example = settings.tag_prefix + _EXAMPLE_TIME.strftime(settings.version)
    version = settings.tag_prefix + settings.version
    sources = {
        e.trigger.source for e in config.environments.values() if e.trigger.kind == "release"
    }
    via = "github" if "github" in sources else "tag"
    return Release(settings.branch, version, example, settings.remote, via)
