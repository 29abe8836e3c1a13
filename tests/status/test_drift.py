"""`tiers diff A B` and `behind()`: drift between environments, as a user reads it.

Nothing is deployed for real: each test makes a git repository of the plyr example in
its directory, commits to it, and records deployments straight into the SQLite state
store beside tiers.toml, with manifests shaped as the pipeline writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Edit, tiers
from tiers.config import Config, load
from tiers.errors import UsageError
from tiers.state import Kind, State, StateStore
from tiers.status import behind, behind_line, diff, render

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@plyr.fm",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@plyr.fm",
}
UNKNOWN = "f" * 40


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def commit(repo: Path, subject: str) -> str:
    """Commit a change called ``subject``; its sha."""
    notes = repo / "NOTES"
    notes.write_text(notes.read_text() + subject + "\n" if notes.exists() else subject + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", subject)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def project(plyr: Path) -> Path:
    """The plyr example's tiers.toml, committed as the first commit of a new repository."""
    root = plyr.parent
    (root / ".gitignore").write_text(".tiers/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Start plyr")
    return root


@pytest.fixture
def store(project: Path) -> Iterator[StateStore]:
    """The state store `tiers diff` reads by default: .tiers/state.db beside tiers.toml."""
    with StateStore.open(None, project) as opened:
        yield opened


def config() -> Config:
    return load(Path("tiers.toml")).config


def manifest(
    environment: str, sha: str, version: str, services: list[str] | None = None
) -> dict[str, Any]:
    """What Pipeline._manifest records, from tiers.toml as it is now."""
    env = config().environments[environment]
    shipped = services or list(env.services)
    resources = {
        name: part.model_dump(mode="json", exclude_none=True)
        for name, part in (
            ("database", env.database),
            ("redis", env.redis),
            ("storage", env.storage),
        )
        if part is not None
    }
    return {
        "ref": "main",
        "commit": sha,
        "version": version,
        "services": shipped,
        "config_sha256": hashlib.sha256(Path("tiers.toml").read_bytes()).hexdigest(),
        "bindings": {
            s: env.services[s].model_dump(mode="json", exclude_none=True) for s in shipped
        },
        "resources": resources,
        "namespace": env.namespace,
    }


def record(
    store: StateStore,
    environment: str,
    sha: str | None,
    *,
    head: str | None = "0003",
    kind: Kind = "deploy",
    state: State = "succeeded",
    services: list[str] | None = None,
) -> int:
    """A finished deployment of ``sha``, recorded as the pipeline records one."""
    version = (sha or "none")[:7]
    body = manifest(environment, sha or "", version, services)
    run = store.begin(environment, kind, version, sha, "ada", body, migration_before=head)
    body["migration_after"] = head
    store.finish(run, state, migration_after=head, manifest=body)
    return run


def two_ahead(project: Path, store: StateStore) -> tuple[str, str]:
    """Production serves the first commit, staging two commits later; (staging, production)."""
    first = git(project, "rev-parse", "HEAD")
    record(store, "production", first)
    commit(project, "Add plays to tracks")
    newest = commit(project, "Count plays on each listen")
    record(store, "staging", newest)
    return newest, first


# -- tiers diff ---------------------------------------------------------------------------


def test_staging_two_commits_ahead_lists_those_two_subjects(
    project: Path, store: StateStore
) -> None:
    newest, first = two_ahead(project, store)

    result = tiers("diff", "staging", "production")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("staging → production\n")
    assert f"  staging:    {newest[:7]} ({newest[:12]}), deploy #2 by ada" in out
    assert f"  production: {first[:7]} ({first[:12]}), deploy #1 by ada" in out
    assert "commits: staging has 2 commits production lacks" in out
    listed = [line.strip() for line in out.splitlines() if line.endswith("(Ada)")]
    assert listed == [
        f"{newest[:7]} Count plays on each listen (Ada)",
        f"{git(project, 'rev-parse', '--short=7', 'HEAD~1')} Add plays to tracks (Ada)",
    ]
    assert "production has" not in out  # nothing the other way
    assert "migrations: same head (0003)" in out


def test_the_reverse_direction_names_the_same_commits(project: Path, store: StateStore) -> None:
    two_ahead(project, store)
    out = tiers("diff", "production", "staging").stdout
    assert out.startswith("production → staging\n")
    assert "commits: staging has 2 commits production lacks" in out
    assert "Add plays to tracks" in out


