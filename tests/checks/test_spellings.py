"""One resource written two ways is still one resource; two resources stay two."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.test_rules import separation
from tests.conftest import Edit, tiers
from tiers.config import load

PRODUCTION_REDIS = '"redis://plyr-redis.internal:6379"'


@pytest.mark.parametrize(
    "spelling",
    [
        "redis://plyr-redis-stg.internal",
        "redis://PLYR-REDIS-STG.internal:6379",
        "redis://plyr-redis-stg.internal:6379/0",
        "redis://plyr-redis-stg.internal:6379/",
        "redis://plyr-redis-stg.internal?db=0",
    ],
)
def test_the_same_redis_written_differently_is_shared(edit: Edit, spelling: str) -> None:
    findings = separation(*load(edit((PRODUCTION_REDIS, f'"{spelling}"'))))
    assert [(f.rule, f.message) for f in findings] == [
        (
            "shared-redis",
            "staging and production share the Redis redis://plyr-redis-stg.internal:6379",
        )
    ]
    assert "its own Redis instance" in findings[0].hint


def test_another_database_number_is_another_redis(edit: Edit) -> None:
    findings = separation(
        *load(edit((PRODUCTION_REDIS, '"redis://plyr-redis-stg.internal:6379/1"')))
    )
    assert findings == []


@pytest.mark.parametrize(
    ("staging", "production"),
    [
        ("postgresql://app@db.plyr.fm/plyr", "postgresql://other@DB.plyr.fm:5432/plyr"),
        ("postgres://app@db.plyr.fm/plyr", "postgresql+psycopg://app@db.plyr.fm/plyr/"),
    ],
)
def test_the_same_database_url_written_differently_is_shared(
    edit: Edit, staging: str, production: str
) -> None:
    findings = separation(
        *load(
            edit(
                (
                    'name = "plyr-stg", url_secret = "DATABASE_URL"',
                    f'name = "a", url = "{staging}"',
                ),
                (
                    'name = "plyr-prd", url_secret = "DATABASE_URL"',
                    f'name = "b", url = "{production}"',
                ),
            )
        )
    )
    assert [(f.rule, f.message) for f in findings] == [
        ("shared-database", f"staging and production share the database {staging}")
    ]


def test_another_port_is_another_database_server(edit: Edit) -> None:
    path = edit(
        ('name = "plyr-stg", url_secret = "DATABASE_URL"', 'name = "a", url = "postgresql://db/x"'),
        (
            'name = "plyr-prd", url_secret = "DATABASE_URL"',
            'name = "b", url = "postgresql://db:5433/x"',
        ),
    )
    assert separation(*load(path)) == []


def test_a_database_url_that_does_not_parse_is_no_traceback(edit: Edit) -> None:
    edit(
        ('name = "plyr-stg", url_secret = "DATABASE_URL"', 'name = "a", url = "postgresql://["'),
        (
            'name = "plyr-prd", url_secret = "DATABASE_URL"',
            'name = "b", url = "postgresql://u:hunter2@["',
        ),
    )
    result = tiers("check")
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("written", "pairs", "rule", "message"),
    [
        (
            "Neon",
            [('provider = "neon", name = "plyr-prd"', 'provider = "Neon", name = "plyr-stg"')],
            "shared-database",
            "staging and production share the database plyr-stg (neon)",
        ),
        (
            "cloudflare-r2",
            [
                (
                    'provider = "r2", buckets = { audio = "audio-prod"',
                    'provider = "cloudflare-r2", buckets = { audio = "audio-staging"',
                )
            ],
            "shared-bucket",
            "staging and production share the bucket audio-staging (r2)",
        ),
        (
            "Production",
            [('environment = "staging"', 'environment = "Production"')],
            "shared-observability",
            "staging and production share the observability environment Production (logfire)",
        ),
    ],
)
def test_providers_and_names_spelt_differently_are_one(
    edit: Edit, written: str, pairs: list[tuple[str, str]], rule: str, message: str
) -> None:
    findings = separation(*load(edit(*pairs)))
    assert [(f.rule, f.severity, f.message) for f in findings] == [(rule, "error", message)]


def test_an_unknown_provider_spelling_is_refused_with_the_known_ones(edit: Edit) -> None:
    path = edit(('provider = "neon", name = "plyr-stg"', 'provider = "neon-db", name = "plyr-stg"'))
    result = tiers("check")
    assert result.returncode == 2
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "neon-db" in text)
    assert result.stderr.strip() == (
        f"error: tiers.toml:{line}:14 environments.staging.database.provider: unknown database "
        "provider 'neon-db'; did you mean 'neon'? known: local, sqlite, neon, supabase, fly, "
        "rds, cloud-sql, azure, render, railway, heroku, crunchy-bridge, digitalocean, aiven"
    )


def test_a_shared_observability_environment_is_an_error(edit: Edit) -> None:
    (finding,) = separation(*load(edit(('environment = "production"', 'environment = "staging"'))))
    assert (finding.rule, finding.severity) == ("shared-observability", "error")
    assert finding.key == "environments.production.observability.environment"
    assert "mix with production's" in finding.hint


def test_the_example_spelt_with_aliases_stays_clean(plyr: Path) -> None:
    text = plyr.read_text().replace('provider = "r2"', 'provider = "Cloudflare_R2"')
    plyr.write_text(text.replace('provider = "neon"', 'provider = " NEON "'))
    config, source = load(plyr)
    assert config.environments["staging"].storage is not None
    assert config.environments["staging"].storage.provider == "r2"
    assert separation(config, source) == []
