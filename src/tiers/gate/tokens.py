"""Service tokens: how CI and uptime monitors pass the gate without a person.

A token is a client id (public, shown by ``tiers access token ls``) and a secret (shown
once, by ``tiers access token create``), sent as ``Tiers-Access-Client-Id`` and
``Tiers-Access-Client-Secret``. The state store keeps the secret's SHA-256 only: the
secret is 256 random bits, so a plain hash cannot be reversed, and it needs no key, so
``tiers access token create`` works wherever the state store is reachable. A token
belongs to one environment and is always a service identity (``service:NAME``), never
a user.

The gate checks tokens against :class:`TokenCache` (reloaded every second, so a revoked
token stops working within two) and records each token's use at most once per
:data:`RECORD_EVERY` seconds, from its refresh loop, never on the request path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tiers.errors import UsageError
from tiers.gate.identity import Identity
from tiers.gate.store import AccessStore, Token, now

__all__ = ["RECORD_EVERY", "TokenCache", "create", "parse_duration"]

RECORD_EVERY = 10.0
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``… as a timedelta; anything else is a UsageError."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"--expires {text!r}: expected a number and a unit, like 30d, 12h or 2w (s, m, h, d, w)"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(store: AccessStore, name: str, expires: timedelta | None) -> tuple[str, str]:
    """A new token called ``name``: (client id, secret). A live token of the same name
    must be revoked first, so a name always means one token."""
    if not _NAME.match(name):
        raise UsageError(
            f"token name {name!r}: use letters, digits, '.', '_' and '-' (up to 100), "
            "e.g. ci or uptime-monitor"
        )
    moment = now()
    if any(t.name == name and t.live(moment) for t in store.tokens()):
        raise UsageError(
            f"{store.environment} already has a live token called {name}; revoke it first "
            f"(`tiers access token revoke {store.environment} {name}`) or pick another name"
        )
    client_id = f"{store.environment}-{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(32)
    store.add_token(client_id, name, _digest(secret), moment + expires if expires else None)
    return client_id, secret


@dataclass
class TokenCache:
    """The environment's tokens, as the per-request path checks them."""

    environment: str
    tokens: dict[str, Token] = field(default_factory=dict)
    _pending: dict[str, tuple[str, datetime, str]] = field(default_factory=dict)
    _recorded: dict[str, datetime] = field(default_factory=dict)

    def load(self, tokens: list[Token]) -> None:
        self.tokens = {token.client_id: token for token in tokens}

    def identity(self, client_id: str, secret: str, client: str) -> Identity | None:
        """The service identity of a live token whose secret matches, or None."""
        token = self.tokens.get(client_id)
        moment = now()
        if token is None or not token.live(moment):
            return None
        if not hmac.compare_digest(token.digest, _digest(secret)):
            return None
        last = self._recorded.get(client_id)
        if last is None or (moment - last).total_seconds() >= RECORD_EVERY:
            self._recorded[client_id] = moment
            self._pending[client_id] = (token.name, moment, client)
        return Identity(
            kind="service", name=token.name, method="token", environment=self.environment
        )

    def take_uses(self) -> dict[str, tuple[str, datetime, str]]:
        """The uses to record now (the refresh loop writes them)."""
        uses, self._pending = self._pending, {}
        return uses
