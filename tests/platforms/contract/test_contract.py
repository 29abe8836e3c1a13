"""The platform contract, proven by a platform written from its documentation alone.

``tiers_memory`` (see ``plugin/``) is installed through the ``tiers.platforms`` entry
points under two names, and a small project deploys on it through the whole pipeline: the
command line in child processes, as a user runs it, and ``Pipeline`` in this process
where a test drives several deploys.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import tiers
from tests.platforms.contract.conftest import TIERS_TOML, commit, git, migration
from tiers.config import load
from tiers.errors import OperationError, PlatformError
from tiers.pipeline.deploy import Pipeline
from tiers.pipeline.report import Reporter
from tiers.platforms.base import Platform, available, load_platform
from tiers.state import Deployment, StateStore

STEPS = ["build", "secrets", "snapshot", "release", "start", "health", "switch", "drain"]


def journal(project: Path) -> list[str]:
    """Every call the pipeline made of the test platforms, in order."""
    path = project / ".tiers" / "journal.log"
    return path.read_text().splitlines() if path.exists() else []


def serving(project: Path) -> dict[str, str]:
    """Service → the version its platform has switched to in staging."""
    found = {}
    for name in ("memory", "memory-cdn"):
        path = project / ".tiers" / name / "staging" / "live.json"
        if path.exists():
            found |= {s: i["version"] for s, i in json.loads(path.read_text()).items()}
    return found


def started(project: Path) -> list[str]:
    """The instances the test platforms hold started in staging (``service@tag``)."""
    records = (project / ".tiers").glob("*/staging/running/*.json")
    return sorted(path.stem for path in records)


def database(project: Path) -> tuple[set[str], str | None]:
    """Staging's SQLite database: its tables and its alembic head."""
    path = project / ".tiers" / "memory" / "staging" / "shop.db"
    with closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        head = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return tables, head[0] if head else None


def recorded(project: Path) -> list[Deployment]:
    """Staging's deployments, newest first, as the state store keeps them."""
    with StateStore.open(None, project) as store:
        return store.history("staging", 10)


def version(project: Path) -> str:
    return git(project, "rev-parse", "--short", "HEAD")


@pytest.fixture
def deploy(project: Path) -> Iterator[tuple[Pipeline, list[str]]]:
    """A pipeline on the project's own state store, and the lines it reports."""
    lines: list[str] = []
    config = project / "tiers.toml"
    with StateStore.open(None, project) as store:
        yield Pipeline(load(config).config, config, store, Reporter(False, lines.append)), lines


def ship(pipeline: Pipeline) -> Deployment:
    """Deploy what staging follows (main), as ``tiers deploy staging`` does."""
    return pipeline.deploy("staging", pipeline.target(pipeline.environment("staging"), None))


def test_both_names_are_registered_through_the_entry_points(project: Path) -> None:
    assert available() == {
        "local": "tiers.platforms.local.platform:LocalPlatform",
        "memory": "tiers_memory:MemoryPlatform",
        "memory-cdn": "tiers_memory:OtherMemoryPlatform",
    }
    for name in ("memory", "memory-cdn"):
        cls = load_platform(name)
        assert cls.name == name
        assert isinstance(cls(load(project / "tiers.toml").config, project), Platform)


def test_a_dry_run_plans_the_steps_on_both_platforms_and_changes_nothing(project: Path) -> None:
    done = tiers("deploy", "staging", "--dry-run")
    assert done.returncode == 0, done.stderr
    head = git(project, "rev-parse", "HEAD")
    db = project / ".tiers" / "memory" / "staging" / "shop.db"
    assert done.stdout.splitlines() == [
        f"deploy staging: main → {head[:12]} as version {head[:7]}",
        f"  build     export {head[:12]} to .tiers/releases/; nothing to build",
        "  secrets   none declared",
        f"  snapshot  sqlite:///{db}",
        "  release   backend: python -m alembic upgrade head",
        "  start     backend: an instance on memory; frontend: an instance on memory-cdn, "
        "beside the live version",
        "  health    backend: /health answered from the release's files",
        "  switch    https://api-stg.shop.example → new backend; "
        "https://stg.shop.example → new frontend",
        "  drain     the old version: nothing to drain",
    ]
    assert [line for line in journal(project) if "prepare" not in line] == []
    assert recorded(project) == []


