"""`tiers access export cloudflare ENV` on the seed's real setup (stg.plyr.fm and
api-stg.plyr.fm behind Cloudflare Access, the seed's four bypass paths), and the round
trip: the export, read back with Cloudflare's semantics, decides as tiers' gate does."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiers
from tests.gate.conftest import EXAMPLE
from tiers.config import Environment, load_text
from tiers.gate.cloudflare import evaluate, export
from tiers.gate.identity import Identity
from tiers.gate.policy import Malformed, Policy, normalise

SEED = """
[project]
name = "plyr"
domain = "plyr.fm"

[services.backend]
processes = { app = "uvicorn backend.main:app --port $PORT" }
health = "/health"

[services.frontend]
output = "frontend/build"

[environments.staging]
trigger = { push = "main" }
backend = { platform = "fly", app = "relay-api-staging", url = "https://api-stg.plyr.fm" }
frontend = { platform = "cloudflare-pages", project = "plyr-fm-stg", url = "https://stg.plyr.fm" }

[environments.staging.access]
protect = true
provider = "cloudflare"
login = ["github", "otp", "oidc"]
allow = [
  "github-org:plyr-fm",
  "github-team:friends/core",
  "email-domain:plyr.fm",
  "email:ops@example.com",
  "oidc-group:testers",
]
bypass = [
  "api-stg.plyr.fm/health",            # uptime monitoring
  "api-stg.plyr.fm/docs",              # API documentation
  "stg.plyr.fm/manifest.webmanifest",  # PWA manifest
  "stg.plyr.fm/icons/*",               # PWA icons
]
session_hours = 12
oidc = { issuer = "https://id.plyr.fm", client_id = "staging", groups_claim = "roles" }

