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
    raise NotImplementedError


class Policy:
    """The access rules of one environment."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def decide(self, target: Target, identity: Identity | None, *, method: str = "GET") -> Decision:
        raise NotImplementedError
