"""The decision: which rule of ``[environments.ENV.access]`` decides a request, and why.

One normalisation (:func:`normalise`) turns what Caddy routed (host and raw request
target) into the host and path the rules are matched on, so the gate, ``tiers access
explain`` and the Cloudflare export can never disagree about a path. A request whose
target cannot be read unambiguously is refused, never guessed (a parse error denies).

Precedence, as in Cloudflare Access: the most specific pattern wins (an exact path beats
``/prefix/*``, which beats the whole application); between equally specific patterns a
bypass wins, then the first written. Default deny.

How a raw target is read (Caddy's ``X-Forwarded-Uri`` is ``{http.request.uri}``, the
request-target exactly as the client sent it, and Caddy forwards that same raw target to
the app, so the gate must never read a path the router or the app reads differently):

- the query (``?``) and anything after a ``#`` are dropped before matching, so
  ``/tracks?x=/health`` never satisfies a bypass;
- escapes of unreserved characters (``%7E``, ``%2e``) are decoded, as every router does;
  other escapes are kept, with upper-case hex;
- an encoded slash (``%2F``), a backslash (raw or ``%5C``), a ``;`` (raw or ``%3B``), a
  control character, whitespace, NUL or a non-ASCII byte make the target
  :class:`Malformed`: Starlette decodes ``%2F`` into a separator, IIS and some proxies
  read ``\\`` as one, and Tomcat or Spring strip ``;params`` (``/icons/..;/admin`` is
  ``/admin`` there) while Caddy and Starlette keep ``;`` literal, so no one reading is
  right for every upstream; refusing is;
- dot segments (``.``, ``..``, raw or encoded) are removed and repeated slashes collapsed
  (a leading ``//`` is a path, never an authority), but a target that needed this is not
  *canonical*: Caddy passes it to the app unresolved (Starlette routes
  ``/tracks/../health`` literally, a ``{path:path}`` route takes it), so a bypass is only
  ever granted to a canonical target, one the gate, Caddy and the app read alike;
  browsers and curl resolve dot segments before sending, so no real client loses;
- paths are compared case-sensitively, because Caddy's path matcher and Starlette's
  routes are case-sensitive (``/Health`` is not ``/health`` to the app either);
- absolute-form targets (``http://host/path``) are read when their host is the request's
  host (Go, and so Caddy, take the host from such a target); any other host, userinfo or
  scheme is refused; ``*`` and authority-form targets are refused.

Hosts: lower-cased, one trailing dot dropped, the scheme's default port dropped (other
ports kept: a local environment's patterns are ``localhost:8002/health``), international
names turned to their ASCII (punycode) form with IDNA 2008 and no look-alike mapping
(``localhost`` in full-width letters is refused, ``plyr.fm`` with a Cyrillic ``p``
becomes ``xn--lyr-zed.fm``, which is no host of any environment).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

import idna

from tiers.config import Environment
from tiers.errors import UsageError
from tiers.gate.identity import Identity

__all__ = ["Decision", "Malformed", "Policy", "Rule", "Target", "normalise", "normalise_host"]

Action = Literal["bypass", "allow", "login", "deny"]
"""bypass: anyone, no identity asked; allow: this identity may enter; login: nobody is
signed in and the path is protected (send them to the login page); deny: signed in (or
not identifiable) and not allowed, or the request cannot be read."""

PROTECT = "protect = true"
"""The rule name of the whole application: every path no bypass pattern names."""
MALFORMED = "malformed request"
"""The rule name of a refusal to read a request target (:class:`Malformed`)."""
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class Malformed(ValueError):
    """The request target cannot be read unambiguously; the gate refuses it."""


@dataclass(frozen=True)
class Target:
    """A request as the rules see it: lower-case host (port kept unless default, no
    trailing dot) and a normalised path (no query, no fragment, no dot segments)."""

    host: str
    path: str
    canonical: bool = True
    """False when the raw path needed dot segments removed, slashes collapsed or a
    fragment dropped: the app receives it unresolved, so no bypass applies to it."""

    def __str__(self) -> str:
        return f"{self.host}{self.path}"


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: str
    """The rule that decided, as written in tiers.toml (``bypass localhost:8002/health``,
    ``allow email-domain:plyr.fm``), or ``default deny``."""
    reason: str
    """One sentence a person can act on."""


# -- normalisation ---------------------------------------------------------------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_REFUSED = {"/": "an encoded slash", "\\": "a backslash", ";": "a ; path parameter"}
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_ABSOLUTE = re.compile(r"(https?)://([^/?#]*)(.*)", re.IGNORECASE | re.DOTALL)


def normalise(host: str, uri: str, *, scheme: str = "http") -> Target:
    """The host and path a request is decided on, or :class:`Malformed`.

    >>> normalise("LocalHost:8002.", "/health?x=1")  # doctest: +SKIP
    Target(host='localhost:8002', path='/health', canonical=True)
    """
    name = normalise_host(host, scheme=scheme)
    _visible(uri, "request target")
    if uri == "*" or not uri:
        raise Malformed(f"{uri!r} is not a path")
    if not uri.startswith("/"):
        uri = _absolute(uri, name)
    path, fragment, _ = uri.partition("#")  # a raw # was never sent by a browser
    resolved, clean = _path(path.partition("?")[0])
    return Target(name, resolved, canonical=clean and not fragment)


@lru_cache(maxsize=1024)  # a gate sees few hosts, each on every request
def normalise_host(host: str, *, scheme: str = "http") -> str:
    """``API-stg.plyr.fm.:443`` (https) → ``api-stg.plyr.fm``, or :class:`Malformed`."""
    _visible(host, "host", ascii_only=False)
    if "@" in host:
        raise Malformed(f"host {host!r} carries userinfo")
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise Malformed(f"host {host!r} opens an IPv6 literal it never closes")
        name, rest = host[: end + 1].lower(), host[end + 1 :]
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            raise Malformed(f"host {host!r} is not an IPv6 address") from None
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
        name = _name(name, host)
    if rest and not (re.fullmatch(r":[0-9]{1,5}", rest) and 0 < int(rest[1:]) < 65536):
        raise Malformed(f"host {host!r} has no valid port")
    port = str(int(rest[1:])) if rest else ""
    if port and port != DEFAULT_PORTS.get(scheme.lower()):
        return f"{name}:{port}"
    return name


def _name(name: str, shown: str) -> str:
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as error:
            raise Malformed(f"host {shown!r} is not a valid international name: {error}") from None
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise Malformed(f"host {shown!r} is not a host name")
    return name


def _visible(text: str, what: str, *, ascii_only: bool = True) -> None:
    """Refuse control characters, whitespace and NUL (and non-ASCII in a target)."""
    for char in text:
        if char <= " " or char == "\x7f" or ("\x80" <= char <= "\xa0") or char.isspace():
            raise Malformed(f"the {what} contains the control or space character {char!r}")
        if ascii_only and not char.isascii():
            raise Malformed(f"the {what} contains {char!r}: a request target is ASCII")


def _absolute(uri: str, host: str) -> str:
    """``http://host/path`` → ``/path``, when ``host`` is the request's own host."""
    parts = _ABSOLUTE.fullmatch(uri)
    if parts is None:
        raise Malformed(f"{uri!r} is neither a path nor an http(s) URL")
    scheme, authority, rest = parts.groups()
    if normalise_host(authority, scheme=scheme.lower()) != host:
        raise Malformed(f"{uri!r} names another host than the request's ({host})")
    return rest if rest.startswith("/") else "/" + rest


