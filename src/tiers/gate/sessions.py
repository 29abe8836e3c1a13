"""Sessions: the signed cookie, the server-side list that revokes it, and the host hop.

The cookie carries a signed token, ``HS256`` JWT made with PyJWT and the environment's
gate secret: claims ``sid`` (a random session id), ``aud`` (``tiers-session:ENV``) and
``exp``. PyJWT rather than itsdangerous because the gate already needs it for the
assertions, it checks ``exp`` and ``aud`` itself, and decoding pins the one algorithm
(``algorithms=["HS256"]``), so a token naming another is refused. The signature alone
never lets anyone in: the session id must also be in the environment's live session
list (``access_sessions``), which the gate reloads every second, so a logout or a
revocation holds within seconds, and a staging cookie is nothing to production (another
name, another secret, another ``aud``, another list).

The cookie: ``tiers_session_ENV`` (``__Host-tiers_session_ENV`` over https), HttpOnly,
SameSite=Lax, Path=/, no Domain (host-only), Secure except on plain-http localhost, and
Max-Age from ``session_hours``. An environment whose hosts differ (``stg.plyr.fm`` and
``api-stg.plyr.fm``) gets one cookie per host: after a login, the browser is sent
through ``/.tiers/access/session?ticket=…`` on each other host (a single-use ticket,
valid 60 seconds, naming the next hop server-side, so nothing in the URL can send the
browser elsewhere). Hosts that differ only by port share cookies already and are skipped.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import jwt

from tiers.gate.identity import Identity

__all__ = [
    "COOKIE_KINDS",
    "CookieKind",
    "SessionCache",
    "Signer",
    "Ticket",
    "Tickets",
    "cookie_attributes",
    "cookie_host",
    "cookie_name",
    "secure_cookie",
]

CookieKind = Literal["session", "login", "oauth"]
COOKIE_KINDS: tuple[CookieKind, ...] = ("session", "login", "oauth")
"""Every cookie the gate sets (what Caddy keeps from the app:
:data:`tiers.platforms.local.gate.GATE_COOKIES`)."""
TICKET_SECONDS = 60
_LOCAL = ("localhost", "127.0.0.1", "[::1]")


def cookie_host(host: str) -> str:
    """The host a cookie belongs to: cookies ignore ports (``localhost:8002`` →
    ``localhost``)."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def secure_cookie(scheme: str, host: str) -> bool:
    """Secure everywhere but plain http on this machine (where browsers would drop it)."""
    return not (scheme == "http" and cookie_host(host) in _LOCAL)


def cookie_name(environment: str, secure: bool, kind: CookieKind = "session") -> str:
    """The name of the gate's ``kind`` of cookie for ``environment``: its session, a
    sign-in in progress (``login``), an OAuth round trip (``oauth``). ``__Host-`` makes
    browsers refuse the cookie unless Secure, host-only and Path=/."""
    return f"{'__Host-' if secure else ''}tiers_{kind}_{environment}"


def cookie_attributes(secure: bool, max_age: int) -> dict[str, Any]:
    """The keyword arguments of Starlette's ``set_cookie`` for a gate cookie."""
    return {
        "max_age": max_age,
        "path": "/",
        "secure": secure,
        "httponly": True,
        "samesite": "lax",
    }


class Signer:
    """Short signed values for one environment and one purpose each (session, login
    flow, OAuth state), so one kind can never stand in for another."""

    def __init__(self, key: bytes, environment: str) -> None:
        self.key = key
        self.environment = environment

    def _audience(self, purpose: str) -> str:
        return f"tiers-{purpose}:{self.environment}"

    def sign(self, purpose: str, claims: dict[str, Any], seconds: int) -> str:
        moment = int(time.time())
        body = {**claims, "aud": self._audience(purpose), "iat": moment, "exp": moment + seconds}
        return jwt.encode(body, self.key, algorithm="HS256")

    def unsign(self, purpose: str, token: str) -> dict[str, Any] | None:
        """The claims, or None for anything forged, altered, expired or of another kind."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=["HS256"],
                audience=self._audience(purpose),
                options={"require": ["exp", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        return claims


@dataclass
class SessionCache:
    """The live sessions of one environment, as the per-request path sees them.

    ``sessions`` is replaced whole by :meth:`load` (the gate's refresh loop, every
    second); sessions this gate creates or revokes change it at once. Verified cookie
    values are remembered (bounded) so a request costs a dictionary lookup, not an HMAC.
    """

    signer: Signer
    sessions: dict[str, tuple[Identity, datetime]] = field(default_factory=dict)
    _verified: dict[str, str | None] = field(default_factory=dict)

    def load(self, live: dict[str, tuple[Identity, datetime]]) -> None:
        self.sessions = live

    def add(self, session_id: str, identity: Identity, expires_at: datetime) -> None:
        self.sessions = {**self.sessions, session_id: (identity, expires_at)}

    def drop(self, session_id: str) -> None:
        self.sessions = {k: v for k, v in self.sessions.items() if k != session_id}

    def session_id(self, cookie: str | None) -> str | None:
        """The session id a cookie value carries, if its signature and expiry hold."""
        if not cookie:
            return None
        if cookie in self._verified:
            return self._verified[cookie]
        claims = self.signer.unsign("session", cookie)
        found = str(claims["sid"]) if claims and isinstance(claims.get("sid"), str) else None
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[cookie] = found
        return found

    def identity(self, cookie: str | None, moment: datetime) -> tuple[str, Identity] | None:
        """Who the cookie signs in, or None (no cookie, forged, revoked or expired)."""
        session_id = self.session_id(cookie)
        if session_id is None:
            return None
        found = self.sessions.get(session_id)
        if found is None or found[1] <= moment:
            return None
        return session_id, found[0]

    def cookie(self, session_id: str, seconds: int) -> str:
        return self.signer.sign("session", {"sid": session_id}, seconds)


@dataclass(frozen=True)
class Ticket:
    """One hop of the chain that sets the cookie on each host of the environment."""

    session_id: str
    host: str
    """The host this ticket may be spent on."""
    rest: tuple[str, ...]
    """The hosts still to visit after this one."""
    final: str
    """Where the chain ends: an absolute URL on the host where the login happened."""
    expires: float


class Tickets:
    """Single-use tickets, in the gate's memory (they live 60 seconds)."""

    def __init__(self) -> None:
        self._tickets: dict[str, Ticket] = {}

    def issue(self, session_id: str, hosts: tuple[str, ...], final: str) -> str:
        moment = time.monotonic()
        self._tickets = {k: t for k, t in self._tickets.items() if t.expires > moment}
        value = secrets.token_urlsafe(32)
        ticket = Ticket(session_id, hosts[0], hosts[1:], final, moment + TICKET_SECONDS)
        self._tickets[value] = ticket
        return value

    def spend(self, value: str, host: str) -> Ticket | None:
        """The ticket, removed, if it exists, is still valid and is for ``host``."""
        ticket = self._tickets.pop(value, None)
        if ticket is None or ticket.expires <= time.monotonic() or ticket.host != host:
            return None
        return ticket