def test_equal_commits_say_same_commit_and_do_not_drift(project: Path, store: StateStore) -> None:
    sha = git(project, "rev-parse", "HEAD")
    record(store, "staging", sha)
    record(store, "production", sha)

    result = tiers("diff", "staging", "production", "--exit-code")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"commits: same commit ({sha[:12]})" in result.stdout
    assert "migrations: same head (0003)" in result.stdout
    assert "services: both deploy backend, frontend" in result.stdout
    # tiers differ by design; the values are listed, but do not make a drift
    assert "  values that differ (staging | production; expected between tiers):" in result.stdout
    assert '    backend.url: "https://api-stg.plyr.fm" | "https://api.plyr.fm"' in result.stdout
    assert '    database.name: "plyr-stg" | "plyr-prd"' in result.stdout
    assert '    storage.buckets.audio: "audio-staging" | "audio-prod"' in result.stdout
    assert '    namespace: "fm.plyr.stg" | "fm.plyr"' in result.stdout
    assert "only in" not in result.stdout


def test_a_branch_only_production_tracks_is_shown_but_is_no_drift(
    project: Path, store: StateStore, edit: Edit
) -> None:
    # staging's frontend deploys what it is given; production's tracks its release branch
    edit(('project = "plyr-fm-stg"\nbranch = "main"\n', 'project = "plyr-fm-stg"\n'))
    sha = git(project, "rev-parse", "HEAD")
    record(store, "staging", sha)
    record(store, "production", sha)

    result = tiers("diff", "staging", "production", "--exit-code")

    assert result.returncode == 0, result.stdout + result.stderr
    assert '    frontend.branch: (absent) | "production-fe"' in result.stdout
    assert "only in" not in result.stdout
    data = json.loads(tiers("diff", "staging", "production", "--json").stdout)
    keys = {k["key"]: k for k in data["configuration"]["keys"]}
    assert (keys["frontend.branch"]["only_in"], keys["frontend.branch"]["designed"]) == (
        "production",
        True,
    )
    assert data["drifted"] is False


def test_exit_code_makes_a_drift_exit_1(project: Path, store: StateStore) -> None:
    two_ahead(project, store)
    assert tiers("diff", "staging", "production").returncode == 0  # a report
    result = tiers("diff", "staging", "production", "--exit-code")
    assert result.returncode == 1
    assert "Count plays on each listen" in result.stdout


def test_migration_heads_that_differ_are_shown(project: Path, store: StateStore) -> None:
    sha = git(project, "rev-parse", "HEAD")
    record(store, "production", sha, head="0003")
    record(store, "staging", sha, head="0004")

    result = tiers("diff", "staging", "production", "--exit-code")

    assert "migrations: differ: staging at 0004, production at 0003" in result.stdout
    assert result.returncode == 1


def test_a_variable_and_a_secret_only_staging_has_are_listed_apart(
    project: Path, store: StateStore, edit: Edit
) -> None:
    first = git(project, "rev-parse", "HEAD")
    record(store, "production", first)
    edit(
        (
            'secrets = ["DATABASE_URL", "OAUTH_ENCRYPTION_KEY",',
            'env = { FEATURE_PLAYS = "1" }\nsecrets = ["PLAYS_TOKEN", "DATABASE_URL", '
            '"OAUTH_ENCRYPTION_KEY",',
        )
    )
    newest = commit(project, "Configure plays")
    record(store, "staging", newest)

    out = tiers("diff", "staging", "production").stdout

    assert "configuration: tiers.toml differed between the two deployments" in out
    section = out[out.index("  only in staging:") :].splitlines()
    assert section[:3] == [
        "  only in staging:",
        '    backend.env.FEATURE_PLAYS = "1"',
        "    backend.secrets.PLAYS_TOKEN",
    ]
    assert section[3].startswith("  values that differ")
    assert "only in production" not in out

    data = json.loads(tiers("diff", "staging", "production", "--json").stdout)
    only = [k for k in data["configuration"]["keys"] if k["only_in"]]
    assert only == [
        {
            "key": "backend.env.FEATURE_PLAYS",
            "section": "binding",
            "a": "1",
            "b": None,
            "only_in": "staging",
            "listed": False,
            "designed": False,
        },
        {
            "key": "backend.secrets.PLAYS_TOKEN",
            "section": "binding",
            "a": True,
            "b": None,
            "only_in": "staging",
            "listed": True,
            "designed": False,
        },
    ]
    assert data["configuration"]["config_sha256_same"] is False