def test_a_deploy_runs_every_step_on_each_platform_and_records_them(project: Path) -> None:
    v1 = version(project)
    done = tiers("deploy", "staging")
    assert done.returncode == 0, done.stderr
    head = git(project, "rev-parse", "HEAD")
    assert done.stdout.splitlines()[-1] == f"staging: {v1} ({head[:12]}) serves; deployment 1"

    history = tiers("history", "staging").stdout.splitlines()
    assert history[0].startswith(f"#1 deploy {v1} ({head[:12]}) by ")
    assert history[0].endswith(": succeeded; migrations - → 0001")
    steps = [line.split() for line in history[1:]]
    assert [(s[0], s[1]) for s in steps] == [(name, "ok") for name in STEPS]
    assert history[1].endswith("backend built on memory; frontend built on memory-cdn")
    assert history[2].endswith("none declared")
    assert history[4].endswith("migration head 0001")

    assert serving(project) == {"backend": v1, "frontend": v1}
    assert started(project) == ["backend@1", "frontend@1"]
    assert database(project) == ({"alembic_version", "tracks"}, "0001")


def test_the_backend_is_healthy_before_the_frontend_switches(
    project: Path, deploy: tuple[Pipeline, list[str]]
) -> None:
    v1 = ship(deploy[0]).version
    calls = [line for line in journal(project) if line.split()[1] != "prepare"]
    assert [" ".join(line.split()[:5]) for line in calls] == [
        "memory build backend " + git(project, "rev-parse", "HEAD"),
        "memory-cdn build frontend " + git(project, "rev-parse", "HEAD"),
        f"memory run staging backend {v1}",
        "memory start staging backend 1",
        "memory-cdn start staging frontend 1",
        "memory healthy staging backend 1",
        "memory-cdn healthy staging frontend 1",
        "memory switch staging backend 1",
        "memory-cdn switch staging frontend 1",
    ]


def test_a_failing_release_command_keeps_the_old_version_and_restores_the_database(
    project: Path, deploy: tuple[Pipeline, list[str]]
) -> None:
    pipeline, _ = deploy
    v1 = ship(pipeline).version
    broken = migration(
        "0002", "0001", "plays", "raise RuntimeError('the migration broke half way')"
    )
    commit(project, "plays", {"backend/alembic/versions/0002_plays.py": broken})

    with pytest.raises(OperationError) as failed:
        ship(pipeline)
    first, *rest = str(failed.value).splitlines()
    assert first == (
        "staging: deployment 2 failed: its release command failed; nothing was switched "
        f"(backend {v1}, frontend {v1} still serving) and the database was restored from "
        "its snapshot."
    )
    assert rest[0] == ("memory: backend's 'python -m alembic upgrade head' in staging exited 1:")
    assert rest[-1] == "RuntimeError: the migration broke half way"

    recorded = pipeline.store.history("staging", 1)[0]
    assert (recorded.id, recorded.state) == (2, "failed")
    assert [(s.name, s.outcome) for s in recorded.steps] == [
        ("build", "ok"),
        ("secrets", "ok"),
        ("snapshot", "ok"),
        ("release", "failed"),
        ("restore", "ok"),
    ]
    assert serving(project) == {"backend": v1, "frontend": v1}
    assert started(project) == ["backend@1", "frontend@1"]
    assert database(project) == ({"alembic_version", "tracks"}, "0001")


