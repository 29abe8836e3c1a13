"""Signing in with an OpenID Connect provider: the authorization code flow, with PKCE.

The gate's routes call, in order:

1. ``await`` :func:`authorize_url` (it reads the provider's discovery document, once an
   hour) to send the browser to the provider with the CSRF ``state`` and a ``nonce``;
2. :func:`callback_error` on the way back, for ``?error=…`` (cancelled, no session…) and
   a callback from another issuer (RFC 9207's ``iss``);
3. :func:`identity`: exchange the code, check the ID token, read email and groups.

**The nonce is a secret the caller keeps** with the state (in the state cookie), and
passes unchanged to both calls. The provider never sees it: the request carries a digest
of it as ``nonce``, and the PKCE ``code_verifier`` is another digest of it, sent only to
the token endpoint. So one value the caller already keeps binds the ID token to this
browser (the nonce) and the code to this sign-in (PKCE, S256), and neither can be read
off the authorize URL. It must be long and random: ``secrets.token_urlsafe(32)``.

The ID token is checked as OpenID Connect Core §3.1.3.7 says: signed by a key from the
provider's JWKS (fetched again once when a token names a key it does not know, which is
how providers rotate), with an asymmetric algorithm the provider announces (never
``none``, never HMAC), ``iss`` the configured issuer, ``aud`` this client (``azp`` when
there are several), not expired, ``nonce`` this sign-in's, ``at_hash`` the access token's.
JOSE is joserfc (authlib's own JOSE library, which ``authlib.jose`` now defers to); the
ID token rules are authlib's ``CodeIDToken``; authlib also builds the authorize URL and
the PKCE challenge. HTTP is httpx (authlib's httpx integration warns on import).

The email counts only with ``email_verified`` true; groups come from
``access.oidc.groups_claim`` (in the ID token, or from the userinfo endpoint when the
provider keeps claims there). Every failure is a :class:`~tiers.gate.github.LoginFailed`
whose message the login page shows: what happened and what to do, never a secret.

Example::

    url = await authorize_url(cfg, redirect_uri, state, nonce)
    if (failed := callback_error(cfg, request.query_params)) is not None:
        raise failed
    who = await identity(cfg, secret_value, code, redirect_uri, nonce)
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet

from tiers.config.model import OidcLogin
from tiers.gate.github import LoginFailed
from tiers.gate.identity import Identity

__all__ = [
    "LoginFailed",
    "authorize_url",
    "callback_error",
    "exchange",
    "identity",
    "verify_id_token",
]

TIMEOUT = httpx.Timeout(10.0)
DISCOVERY_SECONDS = 3600
"""How long a provider's discovery document is kept before it is read again."""
LEEWAY_SECONDS = 60
"""Clock skew allowed between the provider and the gate, for ``exp`` and ``iat``."""
_ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
_ASYMMETRIC |= {"EdDSA", "Ed25519"}
_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


@dataclass
class _Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    scopes: set[str]
    algorithms: list[str]
    client_auth: str
    """``client_secret_basic`` unless the provider takes only ``client_secret_post``."""
    keys: KeySet | None
    read_at: float


_providers: dict[str, _Provider] = {}


async def authorize_url(cfg: OidcLogin, redirect_uri: str, state: str, nonce: str) -> str:
    """Where to send the browser to sign in; it comes back to ``redirect_uri`` with
    ``code`` and this ``state``. ``nonce`` is the caller's secret (see the module)."""
    async with _client() as client:
        provider = await _discover(client, cfg)
    scope = ["openid", "email", "profile"]
    if cfg.groups_claim in provider.scopes:  # Okta, Dex, Authentik… hand groups out by scope
        scope.append(cfg.groups_claim)
    url: str = prepare_grant_uri(
        provider.authorization_endpoint,
        cfg.client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=" ".join(scope),
        state=state,
        nonce=_sent_nonce(nonce),
        code_challenge=create_s256_code_challenge(_verifier(nonce)),
        code_challenge_method="S256",
    )
    return url


