"""`tiers access explain URL`, run as a user runs it, on the seed's setup (stg.plyr.fm and
api-stg.plyr.fm behind the gate, five bypass paths)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import tiers


def explain(*args: str) -> tuple[int, str, str]:
    done = tiers("access", "explain", *args)
    return done.returncode, done.stdout, done.stderr


def test_a_bypass_path_names_its_rule(plyr: Path) -> None:
    code, out, err = explain("https://stg.plyr.fm/icons/a.png")
    assert (code, err) == (0, "")
    assert out == (
        "staging: GET stg.plyr.fm/icons/a.png as anonymous\n"
        "bypass: bypass stg.plyr.fm/icons/*\n"
        "  stg.plyr.fm/icons/a.png is public: the most specific rule is "
        "bypass stg.plyr.fm/icons/*\n"
        "rules that match, most specific first:\n"
        "  → bypass stg.plyr.fm/icons/*  decides\n"
        "    protect = true              matches, but a more specific rule comes first\n"
    )


def test_a_protected_path_asks_for_a_login(plyr: Path) -> None:
    code, out, _ = explain("https://api-stg.plyr.fm/tracks?x=/health")
    assert code == 0
    assert out == (
        "staging: GET api-stg.plyr.fm/tracks as anonymous\n"
        "login: protect = true\n"
        "  api-stg.plyr.fm/tracks is protected and nobody is signed in: sign in with "
        "github or otp\n"
        "rules that match, most specific first:\n"
        "  → protect = true  decides: the path is protected, so it depends on who asks\n"
    )


def test_someone_not_allowed_sees_each_selector_refuse_them(plyr: Path) -> None:
    code, out, _ = explain("https://api-stg.plyr.fm/tracks/../health", "--as", "email:eve@evil.com")
    assert code == 0
    assert out == (
        "staging: GET api-stg.plyr.fm/health as eve@evil.com (otp)\n"
        "deny: default deny\n"
        "  api-stg.plyr.fm/health is protected (bypass patterns match only a path written as "
        "browsers send it) and eve@evil.com matches none of allow (github-org:plyr-fm, "
        "email-domain:plyr.fm)\n"
        "rules that match, most specific first:\n"
        "    bypass api-stg.plyr.fm/health  matches the normalised path only: the URL as "
        "written has dot segments, repeated slashes or a fragment, which the app receives "
        "unresolved\n"
        "  → protect = true                 decides: the path is protected, so it depends "
        "on who asks\n"
        "allow selectors, for eve@evil.com (otp):\n"
        "    github-org:plyr-fm    no\n"
        "    email-domain:plyr.fm  no\n"
    )


def test_a_github_team_member_is_let_in_by_the_org(plyr: Path) -> None:
    code, out, _ = explain("https://stg.plyr.fm/", "--as", "github:ana,team:plyr-fm/core")
    assert code == 0
    assert out.splitlines()[:3] == [
        "staging: GET stg.plyr.fm/ as ana (github)",
        "allow: allow github-org:plyr-fm",
        "  ana is let into staging by github-org:plyr-fm",
    ]


def test_a_service_token_and_a_preflight(plyr: Path) -> None:
    _, out, _ = explain("https://api-stg.plyr.fm/tracks", "--as", "service:uptime")
    assert out.splitlines()[1:3] == [
        "allow: service auth",
        "  api-stg.plyr.fm/tracks is protected and service token uptime is one of staging's",
    ]
    _, out, _ = explain("https://api-stg.plyr.fm/tracks", "--method", "options")
    assert out.splitlines()[:2] == [
        "staging: OPTIONS api-stg.plyr.fm/tracks as anonymous",
        'bypass: preflight = "origin"',
    ]


def test_a_target_the_gate_cannot_read_is_refused(plyr: Path) -> None:
    code, out, _ = explain("https://api-stg.plyr.fm/health%2f..%2ftracks")
    assert code == 0
    assert out == (
        "staging: GET https://api-stg.plyr.fm/health%2f..%2ftracks as anonymous\n"
        "deny: malformed request\n"
        "  the gate refuses it: the path contains an encoded slash (%2f); it is refused\n"
    )


def test_production_is_not_protected(plyr: Path) -> None:
    _, out, _ = explain("https://api.plyr.fm/tracks")
    assert out == (
        "production: GET api.plyr.fm/tracks as anonymous\n"
        "allow: not protected\n"
        "  production is not protected: anyone may enter\n"
    )


def test_json(plyr: Path) -> None:
    code, out, _ = explain("https://API-STG.plyr.fm.:443/docs", "--json")
    assert code == 0
    assert json.loads(out) == {
        "url": "https://API-STG.plyr.fm.:443/docs",
        "environment": "staging",
        "method": "GET",
        "as": "anonymous",
        "host": "api-stg.plyr.fm",
        "path": "/docs",
        "canonical": True,
        "decision": "bypass",
        "rule": "bypass api-stg.plyr.fm/docs",
        "reason": "api-stg.plyr.fm/docs is public: the most specific rule is "
        "bypass api-stg.plyr.fm/docs",
        "rules": [
            {"rule": "bypass api-stg.plyr.fm/docs", "decides": True, "note": "decides"},
            {
                "rule": "protect = true",
                "decides": False,
                "note": "matches, but a more specific rule comes first",
            },
        ],
        "allow": [],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["https://evil.example/health"],
            "error: evil.example is no host of any environment in tiers.toml; known: "
            "localhost:8001, localhost:5173 (development); api-stg.plyr.fm, stg.plyr.fm "
            "(staging); api.plyr.fm, plyr.fm (production)\n",
        ),
        (
            ["https://stg.plyr.fm/", "--as", "bob"],
            "error: --as 'bob' is not an identity; use anonymous, email:ADDRESS, "
            "github:USER[,org:ORG][,team:ORG/SLUG][,email:ADDRESS], "
            "oidc:SUBJECT[,group:GROUP][,email:ADDRESS] or service:NAME\n",
        ),
        (
            ["https://stg.plyr.fm/", "--as", "github:ana,group:staff"],
            "error: --as 'github:ana,group:staff': 'group:staff' is not one of ,org:ORG "
            ",team:ORG/SLUG (github) ,group:GROUP (oidc) ,email:ADDRESS\n",
        ),
        (
            ["ftp://stg.plyr.fm/"],
            "error: 'ftp://stg.plyr.fm/': the gate only sees http and https URLs\n",
        ),
    ],
)
def test_bad_input_is_named(plyr: Path, args: list[str], message: str) -> None:
    code, out, err = explain(*args)
    assert (code, out, err) == (2, "", message)
