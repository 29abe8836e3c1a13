"""Nothing that holds data or identity is shared by two environments."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from tiers.checks.registry import Context, Finding, rule
from tiers.checks.sites import cookie_scope
from tiers.config import Environment, host_of
from tiers.config.model import redact
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
            out.append((f"url:{db.url}", redact(db.url), _env(env, "database", "url")))
        if db.provider == "local" and db.engine == "postgresql" and db.url:
            # the local platform runs one cluster per environment on the URL's port
            server = urlsplit(db.url).netloc.rpartition("@")[2]
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
            out.append((f"url:{redis.url}", redact(redis.url), _env(env, "redis", "url")))
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
        return [
            (f"{b.platform}:{b.app}", f"{b.app} ({b.platform})", _env(env, service, "app"))
            for service, b in env.services.items()
            if b.app
        ]

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
            (
                f"{b.platform}:{b.project}",
                f"{b.project} ({b.platform})",
                _env(env, service, "project"),
            )
            for service, b in env.services.items()
            if b.project
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
    "warning",
    "Two environments report to observability under the same environment name",
    "give each environment its own observability name (development, staging, production) "
    "so their logs and traces can be told apart",
)
def shared_observability(ctx: Context) -> Iterator[Finding]:
    def claims(env: Environment) -> list[Claim]:
        obs = env.observability
        if obs is None:
            return []
        label = f"{obs.environment} ({obs.provider})"
        return [(f"{obs.provider}:{obs.environment}", label, _env(env, "observability"))]

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
        return [(f"{scope}:{name}", f"{scope} with cookie name {name}", where)]

    return _shared(ctx, "the cookie scope", claims)