[environments.production]
trigger = { release = "tag" }
backend = { platform = "fly", app = "relay-api", url = "https://api.plyr.fm" }
frontend = { platform = "cloudflare-pages", project = "plyr-fm", url = "https://plyr.fm" }
"""
API, SITE = "api-stg.plyr.fm", "stg.plyr.fm"
GITHUB = "<identity provider id: github>"


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    path = tmp_path / "tiers.toml"
    path.write_text(SEED)
    return path


@cache
def staging() -> Environment:
    return load_text(SEED, "tiers.toml").config.environment("staging")


def exported() -> dict[str, Any]:
    return export(load_text(SEED, "tiers.toml").config, "staging")


@cache
def read_back() -> dict[str, Any]:
    """The export, as Cloudflare would read it (written and parsed as JSON)."""
    return dict(json.loads(json.dumps(exported())))


def test_the_export_as_written(seed: Path) -> None:
    done = tiers("access", "export", "cloudflare", "staging", "-o", "cloudflare.json")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "wrote cloudflare.json: 8 Cloudflare Access applications for staging; replace its "
        "<identity provider id: …> and <service token id: …> placeholders, and read its notes\n"
    )
    written = json.loads((seed.parent / "cloudflare.json").read_text())
    assert written == exported()
    apps = written["applications"]
    assert [(a["name"], [d["uri"] for d in a["destinations"]]) for a in apps] == [
        ("plyr staging: bypass api-stg.plyr.fm/health", ["api-stg.plyr.fm/health"]),
        ("plyr staging: bypass api-stg.plyr.fm/docs", ["api-stg.plyr.fm/docs"]),
        (
            "plyr staging: bypass stg.plyr.fm/manifest.webmanifest",
            ["stg.plyr.fm/manifest.webmanifest"],
        ),
        ("plyr staging: bypass stg.plyr.fm/icons/*", ["stg.plyr.fm/icons/*"]),
        ("plyr staging: below api-stg.plyr.fm/health", ["api-stg.plyr.fm/health/*"]),
        ("plyr staging: below api-stg.plyr.fm/docs", ["api-stg.plyr.fm/docs/*"]),
        (
            "plyr staging: below stg.plyr.fm/manifest.webmanifest",
            ["stg.plyr.fm/manifest.webmanifest/*"],
        ),
        ("plyr staging", ["api-stg.plyr.fm", "stg.plyr.fm"]),
    ]
    assert apps[0] == {
        "name": "plyr staging: bypass api-stg.plyr.fm/health",
        "type": "self_hosted",
        "domain": "api-stg.plyr.fm/health",
        "destinations": [{"type": "public", "uri": "api-stg.plyr.fm/health"}],
        "session_duration": "12h",
        "app_launcher_visible": False,
        "policies": [
            {
                "name": "bypass api-stg.plyr.fm/health",
                "decision": "bypass",
                "include": [{"everyone": {}}],
                "precedence": 1,
            }
        ],
    }
    main = apps[-1]
    assert {k: v for k, v in main.items() if k != "policies"} == {
        "name": "plyr staging",
        "type": "self_hosted",
        "domain": "api-stg.plyr.fm",
        "destinations": [
            {"type": "public", "uri": "api-stg.plyr.fm"},
            {"type": "public", "uri": "stg.plyr.fm"},
        ],
        "session_duration": "12h",
        "app_launcher_visible": False,
        "allowed_idps": [
            GITHUB,
            "<identity provider id: otp>",
            "<identity provider id: oidc>",
        ],
        "options_preflight_bypass": True,
        "http_only_cookie_attribute": True,
        "same_site_cookie_attribute": "lax",
        "eager_redirect_cookie_setting": True,
    }
    assert main["policies"] == [
        {
            "name": "service auth",
            "decision": "non_identity",
            "include": [{"service_token": {"token_id": "<service token id: staging>"}}],
            "precedence": 1,
        },
        {
            "name": "allow github-org:plyr-fm",
            "decision": "allow",
            "include": [
                {"github-organization": {"name": "plyr-fm", "identity_provider_id": GITHUB}}
            ],
            "precedence": 2,
        },
        {
            "name": "allow github-team:friends/core",
            "decision": "allow",
            "include": [
                {
                    "github-organization": {
                        "name": "friends",
                        "team": "core",
                        "identity_provider_id": GITHUB,
                    }
                }
            ],
            "precedence": 3,
        },
        {
            "name": "allow email-domain:plyr.fm",
            "decision": "allow",
            "include": [{"email_domain": {"domain": "plyr.fm"}}],
            "precedence": 4,
        },
        {
            "name": "allow email:ops@example.com",
            "decision": "allow",
            "include": [{"email": {"email": "ops@example.com"}}],
            "precedence": 5,
        },
        {
            "name": "allow oidc-group:testers",
            "decision": "allow",
            "include": [
                {
                    "oidc": {
                        "claim_name": "roles",
                        "claim_value": "testers",
                        "identity_provider_id": "<identity provider id: oidc>",
                    }
                }
            ],
            "precedence": 6,
        },
    ]
    assert written["notes"][1].startswith(
        "One login across hosts: Cloudflare's CF_Authorization cookie is host-only, never "
        "shared by api-stg.plyr.fm and stg.plyr.fm. They are the destinations of one "
        "application, so Access sets the cookie on each of them"
    )


def test_without_a_file_the_json_goes_to_stdout(seed: Path) -> None:
    done = tiers("access", "export", "cloudflare", "staging")
    assert done.returncode == 0
    assert json.loads(done.stdout) == exported()


# -- the round trip --------------------------------------------------------------------

URLS = [
    (API, "/health"),
    (API, "/health?verbose=1"),
    (API, "/health/"),
    (API, "/health/deep"),
    (API, "/healthz"),
    (API, "/Health"),
    (API, "/docs"),
    (API, "/docs/oauth2-redirect"),
    (API, "/openapi.json"),
    (API, "/tracks"),
    (API, "/tracks?x=/health"),
    (API, "/"),
    (SITE, "/"),
    (SITE, "/manifest.webmanifest"),
    (SITE, "/manifest.webmanifest/x"),
    (SITE, "/icons/"),
    (SITE, "/icons/a.png"),
    (SITE, "/icons/a/b.png"),
    (SITE, "/icons"),
    (SITE, "/iconsx/a.png"),
    (SITE, "/health"),
    ("API-STG.plyr.fm.:443", "/health"),
]
PEOPLE = [
    None,
    Identity("user", "ana@plyr.fm", "otp", email="ana@plyr.fm"),
    Identity("user", "eve@evil.com", "otp", email="eve@evil.com"),
    Identity("user", "a@evil.com@plyr.fm", "otp", email="a@evil.com@plyr.fm"),
    Identity("user", "ops@example.com", "otp", email="ops@example.com"),
    Identity("user", "dev", "github", github_user="dev", github_orgs=("plyr-fm",)),
    Identity(
        "user",
        "pal",
        "github",
        github_user="pal",
        github_orgs=("friends",),
        github_teams=("friends/core",),
    ),
    Identity("user", "other", "github", github_user="other", github_orgs=("friends",)),
    Identity("user", "tess", "oidc", groups=("testers",)),
    Identity("service", "uptime", "token", environment="staging"),
    Identity("service", "ci", "token", environment="production"),
]


@pytest.mark.parametrize(("host", "uri"), URLS)
@pytest.mark.parametrize("who", PEOPLE, ids=lambda who: who.name if who else "anonymous")
def test_cloudflare_decides_as_the_gate_does(host: str, uri: str, who: Identity | None) -> None:
    target = normalise(host, uri, scheme="https")
    ours = Policy(staging()).decide(target, who)
    theirs = evaluate(read_back(), target, who)
    assert (theirs.action, theirs.rule) == (ours.action, ours.rule)


@pytest.mark.parametrize(("host", "uri"), [(API, "/tracks"), (SITE, "/"), (API, "/health/x")])
def test_a_preflight_passes_on_both(host: str, uri: str) -> None:
    target = normalise(host, uri, scheme="https")
    ours = Policy(staging()).decide(target, None, method="OPTIONS")
    theirs = evaluate(read_back(), target, None, method="OPTIONS")
    assert (
        (theirs.action, theirs.rule)
        == (ours.action, ours.rule)
        == ("bypass", 'preflight = "origin"')
    )


@pytest.mark.parametrize(
    "uri", ["/tracks/../health", "//health", "/./health", "/health#x", "/x/%2e%2e/health"]
)
def test_where_the_path_needs_normalising_the_gate_is_the_stricter(uri: str) -> None:
    """Cloudflare normalises a URL and forwards it normalised, so it may bypass there;
    tiers' gate sits behind Caddy, which forwards the raw target, so it does not."""
    target = normalise(API, uri, scheme="https")
    assert evaluate(read_back(), target, None).action == "bypass"
    assert Policy(staging()).decide(target, None).action == "login"


