"""``tiers access explain URL``: the gate's own decision on a URL, with every rule it
weighed, so "why is staging still public?" and "why am I blocked?" (the seed's debugging
section) are answered by the rules themselves, not by reading a dashboard.

It runs the same :func:`~tiers.gate.policy.normalise` and
:meth:`~tiers.gate.policy.Policy.decide` as the gate, on the URL as a client would send
it. ``--as`` names who is asking, in a small grammar (:func:`parse_identity`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tiers.config import Config, Environment
from tiers.errors import UsageError
from tiers.gate.identity import Identity
from tiers.gate.policy import Decision, Malformed, Policy, Target, normalise_host

__all__ = ["GRAMMAR", "Explanation", "environment_of", "explain", "parse_identity"]

GRAMMAR = (
    "anonymous, email:ADDRESS, github:USER[,org:ORG][,team:ORG/SLUG][,email:ADDRESS], "
    "oidc:SUBJECT[,group:GROUP][,email:ADDRESS] or service:NAME"
)
_URL = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.-]*)://)?([^/?#]*)(.*)", re.DOTALL)


@dataclass(frozen=True)
class Considered:
    """One rule that matches the target, and what became of it."""

    rule: str
    note: str
    decides: bool


@dataclass(frozen=True)
class Explanation:
    url: str
    environment: str
    method: str
    identity: Identity | None
    target: Target | None
    """None when the URL's path cannot be read (the gate refuses it)."""
    decision: Decision
    rules: list[Considered]
    """The rules matching the target, most specific first."""
    allow: list[tuple[str, bool]]
    """Each allow selector, and whether it names the identity (for a signed-in user)."""

    def to_json(self) -> dict[str, Any]:
        who = self.identity
        return {
            "url": self.url,
            "environment": self.environment,
            "method": self.method,
            "as": _shown(who),
            "host": self.target.host if self.target else None,
            "path": self.target.path if self.target else None,
            "canonical": self.target.canonical if self.target else None,
            "decision": self.decision.action,
            "rule": self.decision.rule,
            "reason": self.decision.reason,
            "rules": [{"rule": c.rule, "decides": c.decides, "note": c.note} for c in self.rules],
            "allow": [{"selector": s, "matches": m} for s, m in self.allow],
        }


def explain(
    config: Config, url: str, identity: str = "anonymous", method: str = "GET"
) -> Explanation:
    """The decision on ``url`` for ``identity`` (``--as``), with the rules weighed."""
    scheme, host, rest = _parts(url)
    env = environment_of(config, host, scheme)
    who = parse_identity(identity, env.name)
    policy = Policy(env)
    target, decision = policy.decide_request(host, rest or "/", who, method=method, scheme=scheme)
    if target is None:
        return Explanation(url, env.name, method.upper(), who, None, decision, [], [])
    rules = _considered(policy, target, decision)
    allow = []
    if env.access.protect and who is not None and who.kind == "user":
        allow = [(selector, who.matches(selector)) for selector in env.access.allow]
    return Explanation(url, env.name, method.upper(), who, target, decision, rules, allow)


def _parts(url: str) -> tuple[str, str, str]:
    parts = _URL.fullmatch(url.strip())
    if parts is None or not parts.group(2):
        raise UsageError(f"{url!r} is not a URL; give one like https://api-stg.plyr.fm/health")
    scheme, host, rest = parts.groups()
    if (scheme or "http").lower() not in ("http", "https"):
        raise UsageError(f"{url!r}: the gate only sees http and https URLs")
    return (scheme or "http").lower(), host, rest


def environment_of(config: Config, host: str, scheme: str = "http") -> Environment:
    """The environment one of whose services is reached on ``host``."""
    try:
        name = normalise_host(host, scheme=scheme)
    except Malformed as error:
        raise UsageError(f"the URL's host cannot be read: {error}") from None
    known: list[str] = []
    for env in config.environments.values():
        hosts = Policy(env).hosts
        if name in hosts:
            return env
        if hosts:
            known.append(f"{', '.join(hosts)} ({env.name})")
    raise UsageError(
        f"{name} is no host of any environment in tiers.toml; known: {'; '.join(known) or 'none'}"
    )


def _considered(policy: Policy, target: Target, decision: Decision) -> list[Considered]:
    if not policy.env.access.protect:
        return []  # no rule of an unprotected environment is ever weighed
    reached = policy.deciding(target) if target.host in policy.hosts else None
    rules = []
    for rule in policy.candidates(target):
        if rule == reached and rule.action == "bypass":
            note = "decides"
        elif rule == reached:
            note = "decides: the path is protected, so it depends on who asks"
        elif reached is None:
            note = f"not reached: {decision.rule} decides"
        elif rule.rank < reached.rank:
            note = (
                "matches the normalised path only: the URL as written has dot segments, "
                "repeated slashes or a fragment, which the app receives unresolved"
            )
        else:
            note = "matches, but a more specific rule comes first"
        rules.append(Considered(rule.name, note, rule == reached))
    return rules


_NOT_FOR = {("org", "oidc"), ("team", "oidc"), ("group", "github")}


def parse_identity(text: str, environment: str) -> Identity | None:
    """``--as`` (:data:`GRAMMAR`) → an identity; ``environment`` is a service token's own.

    >>> parse_identity("github:ana,team:plyr-fm/core", "staging").github_orgs
    ('plyr-fm',)
    """
    kind, _, value = text.strip().partition(":")
    first, *more = value.split(",") if value else [""]
    facts: dict[str, list[str]] = {"org": [], "team": [], "group": [], "email": []}
    for item in more:
        key, _, arg = item.partition(":")
        if key not in facts or not arg or (key, kind) in _NOT_FOR:
            raise UsageError(
                f"--as {text!r}: {item!r} is not one of ,org:ORG ,team:ORG/SLUG (github) "
                ",group:GROUP (oidc) ,email:ADDRESS"
            )
        facts[key].append(arg.lower() if key != "group" else arg)
    email = facts["email"][0] if facts["email"] else None
    match kind.lower():
        case "anonymous" if not value:
            return None
        case "email" if first and not more:
            return Identity("user", first, "otp", email=first)
        case "github" if first:
            orgs = tuple(facts["org"]) + tuple(t.partition("/")[0] for t in facts["team"])
            return Identity(
                "user",
                email or first,
                "github",
                email=email,
                github_user=first,
                github_orgs=tuple(dict.fromkeys(orgs)),
                github_teams=tuple(facts["team"]),
            )
        case "oidc" if first:
            return Identity(
                "user", email or first, "oidc", email=email, groups=tuple(facts["group"])
            )
        case "service" if first and not more:
            return Identity("service", first, "token", environment=environment)
    raise UsageError(f"--as {text!r} is not an identity; use {GRAMMAR}")


def _shown(identity: Identity | None) -> str:
    if identity is None:
        return "anonymous"
    if identity.kind == "service":
        return f"service token {identity.name}"
    return f"{identity.name} ({identity.method})"