def test_a_service_deployed_by_one_side_only(project: Path, store: StateStore) -> None:
    sha = git(project, "rev-parse", "HEAD")
    record(store, "staging", sha)
    record(store, "production", sha, services=["backend"])

    out = tiers("diff", "staging", "production").stdout

    assert "services: both deploy backend; only staging deploys frontend" in out
    assert "frontend.url" not in out  # its keys are not drift of their own


def test_never_deployed_says_so_and_exits_0(project: Path, store: StateStore) -> None:
    record(store, "staging", git(project, "rev-parse", "HEAD"))

    result = tiers("diff", "staging", "production")

    assert result.returncode == 0, result.stderr
    assert "production has no successful deployment yet" in result.stdout.splitlines()
    assert "  production: no successful deployment yet" in result.stdout
    assert "commits:" not in result.stdout
    assert tiers("diff", "staging", "production", "--exit-code").returncode == 1


def test_a_failed_deploy_does_not_count_and_a_rollback_does(
    project: Path, store: StateStore
) -> None:
    first = git(project, "rev-parse", "HEAD")
    second = commit(project, "Add plays to tracks")
    third = commit(project, "Break the player")
    record(store, "production", first)
    record(store, "staging", second)
    record(store, "staging", third)
    record(store, "staging", second, kind="rollback")  # what serves staging now
    record(store, "staging", third, state="failed")

    out = tiers("diff", "staging", "production").stdout

    assert f"  staging:    {second[:7]} ({second[:12]}), rollback #4 by ada" in out
    assert "commits: staging has 1 commit production lacks" in out
    assert "Break the player" not in out


def test_a_commit_unknown_to_the_repository_is_said_not_an_error(
    project: Path, store: StateStore
) -> None:
    record(store, "staging", git(project, "rev-parse", "HEAD"))
    record(store, "production", UNKNOWN)

    result = tiers("diff", "staging", "production", "--json")

    assert result.returncode == 0, result.stderr
    commits = json.loads(result.stdout)["commits"]
    assert commits["a_only"] is None
    assert commits["unknown"] == "production's commit ffffffffffff is unknown to this repository"
    text = tiers("diff", "staging", "production").stdout
    assert (
        "commits: differ; cannot compare them: "
        "production's commit ffffffffffff is unknown to this repository"
    ) in text


def test_without_a_repository_commits_are_unknown(plyr: Path) -> None:
    with StateStore.open(None, plyr.parent) as store:
        record(store, "staging", "a" * 40)
        record(store, "production", "b" * 40)
        drift = diff(config(), plyr.parent, store, "staging", "production")
    assert drift.commits is not None
    assert drift.commits.a_only is None
    assert drift.commits.unknown == f"{plyr.parent.resolve()} is not in a git repository"
    assert drift.drifted


def test_an_unknown_environment_exits_2_naming_the_known_ones(project: Path) -> None:
    result = tiers("diff", "staging", "prod")
    assert result.returncode == 2
    assert "no environment 'prod'; known: development, staging, production" in result.stderr
    assert not (project / ".tiers").exists()  # nothing was created to find that out


def test_json_has_stable_keys(project: Path, store: StateStore) -> None:
    newest, first = two_ahead(project, store)

    result = tiers("diff", "staging", "production", "--json")

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == [
        "a",
        "b",
        "missing",
        "drifted",
        "commits",
        "migrations",
        "services",
        "configuration",
    ]
    assert data["a"]["environment"] == "staging"
    assert list(data["a"]["deployment"]) == [
        "id",
        "kind",
        "version",
        "commit",
        "finished_at",
        "migration_head",
        "config_sha256",
    ]
    assert data["a"]["deployment"]["commit"] == newest
    assert data["b"]["deployment"]["commit"] == first
    assert data["a"]["live"] == {}
    assert (data["missing"], data["drifted"]) == ([], True)
    assert [c["subject"] for c in data["commits"]["a_only"]] == [
        "Count plays on each listen",
        "Add plays to tracks",
    ]
    assert list(data["commits"]["a_only"][0]) == ["sha", "short", "subject", "author", "when"]
    assert data["commits"]["b_only"] == []
    assert data["migrations"] == {"a": "0003", "b": "0003", "same": True}
    assert data["services"] == {"a_only": [], "b_only": [], "both": ["backend", "frontend"]}
    keys = {k["key"]: k for k in data["configuration"]["keys"]}
    assert keys["redis.url"]["a"] == "redis://plyr-redis-stg.internal:6379"
    assert keys["redis.url"]["only_in"] is None