def callback_error(cfg: OidcLogin, params: Mapping[str, str]) -> LoginFailed | None:
    """What went wrong, from the query the provider sent back to the callback, or None
    when it sent a code (from this issuer)."""
    issuer = params.get("iss")
    if issuer is not None and issuer.rstrip("/") != cfg.issuer.rstrip("/"):
        return LoginFailed("The sign-in came back from another provider. Sign in again.")
    error = params.get("error")
    if error is None:
        if params.get("code"):
            return None
        return LoginFailed("No sign-in code came back. Sign in again.")
    if error == "access_denied":
        return LoginFailed("You cancelled signing in, so you are not signed in.")
    if error in {"login_required", "interaction_required", "consent_required"}:
        return LoginFailed("The sign-in provider needs you to sign in there. Sign in again.")
    known = error if error.replace("_", "").isalpha() and len(error) <= 40 else "unknown error"
    return LoginFailed(f"The sign-in provider refused the sign-in ({known}). Sign in again.")


async def identity(
    cfg: OidcLogin, client_secret: str, code: str, redirect_uri: str, nonce: str
) -> Identity:
    """Who signed in: exchange ``code`` for tokens, check the ID token against this
    sign-in's ``nonce``, and read the verified email and the groups."""
    async with _client() as client:
        provider = await _discover(client, cfg)
        tokens = await _exchange(client, provider, cfg, client_secret, code, redirect_uri, nonce)
        claims = await _verify(client, provider, cfg, tokens, nonce, None)
        if provider.userinfo_endpoint and not {"email", cfg.groups_claim} <= claims.keys():
            claims = {**await _userinfo(client, provider, tokens, claims["sub"]), **claims}
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise LoginFailed(
            "The sign-in provider did not give your email address, so the gate cannot tell "
            "who you are. Ask the environment's owner to let it share the email scope."
        )
    if claims.get("email_verified") not in (True, "true"):
        raise LoginFailed(
            "The sign-in provider does not say your email address is verified, so the gate "
            "cannot tell who you are. Verify it there, then sign in again."
        )
    return Identity(
        kind="user",
        name=email.lower(),
        method="oidc",
        email=email.lower(),
        groups=_groups(claims.get(cfg.groups_claim)),
    )


async def exchange(
    cfg: OidcLogin, client_secret: str, code: str, redirect_uri: str, nonce: str
) -> dict[str, Any]:
    """The provider's token response for ``code`` (``id_token``, ``access_token``…), not
    checked yet: :func:`identity` is what the gate calls; this and
    :func:`verify_id_token` are its two halves, for tools and tests."""
    async with _client() as client:
        provider = await _discover(client, cfg)
        return await _exchange(client, provider, cfg, client_secret, code, redirect_uri, nonce)