@pytest.mark.parametrize("uri", ["/health%2f..%2ftracks", "/health;x", "/health\\x", "/health%00"])
def test_what_cannot_be_read_is_refused(uri: str) -> None:
    with pytest.raises(Malformed):
        normalise(API, uri, scheme="https")


def test_every_host_of_the_environment_is_covered() -> None:
    for host in (API, SITE):
        decision = evaluate(read_back(), normalise(host, "/anything", scheme="https"), None)
        assert decision.rule != "open"
    other = evaluate(read_back(), normalise("api.plyr.fm", "/", scheme="https"), None)
    assert other.rule == "open"


# -- refusals --------------------------------------------------------------------------


def test_a_local_environment_is_refused() -> None:
    done = tiers("access", "export", "cloudflare", "staging", "-c", str(EXAMPLE))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: staging's hosts are local or private (localhost:8002, localhost:5174): "
        "Cloudflare Access protects public hostnames proxied through Cloudflare; export an "
        "environment whose services have public URLs (like https://stg.plyr.fm)\n"
    )


@pytest.mark.parametrize(
    ("env", "edit", "message"),
    [
        (
            "production",
            ("", ""),
            "error: production is not protected ([environments.production.access] protect = "
            "false): there are no Cloudflare Access rules to export\n",
        ),
        (
            "qa",
            ("", ""),
            "error: no environment 'qa' in tiers.toml; known: staging, production\n",
        ),
        (
            "staging",
            ('"email:ops@example.com",', '"github-user:zzstoat",'),
            "error: environments.staging.access.allow: 'github-user:zzstoat' has no Cloudflare "
            "Access rule (Access cannot name a GitHub user); allow that person by email:ADDRESS "
            "instead\n",
        ),
        (
            "staging",
            ('url = "https://stg.plyr.fm"', 'url = "https://stg.plyr.fm:8443"'),
            "error: staging is served on stg.plyr.fm:8443: Cloudflare Access ignores ports, so "
            "rules cannot tell these apart from the host's default port; give each environment "
            "hostnames of its own\n",
        ),
    ],
)
def test_what_cloudflare_cannot_express_is_refused(
    seed: Path, env: str, edit: tuple[str, str], message: str
) -> None:
    seed.write_text(SEED.replace(*edit))
    done = tiers("access", "export", "cloudflare", env)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)


def test_a_destination_is_exported_once_and_only_for_the_environments_hosts(seed: Path) -> None:
    text = SEED.replace(
        '"api-stg.plyr.fm/docs",', '"/docs", "api-stg.plyr.fm/docs", "api.plyr.fm/admin",'
    )
    apps = export(load_text(text, "tiers.toml").config, "staging")["applications"]
    bypasses = [
        (a["name"], a["domain"], a["policies"][0]["name"])
        for a in apps
        if a["policies"][0]["decision"] == "bypass"
    ]
    assert bypasses == [
        (f"plyr staging: bypass {uri}", uri, rule)
        for uri, rule in [
            ("api-stg.plyr.fm/health", "bypass api-stg.plyr.fm/health"),
            ("api-stg.plyr.fm/docs", "bypass /docs"),  # first written wins, as in the gate
            ("stg.plyr.fm/docs", "bypass /docs"),
            ("stg.plyr.fm/manifest.webmanifest", "bypass stg.plyr.fm/manifest.webmanifest"),
            ("stg.plyr.fm/icons/*", "bypass stg.plyr.fm/icons/*"),
        ]
    ]
