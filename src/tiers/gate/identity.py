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
    environment: str | None = None
    """A service token's environment; a service enters only the environment it was
    made for (``tiers access token create ENV NAME``)."""

    def matches(self, selector: str) -> bool:
        """True when this identity is one of those ``selector`` names.

        >>> Identity("user", "a@plyr.fm", "otp", email="a@plyr.fm").matches("email-domain:plyr.fm")
        True

        Emails, domains, GitHub names, orgs and teams compare case-insensitively; OIDC
        groups exactly (providers treat them as opaque strings). A service matches none.
        """
        if self.kind != "user":
            return False
        kind, _, arg = selector.partition(":")
        match kind:
            case "everyone":
                return True
            case "email":
                return self.email is not None and _mailbox(self.email) == arg.lower()
            case "email-domain":
                mailbox = _mailbox(self.email) if self.email else None
                return mailbox is not None and mailbox.rpartition("@")[2] == arg.lower()
            case "github-user":
                return self.github_user is not None and self.github_user.lower() == arg.lower()
            case "github-org":
                return arg.lower() in (org.lower() for org in self.github_orgs)
            case "github-team":
                return arg.lower() in (team.lower() for team in self.github_teams)
            case "oidc-group":
                return arg in self.groups
            case "login":
                return self.method == arg
        return False


def _mailbox(address: str) -> str | None:
    """``A@Plyr.FM`` → ``a@plyr.fm``; None unless the address has one ``@`` with something
    on both sides. ``a@evil.com@plyr.fm`` is refused rather than read at its last ``@``:
    mail systems disagree on where such an address goes, so no domain rule may trust it."""
    local, at, domain = address.lower().partition("@")
    if not (local and at and domain) or "@" in domain or any(c.isspace() for c in address):
        return None
    return f"{local}@{domain}"
