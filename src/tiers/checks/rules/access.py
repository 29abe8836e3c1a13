"""Access protection: who may see a protected environment, and what stays public.

Precedence (one rule, documented in ``tiers check --list-rules`` and the docs): the most
specific path pattern wins, as in Cloudflare Access; an exact path beats ``/prefix/*``,
which beats the whole application, and the first of two identical patterns wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from tiers.checks.registry import Context, Finding, rule
from tiers.checks.rules.promotion import preproduction
from tiers.checks.sites import is_private_host
from tiers.config import Environment
from tiers.platforms.base import enforcing

PUBLIC_MAIL = frozenset(
    (
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "aol.com",
        "gmx.com",
        "mail.com",
    )
)
"""Anyone can get an address at these, so an email-domain rule on them lets anyone in."""
_ANYONE = {
    "otp": "anyone with an email inbox",
    "github": "anyone with a GitHub account",
    "google": "anyone with a Google account",
    "oidc": "anyone the identity provider knows",
}


def _protected(ctx: Context) -> Iterator[Environment]:
    return (env for env in ctx.config.environments.values() if env.access.protect)


def _key(env: Environment, *rest: str | int) -> tuple[str | int, ...]:
    return ("environments", env.name, "access", *rest)


def _whole(pattern: str) -> bool:
    """``HOST/*`` or ``HOST/``: a bypass of the whole application (access-everyone)."""
    return pattern.partition("/")[2] in ("", "*")


@rule(
    "access-no-identity",
    "error",
    "A protected environment lets no identity in",
    'add an Allow policy naming who may enter, e.g. allow = ["github-org:ORG", '
    '"email:you@example.com"], and a login method, e.g. login = ["github"]',
)
def no_identity(ctx: Context) -> Iterator[Finding]:
    for env in _protected(ctx):
        # An allow list of only `everyone` or login methods is reported by those rules.
        if not env.access.allow:
            yield ctx.finding(
                _key(env, "allow"),
                f"{env.name} is protected but its allow "
                "policy names no email, domain, GitHub user, org or team, or OIDC group",
                [env.name],
            )
        if not env.access.login:
            yield ctx.finding(
                _key(env, "login"),
                f"{env.name} is protected but offers no login method",
                [env.name],
            )


@rule(
    "access-everyone",
    "error",
    "Everyone is let into a protected environment's application",
    "remove `everyone` from allow and bypass only the paths that must stay public "
    "(/health, /docs), never HOST/*",
)
def everyone(ctx: Context) -> Iterator[Finding]:
    for env in _protected(ctx):
        if "everyone" in env.access.allow:
            index = env.access.allow.index("everyone")
            yield ctx.finding(
                _key(env, "allow", index),
                f"{env.name} allows everyone: the protection protects nothing",
                [env.name],
            )
        for index, pattern in enumerate(env.access.bypass):
            if _whole(pattern):
                yield ctx.finding(
                    _key(env, "bypass", index),
                    f"{env.name} bypasses {pattern}: everyone reaches the whole application",
                    [env.name],
                )


@rule(
    "access-login-only",
    "error",
    "An Allow policy lets in anyone who can sign in",
    "a login method is not an identity; allow named emails, an email domain or a GitHub "
    "org instead of login:otp or login:github",
)
def login_only(ctx: Context) -> Iterator[Finding]:
    for env in _protected(ctx):
        for index, selector in enumerate(env.access.allow):
            kind, _, arg = selector.partition(":")
            if kind == "login":
                who = _ANYONE[arg]
            elif kind == "email-domain" and arg.lower() in PUBLIC_MAIL:
                who = f"anyone with a free {arg} address"
            else:
                continue
            message = f"{env.name} allows {selector}: {who} gets in"
            yield ctx.finding(_key(env, "allow", index), message, [env.name])


@rule(
    "access-unreachable-rule",
    "warning",
    "An access rule can never match",
    "bypass patterns name one of this environment's hosts, appear once, and only exist "
    "on a protected environment; the most specific pattern wins",
)
def unreachable(ctx: Context) -> Iterator[Finding]:
    public = {env.name for env in preproduction(ctx) if not env.access.protect}
    for env in ctx.config.environments.values():
        if env.name in public:
            continue  # staging-unprotected says it: one mistake, one finding
        hosts = set(env.hosts)
        seen: set[str] = set()
        for index, pattern in enumerate(env.access.bypass):
            host = pattern.partition("/")[0]
            if not env.access.protect:
                why = f"{env.name} is not protected, so there is nothing to bypass"
            elif _whole(pattern):
                continue  # access-everyone reports it: one mistake, one finding
            elif host and host not in hosts:
                why = f"{host} is not a host of {env.name} ({', '.join(sorted(hosts)) or 'none'})"
            elif pattern in seen:
                why = "the same pattern comes earlier and wins"
            else:
                seen.add(pattern)
                continue
            yield ctx.finding(
                _key(env, "bypass", index), f"bypass {pattern} never matches: {why}", [env.name]
            )


@rule(
    "staging-unprotected",
    "warning",
    "A pre-production environment is public",
    "protect it: [environments.NAME.access] protect = true, with login and allow",
)
def unprotected(ctx: Context) -> Iterator[Finding]:
    for env in preproduction(ctx):
        if not env.access.protect and env.services:
            yield ctx.finding(
                ("environments", env.name),
                f"{env.name} is deployed but anyone can reach it",
                [env.name],
            )


@rule(
    "access-platform-url-public",
    "error",
    "A protected environment is also public at a platform address the gate does not cover",
    "take the public platform address away: on fly.io release the app's public IPs "
    "(fly ips release) and let the gate reach it privately (a tunnel to APP.flycast), then "
    "remove platform_url or set it to that private address; the gate only guards the hosts "
    "it serves",
)
def platform_url_public(ctx: Context) -> Iterator[Finding]:
    for env in _protected(ctx):
        for service, binding in env.services.items():
            url = binding.platform_url
            if url is None or is_private_host(urlsplit(url).hostname):
                continue
            also = " also" if binding.url else ""
            message = (
                f"{env.name} is protected, but its {service} is{also} public at {url}: "
                "anyone reaches it around the access gate"
            )
            key = ("environments", env.name, service, "platform_url")
            yield ctx.finding(key, message, [env.name])


_DOCS_PAGES = ("/docs", "/redoc")
_SCHEMAS = ("openapi.json", "openapi.yaml", "swagger.json")


@rule(
    "access-docs-without-schema",
    "warning",
    "A docs page is public but the schema it loads is not",
    "bypass the schema beside the page, e.g. api-stg.plyr.fm/openapi.json next to "
    "api-stg.plyr.fm/docs (FastAPI's default openapi_url): the page fetches it from the "
    "browser of someone who is not signed in",
)
def docs_without_schema(ctx: Context) -> Iterator[Finding]:
    pages = set(_DOCS_PAGES) | {s.docs for s in ctx.config.services.values() if s.docs}
    for env in _protected(ctx):
        bypass = env.access.bypass
        for index, pattern in enumerate(bypass):
            host, _, path = pattern.partition("/")
            if host and host not in env.hosts:
                continue  # access-unreachable-rule reports it: it never matches
            if f"/{path}" not in pages or _schema_public(host, bypass):
                continue
            message = (
                f"bypass {pattern} makes the docs page public, but not the schema it loads "
                f"({host}/openapi.json): the page fails for everyone not signed in"
            )
            yield ctx.finding(_key(env, "bypass", index), message, [env.name])


def _schema_public(host: str, bypass: list[str]) -> bool:
    for pattern in bypass:
        there, _, path = pattern.partition("/")
        if there not in (host, ""):
            continue
        if path.endswith(_SCHEMAS) or path == "*":
            return True
    return False


@rule(
    "access-not-enforced",
    "warning",
    "A protected environment's service is on a platform that does not run the gate",
    "run the service on a platform that enforces access (the local platform runs tiers' "
    'gate), or put the environment behind Cloudflare Access (provider = "cloudflare", '
    "with the rules `tiers access export cloudflare ENV` writes applied there)",
)
def not_enforced(ctx: Context) -> Iterator[Finding]:
    guarding = enforcing()
    for env in _protected(ctx):
        for service in env.unguarded(guarding):
            binding = env.services[service]
            yield ctx.finding(
                ("environments", env.name, service, "platform"),
                f"{env.name} declares access.protect, but its {service} runs on "
                f"{binding.platform}, which does not run tiers' gate, so {binding.address} "
                "answers anyone who can reach it",
                [env.name],
            )