async def verify_id_token(
    cfg: OidcLogin,
    id_token: str,
    nonce: str,
    *,
    access_token: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The claims of ``id_token`` once it passes every check (see the module), for the
    sign-in whose secret is ``nonce``; at ``now`` (seconds since the epoch) if given."""
    async with _client() as client:
        provider = await _discover(client, cfg)
        tokens = {"id_token": id_token, "access_token": access_token}
        return await _verify(client, provider, cfg, tokens, nonce, now)


def _client() -> httpx.AsyncClient:
    """One HTTP client per call, with the gate's timeouts."""
    return httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": "tiers-gate"})


async def _discover(client: httpx.AsyncClient, cfg: OidcLogin) -> _Provider:
    issuer = cfg.issuer.rstrip("/")
    known = _providers.get(issuer)
    if known is not None and time.monotonic() - known.read_at < DISCOVERY_SECONDS:
        return known
    doc = await _get_json(client, f"{issuer}/.well-known/openid-configuration", cfg)
    if not isinstance(doc, dict) or str(doc.get("issuer", "")).rstrip("/") != issuer:
        raise _misconfigured(cfg, "its discovery document names another issuer")
    try:
        endpoints = {
            name: str(doc[name])
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        }
    except KeyError as missing:
        raise _misconfigured(cfg, f"its discovery document has no {missing}") from None
    algorithms = [
        a for a in doc.get("id_token_signing_alg_values_supported", []) if a in _ASYMMETRIC
    ]
    if not algorithms:
        raise _misconfigured(cfg, "it signs ID tokens with no asymmetric algorithm")
    methods = doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    provider = _Provider(
        issuer=issuer,
        userinfo_endpoint=doc.get("userinfo_endpoint"),
        scopes=set(doc.get("scopes_supported", [])),
        algorithms=algorithms,
        client_auth="client_secret_basic"
        if "client_secret_basic" in methods
        else "client_secret_post",
        keys=None,
        read_at=time.monotonic(),
        **endpoints,
    )
    _providers[issuer] = provider
    return provider


async def _exchange(
    client: httpx.AsyncClient,
    provider: _Provider,
    cfg: OidcLogin,
    secret: str,
    code: str,
    redirect_uri: str,
    nonce: str,
) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": _verifier(nonce),
    }
    headers = {"Accept": "application/json"}
    if provider.client_auth == "client_secret_basic":
        # RFC 6749 §2.3.1: both are form-encoded before they are joined and encoded
        pair = f"{quote_plus(cfg.client_id)}:{quote_plus(secret)}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
    else:
        form |= {"client_id": cfg.client_id, "client_secret": secret}
    try:
        response = await client.post(provider.token_endpoint, data=form, headers=headers)
    except httpx.TransportError:
        raise _unreachable(cfg) from None
    body = _body(response, cfg)
    if response.status_code != 200 or "error" in body:
        raise _token_error(str(body.get("error", f"HTTP {response.status_code}")), cfg)
    if not isinstance(body.get("id_token"), str):
        raise LoginFailed("The sign-in provider sent no ID token. Sign in again.")
    return body


async def _verify(
    client: httpx.AsyncClient,
    provider: _Provider,
    cfg: OidcLogin,
    tokens: Mapping[str, Any],
    nonce: str,
    now: int | None,
) -> dict[str, Any]:
    decoded = await _decode(client, provider, cfg, str(tokens["id_token"]))
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        options={
            "iss": {"essential": True, "value": provider.issuer},
            "aud": {"essential": True, "value": cfg.client_id},
        },
        params={
            "nonce": _sent_nonce(nonce),
            "client_id": cfg.client_id,
            "access_token": tokens.get("access_token"),
        },
    )
    try:
        claims.validate(now=now, leeway=LEEWAY_SECONDS)
    except ExpiredTokenError:
        raise _refused("it has expired") from None
    except ClaimError as bad:
        raise _refused(_claim_reason(bad.claim)) from None
    except JoseError:
        raise _refused("its claims are not valid") from None
    if not isinstance(decoded.claims.get("sub"), str):
        raise _refused("it names nobody")
    return dict(decoded.claims)


async def _decode(
    client: httpx.AsyncClient, provider: _Provider, cfg: OidcLogin, id_token: str
) -> jwt.Token:
    """The token, its signature checked with the provider's keys, read again once if
    it names a key not seen yet (a rotation)."""
    if provider.keys is None:
        provider.keys = await _keys(client, provider, cfg)
    try:
        try:
            return jwt.decode(id_token, provider.keys, algorithms=provider.algorithms)
        except InvalidKeyIdError:
            provider.keys = await _keys(client, provider, cfg)
            return jwt.decode(id_token, provider.keys, algorithms=provider.algorithms)
    except InvalidKeyIdError:
        raise _refused("it was signed with a key the provider does not publish") from None
    except BadSignatureError:
        raise _refused("its signature does not match the provider's key") from None
    except UnsupportedAlgorithmError:
        raise _refused("it is not signed with an algorithm the provider announces") from None
    except JoseError:
        raise _refused("it cannot be read") from None