def test_never_deployed_in_json(project: Path) -> None:
    data = json.loads(tiers("diff", "staging", "production", "--json").stdout)
    assert data["missing"] == ["staging", "production"]
    assert data["commits"] is None
    assert data["a"]["deployment"] is None


def test_what_is_live_on_this_machine_is_shown(project: Path, store: StateStore) -> None:
    newest, _ = two_ahead(project, store)
    text = (project / "tiers.toml").read_text()  # staging's backend on this machine
    fly = '[environments.staging.backend]\nplatform = "fly"\napp = "relay-api-staging"\n'
    vm = 'vm = { size = "shared-cpu-1x", memory = "256mb" }\n'  # fly's keys, not the local one's
    assert fly in text and vm in text
    local = '[environments.staging.backend]\nplatform = "local"\n'
    (project / "tiers.toml").write_text(text.replace(fly, local).replace(vm, "", 1))
    live = project / ".tiers" / "local" / "environments" / "staging" / "live.json"
    live.parent.mkdir(parents=True)
    instance = {"environment": "staging", "service": "backend", "tag": "2"}
    live.write_text(json.dumps({"backend": {**instance, "version": newest[:7], "commit": newest}}))

    out = tiers("diff", "staging", "production").stdout

    lines = out.splitlines()
    assert lines[2] == f"              live: backend {newest[:7]} ({newest[:12]})"
    assert lines[4] == "              live: no live instance on this machine"


def test_render_caps_long_commit_lists(project: Path, store: StateStore) -> None:
    record(store, "production", git(project, "rev-parse", "HEAD"))
    for n in range(23):
        newest = commit(project, f"Change {n}")
    record(store, "staging", newest)

    text = render(diff(config(), project, store, "staging", "production"))

    assert "commits: staging has 23 commits production lacks" in text
    assert "  ... and 3 more" in text
    assert "Change 22" in text
    assert "Change 2 " not in text


def test_diff_rejects_an_unknown_environment(project: Path, store: StateStore) -> None:
    with pytest.raises(UsageError, match="no environment 'qa'; known: development"):
        diff(config(), project, store, "qa", "staging")


# -- behind -------------------------------------------------------------------------------


def test_behind_counts_commits_along_the_promotion_path(project: Path, store: StateStore) -> None:
    two_ahead(project, store)

    found = behind(config(), project, store)

    assert list(found) == ["staging", "production"]  # development deploys locally
    assert found["staging"].previous is None
    assert behind_line(found["staging"]) is None
    prod = found["production"]
    assert (prod.previous, prod.commits, prod.ahead, prod.migrations_differ) == (
        "staging",
        2,
        0,
        False,
    )
    assert behind_line(prod) == "2 commits behind staging"


def test_behind_up_to_date_hotfix_and_migrations(project: Path, store: StateStore) -> None:
    base = git(project, "rev-parse", "HEAD")
    record(store, "staging", base, head="0004")
    record(store, "production", base, head="0003")
    found = behind(config(), project, store)["production"]
    assert (found.commits, found.migrations_differ) == (0, True)
    assert (
        behind_line(found)
        == "up to date with staging; migrations differ (0003 here, 0004 in staging)"
    )

    git(project, "checkout", "-q", "-b", "hotfix")
    fix = commit(project, "Hotfix the login")
    git(project, "checkout", "-q", "main")
    record(store, "production", fix, head="0004")
    record(store, "staging", commit(project, "Add plays to tracks"), head="0004")
    found = behind(config(), project, store)["production"]
    assert (found.commits, found.ahead, found.migrations_differ) == (1, 1, False)
    assert behind_line(found) == "1 commit behind staging, 1 commit ahead"
    assert found.to_json()["ahead"] == 1


def test_behind_is_none_when_unknown(project: Path, store: StateStore) -> None:
    record(store, "staging", git(project, "rev-parse", "HEAD"))
    found = behind(config(), project, store)["production"]
    assert (found.commits, found.migrations_differ) == (None, None)
    assert behind_line(found) == "against staging: production not deployed yet"

    record(store, "production", UNKNOWN)
    found = behind(config(), project, store)["production"]
    assert found.commits is None
    assert found.migrations_differ is False
    assert behind_line(found) == (
        "against staging: production's commit ffffffffffff is unknown to this repository"
    )
