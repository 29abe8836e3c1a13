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
        raise NotImplementedError
