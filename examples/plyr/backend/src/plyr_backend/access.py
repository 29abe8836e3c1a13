"""Only requests the access gate let through, when the environment is protected.

A protected tier's gate stands in front of its public address, but the app's own port
answers too (on the local platform, 127.0.0.1:PORT), so the app checks what Cloudflare
asks an origin behind Access to check: the signed assertion the gate adds to each request
it lets through (``Tiers-Access-Jwt-Assertion``, an ES256 JWT), against the gate's public
keys (its JWKS), with the audience and issuer of this service. A request without a valid
one gets a 401, except on the tier's public bypass paths.

The platform says all of it in the environment (nothing is set: no check, as in a public
tier or on a developer's machine):

- ``TIERS_ACCESS_JWKS_URL``: the gate's keys, e.g. ``http://127.0.0.1:8123/.tiers/access/certs``;
- ``TIERS_ACCESS_AUDIENCE`` (``staging/backend``) and ``TIERS_ACCESS_ISSUER``
  (``tiers-gate:staging``);
- ``TIERS_ACCESS_BYPASS``: the bypass paths of tiers.toml for this host, comma-separated
  (``/health,/docs,/openapi.json``; ``/icons/*`` is a prefix), so the list is written once;
- ``TIERS_ACCESS_PREFLIGHT``: ``origin`` lets CORS preflights through, as the gate does.

This module stands alone (PyJWT on ``cryptography``; the app cannot import tiers).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
import jwt

__all__ = ["AccessCheck", "guarded"]

HEADER = b"tiers-access-jwt-assertion"
ALGORITHMS = ["ES256"]
_REFRESH = 300.0  # seconds the keys are kept before they are asked for again
_RETRY = 10.0  # at most one fetch this often for a key id the cache does not know
_ODD = re.compile(r"(^|/)\.\.?(/|$)|//|\\|;")  # a path no bypass may be matched on

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Keys:
    """The gate's public keys by ``kid``, fetched in a thread and kept for a while."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: dict[str, Any] = {}
        self.fetched = 0.0

    async def get(self, kid: str) -> Any:
        age = time.monotonic() - self.fetched
        if age > _REFRESH or (kid not in self.keys and age > _RETRY):
            await anyio.to_thread.run_sync(self._fetch)
        return self.keys.get(kid)

    def _fetch(self) -> None:
        self.fetched = time.monotonic()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url, timeout=5) as response:
            found = json.load(response)
        self.keys = {k["kid"]: jwt.PyJWK(k).key for k in found.get("keys", []) if "kid" in k}


class AccessCheck:
    """ASGI middleware: a request needs the gate's assertion unless its path is public."""

    def __init__(
        self,
        app: App,
        jwks_url: str,
        audience: str,
        issuer: str,
        bypass: list[str],
        preflight: bool,
    ) -> None:
        self.app = app
        self.keys = Keys(jwks_url)
        self.audience, self.issuer = audience, issuer
        self.exact = {p for p in bypass if not p.endswith("/*")}
        self.prefixes = tuple(p[:-1] for p in bypass if p.endswith("/*"))
        self.preflight = preflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._public(scope):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        token = headers.get(HEADER, b"").decode("latin-1")
        if token and await self._valid(token):
            await self.app(scope, receive, send)
            return
        await _refuse(scope, send)

    def _public(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        if self.preflight and scope.get("method") == "OPTIONS":
            headers = dict(scope.get("headers") or [])
            if b"access-control-request-method" in headers:
                return True
        if _ODD.search(path):
            return False
        return path in self.exact or path.startswith(self.prefixes)

    async def _valid(self, token: str) -> bool:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = await self.keys.get(str(kid)) if kid else None
            if key is None:
                return False
            jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, OSError, ValueError):
            return False  # a gate that cannot be asked lets nothing in
        return True


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401})
        return
    body = json.dumps(
        {"detail": "not signed in: this tier is reached through its access gate only"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def guarded(app: App, environ: MutableMapping[str, str] | None = None) -> App:
    """``app``, checking the gate's assertion when the platform says the tier is protected
    (``TIERS_ACCESS_JWKS_URL`` is set); ``app`` itself otherwise."""
    environ = os.environ if environ is None else environ
    url = environ.get("TIERS_ACCESS_JWKS_URL")
    if not url:
        return app
    bypass = [p.strip() for p in environ.get("TIERS_ACCESS_BYPASS", "").split(",") if p.strip()]
    return AccessCheck(
        app,
        url,
        audience=environ.get("TIERS_ACCESS_AUDIENCE", ""),
        issuer=environ.get("TIERS_ACCESS_ISSUER", ""),
        bypass=bypass,
        preflight=environ.get("TIERS_ACCESS_PREFLIGHT", "origin") == "origin",
    )
