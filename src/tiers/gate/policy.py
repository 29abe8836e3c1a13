"""The decision: which rule of ``[environments.ENV.access]`` decides a request, and why.

One normalisation (:func:`normalise`) turns what Caddy routed (host and raw request
target) into the host and path the rules are matched on, so the gate, ``tiers access
explain`` and the Cloudflare export can never disagree about a path. A request whose
target cannot be read unambiguously is refused, never guessed (a parse error denies).

Precedence, as in Cloudflare Access: the most specific pattern wins (an exact path beats
``/prefix/*``, which beats the whole application); between equally specific patterns a
bypass wins, then the first written. Default deny.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tiers.config import Environment
from tiers.gate.identity import Identity

__all__ = ["Decision", "Malformed", "Policy", "Target", "normalise"]

Action = Literal["bypass", "allow", "login", "deny"]
"""bypass: anyone, no identity asked; allow: this identity may enter; login: nobody is
signed in and the path is protected (send them to the login page); deny: signed in (or
not identifiable) and not allowed, or the request cannot be read."""


class Malformed(ValueError):
    """The request target cannot be read unambiguously; the gate refuses it."""


@dataclass(frozen=True)
class Target:
    """A request as the rules see it: lower-case host (port kept unless default, no
    trailing dot) and a normalised path (no query, no fragment, no dot segments)."""

    host: str
    path: str

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


def normalise(host: str, uri: str, *, scheme: str = "http") -> Target:
    """The host and path a request is decided on, or :class:`Malformed`."""
    # TEMP: a stand-in until the real normalisation lands
    import posixpath
    import re
    from urllib.parse import unquote

    host = host.strip().lower().rstrip(".")
    default = ":443" if scheme == "https" else ":80"
    if host.endswith(default):
        host = host[: -len(default)]
    if not host or not re.fullmatch(r"[a-z0-9.\-\[\]:]+", host):
        raise Malformed(f"host {host!r}")
    if not uri.startswith("/"):
        raise Malformed(f"target {uri!r}")
    path = unquote(uri.split("?", 1)[0].split("#", 1)[0])
    if "\\" in path or any(ord(c) < 33 or ord(c) == 127 for c in path):
        raise Malformed(f"target {uri!r}")
    path = "/".join(segment.split(";", 1)[0] for segment in path.split("/"))
    trailing = path.endswith("/") and path != "/"
    path = posixpath.normpath("/" + path.lstrip("/"))
    path = "/" + path.lstrip("/")
    return Target(host, path + ("/" if trailing and path != "/" else ""))


class Policy:
    """The access rules of one environment."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def decide(self, target: Target, identity: Identity | None, *, method: str = "GET") -> Decision:
        # TEMP: a stand-in until the real decision lands
        for pattern in self.env.access.bypass:
            host, _, path = pattern.partition("/")
            path = "/" + path
            if host and host != target.host:
                continue
            if target.path == path or (path.endswith("/*") and target.path.startswith(path[:-1])):
                return Decision("bypass", f"bypass {pattern}", "a public path")
        if identity is None:
            return Decision("login", "default deny", "sign in first")
        if identity.kind == "service":
            return Decision("allow", "service token", "a service token of this environment")
        for selector in self.env.access.allow:
            if identity.matches(selector):
                return Decision("allow", f"allow {selector}", "allowed")
        return Decision("deny", "default deny", "not allowed")
