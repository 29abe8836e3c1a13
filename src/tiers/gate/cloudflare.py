"""The same access rules as Cloudflare Access applications, for the seed's real setup.

:func:`export` turns one environment's ``[access]`` into the request bodies of
``POST /accounts/{account_id}/access/apps`` (self-hosted applications with their
policies inline, as Cloudflare's API and its Terraform provider take them), and
:func:`evaluate` reads such an export back with Cloudflare's semantics, so a test can
prove that both enforce the same decisions (the round trip).

Cloudflare's semantics, and how the export keeps tiers' meaning under them:

- Applications are not ordered: the most specific application path wins, and nothing
  is inherited from a less specific one. So every bypass pattern is an application of
  its own (decision ``bypass``, include ``everyone``), more specific than the protected
  one.
- An application at a path without a wildcard also covers everything below it
  (``/eng`` covers ``/eng/exec``), while tiers' ``/health`` is that path only; so each
  exact bypass gets a protected application one level below it (``HOST/health/*``)
  with the main application's policies.
- One protected application per environment, with every host of the environment as a
  destination: one login then covers them all, because Access sets its host-only
  ``CF_Authorization`` cookie on each destination of a multi-host application through
  redirects (up to five hosts). Separate applications per host would each ask for
  their own login cookie, which a frontend calling its API with ``fetch`` never gets.
- Inside an application, Bypass and Service Auth (``non_identity``) policies run first,
  then Allow in order; the first match decides; no match is a denial. Service tokens
  enter through one Service Auth policy (never an Allow rule, like tiers' gate, where a
  service identity matches no selector).
- Cloudflare strips ports and protects public, proxied hostnames only: an environment
  on localhost, a private address or a non-default port is refused.

The identity providers and service tokens live in the Cloudflare account, not in
tiers.toml: the export names them with placeholders (``<identity provider id:
github>``, ``<service token id: staging>``) for the user to fill in from
``GET /accounts/{account_id}/access/identity_providers`` and ``…/service_tokens``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tiers.checks.sites import is_private_host
from tiers.config import Config, Environment
from tiers.config.model import LOGIN_METHODS
from tiers.errors import UsageError
from tiers.gate.identity import Identity
from tiers.gate.policy import PROTECT, Action, Decision, Policy, Rule, Target

__all__ = ["evaluate", "export", "idp_placeholder", "token_placeholder"]

MAX_SSO_HOSTS = 5
"""Access pre-sets its cookie on at most this many hosts of one application."""


def idp_placeholder(method: str) -> str:
    """What the user replaces with the id of their Cloudflare login method ``method``."""
    return f"<identity provider id: {method}>"


def token_placeholder(environment: str) -> str:
    """What the user replaces with the id of each service token made for ``environment``."""
    return f"<service token id: {environment}>"


_METHODS = {idp_placeholder(method): method for method in LOGIN_METHODS}


def export(config: Config, name: str) -> dict[str, Any]:
    """The Cloudflare Access applications that enforce environment ``name``'s rules."""
    env = _protected(config, name)
    policy = Policy(env)
    hosts = _public_hosts(env, policy)
    guarded = _guarded(policy, hosts)
    title = f"{config.project.name} {env.name}"
    apps = [
        _bypass_app(env, f"{title}: bypass {uri}", uri, rule)
        for rule, uri in _bypasses(policy, hosts)
    ]
    apps += [
        _app(env, f"{title}: below {uri.removesuffix('/*')}", [uri], protected=True)
        for uri in guarded
    ]
    whole = {uri.partition("/")[0] for rule, uri in _bypasses(policy, hosts) if rule.path == "/"}
    main = [host for host in hosts if host not in whole]
    if main:
        apps.append(_app(env, title, main, protected=True))
        if len(main) > 1:  # one login sets the cookie on every host (the default, said)
            apps[-1]["eager_redirect_cookie_setting"] = True
    return {
        "environment": env.name,
        "applications": apps,
        "identity_providers": {m: idp_placeholder(m) for m in _methods(env)},
        "service_tokens": token_placeholder(env.name),
        "notes": _notes(env, main),
    }


def _protected(config: Config, name: str) -> Environment:
    if name not in config.environments:
        known = ", ".join(config.environments)
        raise UsageError(f"no environment {name!r} in tiers.toml; known: {known}")
    env = config.environments[name]
    if not env.access.protect:
        raise UsageError(
            f"{name} is not protected ([environments.{name}.access] protect = false): there "
            "are no Cloudflare Access rules to export"
        )
    return env


def _public_hosts(env: Environment, policy: Policy) -> list[str]:
    private = [h for h in policy.hosts if is_private_host(urlsplit(f"//{h}").hostname)]
    if private or not policy.hosts:
        raise UsageError(
            f"{env.name}'s hosts are local or private ({', '.join(private) or 'none'}): "
            "Cloudflare Access protects public hostnames proxied through Cloudflare; export an "
            "environment whose services have public URLs (like https://stg.plyr.fm)"
        )
    ported = [h for h in policy.hosts if urlsplit(f"//{h}").port is not None]
    if ported:
        raise UsageError(
            f"{env.name} is served on {', '.join(ported)}: Cloudflare Access ignores ports, so "
            "rules cannot tell these apart from the host's default port; give each environment "
            "hostnames of its own"
        )
    return policy.hosts


