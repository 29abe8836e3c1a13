"""What a process is told: the environment variables a service sees in one environment.

Every platform injects the same things: which environment, release version and commit it
runs (as Heroku's dyno metadata or Kamal's KAMAL_VERSION do), the port to listen on, the
facts of the environment under the names the service's ``vars`` gives them, and its plain
``env``. Secrets are not here: their values come from the secrets store.

>>> process_env(config, "staging", "backend", release=Release("2026.1125.1", "abc123"))
... # doctest: +SKIP
{'TIERS_ENVIRONMENT': 'staging', 'TIERS_SERVICE': 'backend', ..., 'DOCKET_URL': 'redis://...'}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tiers.config import Config, Environment
from tiers.config.model import Binding

__all__ = ["Release", "facts", "process_env"]


@dataclass(frozen=True)
class Release:
    version: str
    commit: str


BucketLocation = Callable[[str, str], str]
"""(role, bucket name) → what the code uses to reach it: a name, or a local directory."""


def facts(env: Environment, binding: Binding, bucket: BucketLocation) -> dict[str, str | None]:
    """Every fact a service may read, with its value in ``env`` (None: not known here)."""
    found: dict[str, str | None] = {
        "database_url": env.database.url if env.database else None,
        "redis_url": env.redis.url if env.redis else None,
        "frontend_url": binding.frontend_url,
        "api_url": binding.api_url,
        "namespace": env.namespace,
        "oauth_client_id": env.oauth.client_id if env.oauth else None,
        "oauth_redirect_uri": env.oauth.redirect_uri if env.oauth else None,
        "observability_environment": env.observability.environment if env.observability else None,
    }
    if env.storage:
        for role, name in env.storage.buckets.items():
            found[f"bucket_{role}"] = bucket(role, name)
    return found


def process_env(
    config: Config,
    environment: str,
    service: str,
    *,
    release: Release,
    port: int | None = None,
    bucket: BucketLocation = lambda _role, name: name,
    database_url: str | None = None,
) -> dict[str, str]:
    """The variables a process of ``service`` gets in ``environment``, secrets aside.

    ``database_url`` stands in for the configured one where the platform decides where the
    database lives (a local SQLite file).
    """
    env = config.environments[environment]
    binding = env.services[service]
    known = facts(env, binding, bucket)
    if database_url is not None:
        known["database_url"] = database_url
    out = {
        "TIERS_ENVIRONMENT": environment,
        "TIERS_SERVICE": service,
        "TIERS_VERSION": release.version,
        "TIERS_COMMIT": release.commit,
    }
    if port is not None:
        out["PORT"] = str(port)
    for fact, name in config.services[service].vars.items():
        value = known.get(fact)
        if value is not None:
            out[name] = value
    return {**out, **binding.env}