def test_an_unhealthy_version_is_stopped_and_the_old_one_keeps_serving(
    project: Path, deploy: tuple[Pipeline, list[str]]
) -> None:
    pipeline, _ = deploy
    v1 = ship(pipeline).version
    v2 = commit(
        project,
        "plays, and a health answer that fails",
        {
            "backend/alembic/versions/0002_plays.py": migration("0002", "0001", "plays"),
            "backend/health": "failing: no plays table\n",
        },
    )[:7]

    with pytest.raises(OperationError) as failed:
        ship(pipeline)
    assert str(failed.value).splitlines() == [
        "staging: deployment 2 failed: the new version did not become healthy; nothing was "
        f"switched (backend {v1}, frontend {v1} still serving) and the database was "
        "restored from its snapshot.",
        f"memory: backend {v2} in staging is not healthy: /health answers "
        "'failing: no plays table'",
    ]
    recorded = pipeline.store.history("staging", 1)[0]
    assert [(s.name, s.outcome) for s in recorded.steps][-3:] == [
        ("start", "ok"),
        ("health", "failed"),
        ("restore", "ok"),
    ]
    assert "memory stop staging backend 2 at once" in journal(project)
    assert "memory-cdn stop staging frontend 2 at once" in journal(project)
    assert serving(project) == {"backend": v1, "frontend": v1}
    assert started(project) == ["backend@1", "frontend@1"]
    assert database(project) == ({"alembic_version", "tracks"}, "0001")


def test_a_rollback_serves_the_release_before_and_downgrades_after(
    project: Path, deploy: tuple[Pipeline, list[str]]
) -> None:
    v1 = ship(deploy[0]).version
    plays = migration("0002", "0001", "plays")
    commit(project, "plays", {"backend/alembic/versions/0002_plays.py": plays})
    v2 = ship(deploy[0]).version
    assert database(project) == ({"alembic_version", "tracks", "plays"}, "0002")

    done = tiers("rollback", "staging", "--db", "downgrade")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[-1] == f"staging: {v1} serves again; rollback 3 (--db downgrade)"
    )
    assert serving(project) == {"backend": v1, "frontend": v1}
    assert started(project) == ["backend@3", "frontend@3"]
    assert database(project) == ({"alembic_version", "tracks"}, "0001")
    downgraded = (
        f"memory run staging backend {v2} python -m alembic downgrade $TIERS_MIGRATION_TARGET"
    )
    assert journal(project)[-1] == downgraded  # after the switch, with the undone release

    history = tiers("history", "staging").stdout.splitlines()
    entries = [line for line in history if line.startswith("#")]
    assert entries[0].endswith(": succeeded; migrations 0002 → 0001")
    assert entries[0].startswith(f"#3 rollback {v1} ")
    assert entries[1].startswith(f"#2 deploy {v2} ")
    assert entries[1].endswith(": rolled-back; migrations 0001 → 0002")
    steps = [line.split()[0] for line in history[1 : history.index(entries[1])]]
    assert steps == [
        "build",
        "secrets",
        "start",
        "health",
        "switch",
        "drain",
        "snapshot",
        "downgrade",
    ]


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_service_on_a_platform_not_installed_is_refused_by_name(
    project: Path, dry_run: bool
) -> None:
    toml = (project / "tiers.toml").read_text()
    moved = toml.replace('platform = "memory-cdn"', 'platform = "fly"')
    commit(project, "the frontend moves to fly", {"tiers.toml": moved})

    done = tiers("deploy", "staging", *(["--dry-run"] if dry_run else []))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "error: staging: cannot deploy frontend: no platform 'fly' is installed "
        "(known: local, memory, memory-cdn); install the package that provides it\n"
    )
    assert recorded(project) == []
    assert not [line for line in journal(project) if "prepare" not in line]


def test_up_restarts_the_live_release_of_a_stopped_environment(
    project: Path, deploy: tuple[Pipeline, list[str]]
) -> None:
    pipeline, _ = deploy
    v1 = ship(pipeline).version
    platforms = [load_platform(n)(pipeline.config, project) for n in ("memory", "memory-cdn")]
    for platform in platforms:
        platform.stop_environment("staging")
    assert started(project) == []
    assert [(e["state"], e["problems"]) for e in platforms[0].status()] == [("stopped", [])]

    assert pipeline.up("staging") == f"up, serving {v1}"
    assert started(project) == ["backend@1", "frontend@1"]
    assert serving(project) == {"backend": v1, "frontend": v1}
    assert [(e["state"], e["problems"]) for e in platforms[0].status()] == [("serving", [])]


