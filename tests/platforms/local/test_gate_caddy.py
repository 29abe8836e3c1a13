"""The gate in front of a Caddy site: anonymous requests stop at the door, bypass paths
and the gate's own pages stay reachable, identity headers only ever come from the gate,
and a gate that does not answer never lets a request through.

The gate here is a small HTTP server answering ``/verify`` as tiers' gate does (a
stand-in for the decision, not for Caddy: Caddy is real, and so are the sockets).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.gate.service import write_config
from tiers.config import load
from tiers.gate.sessions import COOKIE_KINDS, CookieKind, cookie_name
from tiers.platforms.local.caddy import Caddy
from tiers.platforms.local.gate import GATE_COOKIES, LocalGate, front
from tiers.platforms.local.platform import LocalPlatform
from tiers.platforms.local.ports import free_port

BYPASS = ("/health", "/icons/")
SIGNED_IN = "tiers-test-session=ana"


@dataclass
class Seen:
    """What a server was asked: (method, path, headers, bytes of body it read)."""

    requests: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _handler(seen: Seen, answer: object) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.requests.append((self.command, self.path, headers, len(body)))
            status, extra, text = answer(self.path, headers)  # type: ignore[operator]
            data = text.encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _any

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _verify(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """tiers' gate, in short: its pages, bypass paths, a session cookie, else the login."""
    if path.startswith("/.tiers/access/"):
        return 200, {}, f"gate page {path}"
    if path.partition("?")[0] != "/verify":  # Caddy keeps the client's query on it
        return 404, {}, "not found"
    uri = headers["x-forwarded-uri"]
    if uri == "/health" or uri.startswith("/icons/"):
        return 200, {}, ""
    if SIGNED_IN in headers.get("cookie", "") or headers.get("tiers-access-client-id") == "ci":
        return (
            200,
            {
                "Tiers-Access-Identity": "ana@plyr.fm",
                "Tiers-Access-Jwt-Assertion": "signed.by.gate",
            },
            "",
        )
    if headers["x-forwarded-method"] != "GET":
        return 401, {}, "sign in first"
    return 302, {"Location": f"/.tiers/access/login?return={uri}"}, ""


def _app(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    shown = {k: v for k, v in headers.items() if "access" in k.replace("_", "-")}
    return 200, {"Content-Type": "application/json"}, json.dumps({"path": path, "saw": shown})


@dataclass
class Protected:
    port: int
    gate: Seen
    app: Seen
    gate_server: ThreadingHTTPServer
    caddy: Caddy
    gate_address: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Protected]:
    """A site proxying to an app, with the gate's handlers in front."""
    gate, app = Seen(), Seen()
    gate_server, gate_port = _serve(_handler(gate, _verify))
    app_server, app_port = _serve(_handler(app, _app))
    caddy = Caddy(tmp_path / "caddy", free_port())
    caddy.start()
    port = free_port()
    address = f"127.0.0.1:{gate_port}"
    caddy.set_site(
        "staging-backend",
        port,
        upstream=f"127.0.0.1:{app_port}",
        front=front("staging-backend", address),
    )
    try:
        yield Protected(port, gate, app, gate_server, caddy, address)
    finally:
        caddy.stop()
        for server in (gate_server, app_server):
            server.shutdown()
            server.server_close()


