"""The decision on raw request targets as Caddy passes them (``X-Forwarded-Uri`` is the
request-target exactly as the client sent it), the documented precedence, and the
``allow`` selectors."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.gate.conftest import environment
from tiers.config import Environment
from tiers.errors import UsageError
from tiers.gate.identity import Identity
from tiers.gate.policy import Malformed, Policy, normalise
from tiers.platforms.local.caddy import caddy_binary
from tiers.platforms.local.ports import free_port

API = "localhost:8002"
SITE = "localhost:5174"
TEAM = Identity("user", "ana@plyr.fm", "otp", email="ana@plyr.fm")
OUTSIDER = Identity("user", "eve@evil.com", "otp", email="eve@evil.com")
CI = Identity("service", "ci", "token", environment="staging")


def decide(env: Environment, host: str, uri: str, who: Identity | None = None) -> str:
    """What the gate does with a raw request: a target that cannot be read is denied."""
    target, decision = Policy(env).decide_request(host, uri, who)
    assert (target is None) == (decision.rule == "malformed request")
    return decision.action


PUBLIC = [
    (API, "/health"),
    (API, "/docs"),
    (API, "/openapi.json"),
    (API, "/health?check=1"),  # the query is dropped; the path is /health
    (API, "/health?x=/docs"),
    (API, "/h%65alth"),  # an encoded unreserved letter: every router decodes it
    ("LOCALHOST:8002", "/health"),
    ("localhost.:8002", "/health"),
    (API, "http://localhost:8002/health"),
    (API, "HTTP://LocalHost:8002/health"),
]


@pytest.mark.parametrize(("host", "uri"), PUBLIC)
def test_the_public_paths_stay_public(staging: Environment, host: str, uri: str) -> None:
    assert decide(staging, host, uri) == "bypass"


ATTACKS = [
    # dot segments, raw and encoded, from a bypass prefix to a protected path ...
    (API, "/health/../tracks", "login"),
    (API, "/health/%2e%2e/tracks", "login"),
    (API, "/health/%2E%2E/tracks", "login"),
    (API, "/health/.%2e/tracks", "login"),
    (API, "/docs//../tracks", "login"),
    # ... and to a bypass path through a protected one: Caddy hands the app the raw
    # target, so the app may route it as /tracks/...
    (API, "/tracks/../health", "login"),
    (API, "/tracks/%2e%2e/health", "login"),
    (API, "/%2e%2e/health", "login"),
    (API, "/./health", "login"),
    # encoded slashes and backslashes
    (API, "/health%2f..%2ftracks", "deny"),
    (API, "/health%2F..%2Ftracks", "deny"),
    (API, "/health\\..\\tracks", "deny"),
    (API, "/health%5c..%5ctracks", "deny"),
    (API, "/\\health", "deny"),
    # ; path parameters, raw and encoded
    (API, "/health;/../tracks", "deny"),
    (API, "/health%3b/../tracks", "deny"),
    (API, "/tracks/..;/health", "deny"),
    (API, "/health;jsessionid=1", "deny"),
    # a query string or a fragment carrying a bypass path
    (API, "/tracks?/health", "login"),
    (API, "/tracks?x=/health", "login"),
    (API, "/tracks#/health", "login"),
    (API, "/health#", "login"),
    (API, "/tracks%23/health", "login"),
    (API, "/tracks%3f/health", "login"),
    # a leading // is a path, never an authority; repeated slashes
    (API, "//localhost:8002/health", "login"),
    (API, "//health", "login"),
    (API, "/health//", "login"),
    # paths are case-sensitive, as Caddy and Starlette route them
    (API, "/Health", "login"),
    (API, "/HEALTH", "login"),
    (API, "/health/", "login"),
    (API, "/healthz", "login"),
    # hosts: case and a trailing dot reach the same (protected) application ...
    ("LOCALHOST:8002", "/tracks", "login"),
    ("localhost.:8002", "/tracks", "login"),
    # ... look-alikes and other hosts are no host of staging
    ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:8002", "/health", "deny"),
    ("loc\uff41lhost:8002", "/health", "deny"),
    ("l\u043ecalhost:8002", "/health", "deny"),  # a Cyrillic o
    ("localhost:8003", "/health", "deny"),
    ("localhost", "/health", "deny"),
    ("localhost..:8002", "/health", "deny"),
    ("ana@localhost:8002", "/health", "deny"),
    ("localhost:8002:8002", "/health", "deny"),
    (API, "/\uff48ealth", "deny"),  # a full-width h in the path: targets are ASCII
    # absolute-form targets: read only for the request's own host
    (API, "http://localhost:8002/tracks", "login"),
    (API, "http://localhost:8002", "login"),
    (API, "http://evil.example/health", "deny"),
    (API, "http://evil.example@localhost:8002/health", "deny"),
    (API, "http://localhost:8002@evil.example/health", "deny"),
    (API, "ftp://localhost:8002/health", "deny"),
    (API, "javascript://localhost:8002/health", "deny"),
    # control characters, whitespace, NUL, raw and encoded
    (API, "/health\x00", "deny"),
    (API, "/health%00", "deny"),
    (API, "/health\t", "deny"),
    (API, "/health%09", "deny"),
    (API, "/health\r\nX-Forwarded-Uri: /health", "deny"),
    (API, "/health%0d%0a", "deny"),
    (API, "/tracks\n/health", "deny"),
    (API, "/he alth", "deny"),
    (API, "/health%7f", "deny"),
    ("localhost:8002\t", "/health", "deny"),
    # not a path at all
    (API, "*", "deny"),
    (API, "localhost:8002", "deny"),
    (API, "health", "deny"),
    (API, "", "deny"),
    (API, "/health%", "deny"),
    (API, "/health%zz", "deny"),
]


@pytest.mark.parametrize(("host", "uri", "anonymous"), ATTACKS)
def test_attacks_never_pass_as_a_bypass(
    staging: Environment, host: str, uri: str, anonymous: str
) -> None:
    assert decide(staging, host, uri) == anonymous
    assert decide(staging, host, uri, OUTSIDER) == "deny"


@pytest.mark.parametrize(
    ("host", "uri"), [(API, "/health/../tracks"), (API, "//health"), (API, "/tracks#x")]
)
def test_someone_allowed_still_enters_an_odd_but_readable_path(
    staging: Environment, host: str, uri: str
) -> None:
    assert decide(staging, host, uri, TEAM) == "allow"


@pytest.mark.parametrize(
    ("host", "uri", "scheme", "seen"),
    [
        ("API-stg.plyr.fm.:443", "/x?y#z", "https", "api-stg.plyr.fm/x"),
        ("api-stg.plyr.fm:80", "/", "http", "api-stg.plyr.fm/"),
        ("api-stg.plyr.fm:443", "/", "http", "api-stg.plyr.fm:443/"),
        ("localhost:08002", "/a//b/./c/../d/", "http", "localhost:8002/a/b/d/"),
        ("[::1]:8002", "/%7euser/%e2%9c%93", "http", "[::1]:8002/~user/%E2%9C%93"),
        ("b\u00fccher.example", "/", "https", "xn--bcher-kva.example/"),
    ],
)
def test_normalise(host: str, uri: str, scheme: str, seen: str) -> None:
    assert str(normalise(host, uri, scheme=scheme)) == seen


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/a%2fb", "the path contains an encoded slash (%2f); it is refused"),
        ("/a;b", "the path '/a;b' contains a ; path parameter; it is refused, not guessed"),
        ("/a\tb", "the request target contains the control or space character '\\t'"),
        ("http://evil/a", "'http://evil/a' names another host than the request's (localhost)"),
    ],
)
def test_a_refusal_says_why(uri: str, message: str) -> None:
    with pytest.raises(Malformed) as refused:
        normalise("localhost", uri)
    assert str(refused.value) == message


def test_the_decision_names_its_rule_and_why(staging: Environment) -> None:
    policy = Policy(staging)
    health, tracks = normalise(API, "/health"), normalise(API, "/tracks")
    assert policy.decide(health, None).rule == "bypass localhost:8002/health"
    login = policy.decide(tracks, None)
    assert (login.action, login.rule) == ("login", "protect = true")
    assert login.reason == (
        "localhost:8002/tracks is protected and nobody is signed in: sign in with otp"
    )
    allowed = policy.decide(tracks, TEAM)
    assert (allowed.rule, allowed.reason) == (
        "allow email-domain:plyr.fm",
        "ana@plyr.fm is let into staging by email-domain:plyr.fm",
    )
    denied = policy.decide(tracks, OUTSIDER)
    assert (denied.action, denied.rule, denied.reason) == (
        "deny",
        "default deny",
        "localhost:8002/tracks is protected and eve@evil.com matches none of allow "
        "(email-domain:plyr.fm)",
    )
    elsewhere = policy.decide(normalise("localhost:9999", "/health"), TEAM)
    assert (elsewhere.action, elsewhere.reason) == (
        "deny",
        "localhost:9999 is not a host of staging (localhost:8002, localhost:5174)",
    )


# -- precedence ------------------------------------------------------------------------


def rule(env: Environment, host: str, uri: str) -> str:
    return Policy(env).decide(normalise(host, uri), None).rule


def test_an_exact_path_beats_a_prefix_written_before_it() -> None:
    env = environment(["/icons/*", "localhost:5174/icons/app.png"])
    assert rule(env, SITE, "/icons/app.png") == "bypass localhost:5174/icons/app.png"
    assert rule(env, SITE, "/icons/other.png") == "bypass /icons/*"


def test_a_longer_prefix_beats_a_shorter_one() -> None:
    env = environment(["/static/*", "/static/fonts/*"])
    assert rule(env, SITE, "/static/fonts/a.woff") == "bypass /static/fonts/*"
    assert rule(env, SITE, "/static/a.css") == "bypass /static/*"


def test_between_equal_patterns_the_first_written_wins() -> None:
    env = environment(["/docs", "localhost:8002/docs"])
    assert rule(env, API, "/docs") == "bypass /docs"
    policy = Policy(env)
    names = [r.name for r in policy.candidates(normalise(API, "/docs"))]
    assert names == ["bypass /docs", "bypass localhost:8002/docs", "protect = true"]


def test_a_bypass_of_a_whole_host_beats_the_application_it_equals() -> None:
    env = environment(["localhost:5174/*"])
    assert rule(env, SITE, "/anything") == "bypass localhost:5174/*"
    assert decide(env, API, "/anything") == "login"


def test_a_prefix_covers_what_is_under_it_only() -> None:
    env = environment(["/icons/*"])
    assert decide(env, SITE, "/icons/") == "bypass"
    assert decide(env, SITE, "/icons/a/b.png") == "bypass"
    assert decide(env, SITE, "/icons") == "login"
    assert decide(env, SITE, "/iconsx/a.png") == "login"


def test_a_pattern_without_a_host_covers_every_host_of_the_environment() -> None:
    env = environment(["/health", "localhost:8002/docs"])
    assert decide(env, SITE, "/health") == "bypass"
    assert decide(env, API, "/health") == "bypass"
    assert decide(env, SITE, "/docs") == "login"


def test_an_unprotected_environment_lets_everyone_in() -> None:
    env = environment(protect=False)
    decision = Policy(env).decide(normalise(API, "/tracks"), None)
    assert (decision.action, decision.rule) == ("allow", "not protected")


def test_the_first_allow_selector_that_names_someone_decides() -> None:
    env = environment(allow=["email:boss@example.com", "github-org:plyr-fm"])
    dev = Identity("user", "dev@example.com", "github", github_user="dev", github_orgs=("plyr-fm",))
    decision = Policy(env).decide(normalise(API, "/tracks"), dev)
    assert (decision.action, decision.rule) == ("allow", "allow github-org:plyr-fm")


def test_a_service_token_enters_its_own_environment_only(staging: Environment) -> None:
    policy = Policy(staging)
    tracks = normalise(API, "/tracks")
    decision = policy.decide(tracks, CI)
    assert (decision.action, decision.rule) == ("allow", "service auth")
    other = Identity("service", "ci", "token", environment="production")
    decision = policy.decide(tracks, other)
    assert (decision.action, decision.reason) == (
        "deny",
        "service token ci belongs to production, not staging",
    )


def test_a_service_is_never_a_user() -> None:
    env = environment(allow=["everyone"])
    stranger = Identity("service", "ana@plyr.fm", "token", email="ana@plyr.fm")
    assert decide(env, API, "/tracks", stranger) == "deny"


@pytest.mark.parametrize(
    ("preflight", "action", "rule_name"),
    [("origin", "bypass", 'preflight = "origin"'), ("deny", "deny", 'preflight = "deny"')],
)
def test_a_preflight_is_handled_as_configured(preflight: str, action: str, rule_name: str) -> None:
    policy = Policy(environment(preflight=preflight))
    decision = policy.decide(normalise(API, "/tracks"), None, method="OPTIONS")
    assert (decision.action, decision.rule) == (action, rule_name)
    assert policy.decide(normalise(API, "/tracks"), TEAM, method="OPTIONS").action == "allow"


def test_a_bypass_pattern_that_is_no_normal_path_is_refused() -> None:
    with pytest.raises(UsageError) as refused:
        Policy(environment(["/docs/../admin"]))
    assert str(refused.value) == (
        "tiers.toml environments.staging.access.bypass[0]: bypass pattern '/docs/../admin' "
        "is not a normal path: write it as a browser sends it, with a single /* at the end "
        "for a prefix"
    )


# -- selectors -------------------------------------------------------------------------


def user(email: str | None = None, **facts: object) -> Identity:
    return Identity("user", email or "someone", "github", email=email, **facts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("who", "selector", "matches"),
    [
        (user("Boss@Plyr.FM"), "email:boss@plyr.fm", True),
        (user("boss@plyr.fm"), "email:Boss@plyr.fm", True),
        (user("boss@plyr.fm.evil.com"), "email:boss@plyr.fm", False),
        (user("a@evil.com@plyr.fm"), "email:a@evil.com@plyr.fm", False),
        (user("a@plyr.fm"), "email-domain:plyr.fm", True),
        (user("A@PLYR.FM"), "email-domain:plyr.fm", True),
        (user("a@evil.com@plyr.fm"), "email-domain:plyr.fm", False),
        (user("x@plyr.fm.evil.com"), "email-domain:plyr.fm", False),
        (user("x@evilplyr.fm"), "email-domain:plyr.fm", False),
        (user("x@sub.plyr.fm"), "email-domain:plyr.fm", False),
        (user("x@plyr.fm."), "email-domain:plyr.fm", False),
        (user("@plyr.fm"), "email-domain:plyr.fm", False),
        (user("plyr.fm"), "email-domain:plyr.fm", False),
        (user("x @plyr.fm"), "email-domain:plyr.fm", False),
        (user(None), "email-domain:plyr.fm", False),
        (user(github_user="ZZStoat"), "github-user:zzstoat", True),
        (user(github_user="zzstoat2"), "github-user:zzstoat", False),
        (user(github_orgs=("Plyr-FM",)), "github-org:plyr-fm", True),
        (user(github_orgs=("plyr-fm-evil",)), "github-org:plyr-fm", False),
        (user(github_teams=("plyr-fm/core",)), "github-team:Plyr-FM/Core", True),
        (user(github_teams=("plyr-fm/core",)), "github-team:plyr-fm/cor", False),
        (user(github_orgs=("plyr-fm",)), "github-team:plyr-fm/core", False),
        (user(groups=("staff",)), "oidc-group:staff", True),
        (user(groups=("staff",)), "oidc-group:Staff", False),
        (user(groups=("staff-all",)), "oidc-group:staff", False),
        (user(), "login:github", True),
        (user(), "login:otp", False),
        (user(), "everyone", True),
    ],
)
def test_selectors(who: Identity, selector: str, matches: bool) -> None:
    assert who.matches(selector) is matches


@pytest.mark.parametrize(
    "selector",
    ["everyone", "email:ci@plyr.fm", "email-domain:plyr.fm", "github-user:ci", "login:otp"],
)
def test_a_service_matches_no_selector(selector: str) -> None:
    service = Identity(
        "service", "ci", "token", email="ci@plyr.fm", github_user="ci", environment="staging"
    )
    assert not service.matches(selector)


# -- through a real Caddy --------------------------------------------------------------

Send = Callable[[str], "tuple[int, tuple[str, str] | None]"]


@pytest.fixture(scope="module")
def through_caddy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Send]:
    """Raw requests to a real Caddy whose forward_auth asks a recording server; returns
    Caddy's status and the (X-Forwarded-Host, X-Forwarded-Uri) the gate would read."""
    tmp_path = tmp_path_factory.mktemp("caddy")
    seen: list[tuple[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.headers["X-Forwarded-Host"], self.headers["X-Forwarded-Uri"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    gate = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    port = free_port()
    (tmp_path / "Caddyfile").write_text(
        "{\n  admin off\n  auto_https off\n  persist_config off\n}\n"
        f"http://:{port} {{\n  bind 127.0.0.1\n"
        f"  forward_auth 127.0.0.1:{gate.server_address[1]} {{\n    uri /verify\n  }}\n"
        '  respond "served"\n}\n'
    )
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    caddy = subprocess.Popen(
        [str(caddy_binary()), "run", "--config", "Caddyfile", "--adapter", "caddyfile"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, caddy)

        def send(target: str) -> tuple[int, tuple[str, str] | None]:
            seen.clear()
            head = f"GET {target} HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\n\r\n"
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(head.encode())
                answer = b"".join(iter(lambda: conn.recv(65536), b""))
            return int(answer.split(b" ", 2)[1]), (seen[0] if seen else None)

        yield send
    finally:
        caddy.terminate()
        caddy.wait(10)
        gate.shutdown()
        gate.server_close()


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"Caddy did not listen on {port}")


VIA_CADDY = [
    ("/health", "/health", "bypass"),
    ("http://localhost:8002/health", "/health", "bypass"),  # Caddy sends the origin form
    ("/health/../tracks", "/health/../tracks", "login"),
    ("/health/%2e%2e/tracks", "/health/%2e%2e/tracks", "login"),
    ("/tracks/../health", "/tracks/../health", "login"),
    ("/health%2f..%2ftracks", "/health%2f..%2ftracks", "deny"),
    ("/health\\..\\tracks", "/health%5C..%5Ctracks", "deny"),  # Caddy escapes the backslash
    ("/health;/../tracks", "/health;/../tracks", "deny"),
    ("/tracks#/health", "/tracks%23/health", "login"),  # Go reads # as part of the path
    ("/tracks?/health", "/tracks?/health", "login"),
    ("//localhost:8002/health", "//localhost:8002/health", "login"),
    ("//health", "//health", "login"),
    ("/%68ealth", "/%68ealth", "bypass"),
    ("/\u00e9", "/%C3%A9", "login"),  # a raw non-ASCII byte reaches the gate escaped
    ("*", "*", "deny"),
]


@pytest.mark.parametrize(("target", "forwarded", "action"), VIA_CADDY)
def test_what_caddy_forwards_is_decided_as_the_table_says(
    staging: Environment, through_caddy: Send, target: str, forwarded: str, action: str
) -> None:
    status, seen = through_caddy(target)
    assert (status, seen) == (200, (API, forwarded))
    assert decide(staging, *seen) == action


@pytest.mark.parametrize("target", ["/health\x00", "/he\talth", "/health%zz", "/health "])
def test_caddy_refuses_some_targets_before_the_gate_is_asked(
    through_caddy: Send, target: str
) -> None:
    assert through_caddy(target) == (400, None)
