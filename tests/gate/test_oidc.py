"""Signing in with OpenID Connect, against a real provider (node-oidc-provider, OpenID
Certified) started by the test, through its own sign-in and consent pages."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.pipeline.example import reserved_ports
from tiers.config.model import OidcLogin
from tiers.gate.github import LoginFailed
from tiers.gate.identity import Identity
from tiers.gate.oidc import authorize_url, callback_error, exchange, identity, verify_id_token

PROVIDER = Path(__file__).parent / "oidc_provider"
CALLBACK = "https://stg.plyr.fm/.tiers/access/oidc/callback"
SECRET = "gate-client-secret"
NONCE = "a-long-random-secret-the-gate-keeps-in-its-state-cookie"
ACCOUNTS = {
    "alice": {"email": "Alice@plyr.fm", "email_verified": True, "groups": ["staff", "admins"]},
    "carol": {"email": "carol@plyr.fm", "email_verified": False, "groups": ["staff"]},
}


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """The issuer URL of a node-oidc-provider on a free port, with the gate as a client."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the OIDC tests run a real provider on node")
    if not (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/gate/oidc_provider has no node_modules: run scripts/setup")
    config = {
        "clients": [
            {"client_id": "gate", "client_secret": SECRET, "redirect_uris": [CALLBACK]},
        ],
        "accounts": ACCOUNTS,
    }
    with tempfile.TemporaryFile("w+") as log:
        node = subprocess.Popen(
            ["node", "provider.mjs"],
            cwd=PROVIDER,
            env={**os.environ, "OIDC_TEST_CONFIG": json.dumps(config)},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert node.stdout is not None
            line = node.stdout.readline()
            if not line:
                log.seek(0)
                pytest.fail(f"the OIDC provider did not start:\n{log.read()}")
            yield json.loads(line)["issuer"]
        finally:
            node.terminate()
            node.wait(timeout=10)
            if node.stdout is not None:
                node.stdout.close()


@pytest.fixture
def cfg(issuer: str) -> OidcLogin:
    return OidcLogin(issuer=issuer, client_id="gate")


def browse(url: str, login: str, *, cancel: bool = False) -> dict[str, str]:
    """What a person does in the browser: open ``url``, sign in at the provider's page as
    ``login``, consent (or cancel); the query the provider sends back to the callback."""
    with httpx.Client(timeout=10) as browser:
        response = browser.get(url)
        for _ in range(12):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(CALLBACK):
                    return dict(parse_qsl(urlsplit(target).query))
                response = browser.get(target)
                continue
            assert response.status_code == 200, response.text
            if cancel:
                abort = re.search(r'href="([^"]*/abort)"', response.text)
                assert abort is not None, response.text
                response = browser.get(urljoin(str(response.url), html.unescape(abort[1])))
                continue
            form = re.search(r'<form[^>]*action="([^"]+)"', response.text)
            assert form is not None, response.text
            if 'name="prompt" value="login"' in response.text:
                data = {"prompt": "login", "login": login, "password": "any"}
            else:
                assert 'name="prompt" value="consent"' in response.text, response.text
                data = {"prompt": "consent"}
            response = browser.post(urljoin(str(response.url), html.unescape(form[1])), data=data)
    raise AssertionError("the provider never sent the browser back")


def code_for(cfg: OidcLogin, login: str, nonce: str = NONCE) -> str:
    back = browse(asyncio.run(authorize_url(cfg, CALLBACK, "state-1", nonce)), login)
    assert back["state"] == "state-1"
    assert callback_error(cfg, back) is None
    return back["code"]


def test_a_full_sign_in_gives_the_verified_email_and_the_groups(cfg: OidcLogin) -> None:
    code = code_for(cfg, "alice")
    who = asyncio.run(identity(cfg, SECRET, code, CALLBACK, NONCE))
    assert who == Identity(
        kind="user",
        name="alice@plyr.fm",
        method="oidc",
        email="alice@plyr.fm",
        groups=("admins", "staff"),
    )


def test_the_authorize_url_carries_pkce_and_only_a_digest_of_the_nonce(cfg: OidcLogin) -> None:
    url = asyncio.run(authorize_url(cfg, CALLBACK, "state-1", NONCE))
    query = dict(parse_qsl(urlsplit(url).query))
    assert url.startswith(f"{cfg.issuer}/auth?")
    assert query["scope"] == "openid email profile groups"  # groups: the provider has it
    assert query["code_challenge_method"] == "S256"
    assert NONCE not in url
    assert query["nonce"] and query["code_challenge"] != query["nonce"]


def test_an_unverified_email_is_refused(cfg: OidcLogin) -> None:
    code = code_for(cfg, "carol")
    with pytest.raises(LoginFailed, match="does not say your email address is verified"):
        asyncio.run(identity(cfg, SECRET, code, CALLBACK, NONCE))


def test_the_code_of_another_sign_in_is_refused(cfg: OidcLogin) -> None:
    # a code that came back to a browser whose state cookie holds another nonce: its
    # PKCE verifier does not match, so the provider refuses the exchange
    code = code_for(cfg, "alice", nonce="the nonce of another sign-in, in another browser")
    with pytest.raises(LoginFailed, match="belongs to another sign-in"):
        asyncio.run(identity(cfg, SECRET, code, CALLBACK, NONCE))


def test_a_code_works_once(cfg: OidcLogin) -> None:
    code = code_for(cfg, "alice")
    asyncio.run(identity(cfg, SECRET, code, CALLBACK, NONCE))
    with pytest.raises(LoginFailed, match="was already used"):
        asyncio.run(identity(cfg, SECRET, code, CALLBACK, NONCE))


def test_a_wrong_client_secret_is_refused_without_showing_it(cfg: OidcLogin) -> None:
    code = code_for(cfg, "alice")
    with pytest.raises(LoginFailed) as failed:
        asyncio.run(identity(cfg, "not-the-secret", code, CALLBACK, NONCE))
    assert str(failed.value) == (
        "The sign-in provider did not accept this gate (client_id 'gate' and the secret "
        "GATE_OIDC_CLIENT_SECRET). Ask the environment's owner to check them."
    )


def test_cancelling_at_the_provider_says_so(cfg: OidcLogin) -> None:
    url = asyncio.run(authorize_url(cfg, CALLBACK, "state-1", NONCE))
    back = browse(url, "alice", cancel=True)
    assert back["state"] == "state-1"
    failed = callback_error(cfg, back)
    assert failed is not None
    assert str(failed) == "You cancelled signing in, so you are not signed in."


def test_a_callback_from_another_issuer_is_refused(cfg: OidcLogin) -> None:
    back = browse(asyncio.run(authorize_url(cfg, CALLBACK, "s", NONCE)), "alice")
    other = OidcLogin(issuer="https://login.example.com", client_id="gate")
    failed = callback_error(other, back)
    assert failed is not None
    assert str(failed) == "The sign-in came back from another provider. Sign in again."


def test_a_provider_that_is_down_is_said_plainly() -> None:
    with reserved_ports(1) as [port]:
        cfg = OidcLogin(issuer=f"http://127.0.0.1:{port}", client_id="gate")
        with pytest.raises(LoginFailed, match=rf"\(127.0.0.1:{port}\) could not be reached"):
            asyncio.run(authorize_url(cfg, CALLBACK, "s", NONCE))


# The ID token itself: a real one from the provider, then changed.


@pytest.fixture
def tokens(cfg: OidcLogin) -> dict[str, str]:
    return asyncio.run(exchange(cfg, SECRET, code_for(cfg, "alice"), CALLBACK, NONCE))


def refusal(cfg: OidcLogin, id_token: str, nonce: str = NONCE, **kw: object) -> str:
    with pytest.raises(LoginFailed) as failed:
        asyncio.run(verify_id_token(cfg, id_token, nonce, **kw))  # type: ignore[arg-type]
    return str(failed.value)


def test_a_real_id_token_passes(cfg: OidcLogin, tokens: dict[str, str]) -> None:
    claims = asyncio.run(
        verify_id_token(cfg, tokens["id_token"], NONCE, access_token=tokens["access_token"])
    )
    assert claims["sub"] == "alice"
    assert claims["aud"] == "gate"


def test_an_id_token_for_another_sign_in_is_refused(cfg: OidcLogin, tokens: dict[str, str]) -> None:
    assert refusal(cfg, tokens["id_token"], "another nonce") == (
        "The sign-in provider's ID token was refused: it belongs to another sign-in. Sign in again."
    )


def test_an_id_token_for_another_application_is_refused(
    issuer: str, tokens: dict[str, str]
) -> None:
    other = OidcLogin(issuer=issuer, client_id="another-app")
    assert "it was issued to another application" in refusal(other, tokens["id_token"])


def test_an_expired_id_token_is_refused(cfg: OidcLogin, tokens: dict[str, str]) -> None:
    expires = json.loads(_segment(tokens["id_token"], 1))["exp"]
    later = expires + 120  # past the minute of clock skew allowed
    assert "it has expired" in refusal(cfg, tokens["id_token"], now=later)
    assert int(time.time()) < expires


def test_an_altered_id_token_is_refused(cfg: OidcLogin, tokens: dict[str, str]) -> None:
    header, _, signature = tokens["id_token"].split(".")
    claims = json.loads(_segment(tokens["id_token"], 1))
    forged = _encode({**claims, "sub": "mallory"})
    assert "signature does not match" in refusal(cfg, f"{header}.{forged}.{signature}")


def test_id_tokens_signed_otherwise_are_refused(cfg: OidcLogin, tokens: dict[str, str]) -> None:
    claims = json.loads(_segment(tokens["id_token"], 1))
    kid = json.loads(_segment(tokens["id_token"], 0))["kid"]
    own = RSAKey.generate_key(2048, parameters={"kid": kid})
    same_kid = jwt.encode({"alg": "RS256", "kid": kid}, claims, own)
    assert "signature does not match" in refusal(cfg, same_kid)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "stranger"})
    foreign = jwt.encode({"alg": "RS256", "kid": "stranger"}, claims, stranger)
    assert "a key the provider does not publish" in refusal(cfg, foreign)
    unsigned = f"{_encode({'alg': 'none', 'kid': kid})}.{_encode(claims)}."
    assert "not signed with an algorithm the provider announces" in refusal(cfg, unsigned)
    # HS256 with the provider's public key as the HMAC secret
    jwks = httpx.get(f"{cfg.issuer}/jwks").json()
    public = KeySet.import_key_set(jwks).get_by_kid(kid).as_pem()
    signing_input = f"{_encode({'alg': 'HS256', 'kid': kid})}.{_encode(claims)}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert "not signed with an algorithm the provider announces" in refusal(cfg, forged)


def _segment(token: str, index: int) -> str:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def _encode(value: dict[str, object]) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
