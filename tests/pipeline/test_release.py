"""The git-driven flow for real: push → on-push deploys staging → `tiers release` tags,
moves production-fe, pushes and deploys production → production serves what staging ran.

The example runs here with staging and production on free ports of their own (see
tests/pipeline/example.py), with a bare repository in a temporary directory as its remote.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiers
from tests.pipeline.example import example_copy, git, port

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")


@pytest.fixture
def project() -> Iterator[Path]:
    with example_copy("release", ("staging", "production")) as project:
        remote = project.parent / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
        git(project, "remote", "add", "origin", str(remote))
        git(project, "push", "-q", "-u", "origin", "main")
        yield project


def health(project: Path, example_port: int) -> dict[str, Any]:
    url = f"http://localhost:{port(project, example_port)}/health"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return dict(json.loads(answer.read()))


def push(project: Path, message: str, files: dict[str, str]) -> tuple[str, str]:
    before = git(project, "rev-parse", "HEAD")
    for name, body in files.items():
        (project / name).write_text(body)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", message)
    git(project, "push", "-q", "origin", "main")
    return before, git(project, "rev-parse", "HEAD")


def on_push(project: Path, before: str, after: str) -> subprocess.CompletedProcess[str]:
    return tiers("on-push", "--branch", "main", "--before", before, "--after", after, cwd=project)


def history(project: Path, env: str) -> list[dict[str, Any]]:
    return list(json.loads(tiers("history", env, "--json", cwd=project).stdout))


def remote_ref(project: Path, ref: str) -> str:
    return git(project, "ls-remote", "origin", ref).split("\t")[0]


def test_push_release_and_production_serves_what_staging_ran(project: Path) -> None:
    head = git(project, "rev-parse", "HEAD")
    first = on_push(project, "0" * 40, head)
    assert first.returncode == 0, first.stderr
    assert f"staging: deployed backend, frontend at {head[:7]}" in first.stdout
    assert "migrations changed: backend/alembic/versions/0001_create_tracks.py" in first.stdout
    again = on_push(project, "0" * 40, head)  # CI ran it twice
    assert f"staging: already serves {head[:7]} or newer; nothing to do" in again.stdout
    assert len(history(project, "staging")) == 1

    dry = tiers("release", "--dry-run", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert "(the first release)" in dry.stdout and "  branch    production-fe" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout
    assert git(project, "tag") == ""

    done = tiers("release", cwd=project)
    assert done.returncode == 0, done.stderr
    tag = git(project, "tag")
    assert tag and f"production: {tag} serves" in done.stdout
    assert f"  {head[:7]} plyr (Ada)" in done.stdout  # the changelog
    assert remote_ref(project, f"refs/tags/{tag}")
    assert remote_ref(project, "refs/heads/production-fe") == head
    staging, production = health(project, 8002), health(project, 8003)
    assert (production["commit"], production["migration_head"], production["version"]) == (
        staging["commit"],
        staging["migration_head"],
        tag,
    )
    same = tiers("diff", "staging", "production", "--exit-code", cwd=project)
    assert same.returncode == 0, same.stdout  # production-fe is tracked by design
    assert '    frontend.branch: (absent) | "production-fe"' in same.stdout
    replay = tiers("on-release", tag, cwd=project)
    assert f"production: already serves {tag}; nothing to do" in replay.stdout

    # a backend-only change deploys the backend alone, and production refuses it unreleased
    before, after = push(
        project,
        "tweak",
        {
            "backend/src/plyr_backend/logs.py": (
                project / "backend/src/plyr_backend/logs.py"
            ).read_text()
            + "\n"
        },
    )
    only = on_push(project, before, after)
    assert f"staging: deployed backend at {after[:7]}" in only.stdout
    live = json.loads((project / ".tiers/local/environments/staging/live.json").read_text())
    assert (live["backend"]["commit"], live["frontend"]["commit"]) == (after, head)
    assert "  1 commit behind staging" in tiers("status", cwd=project).stdout
    stale = on_push(project, "0" * 40, head)  # a CI job for the older push, run late
    assert f"staging: already serves {head[:7]} or newer; nothing to do" in stale.stdout
    drift = tiers("diff", "staging", "production", cwd=project)
    assert "commits: staging has 1 commit production lacks" in drift.stdout
    planned = tiers("deploy", "production", "--ref", after, "--dry-run", cwd=project)
    assert planned.returncode == 0, planned.stderr  # staging ran it: production may
    (project / "backend/src/plyr_backend/unreleased.py").write_text("FLAG = True\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "never on staging")
    unseen = git(project, "rev-parse", "HEAD")
    dry = tiers("deploy", "production", "--ref", unseen, "--dry-run", cwd=project)
    assert dry.returncode == 1 and "production deploys only what staging ran" in dry.stderr
    blocked = tiers("deploy", "production", "--ref", unseen, cwd=project)
    assert blocked.returncode == 1
    assert (
        f"production deploys only what staging ran: {unseen[:12]} ({unseen[:7]}) was never "
        "deployed successfully to staging"
    ) in blocked.stderr

    held_after_rollback(project, tag, after)


def held_after_rollback(project: Path, tag: str, after: str) -> None:
    """A rolled-back release is held: re-running its on-release does not bring it back."""
    git(project, "reset", "-q", "--hard", after)
    second = tiers("release", cwd=project)
    assert second.returncode == 0, second.stderr
    bad = git(project, "describe", "--tags", "--exact-match", after)
    assert tiers("rollback", "production", cwd=project).returncode == 0
    assert health(project, 8003)["version"] == tag
    held = tiers("on-release", bad, cwd=project)
    assert held.returncode == 1
    assert f"production was rolled back from {bad}" in held.stderr
    assert "held until a newer release is cut" in held.stderr
    forced = tiers("deploy", "production", "--ref", bad, "--force", cwd=project)
    assert forced.returncode == 2 and "--force needs --reason" in forced.stderr


def test_release_refuses_before_changing_anything(project: Path, tmp_path: Path) -> None:
    def refused(*expected: str) -> None:
        result = tiers("release", cwd=project)
        assert result.returncode == 1, result.stdout
        for text in expected:
            assert text in result.stderr
        assert git(project, "tag") in ("", "not-a-release")  # no release tag made

    git(project, "checkout", "-q", "--detach")
    refused("HEAD is detached; releases are cut from main: git switch main")
    git(project, "checkout", "-q", "main")
    (project / "README.md").write_text("changed\n")
    refused("the work tree has changes (README.md); commit or stash them first")
    git(project, "checkout", "-q", "--", "README.md")
    git(project, "branch", "-q", "--unset-upstream")
    refused("main has no upstream", "git push --set-upstream origin main")
    git(project, "branch", "-q", "--set-upstream-to", "origin/main")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(project.parent / "remote.git"), str(other))
    git(other, "commit", "-q", "--allow-empty", "-m", "someone else's")
    git(other, "push", "-q", "origin", "main")
    refused("main is 1 commit(s) behind origin/main; git pull")
    git(project, "pull", "-q", "--ff-only")
    refused("staging has no deploy, not", "production ships only what staging ran")

    head = git(project, "rev-parse", "HEAD")
    assert on_push(project, "0" * 40, head).returncode == 0
    assert tiers("down", cwd=project).returncode == 0
    refused(
        f"staging is not healthy: backend http://localhost:{port(project, 8002)}/health "
        "does not answer"
    )
    assert tiers("up", "staging", cwd=project).returncode == 0  # the deployed release again
    git(project, "tag", "-a", "-m", "x", "not-a-release", head)  # other tags are fine
    git(project, "branch", "production-fe", "HEAD~1")
    git(project, "checkout", "-q", "production-fe")
    git(project, "commit", "-q", "--allow-empty", "-m", "hotfix on the branch")
    git(project, "checkout", "-q", "main")
    refused("production-fe has diverged from main", "--force-branch")
    git(project, "branch", "-q", "-D", "production-fe")

    hook = project.parent / "remote.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: releases need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = tiers("release", cwd=project)
    assert result.returncode == 1
    tag = next(t for t in git(project, "tag").split() if t != "not-a-release")
    assert f"release {tag} stopped: done locally: tag {tag}, branch production-fe; " in (
        result.stderr
    )
    assert "not pushed, nothing deployed" in result.stderr
    assert f"or undo with: git tag -d {tag}; git branch -D production-fe" in result.stderr
    assert "protected: releases need a review" in result.stderr
    assert remote_ref(project, f"refs/tags/{tag}") == ""
    assert history(project, "production") == []


def test_tiers_own_state_is_not_a_change_to_the_work_tree(plyr: Path) -> None:
    git(plyr.parent, "init", "-q", "-b", "main")  # no .gitignore: .tiers/ is untracked
    git(plyr.parent, "add", "-A")
    git(plyr.parent, "commit", "-q", "-m", "plyr")
    (plyr.parent / ".tiers").mkdir()
    (plyr.parent / ".tiers/state.db").write_bytes(b"")  # what a tiers up would have left
    result = tiers("release")
    assert result.returncode == 1
    assert "main has no upstream" in result.stderr  # the next check: the tree is clean
    (plyr.parent / "notes.txt").write_text("a real change\n")
    result = tiers("release")
    assert "the work tree has changes (notes.txt); commit or stash them first" in result.stderr


def test_release_outside_git_says_so(plyr: Path) -> None:
    result = tiers("release", cwd=plyr.parent)
    assert result.returncode == 2
    assert "is not inside a git repository; run `git init` there" in result.stderr


def test_a_version_whose_tag_exists_is_refused(plyr: Path) -> None:
    from datetime import UTC, datetime

    from tiers.config import load
    from tiers.errors import OperationError
    from tiers.pipeline.deploy import Pipeline
    from tiers.pipeline.release import Releaser
    from tiers.pipeline.report import Reporter
    from tiers.state import StateStore

    git(plyr.parent, "init", "-q", "-b", "main")
    git(plyr.parent, "add", "-A")
    git(plyr.parent, "commit", "-q", "-m", "plyr")
    git(plyr.parent, "tag", "-a", "-m", "released", "2026.1126.013000")
    with StateStore.open(None, plyr.parent) as store:
        pipeline = Pipeline(load(plyr).config, plyr, store, Reporter(live=False))
        releaser = Releaser(pipeline, now=lambda: datetime(2026, 11, 26, 1, 30, tzinfo=UTC))
        with pytest.raises(OperationError, match=r"tag 2026\.1126\.013000 already exists"):
            releaser._version()  # noqa: SLF001 - the tag check, without a whole release
