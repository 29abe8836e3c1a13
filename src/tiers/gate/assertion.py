"""The identity assertion the origin receives, the keys that sign it, and its check.

On every request it lets through, the gate adds ``Tiers-Access-Jwt-Assertion``: an
ES256 JWT (ECDSA P-256, PyJWT on ``cryptography``) with a ``kid`` header and the
claims

- ``iss``: ``tiers-gate:ENV`` (one issuer per environment, whatever host it serves);
- ``aud``: ``ENV/SERVICE``, the service whose host the request is for;
- ``sub``: the email address of a user, ``service:NAME`` for a service token;
- ``email`` (users only), ``identity_type`` (``user`` or ``service``), ``method``;
- ``iat`` and ``exp`` (:data:`LIFETIME`, five minutes).

Asymmetric, so an origin holds only public keys (from ``/.tiers/access/certs``, a JWKS)
and cannot mint assertions itself. The keys live in ``.tiers/gate/ENV/keys.json``
(0600). :meth:`Keys.rotate` makes a new signing key and keeps the previous one in the
JWKS for one assertion lifetime, so assertions signed just before a rotation still
verify. Minted assertions are cached per (session, audience) until a minute before
they expire, so the per-request path signs about once every four minutes per session.

An origin checks an assertion with :func:`verify`:

>>> claims = verify(token, jwks, audience="staging/backend",
...                 issuer="tiers-gate:staging")                      # doctest: +SKIP
>>> claims["email"]                                                  # doctest: +SKIP
'ana@plyr.fm'
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tiers.errors import OperationError
from tiers.gate.identity import Identity
from tiers.gate.secret import private_write

__all__ = [
    "ALGORITHM",
    "LIFETIME",
    "AssertionCache",
    "InvalidAssertion",
    "Keys",
    "issuer",
    "verify",
]

ALGORITHM = "ES256"
LIFETIME = 300
"""Seconds an assertion is valid."""
_REUSE_MARGIN = 60
"""A cached assertion is minted again this many seconds before it expires."""


class InvalidAssertion(ValueError):
    """The assertion is not one the origin should believe; the message says why."""


def issuer(environment: str) -> str:
    return f"tiers-gate:{environment}"


@dataclass(frozen=True)
class _Key:
    kid: str
    private: ec.EllipticCurvePrivateKey
    created: float
    retired: float | None = None

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key())
        )
        return {**data, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def to_json(self) -> dict[str, Any]:
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "kid": self.kid,
            "private_pem": pem,
            "created": self.created,
            "retired": self.retired,
        }


def _new_key() -> _Key:
    return _Key(secrets.token_urlsafe(12), ec.generate_private_key(ec.SECP256R1()), time.time())


class Keys:
    """The signing keys of one environment's gate, kept in ``keys.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: list[_Key] = []
        self._mtime: float | None = None
        self.reload()

    @property
    def current(self) -> _Key:
        return self._keys[-1]

    def reload(self) -> bool:
        """Read the file again if it changed (a rotation by another process); True if so.
        A missing file gets a first key."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._keys = [_new_key()]
            self._save()
            return True
        if mtime == self._mtime:
            return False
        self._keys = self._read()
        self._mtime = mtime
        return True

    def _read(self) -> list[_Key]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            keys = []
            for item in data["keys"]:
                private = serialization.load_pem_private_key(item["private_pem"].encode(), None)
                if not isinstance(private, ec.EllipticCurvePrivateKey):
                    raise TypeError("not an EC key")
                keys.append(_Key(item["kid"], private, item["created"], item.get("retired")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OperationError(
                f"cannot read the gate's signing keys {self.path}: {exc}; move the file away "
                "and the gate makes new keys (origins fetch them from /.tiers/access/certs)"
            ) from None
        if not keys:
            raise OperationError(f"{self.path} holds no key; move it away to make a new one")
        return keys

    def _save(self) -> None:
        body = json.dumps({"keys": [key.to_json() for key in self._keys]}, indent=2)
        private_write(self.path, body + "\n")
        self._mtime = self.path.stat().st_mtime

    def rotate(self) -> str:
        """Sign with a new key from now on; the previous one stays published for one
        assertion lifetime, older ones go. Returns the new ``kid``."""
        moment = time.time()
        kept = [
            key if key.retired is not None else _Key(key.kid, key.private, key.created, moment)
            for key in self._keys
            if key.retired is None or key.retired + LIFETIME > moment
        ]
        self._keys = [*kept, _new_key()]
        self._save()
        return self.current.kid

    def jwks(self) -> dict[str, Any]:
        """The public keys an origin may trust now: the current one and any retired less
        than one assertion lifetime ago."""
        moment = time.time()
        published = [k for k in self._keys if k.retired is None or k.retired + LIFETIME > moment]
        return {"keys": [key.jwk() for key in published]}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.current
        return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


class AssertionCache:
    """Assertions minted per (session or token, audience), reused until near expiry."""

    def __init__(self, keys: Keys, environment: str) -> None:
        self.keys = keys
        self.issuer = issuer(environment)
        self._minted: dict[tuple[str, str, str], tuple[str, float]] = {}

    def clear(self) -> None:
        self._minted = {}

    def get(self, holder: str, identity: Identity, audience: str) -> str:
        moment = time.time()
        index = (holder, audience, self.keys.current.kid)
        found = self._minted.get(index)
        if found is not None and found[1] - _REUSE_MARGIN > moment:
            return found[0]
        if len(self._minted) > 10_000:
            self._minted = {k: v for k, v in self._minted.items() if v[1] > moment}
        token = self.keys.sign(self._claims(identity, audience, int(moment)))
        self._minted[index] = (token, moment + LIFETIME)
        return token

    def _claims(self, identity: Identity, audience: str, moment: int) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": moment,
            "exp": moment + LIFETIME,
            "identity_type": identity.kind,
            "method": identity.method,
        }
        if identity.kind == "service":
            claims["sub"] = f"service:{identity.name}"
        else:
            claims["sub"] = identity.email or identity.name
            claims["email"] = identity.email
            if identity.github_user:
                claims["github_user"] = identity.github_user
        return claims


def verify(token: str, jwks: dict[str, Any], *, audience: str, issuer: str) -> dict[str, Any]:
    """The claims of an assertion signed by one of ``jwks``'s keys for ``audience``, or
    :class:`InvalidAssertion`.

    Only ES256 is accepted (so neither ``alg=none`` nor an HMAC made with a public key
    passes), the ``kid`` must be one of the JWKS's, and ``aud``, ``iss``, ``exp``,
    ``iat``, ``sub`` and ``identity_type`` must all be there and right.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidAssertion(f"not a JWT: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidAssertion(f"algorithm {header.get('alg')!r} refused; only {ALGORITHM}")
    keys = {k.get("kid"): k for k in jwks.get("keys", []) if isinstance(k, dict)}
    found = keys.get(header.get("kid"))
    if found is None:
        raise InvalidAssertion(f"unknown key id {header.get('kid')!r}")
    try:
        key = jwt.PyJWK(found, algorithm=ALGORITHM).key
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidAssertion(str(exc)) from None
    if claims.get("identity_type") not in ("user", "service"):
        raise InvalidAssertion("no identity_type claim")
    return claims