def _bypasses(policy: Policy, hosts: list[str]) -> list[tuple[Rule, str]]:
    """Each bypass rule with each destination it covers (``/docs``: on every host), in
    precedence order; a destination twice keeps its first rule, as the gate does, and a
    host that is not the environment's gets none (the gate never matches it)."""
    found: dict[str, Rule] = {}
    for rule in policy.rules:
        if rule.action == "bypass":
            for host in [rule.host] if rule.host else hosts:
                if host in hosts:
                    found.setdefault(_uri(host, rule), rule)
    return [(rule, uri) for uri, rule in found.items()]


def _uri(host: str, rule: Rule) -> str:
    if rule.prefix:
        return f"{host}{rule.path}*" if rule.path != "/" else host
    return f"{host}{rule.path}"


def _guarded(policy: Policy, hosts: list[str]) -> list[str]:
    """The protected ``HOST/PATH/*`` below each exact bypass (Cloudflare's ``HOST/PATH``
    covers it otherwise), unless a bypass names that prefix itself."""
    taken = {uri for _, uri in _bypasses(policy, hosts)}
    guards = []
    for rule, uri in _bypasses(policy, hosts):
        below = uri.rstrip("/") + "/*"
        if not rule.prefix and below not in taken:
            taken.add(below)
            guards.append(below)
    return guards


def _bypass_app(env: Environment, name: str, uri: str, rule: Rule) -> dict[str, Any]:
    app = _app(env, name, [uri], protected=False)
    app["policies"] = [
        {"name": rule.name, "decision": "bypass", "include": [{"everyone": {}}], "precedence": 1}
    ]
    return app


def _app(env: Environment, name: str, uris: list[str], *, protected: bool) -> dict[str, Any]:
    access = env.access
    app: dict[str, Any] = {
        "name": name,
        "type": "self_hosted",
        "domain": uris[0],
        "destinations": [{"type": "public", "uri": uri} for uri in uris],
        "session_duration": f"{access.session_hours}h",
        "app_launcher_visible": False,
    }
    if protected:
        app["allowed_idps"] = [idp_placeholder(m) for m in _methods(env)]
        app["options_preflight_bypass"] = access.preflight == "origin"
        app["http_only_cookie_attribute"] = True
        app["same_site_cookie_attribute"] = "lax"
        app["policies"] = _policies(env)
    return app


def _methods(env: Environment) -> list[str]:
    return list(env.access.login)


def _policies(env: Environment) -> list[dict[str, Any]]:
    """Service Auth first (Cloudflare runs it before Allow anyway), then one Allow policy
    per selector, in the order written, named as tiers names the rule."""
    service = {
        "name": "service auth",
        "decision": "non_identity",
        "include": [{"service_token": {"token_id": token_placeholder(env.name)}}],
    }
    allows = [
        {"name": f"allow {selector}", "decision": "allow", "include": [_include(env, selector)]}
        for selector in env.access.allow
    ]
    return [{**p, "precedence": i} for i, p in enumerate([service, *allows], start=1)]


def _include(env: Environment, selector: str) -> dict[str, Any]:
    kind, _, arg = selector.partition(":")
    github = idp_placeholder("github")
    match kind:
        case "everyone":
            return {"everyone": {}}
        case "email":
            return {"email": {"email": arg}}
        case "email-domain":
            return {"email_domain": {"domain": arg}}
        case "github-org":
            return {"github-organization": {"name": arg, "identity_provider_id": github}}
        case "github-team":
            org, _, team = arg.partition("/")
            rule = {"name": org, "team": team, "identity_provider_id": github}
            return {"github-organization": rule}
        case "oidc-group":
            claim = env.access.oidc.groups_claim if env.access.oidc else "groups"
            oidc = {
                "claim_name": claim,
                "claim_value": arg,
                "identity_provider_id": idp_placeholder("oidc"),
            }
            return {"oidc": oidc}
        case "login":
            return {"login_method": {"id": idp_placeholder(arg)}}
    raise UsageError(
        f"environments.{env.name}.access.allow: {selector!r} has no Cloudflare Access rule "
        "(Access cannot name a GitHub user); allow that person by email:ADDRESS instead"
    )


