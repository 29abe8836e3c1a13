"""Nothing that holds data or identity is shared by two environments."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from tiers.checks.registry import Context, Finding, rule
from tiers.checks.sites import HOST_PREFIX, cookie_scope
from tiers.checks.urls import (
    database_identity,
    database_server,
    has_password,
    redis_identity,
    shown,
)
from tiers.config import Environment, host_of
from tiers.config.source import Key

# A resource claim: what identifies the resource, how to say it, and where it is written.
Claim = tuple[str, str, Key]


def _shared(
    ctx: Context, what: str, claims: Callable[[Environment], list[Claim]]
) -> Iterator[Finding]:
    owners: dict[str, list[tuple[str, str, Key]]] = defaultdict(list)
    for name, env in ctx.config.environments.items():
        for identity, label, key in claims(env):
            owners[identity].append((name, label, key))
    reported: set[tuple[str, ...]] = set()  # one finding per set of environments
    for users in owners.values():
        envs = list(dict.fromkeys(name for name, _, _ in users))
        if len(envs) < 2 or tuple(envs) in reported:
            continue
        reported.add(tuple(envs))
        _, _, key = next(user for user in users if user[0] != envs[0])
        yield ctx.finding(key, f"{_and(envs)} share {what} {users[0][1]}", envs)


def _and(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def _env(env: Environment, *rest: str | int) -> Key:
    return ("environments", env.name, *rest)


@rule(
    "shared-database",
    "error",
    "Two environments share a database",
    "give each environment its own database (a Neon branch or database per tier)",
)
def shared_database(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        db = env.database
        if db is None:
            return []
        out = [
            (
                f"{db.provider}:{db.name}",
                f"{db.name} ({db.provider})",
                _env(env, "database", "name"),
            )
        ]
        if db.url:
            identity = database_identity(db.url)
            out.append((f"url:{identity}", shown(db.url), _env(env, "database", "url")))
        if db.provider == "local" and db.engine == "postgresql" and db.url:
            # the local platform runs one cluster per environment on the URL's port
            server = database_server(db.url)
            out.append((f"server:{server}", f"server {server}", _env(env, "database", "url")))
        return out

    return _shared(ctx, "the database", claims)


@rule(
    "shared-redis",
    "error",
    "Two environments share a Redis",
    "give each environment its own Redis instance (or at least its own database number)",
)
def shared_redis(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        redis = env.redis
        if redis is None:
            return []
        out: list[Claim] = []
        if redis.url:
            identity = redis_identity(redis.url)
            out.append((f"url:{identity}", shown(redis.url), _env(env, "redis", "url")))
        if redis.name:
            out.append((f"{redis.provider}:{redis.name}", redis.name, _env(env, "redis", "name")))
        return out

    return _shared(ctx, "the Redis", claims)


@rule(
    "shared-bucket",
    "error",
    "Two environments share a storage bucket",
    "give each environment its own bucket per role (audio-staging, audio-prod, ...)",
)
def shared_bucket(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        if env.storage is None:
            return []
        provider = env.storage.provider
        return [
            (
                f"{provider}:{bucket}",
                f"{bucket} ({provider})",
                _env(env, "storage", "buckets", role),
            )
            for role, bucket in env.storage.buckets.items()
        ]

    return _shared(ctx, "the bucket", claims)


@rule(
    "shared-namespace",
    "error",
    "Two environments share an app namespace",
    "give each environment its own namespace (fm.plyr.dev, fm.plyr.stg, fm.plyr)",
)
def shared_namespace(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        ns = env.namespace
        return [(ns, ns, _env(env, "namespace"))] if ns else []

    return _shared(ctx, "the namespace", claims)


@rule(
    "shared-app",
    "error",
    "Two environments deploy to the same platform app",
    "give each environment its own app (relay-api-staging, relay-api)",
)
def shared_app(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        out: list[Claim] = []
        for service, b in env.services.items():
            if app := b.option("app", str):
                out.append(
                    (f"{b.platform}:{app}", f"{app} ({b.platform})", _env(env, service, "app"))
                )
            if deployment := b.option("deployment", str):  # a Kubernetes Deployment
                where = f"{b.option('namespace', str) or 'default'}/{deployment}"
                cluster = b.option("context", str) or "the current context"
                label = f"{where} ({b.platform}, {cluster})"
                out.append(
                    (f"{b.platform}:{cluster}:{where}", label, _env(env, service, "deployment"))
                )
        return out

    return _shared(ctx, "the app", claims)


@rule(
    "shared-frontend-project",
    "error",
    "Two environments deploy to the same frontend project",
    "give each environment its own project (plyr-fm-stg, plyr-fm)",
)
def shared_project(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        return [
            (f"{b.platform}:{project}", f"{project} ({b.platform})", _env(env, service, "project"))
            for service, b in env.services.items()
            if (project := b.option("project", str))
        ]

    return _shared(ctx, "the project", claims)


@rule(
    "shared-domain",
    "error",
    "Two environments serve on the same domain",
    "give each environment its own host names (stg.plyr.fm, plyr.fm)",
)
def shared_domain(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        out: list[Claim] = []
        for service, b in env.services.items():
            for field in ("url", "platform_url"):
                url = getattr(b, field)
                if url:
                    host = host_of(url)
                    out.append((host, host, _env(env, service, field)))
        return out

    return _shared(ctx, "the host", claims)


@rule(
    "shared-oauth-client",
    "error",
    "Two environments use the same OAuth client",
    "register an OAuth client per environment, on that environment's own domain",
)
def shared_oauth(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        if env.oauth is None:
            return []
        cid = env.oauth.client_id
        return [(cid, cid, _env(env, "oauth", "client_id"))]

    return _shared(ctx, "the OAuth client", claims)


@rule(
    "shared-observability",
    "error",
    "Two environments report to observability under the same environment name",
    "give each environment its own observability name (development, staging, production): "
    "under one name, staging's logs, traces and errors mix with production's; names that "
    "differ only in case (Production, production) count as one",
)
def shared_observability(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        obs = env.observability
        if obs is None:
            return []
        label = f"{obs.environment} ({obs.provider})"
        name = obs.environment.strip().casefold()
        return [(f"{obs.provider}:{name}", label, _env(env, "observability", "environment"))]

    return _shared(ctx, "the observability environment", claims)


@rule(
    "shared-cookie-scope",
    "error",
    "Two environments' session cookies reach each other",
    'give each environment its own session cookie name (cookie_name = "plyr_session_stg") '
    "or its own registrable domain; a staging session must never be sent to production",
)
def shared_cookie(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        scope = cookie_scope(env)
        if not env.cookie_auth or scope is None:
            return []
        name = env.cookie_name or "(unnamed)"
        where = ("environments", env.name, "cookie_name" if env.cookie_name else "cookie_auth")
        if name.startswith(HOST_PREFIX):  # host-only: shared only where a host name is
            names = dict.fromkeys(urlsplit(f"//{h}").hostname or h for h in env.hosts)
            return [(f"{h}:{name}", f"on {h} with cookie name {name}", where) for h in names]
        return [(f"{scope}:{name}", f"{scope} with cookie name {name}", where)]

    return _shared(ctx, "the cookie scope", claims)


# Where each fact is declared, so the checks above see it: relative to the environment.
_FACT_KEYS = {
    "database_url": "database.url (or database.url_secret)",
    "redis_url": "redis.url (or redis.url_secret)",
    "frontend_url": "{service}.frontend_url",
    "api_url": "{service}.api_url",
    "namespace": "namespace",
    "oauth_client_id": "oauth.client_id",
    "oauth_redirect_uri": "oauth.redirect_uri",
    "observability_environment": "observability.environment",
}
_TIERS_OWN = ("TIERS_ENVIRONMENT", "TIERS_SERVICE", "TIERS_VERSION", "TIERS_COMMIT")


@rule(
    "env-overrides-fact",
    "error",
    "A plain env entry overrides a fact under the variable vars gives it",
    "remove the entry from env and declare the fact where tiers checks it (redis.url, "
    "database.url, frontend_url, storage.buckets.ROLE, ...); PORT and TIERS_* are set by tiers",
)
def env_overrides_fact(ctx: Context) -> Iterator[Finding]:
    for env in ctx.config.environments.values():
        for service, binding in env.services.items():
            known = ctx.config.services.get(service)
            facts = {var: fact for fact, var in known.vars.items()} if known else {}
            for name, value in binding.env.items():
                instead = _instead(env, service, name, facts)
                if instead and not has_password(value):  # secret-in-config reports it
                    key = _env(env, service, "env", name)
                    yield ctx.finding(key, f"{env.name} {service} env {name} {instead}", [env.name])


def _instead(env: Environment, service: str, name: str, facts: dict[str, str]) -> str | None:
    """What is wrong with setting ``name`` in env, and what to set instead."""
    if name == "PORT":
        return "is tiers' own: the platform assigns each process its port; remove it from env"
    if name in _TIERS_OWN:
        return "is tiers' own: it names what is running; remove it from env"
    fact = facts.get(name)
    if fact is None:
        return None
    if fact.startswith("bucket_"):
        where = f"storage.buckets.{fact.removeprefix('bucket_')}"
    else:
        where = _FACT_KEYS[fact].format(service=service)
    return (
        f"overrides the {fact} fact that vars passes as {name}, so tiers never checks "
        f"the value; set environments.{env.name}.{where} instead"
    )
