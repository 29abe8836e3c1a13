"""Signing in with OpenID Connect through the gate's routes, against the real provider of
test_oidc.py, then the cookie hop to the environment's other host."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from tests.gate.service import Browser, running_gate, write_config
from tests.gate.test_oidc import SECRET, browse, issuer

__all__ = ["issuer"]  # the provider fixture, shared with test_oidc.py

WEB, API = "stg.plyr.fm", "api-stg.plyr.fm"


def test_oidc_sign_in_across_hosts(tmp_path: Path, issuer: str) -> None:
    extra = f'oidc = {{ issuer = "{issuer}", client_id = "gate" }}\nlogin = ["oidc"]'
    write_config(tmp_path, web=f"https://{WEB}", api=f"https://{API}", extra=extra)
    with running_gate(tmp_path, env={"GATE_OIDC_CLIENT_SECRET": SECRET}) as gate:
        browser = Browser(gate, scheme="https")
        login = browser.page(WEB, "/.tiers/access/login?return=/library")
        assert "Sign in with single sign-on" in login.text and "Email address" not in login.text
        started = browser.page(WEB, "/.tiers/access/oidc/start?return=/library")
        assert started.status_code == 302
        back = browse(started.headers["location"], "alice")
        done = browser.page(WEB, f"/.tiers/access/oidc/callback?{urlencode(back)}")
        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith(f"https://{API}/.tiers/access/session?")
        end, _ = browser.follow(done, WEB)
        assert end.headers["location"] == f"https://{WEB}/library"
        for host in (WEB, API):
            allowed = browser.verify(host, "/library")
            assert allowed.status_code == 200
            assert allowed.headers["tiers-access-identity"] == "alice@plyr.fm"
