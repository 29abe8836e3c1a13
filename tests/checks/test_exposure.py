"""What reaches past a tier's walls: a gate walked around, cookies, overridden facts."""

from __future__ import annotations

import pytest

from tests.checks.test_rules import BREAKS, separation
from tests.conftest import Edit, tiers
from tiers.config import load

STAGING_BACKEND = 'frontend_url = "${environments.staging.frontend.url}"\n'
OBSERVABILITY_VAR = 'observability_environment = "LOGFIRE_ENVIRONMENT"\n'


def test_a_public_platform_url_of_a_protected_tier_walks_around_the_gate(edit: Edit) -> None:
    (finding,) = separation(*load(edit(*BREAKS["access-platform-url-public"])))
    assert (finding.severity, finding.key) == ("error", "environments.staging.backend.platform_url")
    assert finding.message == (
        "staging is protected, but its backend is also public at "
        "https://relay-api-staging.fly.dev: anyone reaches it around the access gate"
    )
    assert "release the app's public IPs" in finding.hint
    assert "remove platform_url" in finding.hint


def test_a_frontend_calling_the_backend_platform_host_under_cookie_auth(edit: Edit) -> None:
    path = edit(
        (
            'api_url = "${environments.production.backend.url}"',
            'api_url = "https://relay-api.fly.dev"',
        )
    )
    (finding,) = separation(*load(path))
    assert (finding.rule, finding.key) == (
        "cookie-site-mismatch",
        "environments.production.frontend.api_url",
    )
    assert finding.message == (
        "production frontend api_url https://relay-api.fly.dev is on the site "
        "relay-api.fly.dev, but frontend is on plyr.fm (plyr.fm): the session cookie is never "
        "sent across"
    )
    assert "point api_url and frontend_url at them" in finding.hint


@pytest.mark.parametrize(
    ("var", "value", "where"),
    [
        (
            "DOCKET_URL",
            "redis://plyr-redis.internal:6379",
            "environments.staging.redis.url (or redis.url_secret)",
        ),
        ("FRONTEND_URL", "https://plyr.fm", "environments.staging.backend.frontend_url"),
        ("R2_BUCKET", "audio-prod", "environments.staging.storage.buckets.audio"),
    ],
)
def test_env_may_not_override_a_fact(edit: Edit, var: str, value: str, where: str) -> None:
    path = edit(
        (OBSERVABILITY_VAR, f'{OBSERVABILITY_VAR}bucket_audio = "R2_BUCKET"\n'),
        (STAGING_BACKEND, f'{STAGING_BACKEND}env = {{ {var} = "{value}" }}\n'),
    )
    (finding,) = separation(*load(path))
    assert (finding.rule, finding.severity) == ("env-overrides-fact", "error")
    assert finding.key == f"environments.staging.backend.env.{var}"
    assert finding.message.startswith(f"staging backend env {var} overrides the ")
    assert finding.message.endswith(f"; set {where} instead")


def test_port_is_tiers_own(edit: Edit) -> None:
    (finding,) = separation(
        *load(edit((STAGING_BACKEND, f'{STAGING_BACKEND}env = {{ PORT = "8000" }}\n')))
    )
    assert finding.rule == "env-overrides-fact"
    assert finding.message == (
        "staging backend env PORT is tiers' own: the platform assigns each process its port; "
        "remove it from env"
    )


def test_a_password_in_an_env_value_is_a_secret_in_the_file(edit: Edit) -> None:
    value = "postgresql://plyr:hunter2@db.plyr.fm/plyr"
    edit((STAGING_BACKEND, f'{STAGING_BACKEND}env = {{ DATABASE_URL = "{value}" }}\n'))
    result = tiers("check")
    assert result.returncode == 1
    assert (
        "error [secret-in-config] staging backend env DATABASE_URL has a password in its URL"
        in (result.stdout)
    )
    assert "move the value to the tier's secrets (tiers secrets set ENV NAME)" in result.stdout
    assert "env-overrides-fact" not in result.stdout  # one mistake, one finding
    assert "hunter2" not in result.stdout + result.stderr


def test_a_public_docs_page_needs_its_schema(edit: Edit) -> None:
    (finding,) = separation(*load(edit(*BREAKS["access-docs-without-schema"])))
    assert (finding.severity, finding.key) == ("warning", "environments.staging.access.bypass[1]")
    assert finding.message == (
        "bypass api-stg.plyr.fm/docs makes the docs page public, but not the schema it loads "
        "(api-stg.plyr.fm/openapi.json): the page fails for everyone not signed in"
    )
    assert "bypass the schema beside the page" in finding.hint


def test_a_wildcard_bypass_of_everything_is_one_finding(edit: Edit) -> None:
    (finding,) = separation(*load(edit(('"stg.plyr.fm/icons/*"', '"*.plyr.fm/*"'))))
    assert finding.rule == "access-everyone"
    assert finding.message == (
        "staging bypasses *.plyr.fm/*: everyone reaches the whole application"
    )


def test_production_cookie_on_the_shared_domain_reaches_staging(edit: Edit) -> None:
    (finding,) = separation(*load(edit(*BREAKS["cookie-sent-to-other-tier"])))
    assert (finding.severity, finding.environments) == ("warning", ("production", "staging"))
    assert finding.message == (
        "production's session cookie on Domain=.plyr.fm is also sent to staging's hosts "
        "api-stg.plyr.fm, stg.plyr.fm: code running there reads production's sessions and "
        "can set cookies production accepts"
    )
    assert 'cookie_name = "__Host-plyr_session"' in finding.hint
    assert "registrable domain of its own" in finding.hint
    assert "A cookie name of its own is not enough" in finding.hint