def _path(raw: str) -> tuple[str, bool]:
    """The normalised path, and whether the raw path was already normal (canonical)."""
    if "%" in _ESCAPE.sub("", raw):
        raise Malformed(f"the path {raw!r} has a % that starts no escape")
    for char in "\\;":
        if char in raw:
            raise Malformed(
                f"the path {raw!r} contains {_REFUSED[char]}; it is refused, not guessed"
            )
    decoded = _ESCAPE.sub(_unescape, raw)
    segments: list[str] = []
    parts = decoded.split("/")[1:]
    for segment in parts:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    path = "/" + "/".join(segments)
    if segments and parts[-1] in ("", ".", ".."):
        path += "/"  # RFC 3986 5.2.4: /a/b/.. is /a/
    return path, path == decoded


def _unescape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    if char in _UNRESERVED:
        return char
    if char in _REFUSED:
        raise Malformed(f"the path contains {_REFUSED[char]} (%{match.group(1)}); it is refused")
    if char < " " or char == "\x7f":
        raise Malformed(f"the path contains an encoded control character (%{match.group(1)})")
    return f"%{match.group(1).upper()}"


# -- the rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One rule of an environment's access: a bypass pattern, or the whole application."""

    action: Literal["bypass", "protect"]
    written: str
    """As in tiers.toml: ``localhost:8002/health``, ``/icons/*``; ``protect = true``."""
    host: str | None = None
    """The pattern's host (normalised), or None for any host of the environment."""
    path: str = "/"
    prefix: bool = True
    """``/icons/*`` (path ``/icons/``) matches every path under it; else the exact path."""
    index: int = 0

    @property
    def name(self) -> str:
        return PROTECT if self.action == "protect" else f"bypass {self.written}"

    @property
    def rank(self) -> tuple[int, int, int]:
        """Sort key, most specific first: exact, longer prefix, shorter, the whole app;
        a bypass before the whole application, then the first written."""
        if self.action == "protect":
            return (2, 0, 0)
        return (0, 0, self.index) if not self.prefix else (1, -len(self.path), self.index)

    def matches(self, target: Target) -> bool:
        if self.host is not None and self.host != target.host:
            return False
        if not self.prefix:
            return target.path == self.path
        return target.path.startswith(self.path)


