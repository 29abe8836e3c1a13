"""PINs over real SMTP, service tokens, CORS preflights, one login across two hosts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.gate.service import (
    STAGING_API,
    STAGING_WEB,
    Browser,
    eventually,
    running_gate,
    tiers_cli,
    write_config,
)
from tests.pipeline.example import reserved_ports


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        self.messages.append((list(envelope.rcpt_tos), content.decode()))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    with reserved_ports(1) as (port,):
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            yield port, inbox
        finally:
            controller.stop()


def test_pin_by_smtp(tmp_path: Path, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    write_config(tmp_path, smtp_port=port)
    with running_gate(tmp_path) as gate:
        browser = Browser(gate)
        browser.page(STAGING_WEB, "/.tiers/access/login", {"email": "ana@plyr.fm", "return": "/"})
        eventually(lambda: inbox.messages, "a mail")
        ((rcpt, body),) = inbox.messages
        assert rcpt == ["ana@plyr.fm"]
        assert "From: gate@plyr.fm" in body
        code = re.search(r"Subject: (\d{6}) is your sign-in code for plyr staging", body)
        assert code is not None
        done = browser.page(STAGING_WEB, "/.tiers/access/code", {"code": code.group(1)})
        assert done.status_code == 303
        assert browser.verify(STAGING_API, "/tracks").status_code == 200
        assert not (tmp_path / ".tiers" / "gate" / "staging" / "mail").exists()


def test_service_tokens(project: Path) -> None:
    made = tiers_cli("access", "token", "create", "staging", "ci", "--expires", "30d", cwd=project)
    assert made.returncode == 0, made.stderr
    client_id = re.search(r"Tiers-Access-Client-Id: (\S+)", made.stdout).group(1)  # type: ignore[union-attr]
    secret = re.search(r"Tiers-Access-Client-Secret: (\S+)", made.stdout).group(1)  # type: ignore[union-attr]
    again = tiers_cli("access", "token", "create", "staging", "ci", cwd=project)
    assert again.returncode == 2 and "already has a live token called ci" in again.stderr
    bad = tiers_cli("access", "token", "create", "staging", "x", "--expires", "soon", cwd=project)
    assert bad.returncode == 2 and "--expires 'soon'" in bad.stderr
    with running_gate(project) as gate:
        robot = Browser(gate)
        headers = {
            "Tiers-Access-Client-Id": client_id,
            "Tiers-Access-Client-Secret": secret,
            "Accept": "*/*",
        }
        allowed = robot.verify(STAGING_API, "/tracks", **headers)
        assert allowed.status_code == 200
        assert allowed.headers["tiers-access-identity"] == "service:ci"
        claims = gate.claims(allowed, "staging/backend")
        assert claims["identity_type"] == "service" and claims["sub"] == "service:ci"
        assert "email" not in claims
        wrong = robot.verify(
            STAGING_API, "/tracks", **{**headers, "Tiers-Access-Client-Secret": secret + "x"}
        )
        assert wrong.status_code == 401 and "tiers-access-jwt-assertion" not in wrong.headers
        public = robot.verify(STAGING_API, "/health", **{**headers, "Tiers-Access-Client-Id": "x"})
        assert public.status_code == 200  # a bypass path ignores a bad token

        listed = json.loads(
            tiers_cli("access", "token", "ls", "staging", "--json", cwd=project).stdout
        )
        assert [(t["name"], t["state"]) for t in listed] == [("ci", "live")]
        assert secret not in json.dumps(listed)
        eventually(
            lambda: json.loads(
                tiers_cli("access", "token", "ls", "staging", "--json", cwd=project).stdout
            )[0]["last_used_at"],
            "the token's use recorded",
        )
        log = json.loads(tiers_cli("access", "log", "staging", "--json", cwd=project).stdout)
        assert any(e["kind"] == "token-use" and e["identity"] == "service:ci" for e in log)

        revoked = tiers_cli("access", "token", "revoke", "staging", "ci", cwd=project)
        assert revoked.returncode == 0
        eventually(
            lambda: robot.verify(STAGING_API, "/tracks", **headers).status_code == 401,
            "revoked token refused",
        )


def test_token_of_another_tier_is_refused(project: Path) -> None:
    made = tiers_cli("access", "token", "create", "production", "ci", cwd=project)
    client_id = re.search(r"Client-Id: (\S+)", made.stdout).group(1)  # type: ignore[union-attr]
    secret = re.search(r"Client-Secret: (\S+)", made.stdout).group(1)  # type: ignore[union-attr]
    with running_gate(project) as gate:
        headers = {"Tiers-Access-Client-Id": client_id, "Tiers-Access-Client-Secret": secret}
        assert Browser(gate).verify(STAGING_API, "/tracks", **headers).status_code == 401


@pytest.mark.parametrize(("preflight", "status"), [("origin", 200), ("deny", 403)])
def test_preflight(tmp_path: Path, preflight: str, status: int) -> None:
    write_config(tmp_path, preflight=preflight)
    with running_gate(tmp_path) as gate:
        answer = Browser(gate).verify(
            STAGING_API,
            "/tracks",
            method="OPTIONS",
            Origin=f"http://{STAGING_WEB}",
            **{"Access-Control-Request-Method": "POST"},
        )
        assert answer.status_code == status
        assert "tiers-access-jwt-assertion" not in answer.headers
        # any OPTIONS without credentials is a preflight to the policy
        plain = Browser(gate).verify(STAGING_API, "/tracks", method="OPTIONS", Accept="*/*")
        assert plain.status_code == status


def test_one_login_across_hosts(tmp_path: Path) -> None:
    api, web = "stg-api.plyr.test", "stg.plyr.test"
    write_config(tmp_path, api=f"https://{api}", web=f"https://{web}")
    with running_gate(tmp_path) as gate:
        browser = Browser(gate, scheme="https")
        browser.page(web, "/.tiers/access/login", {"email": "ana@plyr.fm", "return": "/library"})
        code = eventually(
            lambda: json.loads(
                tiers_cli("access", "mailbox", "staging", "--json", cwd=tmp_path).stdout
            ),
            "mail",
        )[-1]["code"]
        done = browser.page(web, "/.tiers/access/code", {"code": code})
        assert "__Host-tiers_session_staging=" in done.headers["set-cookie"]
        assert "Secure" in done.headers["set-cookie"]
        assert done.headers["location"].startswith(f"https://{api}/.tiers/access/session?ticket=")
        hop_url = done.headers["location"].split(api, 1)[1]
        end, _ = browser.follow(done, web)
        assert end.headers["location"] == f"https://{web}/library"
        assert browser.verify(api, "/tracks").status_code == 200
        assert browser.verify(web, "/library").status_code == 200
        # the ticket was single-use
        replay = Browser(gate, scheme="https").page(api, hop_url)
        assert replay.status_code == 400 and "set-cookie" not in replay.headers
