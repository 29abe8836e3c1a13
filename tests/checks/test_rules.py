"""Each rule, broken alone in the seed's example, fires alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import Edit
from tiers.checks import RULES, Finding, run
from tiers.config import Config, Source, load

STAGING_ACCESS = re.compile(r"\[environments\.staging\.access\].*?(?=# -{5})", re.S)

BREAKS: dict[str, list[tuple[str, str]]] = {
    "shared-database": [('name = "plyr-prd"', 'name = "plyr-stg"')],
    "shared-redis": [
        ('"redis://plyr-redis.internal:6379"', '"redis://plyr-redis-stg.internal:6379"')
    ],
    "shared-bucket": [('audio = "audio-prod"', 'audio = "audio-staging"')],
    "shared-namespace": [('namespace = "fm.plyr"\n', 'namespace = "fm.plyr.stg"\n')],
    "shared-app": [('app = "relay-api"\n', 'app = "relay-api-staging"\n')],
    "shared-frontend-project": [('project = "plyr-fm"\n', 'project = "plyr-fm-stg"\n')],
    "shared-domain": [('url = "https://plyr.fm"', 'url = "https://stg.plyr.fm"')],
    "shared-cookie-scope": [('"__Host-plyr_session"', '"plyr_session_stg"')],
    "cookie-sent-to-other-tier": [('"__Host-plyr_session"', '"plyr_session"')],
    "access-platform-url-public": [
        ('"http://relay-api-staging.flycast"', '"https://relay-api-staging.fly.dev"')
    ],
    "access-docs-without-schema": [('  "api-stg.plyr.fm/openapi.json",', "")],
    "env-overrides-fact": [
        (
            'frontend_url = "${environments.staging.frontend.url}"\n',
            'frontend_url = "${environments.staging.frontend.url}"\n'
            'env = { DOCKET_URL = "redis://plyr-redis.internal:6379" }\n',
        )
    ],
    "shared-observability": [('environment = "production"', 'environment = "staging"')],
    "shared-oauth-client": [
        (
            'client_id = "https://api.plyr.fm/oauth-client-metadata.json"',
            'client_id = "https://api-stg.plyr.fm/oauth-client-metadata.json"',
        )
    ],
    "cookie-site-mismatch": [('url = "http://localhost:5173"', 'url = "http://127.0.0.1:5173"')],
    "oauth-wrong-domain": [
        (
            'redirect_uri = "https://api-stg.plyr.fm/auth/callback"',
            'redirect_uri = "https://relay-api-staging.fly.dev/auth/callback"',
        )
    ],
    "url-crosses-environments": [
        (
            'api_url = "${environments.staging.backend.url}"',
            'api_url = "${environments.production.backend.url}"',
        )
    ],
    "redis-without-tls": [
        ('"redis://plyr-redis.internal:6379"', '"redis://plyr-redis.upstash.io:6379"')
    ],
    "duplicate-trigger": [('trigger = { release = "github" }', 'trigger = { push = "main" }')],
    "shared-branch": [('branch = "production-fe"', 'branch = "main"')],
    "promotion-order": [('branch = "main"  ', 'branch = "release"  ')],
    "database-without-migrations": [('release_command = "uv run alembic upgrade head"', "")],
    "access-no-identity": [
        ('allow = ["github-org:plyr-fm", "email-domain:plyr.fm"]', "allow = []")
    ],
    "access-everyone": [('"email-domain:plyr.fm"]', '"everyone"]')],
    "access-login-only": [('"email-domain:plyr.fm"]', '"login:otp"]')],
    "access-unreachable-rule": [('"api-stg.plyr.fm/docs"', '"api.plyr.fm/docs"')],
    "secrets-undeclared": [('secrets = "${environments.staging.backend.secrets}"', "")],
    "secret-not-provided": [
        ('token_secret = "LOGFIRE_WRITE_TOKEN" }', 'token_secret = "LOGFIRE_TOKEN" }')
    ],
    "secret-in-config": [
        (
            'name = "plyr-dev", url_secret = "DATABASE_URL" }',
            'name = "plyr-dev", url = "postgresql://plyr:hunter2@localhost/plyr_dev" }',
        )
    ],
    "secrets-differ": [
        (
            'secrets = "${environments.staging.backend.secrets}"',
            'secrets = ["DATABASE_URL", "LOGFIRE_WRITE_TOKEN", '
            '"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]',
        )
    ],
}


def separation(config: Config, source: Source) -> list[Finding]:
    """The findings of every rule but platform-not-installed, which the seed's fly.io and
    Pages bindings meet wherever no driver for them is installed (test_platforms.py),
    access-not-enforced, which a protected tier meets on a platform that runs no gate
    (tested below), and secret-missing, which the seed's tiers.toml meets with no secrets
    store beside it (test_store.py)."""
    ignore = ["platform-not-installed", "access-not-enforced", "secret-missing"]
    return run(config, source, ignore=ignore)


def fired(path: Path) -> list[str]:
    config, source = load(path)
    return sorted({finding.rule for finding in separation(config, source)})


def test_the_seed_example_is_clean(plyr: Path) -> None:
    assert fired(plyr) == []


def test_every_rule_has_a_breaking_case() -> None:
    skipped = {
        "staging-unprotected",
        "platform-not-installed",
        "access-not-enforced",
        "secret-missing",  # tiers.toml alone cannot break it: test_store.py
        "secret-reused",
        "secret-names-other-tier",
        "secret-readable-by-other-tier",
        "secret-in-dotenv",
    }
    assert set(BREAKS) | skipped == set(RULES)


def test_a_gate_nothing_enforces_is_said_plainly(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "plyr" / "tiers.toml"
    config, source = load(example)  # the local platform runs the gate: nothing to say
    assert "access-not-enforced" not in {f.rule for f in run(config, source)}
    on_memory = tmp_path / "tiers.toml"
    on_memory.write_text(
        example.read_text().replace(
            '[environments.staging.backend]\nplatform = "local"',
            '[environments.staging.backend]\nplatform = "fly"\napp = "plyr-api-stg"',
        )
    )
    findings = [f for f in run(*load(on_memory)) if f.rule == "access-not-enforced"]
    assert [(f.severity, f.message) for f in findings] == [
        (
            "warning",
            "staging declares access.protect, but its backend runs on fly, which does not "
            "run tiers' gate, so http://localhost:8002 answers anyone who can reach it",
        )
    ]
    behind_cloudflare = tmp_path / "cloudflare.toml"
    behind_cloudflare.write_text(
        on_memory.read_text().replace('provider = "tiers"', 'provider = "cloudflare"')
    )
    assert "access-not-enforced" not in {f.rule for f in run(*load(behind_cloudflare))}


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_breaking_one_rule_fires_that_rule_alone(rule: str, edit: Edit) -> None:
    findings = separation(*load(edit(*BREAKS[rule])))
    assert [f.rule for f in findings] == [rule]


ONE_MISTAKE_ONE_FINDING = {
    "allow everyone": (
        [('"github-org:plyr-fm", "email-domain:plyr.fm"]', '"everyone"]')],
        "access-everyone",
    ),
    "allow any pin": (
        [('"github-org:plyr-fm", "email-domain:plyr.fm"]', '"login:otp"]')],
        "access-login-only",
    ),
    "allow gmail": (
        [('"github-org:plyr-fm", "email-domain:plyr.fm"]', '"email-domain:gmail.com"]')],
        "access-login-only",
    ),
    "unprotect staging": ([("protect = true", "protect = false")], "staging-unprotected"),
    "same redis twice": (BREAKS["shared-redis"], "shared-redis"),
    "project on another domain": (
        [('domain = "plyr.fm"', 'domain = "plyr.app"')],
        "cookie-site-mismatch",
    ),
    "production before staging": (
        [
            ('trigger = { push = "main" }', 'trigger = { release = "github" }'),
            (
                'trigger = { release = "github" }\nnamespace = "fm.plyr"',
                'trigger = { push = "main" }\nnamespace = "fm.plyr"',
            ),
        ],
        "promotion-order",
    ),
}


@pytest.mark.parametrize("case", sorted(ONE_MISTAKE_ONE_FINDING))
def test_one_mistake_is_one_finding(case: str, edit: Edit) -> None:
    pairs, rule = ONE_MISTAKE_ONE_FINDING[case]
    findings = separation(*load(edit(*pairs)))
    assert [f.rule for f in findings] == [rule]


# Text of the plyr example, spelt a little differently; none of it is a mistake.
CLEAN_VARIANTS = {
    "upper-case and default-port hosts": [
        (
            'api_url = "${environments.staging.backend.url}"',
            'api_url = "https://API-STG.plyr.fm:443/v1"',
        ),
        (
            'redirect_uri = "https://api-stg.plyr.fm/auth/callback"',
            'redirect_uri = "https://Api-Stg.plyr.fm:443/auth/callback"',
        ),
    ],
    "IPv6 loopback for development": [
        ('url = "http://localhost:8001"', 'url = "http://[::1]:8001"'),
        ('url = "http://localhost:5173"', 'url = "http://[::1]:5173"'),
    ],
    "host-only cookies of one name on different hosts": [
        ('cookie_name = "plyr_session_stg"', 'cookie_name = "__Host-plyr_session"'),
    ],
    "Redis on a Unix socket": [('"redis://plyr-redis.internal:6379"', '"unix:///run/redis.sock"')],
    "Redis on a private address": [
        ('"redis://plyr-redis.internal:6379"', '"redis://10.0.0.7:6379"')
    ],
    "rediss on the internet": [
        ('"redis://plyr-redis.internal:6379"', '"rediss://plyr-redis.upstash.io:6379"')
    ],
    "manual tier after production": [
        (
            "# " + "-" * 79 + " costs",
            '[environments.demo]\ntrigger = "manual"\n\n[environments.demo.frontend]\n'
            'platform = "cloudflare-pages"\nproject = "plyr-demo"\nbranch = "demo"\n'
            'url = "https://demo.plyr.fm"\n',
        ),
    ],
    "a worker that needs no secrets": [
        (
            "[environments.production.frontend]",
            '[environments.production.transcoder]\nplatform = "fly"\napp = "plyr-transcoder"\n'
            "secrets = []\n\n[environments.production.frontend]",
        ),
    ],
}


@pytest.mark.parametrize("case", sorted(CLEAN_VARIANTS))
def test_equivalent_spellings_stay_clean(case: str, edit: Edit) -> None:
    assert fired(edit(*CLEAN_VARIANTS[case])) == []


def test_unprotected_staging_is_a_warning(plyr: Path) -> None:
    plyr.write_text(STAGING_ACCESS.sub("", plyr.read_text(), count=1))
    config, source = load(plyr)
    findings = separation(config, source)
    assert [(f.rule, f.severity) for f in findings] == [("staging-unprotected", "warning")]
    assert "staging is deployed but anyone can reach it" in findings[0].message


def test_messages_name_the_environments_and_the_resource(edit: Edit) -> None:
    path = edit(*BREAKS["shared-bucket"])
    (finding,) = separation(*load(path))
    assert finding.message == "staging and production share the bucket audio-staging (r2)"
    assert finding.environments == ("staging", "production")
    assert finding.key == "environments.production.storage.buckets.audio"
    assert "own bucket" in finding.hint


def test_a_finding_points_at_the_line_that_causes_it(edit: Edit) -> None:
    path = edit(*BREAKS["shared-frontend-project"])
    (finding,) = separation(*load(path))
    line = path.read_text().splitlines()[finding.line - 1]
    assert line.startswith('project = "plyr-fm-stg"')


def test_frontend_calling_production_names_both(edit: Edit) -> None:
    (finding,) = separation(*load(edit(*BREAKS["url-crosses-environments"])))
    assert finding.message == (
        "staging frontend calls the API at https://api.plyr.fm, which is production's backend"
    )


def test_login_by_pin_alone_lets_any_inbox_in(edit: Edit) -> None:
    (finding,) = separation(*load(edit(*BREAKS["access-login-only"])))
    assert "anyone with an email inbox" in finding.message


def test_redis_on_a_private_network_may_skip_tls(edit: Edit) -> None:
    path = edit(('"redis://plyr-redis.internal:6379"', '"redis://10.0.0.7:6379"'))
    assert fired(path) == []


def test_rediss_on_the_internet_is_fine(edit: Edit) -> None:
    path = edit(('"redis://plyr-redis.internal:6379"', '"rediss://plyr-redis.upstash.io:6379"'))
    assert fired(path) == []


def test_twenty_environments_with_shared_resources_each_reported(tmp_path: Path) -> None:
    from bench.generate import config_text

    path = tmp_path / "big.toml"
    path.write_text(config_text(20, share_database_every=5))
    findings = separation(*load(path))
    assert [f.rule for f in findings] == ["shared-database"] * 3


def test_local_tiers_on_one_postgresql_server_share_it(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "plyr" / "tiers.toml"
    path = tmp_path / "tiers.toml"
    path.write_text(
        example.read_text().replace("127.0.0.1:5434/plyr-stg", "127.0.0.1:5433/plyr-stg")
    )
    findings = separation(*load(path))
    assert [(f.rule, f.message) for f in findings] == [
        ("shared-database", "development and staging share the database server 127.0.0.1:5433")
    ]
