"""The attack table: each request is denied or sent to the login page, and never leaks a
session cookie or an assertion (classes from shared notes/access-gates.md §2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt
import pytest
import sqlalchemy as sa

from tests.gate.service import (
    STAGING_API,
    STAGING_WEB,
    Browser,
    Gate,
    eventually,
    running_gate,
    write_config,
)
from tiers.gate.assertion import AssertionCache, InvalidAssertion, Keys, verify
from tiers.gate.identity import Identity
from tiers.gate.otp import mailbox_messages
from tiers.gate.returns import safe_return
from tiers.state.schema import access_codes

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def gates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gate, Gate]]:
    folder = tmp_path_factory.mktemp("attacks")
    write_config(folder)
    with (
        running_gate(folder, "staging") as staging,
        running_gate(folder, "production") as production,
    ):
        yield staging, production


@pytest.fixture
def gate(gates: tuple[Gate, Gate]) -> Gate:
    return gates[0]


def newcomer(gate: Gate) -> tuple[Browser, str]:
    """A browser of its own, from an address of its own (rate limits are per client)."""
    n = next(_numbers)
    return Browser(gate, client_ip=f"10.1.{n // 250}.{n % 250 + 1}"), f"user{n}@plyr.fm"


def mails(gate: Gate, to: str) -> list[dict[str, str]]:
    return [
        m
        for m in mailbox_messages(gate.project / ".tiers" / "gate" / "staging" / "mail")
        if m["to"] == to
    ]


def ask_code(browser: Browser, email: str, return_to: str = "/") -> str:
    before = len(mails(browser.gate, email))
    browser.page(STAGING_WEB, "/.tiers/access/login", {"email": email, "return": return_to})
    found = eventually(
        lambda: len(mails(browser.gate, email)) > before and mails(browser.gate, email), "mail"
    )
    return str(found[-1]["code"])


def signed_in(gate: Gate) -> Browser:
    browser, email = newcomer(gate)
    code = ask_code(browser, email)
    assert browser.page(STAGING_WEB, "/.tiers/access/code", {"code": code}).status_code == 303
    return browser


def assert_refused(response: httpx.Response) -> None:
    """Denied, or sent to the login page; no session cookie set, no assertion."""
    assert response.status_code in (302, 400, 401, 403, 429), response.status_code
    if response.status_code == 302:
        assert response.headers["location"].startswith("/.tiers/access/login")
    assert "tiers-access-jwt-assertion" not in response.headers
    assert "tiers-access-identity" not in response.headers
    for cookie in response.headers.get_list("set-cookie"):
        name, _, rest = cookie.partition("=")
        assert "session" not in name or rest.startswith((";", '""')), cookie


# -- open redirects ---------------------------------------------------------------------

REDIRECTS = [
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "/%0a/evil.example",
    "/%0b/evil.example",
    "/%5Cevil.example",
    "/%2F/evil.example",
    "/%252F%252Fevil.example",
    "/./\\evil.example",
    "https:evil.example",
    "https://evil.example",
    "http:/evil.example",
    "//ana@evil.example",
    "https://stg.plyr.fm@evil.example",
    "//plyr.fm.evil.example",
    "//evil.example\\@plyr.fm",
    "／／evil.example",  # noqa: RUF001
    "/／evil.example",  # noqa: RUF001
    "//evil。example",
    "//ｅｖｉｌ.example",  # noqa: RUF001
    "//0x7f.1/",
    "//[::ffff:7f00:1]/",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " //evil.example",
    "/.tiers/access/login?return=//evil.example",  # chaining stays on this host
]


@pytest.mark.parametrize("target", REDIRECTS)
def test_return_url_stays_home(gate: Gate, target: str) -> None:
    kept = safe_return(target)
    assert kept == "/" or (kept.startswith("/.tiers/access/login") and target == kept)
    browser, email = newcomer(gate)
    page = browser.page(STAGING_WEB, f"/.tiers/access/login?return={quote(target, safe='')}")
    assert f'value="{kept}"' in page.text
    code = ask_code(browser, email, target)
    done = browser.page(STAGING_WEB, "/.tiers/access/code", {"code": code})
    assert done.headers["location"] == kept


def test_plain_paths_are_kept() -> None:
    for path in ("/", "/tracks?page=2&q=a%20b", "/a/b#c", "/@ana", "/x?next=//evil"):
        assert safe_return(path) == path


# -- headers only the gate (or Caddy) may set ------------------------------------------

SMUGGLED = [
    "Tiers-Access-Identity",
    "tiers-access-identity",
    "TIERS-ACCESS-IDENTITY",
    "Tiers-Access-Jwt-Assertion",
    "Tiers_Access_Identity",
    "tiers_access_jwt_assertion",
    "Tiers_Access_Client_Id",
    "Tiers-Access_Client-Secret",
    "Tiers-Access-Anything",
]


@pytest.mark.parametrize("name", SMUGGLED)
@pytest.mark.parametrize(("host", "uri"), [(STAGING_API, "/tracks"), (STAGING_API, "/health")])
def test_client_sent_identity_headers(gate: Gate, name: str, host: str, uri: str) -> None:
    browser = Browser(gate)
    answer = browser.verify(host, uri, **{name: "ana@plyr.fm"})
    assert answer.status_code == 400
    assert_refused(answer)


def test_smuggled_header_refused_even_when_signed_in(gate: Gate) -> None:
    browser = signed_in(gate)
    assert browser.verify(STAGING_API, "/tracks").status_code == 200
    assert_refused(browser.verify(STAGING_API, "/tracks", Tiers_Access_Identity="boss@plyr.fm"))


@pytest.mark.parametrize(
    ("uri", "extra"),
    [
        ("/tracks", {"X-Original-URL": "/health"}),
        ("/tracks", {"X-Rewrite-URL": "/health"}),
        ("/tracks?/health", {}),
        ("/tracks#/health", {}),
        ("/tracks?x=/health", {}),
        ("/health/../tracks", {}),
        ("/health/%2e%2e/tracks", {}),
        ("/health%2f..%2ftracks", {}),
        ("/tracks", {"User-Agent": "uptime-monitor/1.0 (health check)"}),
        ("tracks", {}),
        ("http://evil.example/health", {}),
    ],
)
def test_path_tricks_stay_protected(gate: Gate, uri: str, extra: dict[str, str]) -> None:
    assert_refused(Browser(gate).verify(STAGING_API, uri, **extra))


def test_unknown_or_missing_host(gate: Gate) -> None:
    assert_refused(Browser(gate).verify("evil.example", "/health"))
    for listener in (False, True):
        with gate.client(listener=listener) as client:
            assert_refused(client.get("/verify", headers={"X-Forwarded-Uri": "/tracks"}))


# -- JWT attacks against verify() -----------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(header: dict[str, object], claims: dict[str, object], sign: bytes | None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    mac = _b64(hmac.new(sign, head.encode(), hashlib.sha256).digest()) if sign else ""
    return f"{head}.{mac}"


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys.json")


def _good(keys: Keys) -> tuple[str, dict[str, object], dict[str, object]]:
    cache = AssertionCache(keys, "staging")
    token = cache.get(
        "s1",
        Identity(kind="user", name="ana@plyr.fm", method="otp", email="ana@plyr.fm"),
        "staging/backend",
    )
    return (
        token,
        jwt.get_unverified_header(token),
        jwt.decode(token, options={"verify_signature": False}),
    )


def test_a_good_assertion_verifies(keys: Keys) -> None:
    token, _, _ = _good(keys)
    assert (
        verify(token, keys.jwks(), audience="staging/backend", issuer="tiers-gate:staging")["email"]
        == "ana@plyr.fm"
    )


def test_rotation_keeps_the_previous_key_published(keys: Keys) -> None:
    token, _, _ = _good(keys)
    old = keys.current.kid
    new = keys.rotate()
    assert new != old and {k["kid"] for k in keys.jwks()["keys"]} == {old, new}
    assert verify(token, keys.jwks(), audience="staging/backend", issuer="tiers-gate:staging")
    _, header, _ = _good(keys)
    assert header["kid"] == new


def _attacks(keys: Keys) -> dict[str, str]:
    token, header, claims = _good(keys)
    public_pem = keys.current.private.public_key().public_bytes(
        encoding=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
        ).Encoding.PEM,
        format=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["PublicFormat"]
        ).PublicFormat.SubjectPublicKeyInfo,
    )
    stranger = Keys(keys.path.with_name("other.json"))
    foreign_cache = AssertionCache(stranger, "staging")
    foreign = foreign_cache.get(
        "s",
        Identity(kind="user", name="ana@plyr.fm", method="otp", email="ana@plyr.fm"),
        "staging/backend",
    )
    foreign_header = jwt.get_unverified_header(foreign)
    same_kid = (
        _token({**foreign_header, "kid": header["kid"]}, claims, None).rsplit(".", 1)[0]
        + "."
        + foreign.rsplit(".", 1)[1]
    )
    past = int(time.time()) - 3600
    return {
        "alg none": _token({"alg": "none", "typ": "JWT", "kid": header["kid"]}, claims, None),
        "alg None": _token({"alg": "None", "kid": header["kid"]}, claims, None),
        "HS256 with the public key": _token(
            {"alg": "HS256", "kid": header["kid"]}, claims, public_pem
        ),
        "wrong aud": keys.sign({**claims, "aud": "staging/frontend"}),
        "production aud": keys.sign({**claims, "aud": "production/backend"}),
        "no aud": keys.sign({k: v for k, v in claims.items() if k != "aud"}),
        "wrong iss": keys.sign({**claims, "iss": "tiers-gate:production"}),
        "no iss": keys.sign({k: v for k, v in claims.items() if k != "iss"}),
        "expired": keys.sign({**claims, "iat": past - 300, "exp": past}),
        "no exp": keys.sign({k: v for k, v in claims.items() if k != "exp"}),
        "foreign kid": foreign,
        "known kid, foreign key": same_kid,
        "altered claims": token.split(".")[0]
        + "."
        + _b64(json.dumps({**claims, "email": "boss@plyr.fm"}).encode())
        + "."
        + token.split(".")[2],
        "no identity type": keys.sign({k: v for k, v in claims.items() if k != "identity_type"}),
        "not a JWT": "not.a.jwt",
    }


ATTACKS = [
    "alg none",
    "alg None",
    "HS256 with the public key",
    "wrong aud",
    "production aud",
    "no aud",
    "wrong iss",
    "no iss",
    "expired",
    "no exp",
    "foreign kid",
    "known kid, foreign key",
    "altered claims",
    "no identity type",
    "not a JWT",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_forged_assertions_are_refused(keys: Keys, attack: str) -> None:
    token = _attacks(keys)[attack]
    with pytest.raises(InvalidAssertion):
        verify(token, keys.jwks(), audience="staging/backend", issuer="tiers-gate:staging")


# -- PINs: brute force, replay, expiry ------------------------------------------------------


def test_three_wrong_tries_kill_the_code(gate: Gate) -> None:
    browser, email = newcomer(gate)
    code = ask_code(browser, email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(3):
        answer = browser.page(STAGING_WEB, "/.tiers/access/code", {"code": wrong})
        assert answer.status_code == 400 and "That code is not right" in answer.text
        assert_refused(answer)
    late = browser.page(STAGING_WEB, "/.tiers/access/code", {"code": code})
    assert late.status_code == 400
    assert_refused(late)


def test_wrong_codes_per_client_are_limited(gate: Gate) -> None:
    browser, _ = newcomer(gate)
    for n in range(10):
        address = f"spray{n}-{next(_numbers)}@plyr.fm"
        browser.page(STAGING_WEB, "/.tiers/access/login", {"email": address, "return": "/"})
        browser.page(STAGING_WEB, "/.tiers/access/code", {"code": "000000"})
    email = f"last{next(_numbers)}@plyr.fm"
    code = ask_code(browser, email)
    limited = browser.page(STAGING_WEB, "/.tiers/access/code", {"code": code})
    assert limited.status_code == 429 and "Too many wrong codes" in limited.text
    assert_refused(limited)


def test_codes_per_address_are_limited(gate: Gate) -> None:
    _, email = newcomer(gate)
    for n in range(5):
        ask_code(Browser(gate, client_ip=f"10.9.{n}.1"), email)
    sixth = Browser(gate, client_ip="10.9.9.9")
    page = sixth.page(STAGING_WEB, "/.tiers/access/login", {"email": email, "return": "/"})
    assert page.status_code == 303  # the same answer, but no sixth mail
    later = ask_code(Browser(gate, client_ip="10.9.9.8"), f"x{email}")  # a mail after it
    assert later and len(mails(gate, email)) == 5


def test_a_pin_works_once(gate: Gate) -> None:
    browser, email = newcomer(gate)
    code = ask_code(browser, email)
    copy = Browser(
        gate, client_ip=browser.client_ip, cookies={k: dict(v) for k, v in browser.cookies.items()}
    )
    assert browser.page(STAGING_WEB, "/.tiers/access/code", {"code": code}).status_code == 303
    replay = copy.page(STAGING_WEB, "/.tiers/access/code", {"code": code})
    assert replay.status_code == 400
    assert_refused(replay)


def test_an_expired_pin_fails(gate: Gate) -> None:
    from tiers.state import StateStore

    browser, email = newcomer(gate)
    code = ask_code(browser, email)
    with StateStore.open(None, gate.project) as state, state.engine.begin() as connection:
        connection.execute(
            access_codes.update()
            .where(access_codes.c.address == email)
            .values(expires_at=sa.func.datetime("now", "-1 minute"))
        )
    late = browser.page(STAGING_WEB, "/.tiers/access/code", {"code": code})
    assert late.status_code == 400
    assert_refused(late)


def test_a_pin_is_for_its_address(gate: Gate) -> None:
    browser, email = newcomer(gate)
    code = ask_code(browser, email)
    other, victim = newcomer(gate)
    ask_code(other, victim)
    assert_refused(other.page(STAGING_WEB, "/.tiers/access/code", {"code": code}))


def test_double_at_address_is_refused(gate: Gate) -> None:
    browser, _ = newcomer(gate)
    page = browser.page(
        STAGING_WEB, "/.tiers/access/login", {"email": "eve@evil.example@plyr.fm", "return": "/"}
    )
    assert page.status_code == 400 and "Enter one email address" in page.text


# -- cookies: another tier's, forged, altered, revoked -----------------------------------------


def _session(browser: Browser) -> str:
    return browser.cookies["localhost"]["tiers_session_staging"]


def test_a_staging_cookie_means_nothing_to_production(gates: tuple[Gate, Gate]) -> None:
    staging, production = gates
    value = _session(signed_in(staging))
    for name in ("tiers_session_staging", "tiers_session_production"):
        intruder = Browser(production, cookies={"localhost": {name: value}})
        assert_refused(intruder.verify("localhost:8003", "/tracks"))


def test_forged_and_altered_cookies(gate: Gate) -> None:
    value = _session(signed_in(gate))
    head, body, mac = value.split(".")
    secret = bytes.fromhex(
        (gate.project / ".tiers" / "gate" / "staging" / "secret").read_text().strip()
    )
    claims = jwt.decode(value, options={"verify_signature": False})
    forged = {
        "altered signature": f"{head}.{body}.{mac[:-2]}{'AB'[mac[-2] == 'A']}{mac[-1]}",
        "altered session id": f"{head}.{_b64(json.dumps({**claims, 'sid': 'x'}).encode())}.{mac}",
        "other key": jwt.encode(claims, b"k" * 32, algorithm="HS256"),
        "alg none": _token({"alg": "none"}, claims, None),
        "unknown session, right key": jwt.encode(
            {**claims, "sid": "y" * 43}, secret, algorithm="HS256"
        ),
        "other purpose": jwt.encode(
            {**claims, "aud": "tiers-login:staging"}, secret, algorithm="HS256"
        ),
        "random": "x" * 80,
    }
    for label, cookie in forged.items():
        intruder = Browser(gate, cookies={"localhost": {"tiers_session_staging": cookie}})
        answer = intruder.verify(STAGING_API, "/tracks")
        assert answer.status_code == 302, label
        assert_refused(answer)


def test_a_revoked_session(gate: Gate) -> None:
    browser = signed_in(gate)
    copy = Browser(gate, cookies={k: dict(v) for k, v in browser.cookies.items()})
    browser.page(STAGING_WEB, "/.tiers/access/logout", {})
    assert_refused(copy.verify(STAGING_API, "/tracks"))
    assert_refused(copy.verify(STAGING_WEB, "/"))


def test_login_page_clears_the_old_cookie(gate: Gate) -> None:
    browser = signed_in(gate)
    page = browser.page(STAGING_WEB, "/.tiers/access/login")
    assert 'tiers_session_staging=""' in page.headers["set-cookie"]
    assert "Max-Age=0" in page.headers["set-cookie"]


def test_login_flow_cookie_is_not_a_session(gate: Gate) -> None:
    browser, email = newcomer(gate)
    browser.page(STAGING_WEB, "/.tiers/access/login", {"email": email, "return": "/"})
    flow = browser.cookies["localhost"]["tiers_login_staging"]
    intruder = Browser(gate, cookies={"localhost": {"tiers_session_staging": flow}})
    assert_refused(intruder.verify(STAGING_API, "/tracks"))


def test_oauth_routes_without_a_provider(gate: Gate) -> None:
    with gate.client() as client:
        for path in (
            "/.tiers/access/github/start",
            "/.tiers/access/github/callback?code=x&state=y",
            "/.tiers/access/oidc/start",
        ):
            answer = client.get(path, headers={"X-Forwarded-Host": STAGING_WEB})
            assert answer.status_code == 404 and "not configured" in answer.text


@pytest.mark.parametrize("name", ["X-Forwarded-Uri", "X-Forwarded-Host", "Tiers-Access-Client-Id"])
def test_a_routing_header_sent_twice(gate: Gate, name: str) -> None:
    headers = [
        ("X-Forwarded-Host", STAGING_API),
        ("X-Forwarded-Uri", "/tracks"),
        ("X-Forwarded-Proto", "http"),
        (name, "/health" if name == "X-Forwarded-Uri" else "x"),
        (name, "/health" if name == "X-Forwarded-Uri" else "y"),
    ]
    for listener in (False, True):
        with gate.client(listener=listener) as client:
            answer = client.get("/verify", headers=headers)
        assert answer.status_code == 400
        assert_refused(answer)
