"""The variables a service's processes are given, from the seed's example."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Edit
from tiers.config import load
from tiers.platforms.runtime import Release, process_env


def test_staging_backend_gets_its_own_facts_under_its_own_names(plyr: Path) -> None:
    config, _ = load(plyr)
    env = process_env(
        config, "staging", "backend", release=Release("2026.1125.1", "abc"), port=9001
    )
    assert env["TIERS_ENVIRONMENT"] == "staging"
    assert (env["TIERS_VERSION"], env["TIERS_COMMIT"], env["PORT"]) == (
        "2026.1125.1",
        "abc",
        "9001",
    )
    assert env["FRONTEND_URL"] == "https://stg.plyr.fm"
    assert env["ATPROTO_APP_NAMESPACE"] == "fm.plyr.stg"
    assert env["DOCKET_URL"] == "redis://plyr-redis-stg.internal:6379"
    assert env["ATPROTO_CLIENT_ID"] == "https://api-stg.plyr.fm/oauth-client-metadata.json"
    assert env["LOGFIRE_ENVIRONMENT"] == "staging"
    assert "DATABASE_URL" not in env  # a secret: its value is not in tiers.toml


def test_the_frontend_is_told_its_own_api(plyr: Path) -> None:
    config, _ = load(plyr)
    env = process_env(config, "production", "frontend", release=Release("v", "c"))
    assert env["PUBLIC_API_URL"] == "https://api.plyr.fm"
    assert "PORT" not in env


def test_buckets_are_located_by_the_platform(edit: Edit) -> None:
    path = edit(
        (
            'database_url = "DATABASE_URL"',
            'database_url = "DATABASE_URL"\nbucket_audio = "AUDIO_DIR"',
        )
    )
    config, _ = load(path)
    env = process_env(
        config,
        "staging",
        "backend",
        release=Release("v", "c"),
        bucket=lambda role, name: f"/data/{name}",
    )
    assert env["AUDIO_DIR"] == "/data/audio-staging"