def _notes(env: Environment, main: list[str]) -> list[str]:
    notes = [
        "Each application is the body of POST /accounts/{account_id}/access/apps. Replace "
        "every <identity provider id: …> with the id of that login method in your account "
        "(GET /accounts/{account_id}/access/identity_providers), and <service token id: "
        f"{env.name}> with the id of each service token made for {env.name} (one "
        "service_token rule per token; any_valid_service_token would admit every token of "
        "the account, other tiers' included).",
        "One login across hosts: Cloudflare's CF_Authorization cookie is host-only, never "
        f"shared by {' and '.join(main) or 'the hosts'}. They are the destinations of one "
        "application, so Access sets the cookie on each of them through redirects at "
        "sign-in (eager_redirect_cookie_setting, on by default, for up to five hosts); a "
        "frontend that calls its API with fetch also needs credentials: 'include' and the "
        "API's CORS allowing the frontend's origin with credentials.",
        "Bypass paths are applications of their own: Cloudflare has no application order, "
        "the most specific path wins. An application at HOST/PATH also covers what is below "
        "it, so each exact bypass has a protected HOST/PATH/* application beside it.",
    ]
    if len(main) > MAX_SSO_HOSTS:
        notes.append(
            f"{env.name} has {len(main)} hosts: Access pre-sets its cookie on at most "
            f"{MAX_SSO_HOSTS}, so the others ask for a login of their own."
        )
    return notes


# -- the same export, read back with Cloudflare's semantics ---------------------------


def evaluate(
    exported: dict[str, Any], target: Target, identity: Identity | None, *, method: str = "GET"
) -> Decision:
    """What Cloudflare Access does with ``target``, given an :func:`export`.

    The most specific application (by host and path) decides; in it, OPTIONS pass when
    ``options_preflight_bypass`` is on, then Bypass and Service Auth policies, then (for
    someone signed in) Allow policies in order; no match denies. The rule ``open``: no
    application covers the host, so Access never sees the request (the origin answers).
    """
    app = _application(exported["applications"], target)
    if app is None:
        return Decision("deny", "open", f"no application covers {target.host}")
    if method.upper() == "OPTIONS" and app.get("options_preflight_bypass"):
        return Decision("bypass", 'preflight = "origin"', "OPTIONS bypass Access")
    policies = sorted(app["policies"], key=lambda p: p["precedence"])
    env = exported["environment"]
    for policy in policies:
        if policy["decision"] in ("bypass", "non_identity") and _includes(policy, identity, env):
            passed: Action = "bypass" if policy["decision"] == "bypass" else "allow"
            return Decision(passed, policy["name"], f"{app['name']}: {policy['name']}")
    if identity is None:
        return Decision("login", PROTECT, f"{app['name']}: sign in")
    for policy in policies:
        if policy["decision"] in ("allow", "deny") and _includes(policy, identity, env):
            decided: Action = "allow" if policy["decision"] == "allow" else "deny"
            return Decision(decided, policy["name"], f"{app['name']}: {policy['name']}")
    return Decision("deny", "default deny", f"{app['name']}: no policy matches")


def _application(apps: list[dict[str, Any]], target: Target) -> dict[str, Any] | None:
    best: tuple[tuple[int, int], dict[str, Any]] | None = None
    for app in apps:
        for destination in app["destinations"]:
            rank = _covers(destination["uri"], target)
            if rank is not None and (best is None or rank > best[0]):
                best = (rank, app)
    return best[1] if best else None


def _covers(uri: str, target: Target) -> tuple[int, int] | None:
    """How specifically ``uri`` covers ``target`` (higher is more specific), or None.

    ``HOST``: the whole host; ``HOST/p/*``: what is below ``/p/``; ``HOST/p``: ``/p``
    itself (most specific) and, by inheritance, what is below it."""
    host, slash, path = uri.partition("/")
    if host != target.host:
        return None
    if not slash:
        return (0, 0)
    path = "/" + path
    if path.endswith("/*"):
        prefix = path[:-1]
        return (1, len(prefix)) if target.path.startswith(prefix) else None
    if target.path == path:
        return (2, len(path))
    return (1, len(path)) if target.path.startswith(path + "/") else None


def _includes(policy: dict[str, Any], identity: Identity | None, env: str) -> bool:
    if policy["decision"] == "bypass":
        return any("everyone" in rule for rule in policy["include"])  # anyone, no identity
    return any(_rule(rule, identity, env) for rule in policy["include"])


def _rule(rule: dict[str, Any], identity: Identity | None, env: str) -> bool:
    """One include rule, read with the same selectors as tiers' gate."""
    ((kind, value),) = rule.items()
    if identity is None:
        return False
    if kind == "everyone":
        return identity.kind == "user"
    if kind == "service_token":
        return (
            identity.kind == "service"
            and value["token_id"] == token_placeholder(env)
            and (identity.environment == env)
        )
    selector = {
        "email": lambda: f"email:{value['email']}",
        "email_domain": lambda: f"email-domain:{value['domain']}",
        "github-organization": lambda: (
            f"github-team:{value['name']}/{value['team']}"
            if value.get("team")
            else f"github-org:{value['name']}"
        ),
        "oidc": lambda: f"oidc-group:{value['claim_value']}",
        "login_method": lambda: f"login:{_METHODS.get(value['id'], '?')}",
    }[kind]()
    return identity.matches(selector)
