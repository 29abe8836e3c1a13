"""A release is exactly its commit: the tiers.toml a deploy ships is the commit's own, a
commit that fails `tiers check` is refused, a rollback brings back its release's own
configuration, and a downgrade happens under the old code, never under the new one.

Staging runs on free ports of its own, so these tests run beside anything else.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import tiers
from tests.pipeline.example import example_copy, git, port

VERSIONS = "backend/alembic/versions"
BINDING = '[environments.staging.backend]\nplatform = "local"\n'

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")


@pytest.fixture
def repo() -> Iterator[Path]:
    with example_copy("commit", ("staging",)) as project:
        yield project


def edit(repo: Path, name: str, old: str, new: str) -> None:
    path = repo / name
    text = path.read_text()
    assert old in text, f"{name} no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def with_feature(repo: Path, value: str) -> None:
    """Give staging's backend ``FEATURE=value`` in tiers.toml (uncommitted)."""
    text = (repo / "tiers.toml").read_text()
    text = re.sub(r'FEATURE = "[^"]*"', f'FEATURE = "{value}"', text)
    if "FEATURE" not in text:
        text = text.replace(BINDING, BINDING + f'env = {{ FEATURE = "{value}" }}\n', 1)
    (repo / "tiers.toml").write_text(text)


def history(repo: Path) -> list[dict[str, Any]]:
    result = tiers("history", "staging", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def app_environ(repo: Path) -> dict[str, str]:
    """The environment of staging's live backend.app process, read from /proc."""
    status = json.loads(tiers("status", "--json", cwd=repo).stdout)
    (pid,) = [
        p["pid"]
        for env in status
        for p in env["processes"]
        if p["name"].startswith("staging.backend.app@")
    ]
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if b"=" in item)


def sha256_at(repo: Path, commit: str) -> str:
    show = ["git", "show", f"{commit}:tiers.toml"]
    text = subprocess.run(show, cwd=repo, capture_output=True, check=True).stdout
    return hashlib.sha256(text).hexdigest()


