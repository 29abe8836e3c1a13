"""`tiers deploy --dry-run` prints the plan and changes nothing; the plans are golden files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import tiers
from tests.pipeline.example import EXAMPLE, git

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    project = tmp_path / "plyr"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".tiers", "__pycache__"))
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "plyr")
    return project


@pytest.mark.parametrize("environment", ["staging"])
def test_the_plan_of_each_tier_is_as_recorded(repo: Path, environment: str) -> None:
    result = tiers("deploy", environment, "--dry-run", cwd=repo)
    assert result.returncode == 0, result.stderr
    head = git(repo, "rev-parse", "HEAD")
    plan = result.stdout.replace(head[:12], "<COMMIT>").replace(head[:7], "<SHORT>")
    golden = GOLDEN / f"deploy-{environment}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(plan)
    assert plan == golden.read_text()
    assert not (repo / ".tiers/releases").exists()  # nothing built
    assert not (repo / ".tiers/local").exists()  # nothing started


def test_production_waits_for_its_first_release(repo: Path) -> None:
    result = tiers("deploy", "production", "--dry-run", cwd=repo)
    assert result.returncode == 2
    assert "production deploys releases and none has been cut yet" in result.stderr


@pytest.mark.parametrize("command", [["deploy"], ["deploy", "--dry-run"], ["rollback"]])
def test_a_tier_that_runs_the_work_tree_is_never_deployed(repo: Path, command: list[str]) -> None:
    result = tiers(*command[:1], "development", *command[1:], cwd=repo)
    assert result.returncode == 2
    assert result.stderr == (
        'error: development runs the work tree (trigger = "local") and is never deployed; '
        "`tiers up development` runs it as the work tree is now (or `tiers dev`)\n"
    )
    assert not (repo / ".tiers/releases").exists()
    assert not (repo / ".tiers/local").exists()