async def _keys(client: httpx.AsyncClient, provider: _Provider, cfg: OidcLogin) -> KeySet:
    doc = await _get_json(client, provider.jwks_uri, cfg)
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise _misconfigured(cfg, "its JWKS cannot be read")
    usable = [k for k in doc["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError):
        raise _misconfigured(cfg, "its JWKS cannot be read") from None


async def _userinfo(
    client: httpx.AsyncClient, provider: _Provider, tokens: Mapping[str, Any], sub: str
) -> dict[str, Any]:
    assert provider.userinfo_endpoint is not None
    try:
        response = await client.get(
            provider.userinfo_endpoint,
            headers={"Authorization": f"Bearer {tokens.get('access_token', '')}"},
        )
        body = response.json() if response.status_code == 200 else {}
    except (httpx.TransportError, ValueError):
        body = {}
    # OpenID Connect Core §5.3.2: claims about someone else are not about this person
    return body if isinstance(body, dict) and body.get("sub") == sub else {}


async def _get_json(client: httpx.AsyncClient, url: str, cfg: OidcLogin) -> object:
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.TransportError:
        raise _unreachable(cfg) from None
    if response.status_code != 200:
        raise _misconfigured(cfg, f"{urlsplit(url).path} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise _misconfigured(cfg, f"{urlsplit(url).path} is not JSON") from None


def _body(response: httpx.Response, cfg: OidcLogin) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _misconfigured(cfg, f"its token endpoint answered HTTP {response.status_code}")
    return body


def _token_error(error: str, cfg: OidcLogin) -> LoginFailed:
    if error == "invalid_grant":
        return LoginFailed(
            "The sign-in code has expired, was already used or belongs to another sign-in. "
            "Sign in again."
        )
    if error in {"invalid_client", "unauthorized_client"}:
        return LoginFailed(
            f"The sign-in provider did not accept this gate (client_id {cfg.client_id!r} and "
            f"the secret {cfg.client_secret}). Ask the environment's owner to check them."
        )
    known = error if error.replace("_", "").replace(" ", "").isalnum() else "unknown error"
    return LoginFailed(f"The sign-in provider refused the sign-in code ({known}). Sign in again.")


def _claim_reason(claim: str) -> str:
    return {
        "iss": "another provider issued it",
        "aud": "it was issued to another application",
        "azp": "it was issued to another application",
        "nonce": "it belongs to another sign-in",
        "at_hash": "it does not go with its access token",
        "nbf": "it is not valid yet",
        "iat": "its issue time is not valid",
    }.get(claim, "its claims are not valid")


def _refused(reason: str) -> LoginFailed:
    return LoginFailed(f"The sign-in provider's ID token was refused: {reason}. Sign in again.")


def _unreachable(cfg: OidcLogin) -> LoginFailed:
    host = urlsplit(cfg.issuer).netloc
    return LoginFailed(f"The sign-in provider ({host}) could not be reached. Try again later.")


def _misconfigured(cfg: OidcLogin, what: str) -> LoginFailed:
    return LoginFailed(
        f"The sign-in provider at {cfg.issuer} cannot be used: {what}. "
        "Ask the environment's owner to check access.oidc.issuer."
    )


def _groups(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(sorted({g for g in value if isinstance(g, str)}))
    return ()


def _digest(label: str, secret: str) -> str:
    raw = hashlib.sha256(f"tiers-gate-oidc-{label}\0{secret}".encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sent_nonce(nonce: str) -> str:
    """The ``nonce`` the provider sees and puts in the ID token."""
    return _digest("nonce", nonce)


def _verifier(nonce: str) -> str:
    """The PKCE ``code_verifier``: 43 characters of base64url (RFC 7636 §4.1)."""
    return _digest("pkce", nonce)