def test_a_deploy_killed_during_its_release_is_repaired_by_the_next(
    project: Path, deploy: tuple[Pipeline, list[str]]
) -> None:
    pipeline, lines = deploy
    v1 = ship(pipeline).version
    marker = project.parent / "migrating"
    slow = migration(
        "0002", "0001", "plays", f"open({str(marker)!r}, 'w').close()", "time.sleep(600)"
    ).replace("import sqlalchemy", "import time\n\nimport sqlalchemy")
    commit(project, "plays, slowly", {"backend/alembic/versions/0002_plays.py": slow})
    v2 = version(project)
    child = subprocess.Popen(
        [sys.executable, "-m", "tiers", "deploy", "staging"],
        start_new_session=True,  # its own process group: the release command is killed too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not marker.exists():
        assert child.poll() is None, "the deploy ended before its release command began"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert recorded(project)[0].state == "running"
    assert "plays" in database(project)[0]  # half migrated
    assert serving(project) == {"backend": v1, "frontend": v1}

    fixed = migration("0002", "0001", "plays")
    commit(project, "plays, at once", {"backend/alembic/versions/0002_plays.py": fixed})
    v3 = ship(pipeline).version
    assert (
        f"staging: deployment 2 ({v2}) was interrupted during release; what serves is "
        "unchanged and its migration was undone from the snapshot"
    ) in [line.partition(" ")[2] for line in lines]
    assert [(d.id, d.state) for d in recorded(project)] == [
        (3, "succeeded"),
        (2, "interrupted"),
        (1, "succeeded"),
    ]
    assert serving(project) == {"backend": v3, "frontend": v3}
    assert started(project) == ["backend@3", "frontend@3"]


def test_a_failing_build_changes_nothing(project: Path, deploy: tuple[Pipeline, list[str]]) -> None:
    pipeline, _ = deploy
    v1 = ship(pipeline).version
    toml = (project / "tiers.toml").read_text()
    build = 'root = "backend"\nbuild = "python -c \\"raise SystemExit(\'no compiler here\')\\""\n'
    commit(project, "a build", {"tiers.toml": toml.replace('root = "backend"\n', build, 1)})

    with pytest.raises(PlatformError) as failed:
        ship(pipeline)
    assert str(failed.value) == "memory: backend's build exited 1:\nno compiler here"
    deployment = recorded(project)[0]
    assert (deployment.id, deployment.state, deployment.error) == (2, "failed", str(failed.value))
    assert [(s.name, s.outcome) for s in deployment.steps] == [("build", "failed")]
    assert serving(project) == {"backend": v1, "frontend": v1}
    assert started(project) == ["backend@1", "frontend@1"]
    assert database(project) == ({"alembic_version", "tracks"}, "0001")


def test_a_platform_that_runs_no_gate_is_said_to_leave_a_protected_tier_open(
    project: Path,
) -> None:
    from tiers.platforms.base import enforcing

    assert enforcing() == {"local"}  # tiers_memory does not declare enforces_access
    access = (
        '\n[environments.staging.access]\nprotect = true\nlogin = ["otp"]\n'
        'allow = ["email-domain:shop.example"]\n'
    )
    commit(project, "protect staging", {"tiers.toml": TIERS_TOML + access})
    done = tiers("deploy", "staging")
    assert done.returncode == 0, done.stderr
    assert (
        "warning: staging declares access.protect, but tiers' gate does not stand in front of "
        "backend (on memory), frontend (on memory-cdn): only a platform that runs the gate "
        "enforces it, so these answer anyone who can reach them (see `tiers check`, "
        "access-not-enforced)"
    ) in done.stderr
    checked = tiers("check", "--fail-on", "never").stdout
    assert (
        "staging declares access.protect, but its frontend runs on memory-cdn, which does not "
        "run tiers' gate, so https://stg.shop.example answers anyone who can reach it"
    ) in checked
    behind_cloudflare = TIERS_TOML + access.replace(
        "protect = true", 'protect = true\nprovider = "cloudflare"'
    )
    commit(project, "behind Cloudflare", {"tiers.toml": behind_cloudflare})
    done = tiers("deploy", "staging")
    assert done.returncode == 0, done.stderr
    assert (
        "note: staging's access rules are enforced by Cloudflare Access, not by tiers, once "
        "the rules `tiers access export cloudflare staging` writes are applied there"
    ) in done.stderr
