"""Running the deployed tiers: migrations, rollback, monitoring and the one-line summary."""

from __future__ import annotations

from dataclasses import dataclass

from tiers.config import Config, Environment
from tiers.docs.labels import logs_command, provider


@dataclass(frozen=True)
class Migration:
    """A service that migrates its database before a new version goes live in a tier."""

    environment: str
    service: str
    command: str
    platform: str


@dataclass(frozen=True)
class Rollback:
    """What to do in a tier when a migration fails."""

    environment: str
    kind: str
    branch: str | None
    downgrades: list[str]
    database: str | None


@dataclass(frozen=True)
class Monitor:
    """Where a tier's telemetry and logs are read."""

    environment: str
    provider: str | None
    observed: str | None
    variable: str | None
    logs: dict[str, str]


@dataclass(frozen=True)
class Summary:
    """What one trigger deploys, and where users see it."""

    trigger: str
    environment: str
    services: list[str]
    hosts: list[str]


def deployed(config: Config) -> list[Environment]:
    """The environments that are deployed rather than run locally, in promotion order.

    >>> [env.name for env in deployed(plyr)]                     # doctest: +SKIP
    ['staging', 'production']
    """
    return [env for env in config.environments.values() if env.trigger.kind != "local"]


def migrations(config: Config) -> list[Migration]:
    """Every deployed service with a ``release_command``, tier by tier.

    >>> migrations(plyr)[0].command                              # doctest: +SKIP
    'uv run alembic upgrade head'
    """
    return [
        Migration(env.name, name, service.release_command, provider(binding.platform))
        for env in deployed(config)
        for name, binding in env.services.items()
        if (service := config.services.get(name)) and service.release_command
    ]


def migration_files(config: Config) -> list[str]:
    """The migration globs of every service (changes there are announced before a deploy).

    >>> migration_files(plyr)                                    # doctest: +SKIP
    ['backend/alembic/versions/**']
    """
    return [glob for service in config.services.values() for glob in service.migrations]


def rollbacks(config: Config) -> list[Rollback]:
    """For each tier that migrates: how to recover when a migration fails.

    >>> rollbacks(plyr)[1].downgrades                            # doctest: +SKIP
    ['uv run alembic downgrade -1']
    """
    found: dict[str, list[str]] = {}
    for migration in migrations(config):
        step = downgrade(migration.command)
        found.setdefault(migration.environment, []).extend([step] if step else [])
    return [_rollback(config.environment(name), steps) for name, steps in found.items()]


def _rollback(env: Environment, steps: list[str]) -> Rollback:
    database = provider(env.database.provider) if env.database else None
    return Rollback(env.name, env.trigger.kind, env.trigger.branch, steps, database)


def downgrade(command: str) -> str | None:
    """The command that reverts the last migration, for migration tools tiers knows.

    >>> downgrade("uv run alembic upgrade head")
    'uv run alembic downgrade -1'
    """
    if "alembic upgrade head" in command:
        return command.replace("alembic upgrade head", "alembic downgrade -1")
    return None


def monitors(config: Config) -> list[Monitor]:
    """Per deployed tier: the observability environment to filter on, and log commands.

    >>> monitors(plyr)[0].logs                                   # doctest: +SKIP
    {'backend': 'flyctl logs -a relay-api-staging'}
    """
    found = [_monitor(config, env) for env in deployed(config)]
    return [m for m in found if m.observed or m.logs]


def _monitor(config: Config, env: Environment) -> Monitor:
    logs = {name: cmd for name, b in env.services.items() if (cmd := logs_command(b))}
    seen = env.observability
    variables = [
        service.vars["observability_environment"]
        for name, service in config.services.items()
        if name in env.services and "observability_environment" in service.vars
    ]
    return Monitor(
        environment=env.name,
        provider=seen.provider if seen else None,
        observed=seen.environment if seen else None,
        variable=variables[0] if variables else None,
        logs=logs,
    )


def summary(config: Config) -> list[Summary]:
    """One line per deployed tier: its trigger, what it deploys, the frontends' hosts.

    >>> summary(plyr)[0]                                         # doctest: +SKIP
    Summary(trigger='push to main', environment='staging', services=[...], hosts=['stg.plyr.fm'])
    """
    return [_summary(config, env) for env in deployed(config)]


def _summary(config: Config, env: Environment) -> Summary:
    names = [n for n in config.services if n in env.services]
    hosts = [
        host
        for n in names
        if config.services[n].kind == "frontend" and (host := env.services[n].host)
    ]
    return Summary(env.trigger.describe(), env.name, names, hosts)
