"""`tiers ls` as a user runs it: the seed's table, JSON with stable keys, a terminal table."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import tiers

SEED_TABLE = Path(__file__).with_name("seed_table.md")


def cells(markdown: str) -> list[list[str]]:
    """The cells of a markdown table, row by row, without their surrounding spaces."""
    lines = [line.strip() for line in markdown.splitlines() if line.strip()]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_markdown_reproduces_the_seed_table_cell_by_cell(plyr: Path) -> None:
    result = tiers("ls", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert cells(result.stdout) == cells(SEED_TABLE.read_text())


def test_json_has_one_object_per_environment_with_stable_keys(plyr: Path) -> None:
    result = tiers("ls", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["environment"] for row in rows] == ["development", "staging", "production"]
    keys = {"environment", "trigger", "backend_url", "database", "redis", "frontend", "storage"}
    assert all(set(row) == keys | {"urls"} for row in rows)
    staging = rows[1]
    assert staging["trigger"] == "push to main"
    assert staging["frontend"] == "stg.plyr.fm (main branch)"
    assert staging["urls"] == {
        "backend": "https://api-stg.plyr.fm",
        "frontend": "https://stg.plyr.fm",
    }


def test_text_table_keeps_each_environment_on_one_line_off_a_terminal(plyr: Path) -> None:
    result = tiers("ls")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("backend URL" in line and "storage" in line for line in lines)
    (staging,) = [line for line in lines if "staging" in line and "push to main" in line]
    assert "plyr-redis-stg (fly.io)" in staging
    assert "audio-staging, images-staging (r2)" in staging


def test_a_column_per_api_and_per_frontend_in_services_order(four: Path) -> None:
    result = tiers("ls", "-f", "markdown")
    assert result.returncode == 0, result.stderr
    header, _, development, preview, *_ = cells(result.stdout)
    assert header == [
        "environment", "trigger", "api URL", "database", "redis", "web", "admin", "storage"
    ]  # fmt: skip
    assert development[:3] == ["**development**", "local", "localhost:8000"]
    assert preview[1] == "manual"
    assert preview[5:] == ["—", "—", "—"]  # nothing of that kind in this tier


def test_json_marks_what_a_tier_lacks_as_null(four: Path) -> None:
    rows = json.loads(tiers("ls", "--json", "-c", str(four)).stdout)
    assert {row["environment"]: row["admin"] for row in rows} == {
        "development": None,
        "preview": None,
        "staging": "admin-stg.shop.dev (main branch)",
        "production": None,
    }
    assert rows[0]["redis"] is None


def test_a_missing_config_is_unusable_input(tmp_path: Path) -> None:
    result = tiers("ls", "-c", "nowhere.toml")
    assert result.returncode == 2
    assert "nowhere.toml" in result.stderr
