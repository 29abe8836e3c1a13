"""Access protection: who may see a protected environment, and what stays public.

Precedence (one rule, documented in ``tiers check --list-rules`` and the docs): the most
specific path pattern wins, as in Cloudflare Access; an exact path beats ``/prefix/*``,
which beats the whole application, and the first of two identical patterns wins.
"""

from __future__ import annotations

from collections.abc import Iterator

from tiers.checks.registry import Context, Finding, rule
from tiers.checks.rules.promotion import preproduction
from tiers.config import Environment

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
                "policy names no email, domain, GitHub org or user",
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
            if pattern.partition("/")[2] in ("", "*"):
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
