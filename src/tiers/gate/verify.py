"""``GET /verify``: the per-request decision Caddy's ``forward_auth`` asks for.

This is the hot path, so it is plain ASGI (no routing, no request or response objects)
and reads memory only: the session and token caches, a cached assertion, the decision.

Caddy sends ``X-Forwarded-Method``, ``-Uri``, ``-Host`` and ``-Proto`` (the gate
listens on loopback, so they come from Caddy; each must appear once). The answer:

- 200, no headers: a bypass path, or a CORS preflight with ``access.preflight = "origin"``
  (the app answers it; ``"deny"`` gives 403);
- 200 with ``Tiers-Access-Jwt-Assertion`` and ``Tiers-Access-Identity`` (an email, or
  ``service:NAME``): allowed; Caddy copies both onto the request (``copy_headers``);
- 302 to ``/.tiers/access/login?return=URI`` for a browser nobody signed in on (a GET or
  HEAD that accepts text/html), 401 (JSON, no ``WWW-Authenticate``) for anything else
  anonymous, or a service token that is not a live one of this environment;
- 403 for someone signed in who is not allowed (the "denied" page for browsers), and
  for any other deny (a preflight with ``access.preflight = "deny"``, a foreign host);
- 400 for a request that cannot be read, or one carrying a header only the gate may set:
  any ``Tiers-Access-*`` (in any case, and with ``_`` for ``-``) but the two service
  token headers, ``Tiers-Access-Client-Id`` and ``Tiers-Access-Client-Secret``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import quote

from starlette.requests import cookie_parser
from starlette.types import Receive, Scope, Send

from tiers.gate.core import CACHED, Gate
from tiers.gate.policy import Malformed, Target, normalise
from tiers.gate.sessions import cookie_name, secure_cookie
from tiers.gate.store import now

__all__ = ["ASSERTION_HEADER", "IDENTITY_HEADER", "Verifier"]

ASSERTION_HEADER = "Tiers-Access-Jwt-Assertion"
IDENTITY_HEADER = "Tiers-Access-Identity"
CLIENT_ID = "tiers-access-client-id"
CLIENT_SECRET = "tiers-access-client-secret"
_EXPECTED = {CLIENT_ID, CLIENT_SECRET}
_SINGLE = {
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-forwarded-host",
    "x-forwarded-proto",
    CLIENT_ID,
    CLIENT_SECRET,
}
LOGIN = "/.tiers/access/login"

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
_TEXT = (b"content-type", b"text/plain; charset=utf-8")
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")


def _text(status: int, message: str) -> Answer:
    return status, [_TEXT], f"refused: {message}\n".encode()


def _target(host: str, uri: str, scheme: str) -> Target | None:
    try:
        return normalise(host, uri, scheme=scheme)
    except Malformed:
        return None


_known_target = lru_cache(maxsize=4096)(_target)


def _client(headers: dict[str, str], scope: Scope) -> str:
    forwarded = headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:100]
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Verifier:
    """The ``/verify`` endpoint of one gate, as an ASGI app."""

    def __init__(self, gate: Gate, denied_page: Callable[[str], str]) -> None:
        self.gate = gate
        self.denied_page = denied_page
        self.name = gate.name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = self.answer(scope)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _json(self, status: int, error: str, **more: str) -> Answer:
        body = json.dumps({"error": error, "environment": self.name, **more}).encode()
        return status, [_JSON, _NO_STORE], body

    def answer(self, scope: Scope) -> Answer:
        headers: dict[str, str] = {}
        for raw, value in scope["headers"]:
            name = raw.decode("latin-1").lower()
            if (
                name.startswith("tiers")
                and name.replace("_", "-").startswith("tiers-access-")
                and name not in _EXPECTED
            ):
                return _text(400, "the request carries a Tiers-Access header only the gate may set")
            if name in headers:
                if name in _SINGLE:
                    return _text(400, f"{name} appears more than once")
                headers[name] += ("; " if name == "cookie" else ", ") + value.decode("latin-1")
            else:
                headers[name] = value.decode("latin-1")
        return self._decide(headers, scope)

    def _decide(self, headers: dict[str, str], scope: Scope) -> Answer:
        method = headers.get("x-forwarded-method", "GET").upper()
        host = headers.get("x-forwarded-host")
        uri = headers.get("x-forwarded-uri")
        scheme = headers.get("x-forwarded-proto", "http").lower()
        if not host or uri is None or scheme not in ("http", "https"):
            return _text(400, "the gate needs X-Forwarded-Host, -Uri and -Proto")
        short = len(host) + len(uri) <= CACHED
        target = (_known_target if short else _target)(host, uri, scheme)
        if target is None:
            return _text(400, "the request target cannot be read unambiguously")
        site = self.gate.sites.get(target.host)
        if site is None:
            return _text(403, f"{target.host} is not a host of {self.name}")
        if (
            method == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        ):
            if self.gate.env.access.preflight == "origin":
                return 200, [], b""
            return _text(403, "CORS preflights are denied here (access.preflight)")
        holder, identity = None, None
        if CLIENT_ID in headers or CLIENT_SECRET in headers:
            client_id = headers.get(CLIENT_ID, "")
            secret = headers.get(CLIENT_SECRET, "")
            identity = self.gate.tokens.identity(client_id, secret, _client(headers, scope))
            if identity is None:
                # a public path stays public, whatever credentials come with the request
                if self.gate.policy.decide(target, None, method=method).action == "bypass":
                    return 200, [], b""
                return self._json(401, "invalid service token")
            holder = f"token:{client_id}"
        elif "cookie" in headers:
            name = cookie_name(self.name, secure_cookie(scheme, target.host))
            found = self.gate.sessions.identity(cookie_parser(headers["cookie"]).get(name), now())
            if found is not None:
                holder, identity = found
        check = self.gate.check(target, site, method, holder, identity)
        action = check.decision.action
        if action == "bypass":
            return 200, [], b""
        if action == "allow" and check.identity is not None and check.assertion is not None:
            who = check.identity.email if check.identity.kind == "user" else None
            return (
                200,
                [
                    (ASSERTION_HEADER.encode(), check.assertion.encode()),
                    (IDENTITY_HEADER.encode(), (who or f"service:{check.identity.name}").encode()),
                ],
                b"",
            )
        browser = method in ("GET", "HEAD") and "text/html" in headers.get("accept", "")
        if action == "login":
            if browser:
                location = f"{LOGIN}?return={quote(uri, safe='')}".encode()
                return 302, [(b"location", location), _NO_STORE], b""
            return self._json(401, "sign-in required", login=LOGIN)
        if identity is not None and identity.kind == "user" and browser:
            page = self.denied_page(identity.email or identity.name).encode()
            return 403, [(b"content-type", b"text/html; charset=utf-8"), _NO_STORE], page
        return self._json(403, "not allowed")