def test_a_deploy_ships_the_tiers_toml_of_its_commit(repo: Path) -> None:
    with_feature(repo, "one")
    first = commit_all(repo, "feature one")
    with_feature(repo, "uncommitted")
    done = tiers("deploy", "staging", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "not deployed: uncommitted changes to tiers.toml" in done.stdout
    assert "access.protect" not in done.stderr  # example_copy leaves staging's gate out
    assert app_environ(repo)["FEATURE"] == "one"
    (run,) = history(repo)
    assert run["manifest"]["bindings"]["backend"]["env"] == {"FEATURE": "one"}
    assert run["manifest"]["config_sha256"] == sha256_at(repo, first)

    with_feature(repo, "two")
    second = commit_all(repo, "feature two")
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    assert app_environ(repo)["FEATURE"] == "two"
    older = tiers("deploy", "staging", "--ref", first, "--force", "--reason", "back", cwd=repo)
    assert older.returncode == 0, older.stderr
    assert "not deployed" not in older.stdout  # it ships another commit than the checkout
    assert app_environ(repo)["FEATURE"] == "one"  # --ref ships that commit's own config
    assert [r["manifest"]["config_sha256"] for r in history(repo)] == [
        sha256_at(repo, first),
        sha256_at(repo, second),
        sha256_at(repo, first),
    ]


def test_uncommitted_code_is_named_as_not_deployed(repo: Path) -> None:
    edit(
        repo,
        "backend/src/plyr_backend/main.py",
        '"""',
        '"""Changed, not committed.\n',
    )
    done = tiers("deploy", "staging", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert (
        "not deployed: uncommitted changes to backend (backend/src/plyr_backend/main.py); "
        "commit them to ship them"
    ) in done.stdout


def test_a_commit_whose_config_fails_check_is_refused_unless_forced(repo: Path) -> None:
    edit(repo, "tiers.toml", BINDING + "url", BINDING + "secrets = []\nurl")
    edit(repo, "tiers.toml", 'secrets = ["OAUTH_ENCRYPTION_KEY"]\n', "")
    edit(repo, "tiers.toml", "secrets = []\n", "")
    bad = commit_all(repo, "staging forgets its secrets")
    git(repo, "checkout", "-q", "HEAD~1", "--", "tiers.toml")  # the work tree is fine
    plan = tiers("deploy", "staging", "--dry-run", cwd=repo)
    assert plan.returncode == 1
    assert f"deploy staging: main → {bad[:12]}" in plan.stdout
    refused = tiers("deploy", "staging", cwd=repo)
    assert refused.returncode == 1
    version = git(repo, "rev-parse", "--short=7", bad)
    assert refused.stderr.startswith(
        f"error: not deploying {version}: `tiers check` finds 1 error in the tiers.toml it "
        f"ships:\nerror:   {version}:tiers.toml:"
    )
    assert "[secrets-undeclared] staging backend declares no secrets" in refused.stderr
    assert "fix them and commit, or pass --force --reason TEXT" in refused.stderr
    assert history(repo) == []
    forced = tiers("deploy", "staging", "--force", "--reason", "demo day", cwd=repo)
    assert history(repo)[0]["manifest"]["forced"] == "demo day"  # past the check, recorded
    # and then the backend itself refuses to start without the key tiers.toml forgot
    assert forced.returncode == 1
    assert "plyr-backend: missing environment variable OAUTH_ENCRYPTION_KEY (" in forced.stderr


def test_rollback_brings_back_the_release_with_its_own_config(repo: Path) -> None:
    with_feature(repo, "one")
    first = commit_all(repo, "feature one")
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    venv_before = app_environ(repo)["PATH"].split(":")[0]
    with_feature(repo, "two")
    edit(repo, "backend/requirements.lock", "\n", "\n# another lock, another virtualenv\n")
    commit_all(repo, "feature two")
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    assert app_environ(repo)["FEATURE"] == "two"
    with_feature(repo, "three")  # today's file, uncommitted: never what a rollback runs
    done = tiers("rollback", "staging", cwd=repo)
    assert done.returncode == 0, done.stderr
    environ = app_environ(repo)
    assert environ["FEATURE"] == "one"
    assert environ["PATH"].split(":")[0] == venv_before  # the same virtualenv again
    assert history(repo)[0]["manifest"]["config_sha256"] == sha256_at(repo, first)


GENRE_0004 = '''"""add genre to tracks"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("genre", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.drop_column("genre")
'''
MODEL = "backend/src/plyr_backend/db.py"
CREATED = "    created_at: Mapped[datetime]"
GENRE = "    genre: Mapped[str | None] = mapped_column(String(40), nullable=True)\n"


def with_genre(repo: Path) -> None:
    """A release whose code reads tracks.genre, with the migration that adds it."""
    (repo / VERSIONS / "0004_genre.py").write_text(GENRE_0004)
    edit(repo, MODEL, CREATED, GENRE + CREATED)
    commit_all(repo, "genre")


def api(repo: Path) -> str:
    return f"http://localhost:{port(repo, 8002)}"


class Probe:
    """GET /tracks every 50 ms from another thread; counts what is not a 200."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.failures: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                self.sent += 1
                try:
                    answer = client.get(f"{self.api}/tracks")
                    if answer.status_code != 200:
                        self.failures.append(f"{answer.status_code} {answer.text[:80]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                time.sleep(0.05)


def test_a_downgrade_runs_after_the_old_code_serves_and_never_under_the_new(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    first = git(repo, "rev-parse", "HEAD")
    with_genre(repo)
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    runs = len(history(repo))
    plan = tiers("rollback", "staging", "--db", "downgrade", "--dry-run", cwd=repo)
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0].startswith("rollback staging: ") and lines[0].endswith(", --db downgrade")
    assert [line.split()[0] for line in lines[1:]] == [
        "build", "secrets", "start", "health", "switch", "drain", "then", "snapshot", "downgrade"
    ]  # fmt: skip
    assert lines[7] == "then the database of staging down to 0003"
    assert lines[9] == (
        "  downgrade backend: python -m alembic downgrade $TIERS_MIGRATION_TARGET "
        "(TIERS_MIGRATION_TARGET=0003)"
    )
    assert len(history(repo)) == runs  # a dry run records nothing
    with Probe(api(repo)) as probe:
        done = tiers("rollback", "staging", "--db", "downgrade", cwd=repo)
        time.sleep(0.5)
    assert done.returncode == 0, done.stderr
    assert probe.sent > 20
    assert probe.failures == []
    answer = httpx.get(f"{api(repo)}/health", timeout=5).json()
    assert (answer["commit"], answer["migration_head"]) == (first, "0003")
    run = history(repo)[0]
    assert [s["name"] for s in run["steps"]] == [
        "build",
        "secrets",
        "start",
        "health",
        "switch",
        "drain",
        "snapshot",
        "downgrade",
    ]


def test_a_failed_downgrade_restores_its_snapshot_and_the_old_code_keeps_serving(
    repo: Path,
) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    first = git(repo, "rev-parse", "HEAD")
    edit(
        repo,
        "tiers.toml",
        'downgrade_command = "python -m alembic downgrade $TIERS_MIGRATION_TARGET"',
        'downgrade_command = "python -m alembic downgrade $TIERS_MIGRATION_TARGET && exit 3"',
    )
    with_genre(repo)
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    done = tiers("rollback", "staging", "--db", "downgrade", cwd=repo)
    assert done.returncode == 1
    version = git(repo, "rev-parse", "--short=7", first)
    assert (
        f"switched to {version}, but the downgrade to 0003 failed, so the database was "
        "restored from the snapshot taken just before it (migration head 0004)"
    ) in done.stderr
    answer = httpx.get(f"{api(repo)}/health", timeout=5).json()
    assert (answer["commit"], answer["migration_head"]) == (first, "0004")
    assert httpx.get(f"{api(repo)}/tracks", timeout=5).status_code == 200
    runs = history(repo)
    assert [(r["kind"], r["state"]) for r in runs] == [
        ("rollback", "failed"),
        ("deploy", "rolled-back"),
        ("deploy", "succeeded"),
    ]
    assert [s["name"] for s in runs[0]["steps"]][-3:] == ["snapshot", "downgrade", "restore"]
