"""URLs and the sites they are on: cookies, OAuth, CORS and Redis over the network."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule
from tiers.checks.sites import cookie_scope, is_private_host, site
from tiers.config import Environment, host_of
from tiers.config.model import origin_of


def _key(env: Environment, *rest: str | int) -> tuple[str | int, ...]:
    return ("environments", env.name, *rest)


def _address_key(env: Environment, service: str) -> tuple[str | int, ...]:
    binding = env.services[service]
    return _key(env, service, "url" if binding.url else "platform_url")


@rule(
    "cookie-site-mismatch",
    "error",
    "Cookie auth across sites: frontend and backend are on different registrable domains",
    "put the frontend and the backend on custom domains under one registrable domain "
    "(stg.plyr.fm and api-stg.plyr.fm) and point api_url and frontend_url at them "
    "(${environments.staging.backend.url}); platform hosts like *.fly.dev never share cookies",
)
def cookie_site(ctx: Context) -> Iterator[Finding]:
    for env in ctx.config.environments.values():
        if not env.cookie_auth:
            continue
        hosts = {s: host_of(b.address) for s, b in env.services.items() if b.address}
        sites = {service: site(host) for service, host in hosts.items()}
        if len(set(sites.values())) > 1:
            pairs = ", ".join(f"{s} {hosts[s]} (site {sites[s]})" for s in sites)
            yield ctx.finding(
                _address_key(env, list(sites)[-1]),
                f"{env.name}: {pairs}: cookies set by one are never sent to the other",
                [env.name],
            )
        else:
            yield from _calls_off_site(ctx, env, hosts)
    yield from _off_domain(ctx)


def _calls_off_site(ctx: Context, env: Environment, hosts: dict[str, str]) -> Iterator[Finding]:
    """An api_url or frontend_url on another site (the backend's *.fly.dev, say)."""
    for service, binding in env.services.items():
        for field in ("api_url", "frontend_url"):
            url = getattr(binding, field)
            if not url or service not in hosts or site(host_of(url)) == site(hosts[service]):
                continue
            message = (
                f"{env.name} {service} {field} {url} is on the site {site(host_of(url))}, "
                f"but {service} is on {site(hosts[service])} ({hosts[service]}): "
                "the session cookie is never sent across"
            )
            yield ctx.finding(_key(env, service, field), message, [env.name])


def _off_domain(ctx: Context) -> Iterator[Finding]:
    """Deployed cookie-auth tiers on another site than the project's domain: one finding."""
    domain = ctx.config.project.domain
    if not domain:
        return
    off = {}
    for env in ctx.config.environments.values():
        sites = {site(h) for h in env.hosts}
        if env.cookie_auth and not env.local and len(sites) == 1 and sites != {domain}:
            off[env.name] = sites.pop()
    if off:
        where = ", ".join(f"{name} is on {found}" for name, found in off.items())
        message = f"{where}, not on the project's domain {domain}"
        yield ctx.finding(("project", "domain"), message, list(off))


@rule(
    "oauth-wrong-domain",
    "error",
    "OAuth client id or redirect URI is not on the environment's own backend domain",
    "use https on this environment's backend custom domain, e.g. "
    "https://api-stg.plyr.fm/auth/callback; never the platform's *.fly.dev host",
)
def oauth_domain(ctx: Context) -> Iterator[Finding]:
    environments = ctx.config.environments.values()
    for env in environments:
        if env.oauth is None:
            continue
        shared = {e.oauth.client_id for e in environments if e.oauth and e is not env}
        for field in ("client_id", "redirect_uri"):
            url: str = getattr(env.oauth, field)
            if field == "client_id" and url in shared:
                continue  # one defect, one finding: shared-oauth-client reports it
            problem = _oauth_problem(ctx, env, url)
            if problem:
                message = f"{env.name} oauth.{field} {url} {problem}"
                yield ctx.finding(_key(env, "oauth", field), message, [env.name])


def _oauth_problem(ctx: Context, env: Environment, url: str) -> str | None:
    services = ctx.config.services
    backends = {b.host for s, b in env.services.items() if b.host and services[s].kind == "api"}
    platform = {host_of(b.platform_url) for b in env.services.values() if b.platform_url}
    host = host_of(url)
    if host in platform:
        return f"is on the platform host {host}, not a custom domain"
    if host not in backends:
        return (
            f"is on {host}, not on {env.name}'s backend ({', '.join(sorted(backends)) or 'none'})"
        )
    if not env.local and (site(host) == "localhost" or not url.startswith("https://")):
        return "is not https on a public domain"
    return None


@rule(
    "url-crosses-environments",
    "error",
    "A frontend calls another environment's API, or a backend allows another's frontend",
    "point api_url (PUBLIC_API_URL) and frontend_url (FRONTEND_URL) at the same "
    "environment's backend and frontend, e.g. with ${environments.staging.backend.url}",
)
def crossing(ctx: Context) -> Iterator[Finding]:
    owners: dict[str, dict[str, str]] = defaultdict(dict)  # origin → environment → service
    for name, env in ctx.config.environments.items():
        for service, binding in env.services.items():
            for url in (binding.url, binding.platform_url):
                if url:
                    owners[origin_of(url)][name] = service
    for env in ctx.config.environments.values():
        for service, binding in env.services.items():
            for field, what in (("api_url", "calls the API at"), ("frontend_url", "allows")):
                url = getattr(binding, field)
                found = owners[origin_of(url)] if url else {}
                if url is None or env.name in found:
                    continue
                where = " and ".join(f"{e}'s {s}" for e, s in found.items()) or "no service"
                message = f"{env.name} {service} {what} {url}, which is {where}"
                yield ctx.finding(_key(env, service, field), message, [env.name, *found])


@rule(
    "redis-without-tls",
    "error",
    "A Redis URL leaves the private network without TLS",
    "use rediss:// (TLS) for a Redis reached over the internet; redis:// is fine on "
    "loopback, a private range, a Unix socket or a platform's *.internal network",
)
def redis_tls(ctx: Context) -> Iterator[Finding]:
    for env in ctx.config.environments.values():
        redis = env.redis
        if redis is None or redis.url is None or redis.uses_tls or redis.url.startswith("unix:"):
            continue
        if not is_private_host(redis.host):
            message = f"{env.name} reaches Redis at {redis.host} over the network without TLS"
            yield ctx.finding(_key(env, "redis", "url"), message, [env.name])


@rule(
    "cookie-sent-to-other-tier",
    "warning",
    "A tier's session cookie is also sent to an earlier tier's hosts",
    'make the session cookie host-only with the __Host- prefix (cookie_name = "__Host-'
    'plyr_session"): browsers keep it on the host that set it (the API), so no other tier '
    "receives it or can overwrite it, but the frontend's host no longer sees the session "
    "(server-side rendering cannot use it); or give staging a registrable domain of its own "
    "(plyr-staging.fm): nothing is shared, at the price of a second domain whose layout "
    "differs from production's. A cookie name of its own is not enough: code running on "
    "staging reads every cookie its hosts are sent",
)
def cookie_to_other_tier(ctx: Context) -> Iterator[Finding]:
    envs = list(ctx.config.environments.values())
    for index, env in enumerate(envs):
        scope = cookie_scope(env)
        if not env.cookie_auth or not scope or not scope.startswith("Domain=."):
            continue  # a host-only cookie stays on the host that set it
        reached = _reached(env, scope, envs[:index])
        if not reached:
            continue
        where = " and ".join(f"{name}'s hosts {', '.join(h)}" for name, h in reached.items())
        message = (
            f"{env.name}'s session cookie on {scope} is also sent to {where}: code running "
            f"there reads {env.name}'s sessions and can set cookies {env.name} accepts"
        )
        key = _key(env, "cookie_name" if env.cookie_name else "cookie_auth")
        yield ctx.finding(key, message, [env.name, *reached])


def _reached(env: Environment, scope: str, before: list[Environment]) -> dict[str, list[str]]:
    """The hosts of the tiers ``before`` that ``env``'s ``Domain=`` cookie is sent to."""
    found = {}
    for other in before:
        # the same name in the same scope is one cookie: shared-cookie-scope reports it
        same = (other.cookie_name, cookie_scope(other)) == (env.cookie_name, scope)
        hosts = [h for h in other.hosts if site(h) == scope.removeprefix("Domain=.")]
        if hosts and not same:
            found[other.name] = hosts
    return found
