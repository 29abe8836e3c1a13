"""Signing in with GitHub, against a local server that speaks GitHub's protocol."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.gate.github_standin import Email, GitHubStandIn, User
from tiers.gate.github import LoginFailed, authorize_url, callback_error, identity
from tiers.gate.identity import Identity

CALLBACK = "https://stg.plyr.fm/.tiers/access/github/callback"

ALICE = User(
    "Alice-Dev",
    emails=[
        Email("alice@old-job.example", verified=True, primary=False),
        Email("Alice@plyr.fm", verified=True, primary=True),
    ],
    orgs=["Plyr-FM", "rust-lang", "Secretive-Corp"],
    teams=["Plyr-FM/Core-Team", "plyr-fm/infra", "Secretive-Corp/ops"],
)
BOB = User(  # his only verified address is not his primary one
    "bob",
    emails=[
        Email("bob@plyr.fm", verified=False, primary=True),
        Email("bob@elsewhere.example", verified=True, primary=False),
    ],
)


@pytest.fixture
def hub() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(
        users=[ALICE, BOB], callback=CALLBACK, restricted_orgs=("secretive-corp",), max_per_page=2
    ) as server:
        yield server


def sign_in(hub: GitHubStandIn, login: str, *, secret: str | None = None) -> Identity:
    cfg = hub.config()
    back = hub.approve(authorize_url(cfg, CALLBACK, "state-1"), login)
    assert back["state"] == "state-1"
    assert callback_error(back) is None
    return asyncio.run(identity(cfg, secret or hub.client_secret, back["code"], CALLBACK))


def test_a_member_signs_in_with_their_primary_verified_email_orgs_and_teams(
    hub: GitHubStandIn,
) -> None:
    who = sign_in(hub, "alice-dev")
    assert who == Identity(
        kind="user",
        name="alice@plyr.fm",
        method="github",
        email="alice@plyr.fm",
        github_user="alice-dev",
        # every page followed (two a page here); the org that restricts OAuth apps and
        # has not approved this one is not visible, nor are its teams
        github_orgs=("plyr-fm", "rust-lang"),
        github_teams=("plyr-fm/core-team", "plyr-fm/infra"),
    )


def test_without_read_org_granted_a_person_signs_in_with_no_orgs(hub: GitHubStandIn) -> None:
    cfg = hub.config()
    back = hub.approve(authorize_url(cfg, CALLBACK, "s"), "alice-dev", withhold="read:org")
    who = asyncio.run(identity(cfg, hub.client_secret, back["code"], CALLBACK))
    assert (who.email, who.github_orgs, who.github_teams) == ("alice@plyr.fm", (), ())


def test_without_user_email_granted_the_person_is_told_why(hub: GitHubStandIn) -> None:
    cfg = hub.config()
    back = hub.approve(authorize_url(cfg, CALLBACK, "s"), "alice-dev", withhold="user:email")
    with pytest.raises(LoginFailed, match="did not share your email addresses with the gate"):
        asyncio.run(identity(cfg, hub.client_secret, back["code"], CALLBACK))


def test_the_authorize_url_asks_github_for_the_profile_emails_and_orgs(
    hub: GitHubStandIn,
) -> None:
    url = authorize_url(hub.config(), CALLBACK, "s&t=1")
    assert url.startswith(f"{hub.url}/login/oauth/authorize?client_id=Iv1.standin&")
    assert "scope=read%3Auser+user%3Aemail+read%3Aorg" in url
    assert "state=s%26t%3D1" in url


def test_an_account_without_a_verified_primary_email_is_refused(hub: GitHubStandIn) -> None:
    with pytest.raises(LoginFailed, match="no verified primary email address") as failed:
        sign_in(hub, "bob")
    assert "bob@elsewhere.example" not in str(failed.value)


def test_a_wrong_client_secret_is_refused_without_showing_it(hub: GitHubStandIn) -> None:
    with pytest.raises(LoginFailed) as failed:
        sign_in(hub, "alice-dev", secret="not-the-secret")
    message = str(failed.value)
    assert message == (
        "GitHub did not accept this gate's OAuth app (client_id 'Iv1.standin' and the "
        "secret GATE_GITHUB_CLIENT_SECRET). Ask the environment's owner to check them."
    )
    assert "not-the-secret" not in message


def test_a_code_works_once(hub: GitHubStandIn) -> None:
    cfg = hub.config()
    code = hub.approve(authorize_url(cfg, CALLBACK, "s"), "alice-dev")["code"]
    assert asyncio.run(identity(cfg, hub.client_secret, code, CALLBACK)).github_user == "alice-dev"
    with pytest.raises(LoginFailed, match="expired or was already used"):
        asyncio.run(identity(cfg, hub.client_secret, code, CALLBACK))


def test_a_code_is_bound_to_its_redirect_uri(hub: GitHubStandIn) -> None:
    cfg = hub.config()
    code = hub.approve(authorize_url(cfg, CALLBACK, "s"), "alice-dev")["code"]
    with pytest.raises(LoginFailed, match="callback URL must be this site's"):
        asyncio.run(identity(cfg, hub.client_secret, code, CALLBACK + "/other"))


def test_cancelling_at_github_says_so(hub: GitHubStandIn) -> None:
    back = hub.deny(authorize_url(hub.config(), CALLBACK, "s"), "alice-dev")
    assert back["state"] == "s"
    failed = callback_error(back)
    assert failed is not None
    assert str(failed) == "You cancelled signing in with GitHub, so you are not signed in."


def test_a_foreign_callback_address_is_reported(hub: GitHubStandIn) -> None:
    url = authorize_url(hub.config(), "https://evil.example/cb", "s")
    answer = httpx.get(url, follow_redirects=False)
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert str(location).startswith(CALLBACK)
    failed = callback_error(dict(location.params))
    assert failed is not None
    assert "callback URL must be this site's /.tiers/access/github/callback" in str(failed)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "GitHub sent no sign-in code back. Sign in again."),
        ({"error": "application_suspended"}, "is suspended"),
        ({"error": "<script>"}, r"GitHub refused the sign-in \(unknown error\)"),
    ],
)
def test_other_callback_answers(query: dict[str, str], message: str) -> None:
    failed = callback_error(query)
    assert failed is not None
    assert re.search(message, str(failed))


def test_github_down_is_said_plainly(hub: GitHubStandIn) -> None:
    cfg = hub.config()
    code = hub.approve(authorize_url(cfg, CALLBACK, "s"), "alice-dev")["code"]
    hub.stop()
    host = cfg.url.removeprefix("http://")
    with pytest.raises(LoginFailed, match=rf"^GitHub \({host}\) could not be reached"):
        asyncio.run(identity(cfg, hub.client_secret, code, CALLBACK))
