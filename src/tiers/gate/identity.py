"""Who someone is once signed in, and whether an ``allow`` selector names them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Identity"]


@dataclass(frozen=True)
class Identity:
    """A signed-in person (``kind="user"``) or a service token (``kind="service"``).

    A service identity is never a user: it has no email and matches no ``allow``
    selector; it enters only through the environment's service tokens."""

    kind: Literal["user", "service"]
    name: str
    """The email address of a user, the token's name for a service."""
    method: Literal["otp", "github", "oidc", "google", "token"]
    email: str | None = None
    github_user: str | None = None
    github_orgs: tuple[str, ...] = ()
    github_teams: tuple[str, ...] = field(default=())
    """``org/team-slug``, lower case."""
    groups: tuple[str, ...] = ()
    """OIDC groups."""

    def matches(self, selector: str) -> bool:
        """True when this identity is one of those ``selector`` names."""
        # TEMP: a stand-in until the real matching lands
        if self.kind != "user":
            return False
        kind, _, arg = selector.partition(":")
        arg = arg.lower()
        email = (self.email or "").lower()
        if kind == "everyone":
            return True
        if kind == "email":
            return email == arg
        if kind == "email-domain":
            return email.rsplit("@", 1)[-1] == arg and email.count("@") == 1
        if kind == "login":
            return self.method == arg
        if kind == "github-user":
            return (self.github_user or "").lower() == arg
        if kind == "github-org":
            return arg in self.github_orgs
        if kind == "github-team":
            return arg in self.github_teams
        if kind == "oidc-group":
            return arg in self.groups
        return False
