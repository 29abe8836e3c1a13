"""Signing in with an emailed PIN, the assertion the origin gets, logout, the mailbox."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jwt

from tests.gate.service import (
    STAGING_API,
    STAGING_WEB,
    Browser,
    eventually,
    running_gate,
    tiers_cli,
)
from tiers.gate.assertion import verify


def mailbox(project: Path, to: str) -> list[dict[str, str]]:
    done = tiers_cli("access", "mailbox", "staging", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    return [m for m in json.loads(done.stdout) if m["to"] == to]


def code_for(project: Path, to: str, count: int = 1) -> str:
    found = eventually(
        lambda: len(mailbox(project, to)) >= count and mailbox(project, to), f"mail to {to}"
    )
    return str(found[-1]["code"])


def sign_in(
    browser: Browser, project: Path, email: str, host: str = STAGING_WEB, path: str = "/"
) -> httpx.Response:
    sent = browser.page(host, "/.tiers/access/login", {"email": email, "return": path})
    assert sent.status_code == 303
    before = len(mailbox(project, email.lower()))
    page = browser.page(host, "/.tiers/access/code")
    assert "If this address may enter, a code is on its way" in page.text
    code = code_for(project, email.lower(), before or 1)
    return browser.page(host, "/.tiers/access/code", {"code": code})


def test_pin_session_assertion_logout(project: Path) -> None:
    with running_gate(project) as gate:
        browser = Browser(gate)
        anonymous = browser.verify(STAGING_WEB, "/tracks?page=2")
        assert anonymous.status_code == 302
        assert anonymous.headers["location"] == "/.tiers/access/login?return=%2Ftracks%3Fpage%3D2"
        assert "tiers-access-jwt-assertion" not in anonymous.headers

        login = browser.page(STAGING_WEB, "/.tiers/access/login?return=%2Ftracks%3Fpage%3D2")
        assert login.status_code == 200
        assert 'lang="en"' in login.text and "staging" in login.text
        assert 'value="/tracks?page=2"' in login.text

        done = sign_in(browser, project, "Ana@plyr.fm", path="/tracks?page=2")
        assert done.status_code == 303
        assert done.headers["location"] == "/tracks?page=2"  # one cookie covers both ports
        cookie = done.headers["set-cookie"]
        assert cookie.startswith("tiers_session_staging=")
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax", f"Max-Age={24 * 3600}"):
            assert attribute in cookie
        assert "Domain" not in cookie and "Secure" not in cookie  # plain-http localhost

        allowed = browser.verify(STAGING_API, "/tracks")
        assert allowed.status_code == 200
        assert allowed.headers["tiers-access-identity"] == "ana@plyr.fm"
        claims = gate.claims(allowed, "staging/backend")
        assert claims["sub"] == claims["email"] == "ana@plyr.fm"
        assert claims["identity_type"] == "user"
        web = browser.verify(STAGING_WEB, "/")
        assert gate.claims(web, "staging/frontend")

        confirm = browser.page(STAGING_WEB, "/.tiers/access/logout")
        assert confirm.status_code == 200 and "Sign out" in confirm.text
        out = browser.page(STAGING_WEB, "/.tiers/access/logout", {})
        assert out.status_code == 200 and "You are signed out" in out.text
        assert browser.cookies["localhost"] == {}
        log = tiers_cli("access", "log", "staging", "--json", cwd=project)
        kinds = [e["kind"] for e in json.loads(log.stdout)]
        assert kinds[:3] == ["logout", "login", "code-sent"]


def test_logout_revokes_a_copied_cookie(project: Path) -> None:
    with running_gate(project) as gate:
        browser = Browser(gate)
        sign_in(browser, project, "ana@plyr.fm")
        copy = Browser(gate, cookies={k: dict(v) for k, v in browser.cookies.items()})
        assert copy.verify(STAGING_API, "/tracks").status_code == 200
        browser.page(STAGING_WEB, "/.tiers/access/logout", {})
        after = copy.verify(STAGING_API, "/tracks")
        assert after.status_code == 302
        assert "tiers-access-jwt-assertion" not in after.headers


def test_revoked_elsewhere_within_seconds(project: Path) -> None:
    """A session revoked in the state store by someone else (another gate, a command)
    is refused once the gate's cache reloads."""
    from tiers.gate.store import AccessStore
    from tiers.state import StateStore

    with running_gate(project) as gate:
        browser = Browser(gate)
        sign_in(browser, project, "ana@plyr.fm")
        assert browser.verify(STAGING_API, "/tracks").status_code == 200
        with StateStore.open(None, project) as state:
            access = AccessStore(state.engine, "staging")
            (session_id,) = access.live_sessions()
            assert access.revoke_session(session_id)
        eventually(lambda: browser.verify(STAGING_API, "/tracks").status_code == 302, "revocation")


def test_not_allowed_address_gets_same_page_and_no_mail(project: Path) -> None:
    with running_gate(project) as gate:
        browser = Browser(gate)
        sign_in(browser, project, "ana@plyr.fm")  # so the mailbox exists
        stranger = Browser(gate)
        sent = stranger.page(
            STAGING_WEB, "/.tiers/access/login", {"email": "eve@evil.example", "return": "/"}
        )
        assert sent.status_code == 303
        page = stranger.page(STAGING_WEB, "/.tiers/access/code")
        assert "If this address may enter, a code is on its way" in page.text
        log = tiers_cli("access", "log", "staging", "--json", cwd=project)
        assert any(
            e["kind"] == "code-refused" and e["identity"] == "eve@evil.example"
            for e in json.loads(log.stdout)
        )
        assert mailbox(project, "eve@evil.example") == []