def bypass_rule(pattern: str, index: int) -> Rule:
    """``localhost:8002/health``, ``/icons/*``, ``stg.plyr.fm/*`` → a :class:`Rule`."""
    host, _, path = pattern.partition("/")
    path = "/" + path
    prefix = path in ("/", "/*") or path.endswith("/*")
    if prefix:
        path = path.removesuffix("*")
    try:
        name = normalise_host(host) if host else None
        normal, canonical = _path(path)
    except Malformed as error:
        raise ValueError(f"bypass pattern {pattern!r}: {error}") from None
    if not canonical or "*" in normal:
        raise ValueError(
            f"bypass pattern {pattern!r} is not a normal path: write it as a browser sends it, "
            "with a single /* at the end for a prefix"
        )
    return Rule("bypass", pattern, name, normal, prefix, index)


def _env_host(url: str) -> str:
    parts = urlsplit(url)
    return normalise_host(parts.netloc.rsplit("@", 1)[-1], scheme=parts.scheme)


class Policy:
    """The access rules of one environment.

    >>> policy = Policy(config.environment("staging"))  # doctest: +SKIP
    >>> policy.decide(normalise("localhost:8002", "/health"), None).action  # doctest: +SKIP
    'bypass'
    """

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.hosts = [_env_host(b.address) for b in env.services.values() if b.address]
        """The environment's hosts, normalised as requests are."""
        rules = [Rule("protect", PROTECT, index=len(env.access.bypass))]
        for index, pattern in enumerate(env.access.bypass):
            try:
                rules.append(bypass_rule(pattern, index))
            except ValueError as error:
                key = f"environments.{env.name}.access.bypass[{index}]"
                raise UsageError(f"tiers.toml {key}: {error}") from None
        self.rules = sorted(rules, key=lambda rule: rule.rank)
        """Every rule, in precedence order (the whole application last)."""

    def candidates(self, target: Target) -> list[Rule]:
        """The rules that match ``target``, in precedence order: the first decides
        (a bypass only for a canonical target), the whole application is last."""
        return [rule for rule in self.rules if rule.matches(target)]

    def decide(self, target: Target, identity: Identity | None, *, method: str = "GET") -> Decision:
        """Bypass, allow, login or deny, with the rule that decides and why."""
        access, env = self.env.access, self.env.name
        if not access.protect:
            return Decision("allow", "not protected", f"{env} is not protected: anyone may enter")
        if target.host not in self.hosts:
            known = ", ".join(self.hosts) or "none"
            return Decision(
                "deny", "default deny", f"{target.host} is not a host of {env} ({known})"
            )
        rule = self.deciding(target)
        if rule.action == "bypass":
            return Decision(
                "bypass", rule.name, f"{target} is public: the most specific rule is {rule.name}"
            )
        return self._protected(target, identity, method.upper())

    def decide_request(
        self,
        host: str,
        uri: str,
        identity: Identity | None,
        *,
        method: str = "GET",
        scheme: str = "http",
    ) -> tuple[Target | None, Decision]:
        """:func:`normalise` then :meth:`decide`, with a target that cannot be read denied
        (rule ``malformed request``): what the gate answers for a raw request."""
        try:
            target = normalise(host, uri, scheme=scheme)
        except Malformed as error:
            return None, Decision("deny", MALFORMED, f"the gate refuses it: {error}")
        return target, self.decide(target, identity, method=method)

    def deciding(self, target: Target) -> Rule:
        """The rule that decides ``target``'s path: the first candidate, passing over a
        bypass when the target is not canonical."""
        for rule in self.candidates(target):
            if rule.action == "protect" or target.canonical:
                return rule
        raise AssertionError("the whole application matches every target")  # pragma: no cover

    def _protected(self, target: Target, identity: Identity | None, method: str) -> Decision:
        access, env = self.env.access, self.env.name
        where = f"{target} is protected"
        if not target.canonical:
            where += " (bypass patterns match only a path written as browsers send it)"
        if identity is None and method == "OPTIONS":
            if access.preflight == "origin":
                reason = f"{where}, but a CORS preflight carries no credentials: passed to the app"
                return Decision("bypass", 'preflight = "origin"', reason)
            return Decision("deny", 'preflight = "deny"', f"{where}; preflights are refused")
        if identity is None:
            methods = " or ".join(access.login) or "no login method (add access.login)"
            return Decision(
                "login", PROTECT, f"{where} and nobody is signed in: sign in with {methods}"
            )
        if identity.kind == "service":
            return self._service(target, identity)
        for selector in access.allow:
            if identity.matches(selector):
                return Decision(
                    "allow", f"allow {selector}", f"{identity.name} is let into {env} by {selector}"
                )
        allowed = ", ".join(access.allow) or "nobody: access.allow is empty"
        return Decision(
            "deny",
            "default deny",
            f"{where} and {identity.name} matches none of allow ({allowed})",
        )

    def _service(self, target: Target, identity: Identity) -> Decision:
        env = self.env.name
        if identity.environment != env:
            belongs = identity.environment or "no environment"
            reason = f"service token {identity.name} belongs to {belongs}, not {env}"
            return Decision("deny", "default deny", reason)
        reason = f"{target} is protected and service token {identity.name} is one of {env}'s"
        return Decision("allow", "service auth", reason)
