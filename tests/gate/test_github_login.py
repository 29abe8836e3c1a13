"""Signing in with GitHub through the gate's routes, against the local GitHub stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.gate.github_standin import Email, GitHubStandIn, User
from tests.gate.service import STAGING_API, STAGING_WEB, Browser, Gate, running_gate, write_config

CALLBACK = f"http://{STAGING_WEB}/.tiers/access/github/callback"


@pytest.fixture
def hub() -> Iterator[GitHubStandIn]:
    users = [
        User("Alice", emails=[Email("alice@plyr.fm")], orgs=["plyr-fm"]),
        User("mallory", emails=[Email("mallory@evil.example")]),
    ]
    with GitHubStandIn(users, callback=CALLBACK) as standin:
        yield standin


@pytest.fixture
def gate(tmp_path: Path, hub: GitHubStandIn) -> Iterator[Gate]:
    github = (
        f'github = {{ client_id = "{hub.client_id}", url = "{hub.url}", '
        f'api_url = "{hub.api_url}" }}\nlogin = ["otp", "github"]'
    )
    write_config(tmp_path, extra=github)
    secret = {"GATE_GITHUB_CLIENT_SECRET": hub.client_secret}
    with running_gate(tmp_path, env=secret) as running:
        yield running


def start(browser: Browser, hub: GitHubStandIn) -> str:
    answer = browser.page(STAGING_WEB, "/.tiers/access/github/start?return=/library")
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(f"{hub.url}/login/oauth/authorize?")
    return str(answer.headers["location"])


def test_github_sign_in(gate: Gate, hub: GitHubStandIn) -> None:
    browser = Browser(gate)
    login = browser.page(STAGING_WEB, "/.tiers/access/login")
    assert "Sign in with GitHub" in login.text
    back = hub.approve(start(browser, hub), "Alice")
    done = browser.page(STAGING_WEB, f"/.tiers/access/github/callback?{urlencode(back)}")
    assert done.status_code == 303 and done.headers["location"] == "/library"
    assert "tiers_session_staging=" in done.headers["set-cookie"]
    allowed = browser.verify(STAGING_API, "/tracks")
    assert allowed.status_code == 200
    assert allowed.headers["tiers-access-identity"] == "alice@plyr.fm"
    claims = gate.claims(allowed, "staging/backend")
    assert claims["method"] == "github" and claims["github_user"] == "alice"


def test_github_state_must_be_this_browsers(gate: Gate, hub: GitHubStandIn) -> None:
    victim, attacker = Browser(gate), Browser(gate)
    back = hub.approve(start(attacker, hub), "Alice")  # the attacker's code, sent to a victim
    forced = victim.page(STAGING_WEB, f"/.tiers/access/github/callback?{urlencode(back)}")
    assert forced.status_code == 400 and "did not start here" in forced.text
    assert "tiers_session" not in forced.headers.get("set-cookie", "")
    mine = start(victim, hub)
    wrong_state = {**hub.approve(mine, "Alice"), "state": "x" * 43}
    again = victim.page(STAGING_WEB, f"/.tiers/access/github/callback?{urlencode(wrong_state)}")
    assert again.status_code == 400
    assert "tiers_session" not in again.headers.get("set-cookie", "")


def test_github_user_not_allowed(gate: Gate, hub: GitHubStandIn) -> None:
    browser = Browser(gate)
    back = hub.approve(start(browser, hub), "mallory")
    denied = browser.page(STAGING_WEB, f"/.tiers/access/github/callback?{urlencode(back)}")
    assert denied.status_code == 403 and "mallory@evil.example" in denied.text
    assert "tiers_session" not in denied.headers.get("set-cookie", "")
    assert browser.verify(STAGING_API, "/tracks").status_code == 302


def test_github_cancelled(gate: Gate, hub: GitHubStandIn) -> None:
    browser = Browser(gate)
    back = hub.deny(start(browser, hub), "Alice")
    cancelled = browser.page(STAGING_WEB, f"/.tiers/access/github/callback?{urlencode(back)}")
    assert cancelled.status_code == 403 and "cancelled" in cancelled.text