def test_mailbox_command_prints_the_code(project: Path) -> None:
    with running_gate(project) as gate:
        Browser(gate).page(
            STAGING_WEB, "/.tiers/access/login", {"email": "ana@plyr.fm", "return": "/"}
        )
        code = code_for(project, "ana@plyr.fm")
        done = tiers_cli("access", "mailbox", "staging", cwd=project)
        assert done.returncode == 0
        assert f"to ana@plyr.fm  code {code}" in done.stdout


def test_bypass_and_health(project: Path) -> None:
    with running_gate(project) as gate:
        browser = Browser(gate)
        public = browser.verify(STAGING_API, "/health")
        assert public.status_code == 200
        assert "tiers-access-jwt-assertion" not in public.headers
        assert browser.verify(STAGING_WEB, "/health").status_code == 302  # bypass names one host
        api = httpx.get(
            f"{gate.url}/verify",
            headers={
                "X-Forwarded-Host": STAGING_API,
                "X-Forwarded-Uri": "/tracks",
                "Accept": "application/json",
            },
        )
        assert api.status_code == 401
        assert "www-authenticate" not in api.headers
        assert api.json()["error"] == "sign-in required"


def test_signed_in_but_no_longer_allowed(project: Path) -> None:
    with running_gate(project) as gate:
        browser = Browser(gate)
        sign_in(browser, project, "guest@elsewhere.example")
        assert browser.verify(STAGING_API, "/tracks").status_code == 200
    config = project / "tiers.toml"
    config.write_text(config.read_text().replace(', "email:guest@elsewhere.example"', ""))
    with running_gate(project) as gate:
        browser.gate = gate
        denied = browser.verify(STAGING_WEB, "/")
        assert denied.status_code == 403
        assert "guest@elsewhere.example" in denied.text and "not allowed" in denied.text
        assert "tiers-access-jwt-assertion" not in denied.headers
        robot = browser.verify(STAGING_API, "/tracks", Accept="application/json")
        assert robot.status_code == 403 and robot.json()["error"] == "not allowed"


def test_serve_refuses_bad_listen_and_unprotected(project: Path) -> None:
    public = tiers_cli("gate", "serve", "staging", "--listen", "0.0.0.0:8100", cwd=project)
    assert public.returncode == 2
    assert "not a loopback address" in public.stderr and "--public" in public.stderr
    bad = tiers_cli("gate", "serve", "staging", "--listen", "8100", cwd=project)
    assert bad.returncode == 2 and "expected HOST:PORT" in bad.stderr
    config = project / "tiers.toml"
    production = "[environments.production.access]\nprotect = true"
    config.write_text(config.read_text().replace(production, production.replace("true", "false")))
    open_tier = tiers_cli("gate", "serve", "production", "--listen", "127.0.0.1:8100", cwd=project)
    assert open_tier.returncode == 2
    assert "production is not protected" in open_tier.stderr
    unknown = tiers_cli("gate", "serve", "qa", cwd=project)
    assert unknown.returncode == 2 and "no environment 'qa'" in unknown.stderr


def test_serve_refuses_a_taken_port(project: Path) -> None:
    with running_gate(project) as gate:
        port = gate.url.rsplit(":", 1)[1]
        taken = tiers_cli("gate", "serve", "staging", "--listen", f"127.0.0.1:{port}", cwd=project)
        assert taken.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: another process uses that port" in taken.stderr


def test_keys_rotate_under_a_running_gate(project: Path) -> None:
    from tiers.gate.assertion import Keys

    with running_gate(project) as gate:
        browser = Browser(gate)
        sign_in(browser, project, "ana@plyr.fm")
        folder = project / ".tiers" / "gate" / "staging"
        assert folder.stat().st_mode & 0o777 == 0o700
        for name in ("keys.json", "secret"):
            assert (folder / name).stat().st_mode & 0o777 == 0o600
        before = browser.verify(STAGING_API, "/tracks").headers["tiers-access-jwt-assertion"]
        rotated = tiers_cli("access", "rotate-keys", "staging", cwd=project)
        assert rotated.returncode == 0, rotated.stderr
        new = Keys(folder / "keys.json").current.kid
        assert f"staging: the gate signs with key {new} from now on" in rotated.stdout
        assert (folder / "keys.json").stat().st_mode & 0o777 == 0o600

        def published() -> dict[str, object] | None:
            with gate.client() as client:
                jwks = client.get("/.tiers/access/certs").json()
            return jwks if len(jwks["keys"]) == 2 else None

        jwks = eventually(published, "the new key published")
        after = browser.verify(STAGING_API, "/tracks").headers["tiers-access-jwt-assertion"]
        assert jwt.get_unverified_header(after)["kid"] == new
        for token in (before, after):  # the previous key still verifies what it signed
            assert verify(token, jwks, audience="staging/backend", issuer="tiers-gate:staging")
        log = tiers_cli("access", "log", "staging", cwd=project)
        assert "keys-rotated" in log.stdout and f"new key {new}" in log.stdout


def test_log_and_tokens_of_a_fresh_project(project: Path) -> None:
    log = tiers_cli("access", "log", "staging", cwd=project)
    assert log.returncode == 0 and "staging: no access events yet" in log.stdout
    tokens = tiers_cli("access", "token", "ls", "staging", cwd=project)
    assert tokens.returncode == 0 and "no service tokens" in tokens.stdout
    assert not (project / ".tiers" / "state.db").exists()
    revoke = tiers_cli("access", "token", "revoke", "staging", "ci", cwd=project)
    assert revoke.returncode == 2 and "staging has no live token called ci" in revoke.stderr
    empty = tiers_cli("access", "mailbox", "staging", cwd=project)
    assert empty.returncode == 0 and "is empty" in empty.stdout