def request(
    port: int,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def test_an_anonymous_request_gets_the_login_and_never_the_app(site: Protected) -> None:
    status, headers, _ = request(site.port, "/tracks?page=2")
    assert status == 302
    assert headers["Location"] == "/.tiers/access/login?return=/tracks?page=2"
    assert site.app.requests == []
    method, path, asked, _ = site.gate.requests[0]
    assert (method, path) == ("GET", "/verify?page=2")
    assert asked["x-forwarded-uri"] == "/tracks?page=2"
    assert asked["x-forwarded-host"] == f"127.0.0.1:{site.port}"


def test_a_bypass_path_reaches_the_app_without_signing_in(site: Protected) -> None:
    for path in ("/health", "/icons/logo.svg"):
        status, _, body = request(site.port, path)
        assert (status, json.loads(body)["path"]) == (200, path)


def test_the_gates_own_pages_are_served_by_the_gate(site: Protected) -> None:
    status, _, body = request(site.port, "/.tiers/access/login?return=/")
    assert (status, body) == (200, "gate page /.tiers/access/login?return=/")
    assert [r[1] for r in site.gate.requests] == ["/.tiers/access/login?return=/"]
    assert site.app.requests == []


def test_a_signed_in_request_reaches_the_app_with_the_gates_identity(site: Protected) -> None:
    status, _, body = request(site.port, "/tracks", headers={"Cookie": SIGNED_IN})
    assert status == 200
    assert json.loads(body)["saw"] == {
        "tiers-access-identity": "ana@plyr.fm",
        "tiers-access-jwt-assertion": "signed.by.gate",
    }


@pytest.mark.parametrize(
    ("cookies", "app_gets"),
    [
        (f"{SIGNED_IN}; tiers_session_staging=s1.sig", SIGNED_IN),
        (f"tiers_session_staging=s1.sig; {SIGNED_IN}; theme=dark", f"{SIGNED_IN}; theme=dark"),
        (
            f"__Host-tiers_session_staging=s; {SIGNED_IN};tiers_login_staging=f; "
            "__Host-tiers_oauth_staging=o; theme=dark",
            f"{SIGNED_IN}; theme=dark",
        ),
        # another tier's cookie (one host on this machine, two tiers) is the gate's too
        (f"{SIGNED_IN}; tiers_session_production=p", SIGNED_IN),
        # names that only look like the gate's are the app's
        (
            f"{SIGNED_IN}; my_tiers_session_x=1; tiers_sessions=2",
            f"{SIGNED_IN}; my_tiers_session_x=1; tiers_sessions=2",
        ),
    ],
)
def test_the_app_gets_its_own_cookies_and_none_of_the_gates(
    site: Protected, cookies: str, app_gets: str
) -> None:
    status, _, _ = request(site.port, "/tracks", headers={"Cookie": cookies})
    assert status == 200
    [(_, _, asked, _)] = site.gate.requests
    assert asked["cookie"] == cookies  # the gate reads its session
    [(_, _, seen, _)] = site.app.requests
    assert seen["cookie"] == app_gets


@pytest.mark.parametrize("kind", COOKIE_KINDS)
@pytest.mark.parametrize("secure", [False, True])
def test_every_cookie_the_gate_sets_is_one_caddy_keeps_from_the_app(
    kind: CookieKind, secure: bool
) -> None:
    # the same expressions Caddy applies (Go's syntax, which Python reads alike here)
    header = f"theme=dark; {cookie_name('staging', secure, kind)}=v; a=1"
    for expression in GATE_COOKIES:
        header = re.sub(expression, "", header)
    assert header == "theme=dark; a=1"


def test_a_tier_without_a_gate_never_gets_another_tiers_session(tmp_path: Path) -> None:
    # on this machine every tier is on localhost: a browser signed in to staging sends
    # staging's session to production's port too
    path = write_config(tmp_path)
    section = "[environments.production.access]\nprotect = "
    path.write_text(path.read_text().replace(f"{section}true", f"{section}false"))
    config = load(path).config
    assert not config.environments["production"].access.protect
    production = config.environments["production"]
    handlers = LocalGate(LocalPlatform(config, tmp_path)).front(production, "production-backend")
    app = Seen()
    server, app_port = _serve(_handler(app, _app))
    caddy = Caddy(tmp_path / "caddy", free_port())
    caddy.start()
    try:
        port = free_port()
        caddy.set_site("production-backend", port, upstream=f"127.0.0.1:{app_port}", front=handlers)
        cookies = "tiers_session_staging=s1.sig; theme=dark; __Host-tiers_login_staging=f"
        assert request(port, "/tracks", headers={"Cookie": cookies})[0] == 200
        [(_, _, seen, _)] = app.requests
        assert seen["cookie"] == "theme=dark"
        assert caddy.sites()["production-backend"].gate is None  # and no gate in front
    finally:
        caddy.stop()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("path", ["/health", "/tracks"])
def test_identity_headers_sent_by_the_client_never_reach_the_app(
    site: Protected, path: str
) -> None:
    forged = {
        "Tiers-Access-Identity": "boss@plyr.fm",
        "tiers-access-jwt-assertion": "forged",
        "TIERS-ACCESS-IDENTITY": "boss@plyr.fm",
        "Tiers_Access_Identity": "boss@plyr.fm",
        "tiers_access_jwt_assertion": "forged",
    }
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
    try:
        conn.putrequest("GET", path)
        for name, value in {**forged, "Cookie": SIGNED_IN}.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        status, body = response.status, response.read().decode()
    finally:
        conn.close()
    assert status == 200
    saw = json.loads(body)["saw"]
    if path == "/health":  # a bypass: the gate names nobody, and nobody else may
        assert saw == {}
    else:
        assert saw == {
            "tiers-access-identity": "ana@plyr.fm",
            "tiers-access-jwt-assertion": "signed.by.gate",
        }


def test_an_anonymous_upload_is_refused_before_its_body_reaches_anyone(
    site: Protected,
) -> None:
    # small enough for Caddy to read it away and answer on an open connection (past 256 KiB
    # it answers and closes, as Go's server does, and a client still sending sees a reset)
    upload = b"x" * (200 * 1024)
    status, _, _ = request(site.port, "/tracks", "POST", upload, {"Content-Type": "audio/mpeg"})
    assert status == 401
    assert site.app.requests == []
    [(method, path, _, read)] = site.gate.requests
    assert (method, path, read) == ("GET", "/verify", 0)  # the gate never sees the body


def test_a_signed_in_upload_reaches_the_app_whole(site: Protected) -> None:
    upload = b"x" * (4 * 1024 * 1024)
    status, _, _ = request(site.port, "/tracks", "POST", upload, {"Cookie": SIGNED_IN})
    assert status == 200
    [(method, path, _, read)] = site.app.requests
    assert (method, path, read) == ("POST", "/tracks", len(upload))


def test_a_gate_that_does_not_answer_lets_nothing_through(site: Protected) -> None:
    site.gate_server.shutdown()
    site.gate_server.server_close()
    for path in ("/tracks", "/health", "/.tiers/access/login"):
        status, _, _ = request(site.port, path, headers={"Cookie": SIGNED_IN})
        assert status == 502
    upload_status, _, _ = request(site.port, "/tracks", "POST", b"x" * 1024)
    assert upload_status == 502
    assert site.app.requests == []


def test_the_gate_stays_in_front_through_switches(site: Protected, tmp_path: Path) -> None:
    other, other_port = _serve(_handler(Seen(), _app))
    try:
        site.caddy.switch_upstream("staging-backend", f"127.0.0.1:{other_port}")
        assert request(site.port, "/tracks")[0] == 302
        site.caddy.set_site("staging-backend", site.port, upstream=f"127.0.0.1:{other_port}")
        assert request(site.port, "/tracks")[0] == 302
        assert site.caddy.sites()["staging-backend"].gate == site.gate_address
        site.caddy.set_site(
            "staging-backend", site.port, upstream=f"127.0.0.1:{other_port}", front=[]
        )
        assert request(site.port, "/tracks")[0] == 200
        assert site.caddy.sites()["staging-backend"].gate is None
    finally:
        other.shutdown()
        other.server_close()


def test_a_static_site_is_gated_too(site: Protected, tmp_path: Path) -> None:
    build = tmp_path / "build"
    (build / "icons").mkdir(parents=True)
    (build / "index.html").write_text("<h1>staging</h1>")
    (build / "icons" / "logo.svg").write_text("<svg/>")
    port = free_port()
    site.caddy.set_site(
        "staging-frontend", port, root_dir=build, front=front("staging-frontend", site.gate_address)
    )
    assert request(port, "/")[0] == 302
    assert request(port, "/icons/logo.svg")[:3:2] == (200, "<svg/>")
    assert request(port, "/", headers={"Cookie": SIGNED_IN})[2] == "<h1>staging</h1>"


def test_a_service_tokens_headers_reach_the_gate_but_never_the_app(site: Protected) -> None:
    token = {"Tiers-Access-Client-Id": "ci", "Tiers-Access-Client-Secret": "s3cret"}
    status, _, body = request(site.port, "/tracks", headers=token)
    assert status == 200
    assert json.loads(body)["saw"] == {
        "tiers-access-identity": "ana@plyr.fm",
        "tiers-access-jwt-assertion": "signed.by.gate",
    }
    asked = site.gate.requests[-1][2]
    assert (asked["tiers-access-client-id"], asked["tiers-access-client-secret"]) == (
        "ci",
        "s3cret",
    )
