"""URLs and the sites they are on: cookies, OAuth, CORS and Redis over the network."""

from __future__ import annotations

from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule
from tiers.checks.sites import is_private_host, site
from tiers.config import Environment, host_of


def _key(env: Environment, *rest: str | int) -> tuple[str | int, ...]:
    return ("environments", env.name, *rest)


@rule(
    "cookie-site-mismatch",
    "error",
    "Cookie auth across sites: frontend and backend are on different registrable domains",
    "put the frontend and the backend on custom domains under one registrable domain "
    "(stg.plyr.fm and api-stg.plyr.fm); platform hosts like *.fly.dev never share cookies",
)
def cookie_site(ctx: Context) -> Iterator[Finding]:
    domain = ctx.config.project.domain
    for env in ctx.config.environments.values():
        if not env.cookie_auth:
            continue
        hosts = {service: b.host for service, b in env.services.items() if b.host}
        sites = {service: site(host) for service, host in hosts.items()}
        if len(set(sites.values())) > 1:
            pairs = ", ".join(f"{s} {hosts[s]} (site {sites[s]})" for s in sites)
            last = list(sites)[-1]
            yield ctx.finding(
                _key(env, last, "url"),
                f"{env.name}: {pairs}: cookies set by one are never sent to the other",
                [env.name],
            )
        elif domain and not env.local and sites and set(sites.values()) != {domain}:
            (found,) = set(sites.values())
            service = next(iter(sites))
            yield ctx.finding(
                _key(env, service, "url"),
                f"{env.name} is on {found}, not on the project's domain {domain}",
                [env.name],
            )


@rule(
    "oauth-wrong-domain",
    "error",
    "OAuth client id or redirect URI is not on the environment's own backend domain",
    "use https on this environment's backend custom domain, e.g. "
    "https://api-stg.plyr.fm/auth/callback; never the platform's *.fly.dev host",
)
def oauth_domain(ctx: Context) -> Iterator[Finding]:
    for env in ctx.config.environments.values():
        if env.oauth is None:
            continue
        others = {
            e.oauth.client_id for e in ctx.config.environments.values() if e.oauth and e is not env
        }
        own = {b.host for b in env.services.values() if b.host}
        platform = {host_of(b.platform_url) for b in env.services.values() if b.platform_url}
        for field in ("client_id", "redirect_uri"):
            url: str = getattr(env.oauth, field)
            host = host_of(url)
            problem = None
            if field == "client_id" and url in others:
                continue  # one defect, one finding: shared-oauth-client reports it
            if host in platform:
                problem = f"is on the platform host {host}, not a custom domain"
            elif host not in own:
                hosts = ", ".join(sorted(own)) or "none"
                problem = f"is on {host}, which is not one of {env.name}'s hosts ({hosts})"
            elif site(host) == "localhost" and not env.local:
                problem = "uses localhost, which only a local tier may"
            elif not url.startswith("https://") and not env.local:
                problem = "is not https"
            if problem:
                yield ctx.finding(
                    _key(env, "oauth", field),
                    f"{env.name} oauth.{field} {url} {problem}",
                    [env.name],
                )


@rule(
    "url-crosses-environments",
    "error",
    "A frontend calls another environment's API, or a backend allows another's frontend",
    "point api_url (PUBLIC_API_URL) and frontend_url (FRONTEND_URL) at the same "
    "environment's backend and frontend, e.g. with ${environments.staging.backend.url}",
)
def crossing(ctx: Context) -> Iterator[Finding]:
    owner = {
        b.url: (name, service)
        for name, env in ctx.config.environments.items()
        for service, b in env.services.items()
        if b.url
    }
    for env in ctx.config.environments.values():
        for service, b in env.services.items():
            for field, what in (
                ("api_url", "calls the API"),
                ("frontend_url", "allows the frontend"),
            ):
                url = getattr(b, field)
                if url is None:
                    continue
                name, target = owner.get(url.rstrip("/"), (None, None))
                if name == env.name and target != service:
                    continue
                where = f"{name}'s {target}" if name else "no service of this environment"
                yield ctx.finding(
                    _key(env, service, field),
                    f"{env.name} {service} {what} at {url}, which is {where}",
                    [env.name] + ([name] if name and name != env.name else []),
                )


@rule(
    "redis-without-tls",
    "error",
    "A Redis URL leaves the private network without TLS",
    "use rediss:// (TLS) for a Redis reached over the internet; redis:// is fine on "
    "loopback, a private range or a platform's *.internal network",
)
def redis_tls(ctx: Context) -> Iterator[Finding]:
    for env in ctx.config.environments.values():
        redis = env.redis
        if redis is None or redis.url is None or redis.uses_tls:
            continue
        if not is_private_host(redis.host):
            yield ctx.finding(
                _key(env, "redis", "url"),
                f"{env.name} reaches Redis at {redis.host} over the network without TLS",
                [env.name],
            )
