"""Access protection: who may reach a protected tier, and which paths stay public."""

from __future__ import annotations

from dataclasses import dataclass

from tiers.config import Config, Environment
from tiers.docs.domains import Host, hosts
from tiers.platforms.base import enforcing

PRECEDENCE = (
    "the most specific path wins: an exact path beats `/prefix/*`, which beats the whole "
    "application; between equally specific patterns, bypass rules come first and the "
    "first one written wins."
)
"""How rules combine, as ``tiers.config.Access`` defines it."""

_PROVIDERS = {"cloudflare": "Cloudflare Access", "tiers": "the tiers gate"}
_LOGINS = {"github": "GitHub", "otp": "one-time PIN", "google": "Google", "oidc": "OIDC"}
_CERTIFICATES = {"fly": "flyctl certs list -a {app}"}


@dataclass(frozen=True)
class Bypass:
    """A public path, with what it is when tiers can tell (a health check, API docs)."""

    pattern: str
    note: str | None


@dataclass(frozen=True)
class Protection:
    """One protected tier: the gate, its hosts, who may enter, what stays public."""

    environment: str
    provider: str
    gate: str
    hosts: list[Host]
    login: list[str]
    allow: list[str]
    bypass: list[Bypass]
    session_hours: int
    certificates: list[str]
    guarded: dict[str, str]
    """Each service users reach → the platform that runs tiers' gate in front of it."""
    unguarded: dict[str, str]
    """Each service users reach → its platform, which runs no gate (provider ``tiers``)."""

    @property
    def enforcement(self) -> str:
        """Who applies these rules, said plainly: a document never calls an open door shut."""
        if self.provider == "cloudflare":
            return (
                "Cloudflare Access, once the rules `tiers access export cloudflare "
                f"{self.environment}` writes are applied there; not by tiers, which does not "
                "check that Cloudflare's rules match these"
            )
        said = []
        if self.guarded:
            platforms = ", ".join(dict.fromkeys(self.guarded.values()))
            said.append(f"the tiers gate ({platforms} platform)")
        if self.unguarded:
            shown = ", ".join(f"{s} (on {p})" for s, p in self.unguarded.items())
            said.append(
                f"**nobody** for {shown}: only a platform that runs tiers' gate applies "
                "these rules, so those hosts answer anyone who can reach them"
            )
        return "; ".join(said) or "the tiers gate"

    @property
    def cookie(self) -> str | None:
        """The gate's session cookie (tiers' own gate only), named per tier."""
        if self.provider != "tiers":
            return None
        name = f"tiers_session_{self.environment}"  # tiers.gate.sessions.cookie_name
        return (
            f"`{name}` (`__Host-{name}` on https hosts), HttpOnly, SameSite=Lax, Secure "
            "except on plain-http localhost"
        )


def protections(config: Config) -> list[Protection]:
    """Every tier with ``access.protect``, in promotion order.

    >>> protections(plyr)[0].login                               # doctest: +SKIP
    ['GitHub', 'one-time PIN']
    """
    guarding = enforcing()
    return [
        _protection(config, env, guarding)
        for env in config.environments.values()
        if env.access.protect
    ]


def _protection(config: Config, env: Environment, guarding: frozenset[str]) -> Protection:
    access = env.access
    open_ = env.unguarded(guarding)
    reached = [s for s, b in env.services.items() if b.address]
    tiers_gate = access.provider == "tiers"
    return Protection(
        environment=env.name,
        provider=access.provider,
        gate=_PROVIDERS.get(access.provider, access.provider),
        hosts=hosts(config, env),
        login=[_LOGINS.get(m, m) for m in access.login],
        allow=[who(s) for s in access.allow],
        bypass=[Bypass(p, _note(config, env, p)) for p in access.bypass],
        session_hours=access.session_hours,
        certificates=_certificates(env),
        guarded={s: env.services[s].platform for s in reached if tiers_gate and s not in open_},
        unguarded={s: env.services[s].platform for s in open_},
    )


def who(selector: str) -> str:
    """An identity selector in words.

    >>> who("github-org:plyr-fm")
    'members of the GitHub organization `plyr-fm`'
    """
    kind, _, arg = selector.partition(":")
    words = {
        "everyone": "everyone",
        "email": f"`{arg}`",
        "email-domain": f"anyone with an `@{arg}` email address",
        "github-org": f"members of the GitHub organization `{arg}`",
        "github-user": f"the GitHub user `{arg}`",
        "github-team": f"members of the GitHub team `{arg}`",
        "oidc-group": f"members of the identity provider's group `{arg}`",
        "login": f"anyone who signs in with {_LOGINS.get(arg, arg)}",
    }
    return words.get(kind, selector)


def _note(config: Config, env: Environment, pattern: str) -> str | None:
    host, _, path = pattern.partition("/")
    for name, binding in env.services.items():
        service = config.services.get(name)
        if service is None or binding.host != host:
            continue
        if f"/{path}" == service.health:
            return "health check (uptime monitoring)"
        if f"/{path}" == service.docs:
            return "API documentation"
        if service.docs and path == "openapi.json":
            return "the schema the API documentation loads"
    return None


def _certificates(env: Environment) -> list[str]:
    return [
        _CERTIFICATES[b.platform].format(app=b.option("app"))
        for b in env.services.values()
        if b.platform in _CERTIFICATES and b.option("app") and b.url
    ]
